//! What nodes coordinate on through the database: webhook delivery leases,
//! named leases (a scheduler on one node at a time) and quota claims.
//! Each is one statement whose row locks make concurrent callers, on any
//! node, take turns.

use super::txn::{record, Part, PgTxn};
use super::{limit_of, Scope};
use crate::sled::keys::component;
use crate::*;

pub(super) async fn lease_deliveries(
    t: &PgTxn,
    endpoint_id: &str,
    holder: &str,
    now_ms: i64,
    until_ms: i64,
    limit: usize,
) -> Result<Vec<Delivery>> {
    // SKIP LOCKED: a delivery another transaction is taking is left to it,
    // never waited for and never taken twice.
    let rows = t
        .on(Part::Portal, Scope::Service)
        .await?
        .query(
            "WITH due AS (
                 SELECT id, due_at_ms FROM deliveries
                  WHERE endpoint_id = $1 AND due_at_ms <= $2
                  ORDER BY due_at_ms, id COLLATE \"C\" LIMIT $4
                  FOR UPDATE SKIP LOCKED),
             leased AS (
                 UPDATE deliveries d
                    SET due_at_ms = $3,
                        record = jsonb_set(
                            jsonb_set(d.record, '{due_at_ms}', to_jsonb($3::bigint)),
                            '{leased_by}', to_jsonb($5::text))
                   FROM due WHERE d.id = due.id
                 RETURNING d.record, due.due_at_ms AS was, d.id)
             SELECT record FROM leased ORDER BY was, id COLLATE \"C\"",
            &[
                &endpoint_id,
                &now_ms.max(0),
                &until_ms,
                &limit_of(limit),
                &holder,
            ],
        )
        .await?;
    rows.iter().map(|row| record(row, 0)).collect()
}

pub(super) async fn release_leases(t: &PgTxn, holder: &str, now_ms: i64) -> Result<u64> {
    t.on(Part::Portal, Scope::Service)
        .await?
        .execute(
            "UPDATE deliveries
                SET due_at_ms = $2,
                    record = jsonb_set(record - 'leased_by', '{due_at_ms}', to_jsonb($2::bigint))
              WHERE due_at_ms IS NOT NULL AND record->>'leased_by' = $1",
            &[&holder, &now_ms],
        )
        .await
}

pub(super) async fn claim_lease(
    t: &PgTxn,
    name: &str,
    holder: &str,
    now_ms: i64,
    until_ms: i64,
) -> Result<bool> {
    let rows = t
        .on(Part::Portal, Scope::Service)
        .await?
        .execute(
            "INSERT INTO leases (name, holder, until_ms) VALUES ($1, $2, $4)
             ON CONFLICT (name) DO UPDATE
                SET holder = EXCLUDED.holder, until_ms = EXCLUDED.until_ms
              WHERE leases.holder = EXCLUDED.holder OR leases.until_ms <= $3",
            &[&name, &holder, &now_ms, &until_ms],
        )
        .await?;
    Ok(rows > 0)
}

pub(super) async fn claim_quota(
    t: &PgTxn,
    counter: &str,
    day: i64,
    cap: u64,
    want: u64,
) -> Result<(u64, u64)> {
    component("quota counter", counter)?;
    let cap = i64::try_from(cap).unwrap_or(i64::MAX);
    let want = i64::try_from(want).unwrap_or(i64::MAX);
    // An UPDATE's SET sees the row as it was: `last_grant` is what this
    // claim took.
    let row = t
        .on(Part::Portal, Scope::Service)
        .await?
        .query_opt(
            "INSERT INTO quota_claims (counter, day, used, last_grant)
             VALUES ($1, $2, least($3::bigint, $4::bigint), least($3::bigint, $4::bigint))
             ON CONFLICT (counter, day) DO UPDATE
                SET used = quota_claims.used + least($4::bigint, $3::bigint - quota_claims.used),
                    last_grant = least($4::bigint, $3::bigint - quota_claims.used)
              WHERE quota_claims.used < $3::bigint
             RETURNING last_grant, $3::bigint - used",
            &[&counter, &day, &cap.max(0), &want.max(0)],
        )
        .await?;
    let Some(row) = row else {
        return Ok((0, 0));
    };
    let column = |i: usize| {
        row.try_get::<_, i64>(i)
            .map(|n| n.max(0) as u64)
            .map_err(|e| StoreError::Corrupt(format!("a quota claim: {e}")))
    };
    Ok((column(0)?, column(1)?))
}
