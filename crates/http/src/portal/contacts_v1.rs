//! `/portal/v1/contacts`: who, besides the account's own address, receives
//! the client's notifications: billing contacts the invoices, payments
//! and reminders, technical contacts the service changes.

use axum::extract::State;
use axum::Json;
use rackwave_store::Contact;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::account_v1::refused;
use super::PortalClient;
use crate::error::ErrorBody;
use crate::extract::ApiJson;
use crate::{ApiError, AppState};

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContactView {
    pub(crate) email: String,
    #[serde(default)]
    pub(crate) name: String,
    /// Receives invoices, payments and reminders.
    #[serde(default)]
    pub(crate) billing: bool,
    /// Receives activations, suspensions and cancellations.
    #[serde(default)]
    pub(crate) technical: bool,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Contacts {
    /// At most 10, each address once.
    pub(crate) contacts: Vec<ContactView>,
}

fn views(contacts: Vec<Contact>) -> Contacts {
    Contacts {
        contacts: contacts
            .into_iter()
            .map(|c| ContactView {
                email: c.email,
                name: c.name,
                billing: c.billing,
                technical: c.technical,
            })
            .collect(),
    }
}

/// The client's contacts.
#[utoipa::path(get, operation_id = "portal_contacts_get", path = "/portal/v1/contacts",
    tag = "portal", responses((status = 200, body = Contacts), (status = 401, body = ErrorBody)),
    security(("client_session" = [])))]
pub(crate) async fn get(who: PortalClient) -> Json<Contacts> {
    Json(views(who.client.contacts))
}

/// Replaces the client's contacts.
#[utoipa::path(put, operation_id = "portal_contacts_put", path = "/portal/v1/contacts",
    tag = "portal", request_body = Contacts,
    responses((status = 200, body = Contacts), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("client_session" = [])))]
pub(crate) async fn put(
    State(state): State<AppState>,
    who: PortalClient,
    ApiJson(req): ApiJson<Contacts>,
) -> Result<Json<Contacts>, ApiError> {
    let contacts = req
        .contacts
        .into_iter()
        .map(|c| Contact {
            email: c.email,
            name: c.name,
            billing: c.billing,
            technical: c.technical,
        })
        .collect();
    let client = state
        .clients
        .set_contacts(&who.client.id, contacts)
        .await
        .map_err(refused)?;
    Ok(Json(views(client.contacts)))
}
