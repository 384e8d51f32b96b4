//! The event log (with its daily counts), named positions and the webhook
//! outbox (endpoints and their deliveries). All of it serves every part,
//! so it lives in the portal's database.

use rackwave_core::event::{Event, EventType};
use tokio_postgres::Row;

use super::txn::{json, record, Conn, Part, PgTxn};
use super::{label, limit_of, storable, Scope};
use crate::sled::keys::{component, cursor_of, parse_cursor};
use crate::*;

async fn log<'t>(t: &'t PgTxn, scope: Scope<'_>) -> Result<&'t Conn> {
    t.on(Part::Portal, scope).await
}

const EVENT_COLUMNS: &str = "seq, at_ms, id, workspace_id, event_type, message_id, envelope";

fn stored_event(row: &Row) -> Result<StoredEvent> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("a stored event: {e}"));
    let seq: i64 = row.try_get(0).map_err(|e| corrupt(&e))?;
    let event_type: String = row.try_get(4).map_err(|e| corrupt(&e))?;
    let envelope: String = row.try_get(6).map_err(|e| corrupt(&e))?;
    Ok(StoredEvent {
        seq: seq as u64,
        at_ms: row.try_get(1).map_err(|e| corrupt(&e))?,
        id: row.try_get(2).map_err(|e| corrupt(&e))?,
        workspace_id: row.try_get(3).map_err(|e| corrupt(&e))?,
        event_type: EventType::parse(&event_type),
        message_id: row.try_get(5).map_err(|e| corrupt(&e))?,
        event: serde_json::value::RawValue::from_string(envelope).map_err(|e| corrupt(&e))?,
    })
}

/// The next position in the log or the outbox (increasing, never reused).
async fn next_seq(c: &Conn) -> Result<u64> {
    let row = c
        .query_opt("SELECT nextval('rackwave_seq')", &[])
        .await?
        .ok_or_else(|| StoreError::Unavailable("no value from the sequence".into()))?;
    let seq: i64 = row
        .try_get(0)
        .map_err(|e| StoreError::Corrupt(format!("the sequence: {e}")))?;
    Ok(seq as u64)
}

pub(super) async fn event(t: &PgTxn, workspace_id: &str, seq: u64) -> Result<Option<StoredEvent>> {
    if workspace_id.is_empty() {
        return Ok(None);
    }
    let c = log(t, Scope::Workspace(workspace_id)).await?;
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE workspace_id = $1 AND seq = $2");
    c.query_opt(&sql, &[&workspace_id, &(seq as i64)])
        .await?
        .as_ref()
        .map(stored_event)
        .transpose()
}

pub(super) async fn event_by_id(t: &PgTxn, id: &str) -> Result<Option<StoredEvent>> {
    if !storable(id) {
        return Ok(None);
    }
    let c = log(t, Scope::Service).await?;
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1");
    c.query_opt(&sql, &[&id])
        .await?
        .as_ref()
        .map(stored_event)
        .transpose()
}

pub(super) async fn events(
    t: &PgTxn,
    workspace_id: &str,
    query: &EventQuery,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page<StoredEvent>> {
    let after = cursor.map(parse_cursor).transpose()?.map(|s| s as i64);
    let types: Vec<&str> = query.types.iter().map(|t| t.as_str()).collect();
    let products: Vec<&str> = query.products.iter().map(|p| p.as_str()).collect();
    let (order, beyond) = if query.ascending {
        ("ASC", ">")
    } else {
        ("DESC", "<")
    };
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events
          WHERE workspace_id = $1
            AND ($2::text IS NULL OR message_id = $2)
            AND (cardinality($3::text[]) = 0 OR event_type = ANY($3))
            AND (cardinality($4::text[]) = 0 OR product = ANY($4))
            AND ($5::bigint IS NULL OR at_ms >= $5)
            AND ($6::bigint IS NULL OR at_ms < $6)
            AND ($7::bigint IS NULL OR seq {beyond} $7)
          ORDER BY seq {order} LIMIT $8"
    );
    let c = log(t, Scope::Workspace(workspace_id)).await?;
    let rows = c
        .query(
            &sql,
            &[
                &workspace_id,
                &query.message_id,
                &types,
                &products,
                &query.since_ms,
                &query.until_ms,
                &after,
                &super::fetch_limit(limit),
            ],
        )
        .await?;
    let items = rows.iter().map(stored_event).collect::<Result<Vec<_>>>()?;
    Ok(super::page(items, limit, |e| cursor_of(e.seq)))
}

pub(super) async fn cursor(t: &PgTxn, name: &str) -> Result<u64> {
    let row = log(t, Scope::Service)
        .await?
        .query_opt("SELECT value FROM cursors WHERE name = $1", &[&name])
        .await?;
    match row {
        None => Ok(0),
        Some(row) => row
            .try_get::<_, i64>(0)
            .map(|v| v as u64)
            .map_err(|e| StoreError::Corrupt(format!("position {name}: {e}"))),
    }
}

pub(super) async fn cursors(t: &PgTxn) -> Result<Vec<(String, u64)>> {
    let rows = log(t, Scope::Service)
        .await?
        .query("SELECT name, value FROM cursors ORDER BY name", &[])
        .await?;
    rows.iter()
        .map(|row| {
            let corrupt =
                |e: tokio_postgres::Error| StoreError::Corrupt(format!("a position: {e}"));
            let value: i64 = row.try_get(1).map_err(corrupt)?;
            Ok((row.try_get(0).map_err(corrupt)?, value as u64))
        })
        .collect()
}

pub(super) async fn endpoint(t: &PgTxn, id: &str) -> Result<Option<Endpoint>> {
    if !storable(id) {
        return Ok(None);
    }
    log(t, Scope::Service)
        .await?
        .record("SELECT record FROM endpoints WHERE id = $1", &[&id])
        .await
}

pub(super) async fn endpoints_of(t: &PgTxn, workspace_id: &str) -> Result<Vec<Endpoint>> {
    log(t, Scope::Workspace(workspace_id))
        .await?
        .records(
            "SELECT record FROM endpoints WHERE workspace_id = $1 ORDER BY created_at_ms, id COLLATE \"C\"",
            &[&workspace_id],
        )
        .await
}

pub(super) async fn delivery(t: &PgTxn, id: &str) -> Result<Option<Delivery>> {
    if !storable(id) {
        return Ok(None);
    }
    log(t, Scope::Service)
        .await?
        .record("SELECT record FROM deliveries WHERE id = $1", &[&id])
        .await
}

pub(super) async fn deliveries_of(
    t: &PgTxn,
    endpoint_id: &str,
    state: Option<DeliveryState>,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page<Delivery>> {
    if !storable(endpoint_id) {
        return Ok(Page {
            items: Vec::new(),
            next_cursor: None,
        });
    }
    let before = cursor.map(parse_cursor).transpose()?.map(|s| s as i64);
    let state = state.map(|s| label(&s));
    let rows = log(t, Scope::Service)
        .await?
        .query(
            "SELECT record FROM deliveries
              WHERE endpoint_id = $1
                AND ($2::text IS NULL OR state = $2)
                AND ($3::bigint IS NULL OR seq < $3)
              ORDER BY seq DESC LIMIT $4",
            &[&endpoint_id, &state, &before, &super::fetch_limit(limit)],
        )
        .await?;
    let items = rows
        .iter()
        .map(|row| record::<Delivery>(row, 0))
        .collect::<Result<Vec<_>>>()?;
    Ok(super::page(items, limit, |d| cursor_of(d.seq)))
}

pub(super) async fn due_endpoints(
    t: &PgTxn,
    after: Option<&str>,
    now_ms: i64,
    limit: usize,
) -> Result<Vec<String>> {
    let rows = log(t, Scope::Service)
        .await?
        .query(
            "SELECT DISTINCT endpoint_id COLLATE \"C\" FROM deliveries
              WHERE due_at_ms <= $1 AND ($2::text IS NULL OR endpoint_id > $2)
              ORDER BY 1 LIMIT $3",
            &[&now_ms.max(0), &after, &limit_of(limit)],
        )
        .await?;
    rows.iter()
        .map(|row| {
            row.try_get(0)
                .map_err(|e| StoreError::Corrupt(format!("a due endpoint: {e}")))
        })
        .collect()
}

pub(super) async fn due_deliveries(
    t: &PgTxn,
    endpoint_id: &str,
    now_ms: i64,
    limit: usize,
) -> Result<Vec<String>> {
    if !storable(endpoint_id) {
        return Ok(Vec::new());
    }
    let rows = log(t, Scope::Service)
        .await?
        .query(
            "SELECT id FROM deliveries
              WHERE endpoint_id = $1 AND due_at_ms <= $2
              ORDER BY due_at_ms, id COLLATE \"C\" LIMIT $3",
            &[&endpoint_id, &now_ms.max(0), &limit_of(limit)],
        )
        .await?;
    rows.iter()
        .map(|row| {
            row.try_get(0)
                .map_err(|e| StoreError::Corrupt(format!("a due delivery: {e}")))
        })
        .collect()
}

pub(super) async fn event_counts(
    t: &PgTxn,
    workspace_id: &str,
    since_day: i64,
    until_day: i64,
    tag: Option<&str>,
) -> Result<Vec<(i64, String, u64)>> {
    let rows = log(t, Scope::Workspace(workspace_id))
        .await?
        .query(
            "SELECT day, event_type, n FROM event_counts
              WHERE workspace_id = $1 AND day BETWEEN $2 AND $3 AND tag = $4
              ORDER BY day, event_type COLLATE \"C\"",
            &[&workspace_id, &since_day, &until_day, &tag.unwrap_or("")],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let n: i64 = row
                .try_get(2)
                .map_err(|e| StoreError::Corrupt(format!("a daily count: {e}")))?;
            Ok((
                row.try_get(0)
                    .map_err(|e| StoreError::Corrupt(format!("a daily count: {e}")))?,
                row.try_get(1)
                    .map_err(|e| StoreError::Corrupt(format!("a daily count: {e}")))?,
                n as u64,
            ))
        })
        .collect()
}

pub(super) async fn append_event(t: &PgTxn, event: &Event) -> Result<StoredEvent> {
    let mut stored = append_events(t, std::slice::from_ref(event)).await?;
    stored
        .pop()
        .ok_or_else(|| StoreError::Unavailable("the event was not stored".into()))
}

/// Appends a batch in three statements, whatever its size: its positions,
/// its rows, and the daily counts it adds to (summed here first).
pub(super) async fn append_events(t: &PgTxn, events: &[Event]) -> Result<Vec<StoredEvent>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    for event in events {
        component("workspace id", &event.workspace_id)?;
    }
    // One workspace's batch runs in its scope; a mixed one (the feed's)
    // in the service's.
    let first = &events[0].workspace_id;
    let scope = if events.iter().all(|e| &e.workspace_id == first) {
        Scope::Workspace(first)
    } else {
        Scope::Service
    };
    let c = log(t, scope).await?;
    let seqs: Vec<i64> = c
        .query(
            "SELECT nextval('rackwave_seq') AS seq FROM generate_series(1::bigint, $1::bigint) ORDER BY seq",
            &[&(events.len() as i64)],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| StoreError::Corrupt(format!("the sequence: {e}")))?;
    if seqs.len() != events.len() {
        return Err(StoreError::Unavailable(format!(
            "{} positions for {} events",
            seqs.len(),
            events.len()
        )));
    }
    let mut stored = Vec::with_capacity(events.len());
    let mut counts: std::collections::BTreeMap<(&str, i64, &str, &str), i64> = Default::default();
    for (event, seq) in events.iter().zip(&seqs) {
        let event_type = event.event_type();
        let s = StoredEvent {
            seq: *seq as u64,
            at_ms: event.timestamp.ms(),
            id: event.id.clone(),
            workspace_id: event.workspace_id.clone(),
            event_type: Some(event_type),
            message_id: event.data.message_id().map(str::to_string),
            event: serde_json::value::to_raw_value(event)
                .map_err(|e| StoreError::Corrupt(format!("event envelope: {e}")))?,
        };
        // The day's counters, overall and per tag (stats without a scan).
        let day = s.at_ms.div_euclid(86_400_000);
        for tag in std::iter::once("").chain(event.data.tags().iter().map(String::as_str)) {
            if !tag.contains('\0') {
                *counts
                    .entry((&event.workspace_id, day, tag, event_type.as_str()))
                    .or_default() += 1;
            }
        }
        stored.push(s);
    }
    let column = |f: fn(&StoredEvent) -> Option<String>| -> Vec<Option<String>> {
        stored.iter().map(f).collect()
    };
    let ats: Vec<i64> = stored.iter().map(|s| s.at_ms).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type().as_str()).collect();
    let products: Vec<&str> = events
        .iter()
        .map(|e| e.event_type().product().as_str())
        .collect();
    c.execute(
        "INSERT INTO events (seq, workspace_id, id, at_ms, event_type, product, message_id, envelope)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                              $6::text[], $7::text[], $8::text[])",
        &[
            &seqs,
            &column(|s| Some(s.workspace_id.clone())),
            &column(|s| Some(s.id.clone())),
            &ats,
            &types,
            &products,
            &column(|s| s.message_id.clone()),
            &column(|s| Some(s.event.get().to_string())),
        ],
    )
    .await?;
    let (mut wss, mut days, mut tags, mut kinds, mut ns) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((ws, day, tag, kind), n) in counts {
        wss.push(ws);
        days.push(day);
        tags.push(tag);
        kinds.push(kind);
        ns.push(n);
    }
    c.execute(
        "INSERT INTO event_counts (workspace_id, day, tag, event_type, n)
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[])
         ON CONFLICT (workspace_id, day, tag, event_type)
         DO UPDATE SET n = event_counts.n + EXCLUDED.n",
        &[&wss, &days, &tags, &kinds, &ns],
    )
    .await?;
    Ok(stored)
}

pub(super) async fn set_cursor(t: &PgTxn, name: &str, value: u64) -> Result<()> {
    log(t, Scope::Service)
        .await?
        .execute(
            "INSERT INTO cursors (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            &[&name, &(value as i64)],
        )
        .await?;
    Ok(())
}

pub(super) async fn put_endpoint(t: &PgTxn, endpoint: &Endpoint) -> Result<()> {
    component("endpoint id", &endpoint.id)?;
    component("workspace id", &endpoint.workspace_id)?;
    log(t, Scope::Workspace(&endpoint.workspace_id))
        .await?
        .execute(
            "INSERT INTO endpoints (id, workspace_id, created_at_ms, record) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET workspace_id = EXCLUDED.workspace_id,
                 created_at_ms = EXCLUDED.created_at_ms, record = EXCLUDED.record",
            &[
                &endpoint.id,
                &endpoint.workspace_id,
                &endpoint.created_at_ms,
                &json(endpoint),
            ],
        )
        .await?;
    Ok(())
}

pub(super) async fn delete_endpoint(t: &PgTxn, id: &str) -> Result<bool> {
    if !storable(id) {
        return Ok(false);
    }
    let c = log(t, Scope::Service).await?;
    if c.execute("DELETE FROM endpoints WHERE id = $1", &[&id])
        .await?
        == 0
    {
        return Ok(false);
    }
    c.execute("DELETE FROM deliveries WHERE endpoint_id = $1", &[&id])
        .await?;
    Ok(true)
}

pub(super) async fn insert_delivery(t: &PgTxn, delivery: &mut Delivery) -> Result<()> {
    component("delivery id", &delivery.id)?;
    component("endpoint id", &delivery.endpoint_id)?;
    let c = log(t, Scope::Service).await?;
    delivery.seq = next_seq(c).await?;
    c.execute(
        "INSERT INTO deliveries (id, endpoint_id, workspace_id, seq, state, created_at_ms, due_at_ms, record)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (id) DO UPDATE SET endpoint_id = EXCLUDED.endpoint_id,
             workspace_id = EXCLUDED.workspace_id, seq = EXCLUDED.seq, state = EXCLUDED.state,
             created_at_ms = EXCLUDED.created_at_ms, due_at_ms = EXCLUDED.due_at_ms,
             record = EXCLUDED.record",
        &[
            &delivery.id,
            &delivery.endpoint_id,
            &delivery.workspace_id,
            &(delivery.seq as i64),
            &label(&delivery.state),
            &delivery.created_at_ms,
            &delivery.due_at_ms,
            &json(&*delivery),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn put_delivery(t: &PgTxn, delivery: &Delivery) -> Result<()> {
    let rows = log(t, Scope::Service)
        .await?
        .execute(
            "UPDATE deliveries SET state = $2, due_at_ms = $3, record = $4 WHERE id = $1",
            &[
                &delivery.id,
                &label(&delivery.state),
                &delivery.due_at_ms,
                &json(delivery),
            ],
        )
        .await?;
    if rows == 0 {
        return Err(StoreError::Invalid(format!(
            "delivery {} does not exist",
            delivery.id
        )));
    }
    Ok(())
}

pub(super) async fn prune_events(t: &PgTxn, cutoff_ms: i64, limit: usize) -> Result<(u64, bool)> {
    let n = log(t, Scope::Service)
        .await?
        .execute(
            "DELETE FROM events WHERE seq IN (
                 SELECT seq FROM events WHERE at_ms < $1 ORDER BY at_ms LIMIT $2)",
            &[&cutoff_ms, &limit_of(limit)],
        )
        .await?;
    Ok((n, n as usize == limit))
}

pub(super) async fn prune_deliveries(
    t: &PgTxn,
    cutoff_ms: i64,
    limit: usize,
) -> Result<(u64, bool)> {
    let n = log(t, Scope::Service)
        .await?
        .execute(
            "DELETE FROM deliveries WHERE id IN (
                 SELECT id FROM deliveries
                  WHERE created_at_ms < $1 AND due_at_ms IS NULL AND state <> $3
                  ORDER BY created_at_ms LIMIT $2)",
            &[
                &cutoff_ms,
                &limit_of(limit),
                &label(&DeliveryState::Retrying),
            ],
        )
        .await?;
    Ok((n, n as usize == limit))
}
