//! `GET /migosmtp/v1/stats`: per UTC day, how many of each `email.*` event
//! the workspace had (all messages, or those tagged `tag`), from counters
//! the event log keeps as it appends, so a range of days costs a few reads
//! whatever the volume.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use chrono::{Duration, NaiveDate};
use rackwave_core::event::EventType;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ErrorBody;
use crate::extract::{ApiQuery, MigoSmtp};
use crate::{ApiError, AppState};

/// Days one request may cover at most.
const MAX_DAYS: i64 = 366;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatsQuery {
    /// First day, `YYYY-MM-DD` (UTC); default six days before `until`.
    pub(crate) since: Option<String>,
    /// Last day, `YYYY-MM-DD` (UTC); default today.
    pub(crate) until: Option<String>,
    /// Only messages sent with this tag.
    pub(crate) tag: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DayStats {
    pub(crate) date: String,
    /// Every `email.*` event type, with 0 for none.
    pub(crate) counts: BTreeMap<String, u64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Stats {
    pub(crate) days: Vec<DayStats>,
}

fn day_of(field: &str, value: &str) -> Result<i64, ApiError> {
    let date = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| {
        ApiError::invalid(format!(
            "{field} must be a date, YYYY-MM-DD (got `{value}`)"
        ))
    })?;
    Ok((date - NaiveDate::default()).num_days())
}

/// Event counts per day.
#[utoipa::path(get, operation_id = "migosmtp_stats", path = "/migosmtp/v1/stats", tag = "migosmtp",
    params(StatsQuery),
    responses((status = 200, body = Stats), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub(crate) async fn stats(
    State(state): State<AppState>,
    MigoSmtp(tenant): MigoSmtp,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> Result<Json<Stats>, ApiError> {
    stats_in(&state, &tenant.workspace_id, q).await.map(Json)
}

/// Event counts per day of a workspace (the MigoSMTP and admin APIs).
pub(crate) async fn stats_in(
    state: &AppState,
    workspace_id: &str,
    q: StatsQuery,
) -> Result<Stats, ApiError> {
    let until = match &q.until {
        Some(d) => day_of("until", d)?,
        None => state.clock.now_ms().div_euclid(86_400_000),
    };
    let since = match &q.since {
        Some(d) => day_of("since", d)?,
        None => until - 6,
    };
    if since > until || until - since >= MAX_DAYS {
        return Err(ApiError::invalid(format!(
            "since must not be after until, and at most {MAX_DAYS} days apart"
        )));
    }
    let found = state
        .store
        .event_counts(workspace_id, since, until, q.tag.as_deref())
        .await?;
    let types = EventType::ALL
        .iter()
        .filter(|t| t.as_str().starts_with("email."));
    let days = (since..=until)
        .map(|day| {
            let mut counts: BTreeMap<String, u64> =
                types.clone().map(|t| (t.as_str().to_string(), 0)).collect();
            for (_, event_type, n) in found.iter().filter(|(d, _, _)| *d == day) {
                if let Some(c) = counts.get_mut(event_type) {
                    *c += n;
                }
            }
            DayStats {
                date: (NaiveDate::default() + Duration::days(day)).to_string(),
                counts,
            }
        })
        .collect();
    Ok(Stats { days })
}
