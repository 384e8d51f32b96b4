//! `/migosmtp/v1/domains`: a workspace's sending domains with its own key.
//! Adding one generates its DKIM key and answers with every DNS record to
//! publish and why; `…/verify` looks each up through the delivery engine's
//! resolver and reports what it found. A domain is `verified` when its
//! DKIM key, SPF record and return path check out.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use rackwave_accounts::{expected_records, satisfies, DkimAlgorithm, RecordCheck, SenderDomain};
use rackwave_core::rfc3339;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::extract::{ApiJson, ApiPath, MigoSmtp};
use crate::{ApiError, AppState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewDomain {
    pub(crate) domain: String,
    /// `rsa-2048` (default) or `ed25519`.
    pub(crate) algorithm: Option<DkimAlgorithm>,
    /// DKIM selector; default `rw` + year and month.
    pub(crate) selector: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DomainStatus {
    pub(crate) domain: String,
    /// `verified` or `unverified`.
    pub(crate) status: &'static str,
    pub(crate) verified_at: Option<String>,
    pub(crate) selector: String,
    pub(crate) algorithm: DkimAlgorithm,
    /// Every record to publish, with what the last verification found.
    pub(crate) records: Vec<RecordCheck>,
    pub(crate) created_at: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DomainList {
    pub(crate) domains: Vec<DomainStatus>,
}

fn status(state: &AppState, d: SenderDomain) -> DomainStatus {
    let records = if d.checks.is_empty() {
        expected_records(&d, &state.dns_setup)
    } else {
        d.checks
    };
    DomainStatus {
        status: if d.verified_at_ms.is_some() {
            "verified"
        } else {
            "unverified"
        },
        verified_at: d.verified_at_ms.map(rfc3339),
        domain: d.domain,
        selector: d.selector,
        algorithm: d.algorithm,
        records,
        created_at: d.created_at,
    }
}

/// The workspace's domain, or 404.
async fn own(state: &AppState, workspace_id: &str, domain: &str) -> Result<SenderDomain, ApiError> {
    state
        .domains
        .get(domain)
        .await?
        .filter(|d| d.workspace_id == workspace_id)
        .ok_or_else(|| ApiError::not_found(format!("no sending domain {domain}")))
}

/// Adds a sending domain with a new DKIM key.
#[utoipa::path(post, operation_id = "migosmtp_domains_create", path = "/migosmtp/v1/domains",
    tag = "migosmtp", request_body = NewDomain,
    responses((status = 201, body = DomainStatus), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
    ApiJson(req): ApiJson<NewDomain>,
) -> Result<(StatusCode, Json<DomainStatus>), ApiError> {
    let d = state
        .domains
        .add(
            &tenant.workspace_id,
            &req.domain,
            req.algorithm.unwrap_or(DkimAlgorithm::Rsa2048),
            req.selector.as_deref(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(status(&state, d))))
}

/// The workspace's sending domains.
#[utoipa::path(get, operation_id = "migosmtp_domains_list", path = "/migosmtp/v1/domains",
    tag = "migosmtp", responses((status = 200, body = DomainList), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
) -> Result<Json<DomainList>, ApiError> {
    let domains = state
        .domains
        .list(&tenant.workspace_id)
        .await?
        .into_iter()
        .map(|d| status(&state, d))
        .collect();
    Ok(Json(DomainList { domains }))
}

/// One sending domain with its records.
#[utoipa::path(get, operation_id = "migosmtp_domains_get", path = "/migosmtp/v1/domains/{domain}",
    tag = "migosmtp", params(("domain" = String, Path, description = "Domain name")),
    responses((status = 200, body = DomainStatus), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
    ApiPath(domain): ApiPath<String>,
) -> Result<Json<DomainStatus>, ApiError> {
    let d = own(&state, &tenant.workspace_id, &domain).await?;
    Ok(Json(status(&state, d)))
}

/// Deletes a sending domain and its key: mail from it is no longer signed.
#[utoipa::path(delete, operation_id = "migosmtp_domains_delete", path = "/migosmtp/v1/domains/{domain}",
    tag = "migosmtp", params(("domain" = String, Path, description = "Domain name")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
    ApiPath(domain): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    delete_in(&state, &tenant.workspace_id, &domain).await
}

/// Deletes a workspace's sending domain (the MigoSMTP and admin APIs).
pub(crate) async fn delete_in(
    state: &AppState,
    workspace_id: &str,
    domain: &str,
) -> Result<StatusCode, ApiError> {
    if state.domains.delete(workspace_id, domain).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no sending domain {domain}")))
    }
}

/// Looks every record up and records what was found; the answer says
/// which records check out.
#[utoipa::path(post, operation_id = "migosmtp_domains_verify",
    path = "/migosmtp/v1/domains/{domain}/verify", tag = "migosmtp",
    params(("domain" = String, Path, description = "Domain name")),
    responses((status = 200, body = DomainStatus), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn verify(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
    ApiPath(domain): ApiPath<String>,
) -> Result<Json<DomainStatus>, ApiError> {
    verify_in(&state, &tenant.workspace_id, &domain)
        .await
        .map(Json)
}

/// Verifies a workspace's sending domain (the MigoSMTP and admin APIs).
pub(crate) async fn verify_in(
    state: &AppState,
    workspace_id: &str,
    domain: &str,
) -> Result<DomainStatus, ApiError> {
    let d = own(state, workspace_id, domain).await?;
    let unavailable = |e: String| {
        tracing::warn!(error = %e, "verifying a sending domain");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e)
    };
    let mut checks = Vec::new();
    for mut check in expected_records(&d, &state.dns_setup) {
        let found = match check.record_type.as_str() {
            "CNAME" => state
                .dns
                .cname(&check.name)
                .await
                .map_err(unavailable)?
                .into_iter()
                .collect(),
            _ => state.dns.txt(&check.name).await.map_err(unavailable)?,
        };
        check.verified = satisfies(&check, &state.dns_setup, &found);
        check.found = found;
        checks.push(check);
    }
    let d = state.domains.record_checks(d, checks).await?;
    Ok(status(state, d))
}
