//! `POST /admin/v1/workspaces/{id}/domains`: adds a sender domain, generates
//! its DKIM key and returns the TXT record to publish; `GET` lists them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domains::{DkimAlgorithm, DomainsError, SenderDomain};
use crate::http::error::ErrorBody;
use crate::http::extract::ApiJson;
use crate::http::{ApiError, AppState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDomain {
    pub domain: String,
    /// `rsa-2048` (default) or `ed25519`.
    pub algorithm: Option<DkimAlgorithm>,
    /// DKIM selector; default `rw` + year and month.
    pub selector: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DnsRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub record_type: String,
    pub value: String,
}

#[derive(Serialize, ToSchema)]
pub struct DomainView {
    pub domain: String,
    pub workspace_id: String,
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    /// Publish this TXT record; mail from the domain is signed from now on.
    pub dkim_record: DnsRecord,
    pub created_at: String,
}

impl From<SenderDomain> for DomainView {
    fn from(d: SenderDomain) -> Self {
        DomainView {
            dkim_record: DnsRecord {
                name: d.dns_name(),
                record_type: "TXT".into(),
                value: d.dns_value(),
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
pub struct DomainList {
    pub domains: Vec<DomainView>,
}

impl From<DomainsError> for ApiError {
    fn from(e: DomainsError) -> ApiError {
        match e {
            DomainsError::Invalid(m) => ApiError::invalid(m),
            DomainsError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            other => ApiError::internal(other),
        }
    }
}

/// Adds a sender domain with a new DKIM key.
#[utoipa::path(post, path = "/admin/v1/workspaces/{id}/domains", tag = "admin",
    params(("id" = String, Path, description = "Workspace id")),
    request_body = AddDomain,
    responses((status = 201, body = DomainView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Path(workspace_id): Path<String>,
    ApiJson(req): ApiJson<AddDomain>,
) -> Result<(StatusCode, Json<DomainView>), ApiError> {
    if state.accounts.workspace(&workspace_id)?.is_none() {
        return Err(ApiError::not_found(format!(
            "workspace {workspace_id} not found"
        )));
    }
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
#[utoipa::path(get, path = "/admin/v1/workspaces/{id}/domains", tag = "admin",
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 200, body = DomainList), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Path(workspace_id): Path<String>,
) -> Result<Json<DomainList>, ApiError> {
    if state.accounts.workspace(&workspace_id)?.is_none() {
        return Err(ApiError::not_found(format!(
            "workspace {workspace_id} not found"
        )));
    }
    let domains = state
        .domains
        .list(&workspace_id)?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(DomainList { domains }))
}
