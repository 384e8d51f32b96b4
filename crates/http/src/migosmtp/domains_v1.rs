//! `/migosmtp/v1/domains`: a workspace's sending domains with its own key.
//! Adding one generates its DKIM key and answers with every DNS record to
//! publish and why; `…/verify` looks each up through the delivery engine's
//! resolver and reports what it found. A domain is `verified` when its
//! DKIM key, SPF record and return path check out. A domain may have its
//! own tracking host (a CNAME to the tracking endpoints, verified with the
//! rest but not needed for `verified`) and its own tracking switches
//! (`PATCH`), instead of the workspace's.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use rackwave_accounts::{
    expected_records, satisfies, DkimAlgorithm, DomainPatch, RecordCheck, SenderDomain,
    TrackingSettings,
};
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
    /// The domain's own host for tracking links, under it
    /// (`click.example.com`): publish the `tracking` CNAME it answers with.
    pub(crate) tracking_host: Option<String>,
    /// What mail from this domain carries per recipient, instead of the
    /// workspace's settings.
    pub(crate) tracking: Option<TrackingSettings>,
}

/// A change of a domain's tracking; `null` removes a setting.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DomainChange {
    #[serde(default, deserialize_with = "crate::extract::present")]
    #[schema(value_type = Option<String>)]
    pub(crate) tracking_host: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::extract::present")]
    #[schema(value_type = Option<TrackingSettings>)]
    pub(crate) tracking: Option<Option<TrackingSettings>>,
}

impl From<DomainChange> for DomainPatch {
    fn from(c: DomainChange) -> DomainPatch {
        DomainPatch {
            tracking_host: c.tracking_host,
            tracking: c.tracking,
        }
    }
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
    pub(crate) tracking_host: Option<String>,
    /// `null`: the workspace's settings apply.
    pub(crate) tracking: Option<TrackingSettings>,
    pub(crate) created_at: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DomainList {
    pub(crate) domains: Vec<DomainStatus>,
}

pub(crate) fn status(state: &AppState, d: SenderDomain) -> DomainStatus {
    // What is still to publish, with what the last verification found of
    // each record (a tracking host set since has no finding yet).
    let records = expected_records(&d, &state.dns_setup)
        .into_iter()
        .map(|expected| {
            d.checks
                .iter()
                .find(|c| c.purpose == expected.purpose && c.name == expected.name)
                .cloned()
                .unwrap_or(expected)
        })
        .collect();
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
        tracking_host: d.tracking_host,
        tracking: d.tracking,
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
    let d = if req.tracking_host.is_some() || req.tracking.is_some() {
        let patch = DomainPatch {
            tracking_host: req.tracking_host.map(Some),
            tracking: req.tracking.map(Some),
        };
        match state
            .domains
            .update(&tenant.workspace_id, &d.domain, patch)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                // All or nothing: a bad tracking host adds no domain.
                state
                    .domains
                    .delete(&tenant.workspace_id, &d.domain)
                    .await?;
                return Err(e.into());
            }
        }
    } else {
        d
    };
    Ok((StatusCode::CREATED, Json(status(&state, d))))
}

/// Changes a sending domain's tracking host or tracking switches.
#[utoipa::path(patch, operation_id = "migosmtp_domains_update", path = "/migosmtp/v1/domains/{domain}",
    tag = "migosmtp", params(("domain" = String, Path, description = "Domain name")),
    request_body = DomainChange,
    responses((status = 200, body = DomainStatus), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
    ApiPath(domain): ApiPath<String>,
    ApiJson(change): ApiJson<DomainChange>,
) -> Result<Json<DomainStatus>, ApiError> {
    update_in(&state, &tenant.workspace_id, &domain, change)
        .await
        .map(Json)
}

/// Changes a workspace's sending domain (the MigoSMTP and admin APIs).
pub(crate) async fn update_in(
    state: &AppState,
    workspace_id: &str,
    domain: &str,
    change: DomainChange,
) -> Result<DomainStatus, ApiError> {
    let d = state
        .domains
        .update(workspace_id, domain, change.into())
        .await?;
    Ok(status(state, d))
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
