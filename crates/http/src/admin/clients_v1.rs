//! Operators' view of the portal's clients: the list (searched by email,
//! name or company) and one client with its subscriptions.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ErrorBody;
use crate::extract::{page_limit, ApiPath, ApiQuery};
use crate::portal::account_v1::{refused, ClientView};
use crate::portal::subscriptions_v1::{view, SubscriptionView};
use crate::{ApiError, AppState};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only clients whose email, name or company contains this
    /// (case-insensitive).
    pub(crate) q: Option<String>,
    /// `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
    /// 1 to 500 (100).
    pub(crate) limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ClientPage {
    pub(crate) clients: Vec<ClientView>,
    pub(crate) next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ClientDetail {
    pub(crate) client: ClientView,
    pub(crate) subscriptions: Vec<SubscriptionView>,
}

/// Every client, by id; a page may be short when searched.
#[utoipa::path(get, operation_id = "admin_clients_list", path = "/admin/v1/clients",
    tag = "admin", params(ListQuery),
    responses((status = 200, body = ClientPage), (status = 422, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ClientPage>, ApiError> {
    let limit = page_limit(q.limit)?;
    let needle = q.q.as_deref().map(str::to_lowercase);
    let page = state.store.clients(q.cursor.as_deref(), limit).await?;
    let clients = page
        .items
        .into_iter()
        .filter(|c| {
            needle.as_deref().is_none_or(|n| {
                c.email.contains(n)
                    || c.name.to_lowercase().contains(n)
                    || c.company
                        .as_deref()
                        .is_some_and(|co| co.to_lowercase().contains(n))
            })
        })
        .map(ClientView::from)
        .collect();
    Ok(Json(ClientPage {
        clients,
        next_cursor: page.next_cursor,
    }))
}

/// One client with their subscriptions.
#[utoipa::path(get, operation_id = "admin_clients_get", path = "/admin/v1/clients/{id}",
    tag = "admin", params(("id" = String, Path, description = "Client id")),
    responses((status = 200, body = ClientDetail), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ClientDetail>, ApiError> {
    let client = state
        .store
        .client(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no client {id}")))?;
    let subscriptions = state
        .billing
        .of(&id)
        .await
        .map_err(refused)?
        .into_iter()
        .map(|s| view(&state, s, None))
        .collect();
    Ok(Json(ClientDetail {
        client: client.into(),
        subscriptions,
    }))
}
