//! `POST /admin/v1/workspaces/{id}/domains`: adds a sender domain, generates
//! its DKIM key and returns the TXT record to publish; `GET` lists them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::extract::{ApiJson, ApiPath};
use crate::{ApiError, AppState};
use rackwave_accounts::{dkim_record, DkimAlgorithm, SenderDomain};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddDomain {
    pub(crate) domain: String,
    /// `rsa-2048` (default) or `ed25519`.
    pub(crate) algorithm: Option<DkimAlgorithm>,
    /// DKIM selector; default `rw` + year and month.
    pub(crate) selector: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DnsRecord {
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) record_type: String,
    pub(crate) value: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DomainView {
    pub(crate) domain: String,
    pub(crate) workspace_id: String,
    pub(crate) selector: String,
    pub(crate) algorithm: DkimAlgorithm,
    /// Publish this TXT record; mail from the domain is signed from now on.
    pub(crate) dkim_record: DnsRecord,
    pub(crate) created_at: String,
}

impl From<SenderDomain> for DomainView {
    fn from(d: SenderDomain) -> Self {
        let (name, value) = dkim_record(&d);
        DomainView {
            dkim_record: DnsRecord {
                name,
                record_type: "TXT".into(),
                value,
            },
            domain: d.domain,
            workspace_id: d.workspace_id,
            selector: d.selector,
            algorithm: d.algorithm,
            created_at: d.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DomainList {
    pub(crate) domains: Vec<DomainView>,
}

/// Adds a sender domain with a new DKIM key.
#[utoipa::path(post, operation_id = "admin_domains_create", path = "/admin/v1/workspaces/{id}/domains", tag = "admin",
    params(("id" = String, Path, description = "Workspace id")),
    request_body = AddDomain,
    responses((status = 201, body = DomainView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiPath(workspace_id): ApiPath<String>,
    ApiJson(req): ApiJson<AddDomain>,
) -> Result<(StatusCode, Json<DomainView>), ApiError> {
    let d = state
        .domains
        .add(
            &workspace_id,
            &req.domain,
            req.algorithm.unwrap_or(DkimAlgorithm::Rsa2048),
            req.selector.as_deref(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(d.into())))
}

/// Lists a workspace's sender domains.
#[utoipa::path(get, operation_id = "admin_domains_list", path = "/admin/v1/workspaces/{id}/domains", tag = "admin",
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 200, body = DomainList), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiPath(workspace_id): ApiPath<String>,
) -> Result<Json<DomainList>, ApiError> {
    let domains = state
        .domains
        .list(&workspace_id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(DomainList { domains }))
}

/// Looks a workspace's sending domain up in DNS and records what was found
/// (what `POST /migosmtp/v1/domains/{domain}/verify` does, for an operator).
#[utoipa::path(post, operation_id = "admin_domains_verify",
    path = "/admin/v1/workspaces/{id}/domains/{domain}/verify", tag = "admin",
    params(("id" = String, Path, description = "Workspace id"),
        ("domain" = String, Path, description = "Domain name")),
    responses((status = 200, body = crate::migosmtp::domains_v1::DomainStatus),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn verify(
    State(state): State<AppState>,
    ApiPath((workspace_id, domain)): ApiPath<(String, String)>,
) -> Result<Json<crate::migosmtp::domains_v1::DomainStatus>, ApiError> {
    crate::migosmtp::domains_v1::verify_in(&state, &workspace_id, &domain)
        .await
        .map(Json)
}

/// Deletes a workspace's sending domain and its key.
#[utoipa::path(delete, operation_id = "admin_domains_delete",
    path = "/admin/v1/workspaces/{id}/domains/{domain}", tag = "admin",
    params(("id" = String, Path, description = "Workspace id"),
        ("domain" = String, Path, description = "Domain name")),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    ApiPath((workspace_id, domain)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    crate::migosmtp::domains_v1::delete_in(&state, &workspace_id, &domain).await
}

/// Changes a workspace's sending domain's tracking host or switches (what
/// `PATCH /migosmtp/v1/domains/{domain}` does, for an operator).
#[utoipa::path(patch, operation_id = "admin_domains_update",
    path = "/admin/v1/workspaces/{id}/domains/{domain}", tag = "admin",
    params(("id" = String, Path, description = "Workspace id"),
        ("domain" = String, Path, description = "Domain name")),
    request_body = crate::migosmtp::domains_v1::DomainChange,
    responses((status = 200, body = crate::migosmtp::domains_v1::DomainStatus),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    ApiPath((workspace_id, domain)): ApiPath<(String, String)>,
    ApiJson(change): ApiJson<crate::migosmtp::domains_v1::DomainChange>,
) -> Result<Json<crate::migosmtp::domains_v1::DomainStatus>, ApiError> {
    crate::migosmtp::domains_v1::update_in(&state, &workspace_id, &domain, change)
        .await
        .map(Json)
}
