//! `GET /portal/v1/plans`: what a client can subscribe to, from
//! `[[billing.plans]]`. Public: it is the price list.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

#[derive(Serialize, ToSchema)]
pub(crate) struct PlanView {
    pub(crate) id: String,
    /// `migosmtp` or `telnxo`.
    pub(crate) platform: String,
    pub(crate) name: String,
    /// Monthly, before GST, in paise.
    pub(crate) price_paise: i64,
    pub(crate) daily_quota: Option<u64>,
    pub(crate) sms_allowance: Option<u64>,
    pub(crate) whatsapp_allowance: Option<u64>,
    pub(crate) voice_minutes: Option<u64>,
    pub(crate) trial_days: u32,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct PlanList {
    pub(crate) plans: Vec<PlanView>,
}

/// The plans on offer.
#[utoipa::path(get, operation_id = "portal_plans", path = "/portal/v1/plans", tag = "portal",
    responses((status = 200, body = PlanList)))]
pub(crate) async fn list(State(state): State<AppState>) -> Json<PlanList> {
    let plans = state
        .billing
        .config()
        .plans
        .iter()
        .map(|p| PlanView {
            id: p.id.clone(),
            platform: p.platform.clone(),
            name: p.name.clone(),
            price_paise: p.price_paise,
            daily_quota: p.daily_quota,
            sms_allowance: p.sms_allowance,
            whatsapp_allowance: p.whatsapp_allowance,
            voice_minutes: p.voice_minutes,
            trial_days: p.trial_days,
        })
        .collect();
    Json(PlanList { plans })
}
