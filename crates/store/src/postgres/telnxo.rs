//! Telnxo's records on PostgreSQL (tables in `migrations/0005_telnxo.sql`),
//! answering as sled does (`sled/telnxo.rs`): the same listing order,
//! cursors and scan budget, the same refusals. Records are looked up by a
//! global key (a number, an id, a carrier id, a channel's queue) in the
//! service's scope, since the workspace is what the caller learns from
//! them; listings, counters and writes of a workspace's records run in its
//! scope.

use serde::de::DeserializeOwned;
use tokio_postgres::types::ToSql;

use super::txn::{json, record, Conn, Part, PgTxn};
use super::{limit_of, storable, Position, Scope, BEFORE};
use crate::sled::keys::component;
use crate::telnxo::{Call, Channel, ParkedReport, TelnxoMessage, TelnxoNumber};
use crate::{Page, Result, StoreError};

/// Most entries one listing call examines, as on sled (`SCAN_BUDGET` in
/// `sled/ops.rs`): a page of a rare channel out of a long listing answers
/// in bounded time, with a cursor to go on from.
const SCAN_BUDGET: i64 = 20_000;

/// A time as listings and queues order it: sled's keys hold it unsigned,
/// so a time before 1970 sorts as 1970.
fn order_ms(ms: i64) -> i64 {
    ms.max(0)
}

/// Replaces the row the scope's workspace has, else adds one; `false` if
/// another workspace has it. Its key is taken then but its row hidden from
/// the scope, so the replace changes nothing and the add (`ON CONFLICT DO
/// NOTHING`) neither: no statement fails, which would abort the
/// transaction where sled's refusal leaves it usable.
async fn replace_or_add(
    c: &Conn,
    replace: (&str, &[&(dyn ToSql + Sync)]),
    add: (&str, &[&(dyn ToSql + Sync)]),
) -> Result<bool> {
    Ok(c.execute(replace.0, replace.1).await? > 0 || c.execute(add.0, add.1).await? > 0)
}

/// A workspace's listing of messages or calls.
struct Listing {
    table: &'static str,
    /// Which rows examined a page keeps, given `$5`: the channel asked for
    /// (NULL: any).
    keeps: &'static str,
}

const MESSAGES: Listing = Listing {
    table: "telnxo_messages",
    keeps: "$5::text IS NULL OR channel = $5",
};

const CALLS: Listing = Listing {
    table: "telnxo_calls",
    keeps: "$5::text IS NULL OR $5 = 'voice'",
};

/// One page of a listing, newest first, as sled's walk gives it: of the
/// first [`SCAN_BUDGET`] rows after the cursor, up to `limit` that the
/// listing keeps. The next cursor is the last row taken when the page is
/// full and any row (kept or not) follows; else the last row examined
/// when the budget ran out before the listing did; else none.
async fn listing<T: DeserializeOwned>(
    t: &PgTxn,
    list: &Listing,
    workspace_id: &str,
    channel: Option<Channel>,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page<T>> {
    let from = Position::after(cursor)?;
    if limit == 0 || !storable(workspace_id) {
        return Ok(Page {
            items: Vec::new(),
            next_cursor: None,
        });
    }
    let c = t.on(Part::Telnxo, Scope::Workspace(workspace_id)).await?;
    let Listing { table, keeps } = list;
    let rows = c
        .query(
            &format!(
                "SELECT record, created_ms, id FROM (
                    SELECT * FROM {table} WHERE {BEFORE}
                    ORDER BY created_ms DESC, id DESC LIMIT {SCAN_BUDGET}
                ) examined
                WHERE {keeps} ORDER BY created_ms DESC, id DESC LIMIT $4"
            ),
            &[
                &workspace_id,
                &from.created_ms,
                &from.id,
                &limit_of(limit),
                &channel.map(Channel::as_str),
            ],
        )
        .await?;
    let items = rows
        .iter()
        .map(|row| record(row, 0))
        .collect::<Result<Vec<T>>>()?;
    let next_cursor = match rows.last() {
        Some(last) if items.len() == limit => {
            let (created_ms, id): (i64, String) = (last.get(1), last.get(2));
            c.query_opt(
                &format!(
                    "SELECT 1 FROM {table} WHERE {BEFORE}
                    ORDER BY created_ms DESC, id DESC LIMIT 1"
                ),
                &[&workspace_id, &created_ms, &id.as_bytes()],
            )
            .await?
            .map(|_| Position::cursor(created_ms, &id))
        }
        _ => {
            // The budget's last row, if another follows it.
            let rows = c
                .query(
                    &format!(
                        "SELECT created_ms, id FROM {table} WHERE {BEFORE}
                        ORDER BY created_ms DESC, id DESC OFFSET {} LIMIT 2",
                        SCAN_BUDGET - 1
                    ),
                    &[&workspace_id, &from.created_ms, &from.id],
                )
                .await?;
            match rows.as_slice() {
                [last, _] => Some(Position::cursor(last.get(0), last.get(1))),
                _ => None,
            }
        }
    };
    Ok(Page { items, next_cursor })
}

pub(super) async fn telnxo_number(t: &PgTxn, number: &str) -> Result<Option<TelnxoNumber>> {
    if !storable(number) {
        return Ok(None);
    }
    let c = t.on(Part::Telnxo, Scope::Service).await?;
    c.record(
        "SELECT record FROM telnxo_numbers WHERE number = $1",
        &[&number],
    )
    .await
}

pub(super) async fn telnxo_numbers_of(t: &PgTxn, workspace_id: &str) -> Result<Vec<TelnxoNumber>> {
    if !storable(workspace_id) {
        return Ok(Vec::new());
    }
    let c = t.on(Part::Telnxo, Scope::Workspace(workspace_id)).await?;
    c.records(
        "SELECT record FROM telnxo_numbers WHERE workspace_id = $1 ORDER BY number",
        &[&workspace_id],
    )
    .await
}

pub(super) async fn telnxo_message(t: &PgTxn, id: &str) -> Result<Option<TelnxoMessage>> {
    if !storable(id) {
        return Ok(None);
    }
    let c = t.on(Part::Telnxo, Scope::Service).await?;
    c.record("SELECT record FROM telnxo_messages WHERE id = $1", &[&id])
        .await
}

pub(super) async fn telnxo_messages_of(
    t: &PgTxn,
    workspace_id: &str,
    channel: Option<Channel>,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page<TelnxoMessage>> {
    listing(t, &MESSAGES, workspace_id, channel, cursor, limit).await
}

pub(super) async fn call(t: &PgTxn, id: &str) -> Result<Option<Call>> {
    if !storable(id) {
        return Ok(None);
    }
    let c = t.on(Part::Telnxo, Scope::Service).await?;
    c.record("SELECT record FROM telnxo_calls WHERE id = $1", &[&id])
        .await
}

pub(super) async fn calls_of(
    t: &PgTxn,
    workspace_id: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page<Call>> {
    listing(t, &CALLS, workspace_id, None, cursor, limit).await
}

pub(super) async fn telnxo_by_carrier_id(
    t: &PgTxn,
    channel: Channel,
    carrier_id: &str,
) -> Result<Option<(String, u32)>> {
    if !storable(carrier_id) {
        return Ok(None);
    }
    let c = t.on(Part::Telnxo, Scope::Service).await?;
    let Some(row) = c
        .query_opt(
            "SELECT message_id, part FROM telnxo_carrier_ids WHERE channel = $1 AND carrier_id = $2",
            &[&channel.as_str(), &carrier_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let part = u32::try_from(row.get::<_, i64>(1))
        .map_err(|_| StoreError::Corrupt("carrier id's part".into()))?;
    Ok(Some((row.get(0), part)))
}

pub(super) async fn carrier_ids(
    t: &PgTxn,
    after: Option<(Channel, String)>,
    limit: usize,
) -> Result<Vec<(Channel, String, String, u32)>> {
    let (after_channel, after_id) = match &after {
        Some((channel, id)) => (Some(channel.as_str()), Some(id.as_str())),
        None => (None, None),
    };
    let c = t.on(Part::Telnxo, Scope::Service).await?;
    let rows = c
        .query(
            "SELECT channel, carrier_id, message_id, part FROM telnxo_carrier_ids
            WHERE $1::text IS NULL OR (channel, carrier_id) > ($1, $2::text)
            ORDER BY channel, carrier_id LIMIT $3",
            &[&after_channel, &after_id, &limit_of(limit)],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let channel = Channel::parse(row.get(0))
                .ok_or_else(|| StoreError::Corrupt("carrier id's channel".into()))?;
            let part = u32::try_from(row.get::<_, i64>(3))
                .map_err(|_| StoreError::Corrupt("carrier id's part".into()))?;
            Ok((channel, row.get(1), row.get(2), part))
        })
        .collect()
}

/// Calls are the voice channel's queue, beside any message on it.
pub(super) async fn telnxo_due(
    t: &PgTxn,
    channel: Channel,
    now_ms: i64,
    limit: usize,
) -> Result<Vec<String>> {
    let c = t.on(Part::Telnxo, Scope::Service).await?;
    let rows = c
        .query(
            "SELECT id, due_ms FROM telnxo_messages WHERE channel = $1 AND due_ms <= $2
            UNION ALL
            SELECT id, due_ms FROM telnxo_calls WHERE $1::text = 'voice' AND due_ms <= $2
            ORDER BY due_ms, id LIMIT $3",
            &[&channel.as_str(), &order_ms(now_ms), &limit_of(limit)],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

pub(super) async fn whatsapp_window(
    t: &PgTxn,
    workspace_id: &str,
    customer: &str,
) -> Result<Option<i64>> {
    if !storable(workspace_id) || !storable(customer) {
        return Ok(None);
    }
    let c = t.on(Part::Telnxo, Scope::Workspace(workspace_id)).await?;
    Ok(c.query_opt(
        "SELECT at_ms FROM telnxo_whatsapp_windows WHERE workspace_id = $1 AND customer = $2",
        &[&workspace_id, &customer],
    )
    .await?
    .map(|row| row.get(0)))
}

pub(super) async fn whatsapp_windows_of(
    t: &PgTxn,
    workspace_id: &str,
) -> Result<Vec<(String, i64)>> {
    if !storable(workspace_id) {
        return Ok(Vec::new());
    }
    let c = t.on(Part::Telnxo, Scope::Workspace(workspace_id)).await?;
    let rows = c
        .query(
            "SELECT customer, at_ms FROM telnxo_whatsapp_windows WHERE workspace_id = $1 ORDER BY customer",
            &[&workspace_id],
        )
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

pub(super) async fn telnxo_usage_of(t: &PgTxn, workspace_id: &str) -> Result<Vec<(String, u64)>> {
    if !storable(workspace_id) {
        return Ok(Vec::new());
    }
    let c = t.on(Part::Telnxo, Scope::Workspace(workspace_id)).await?;
    let rows = c
        .query(
            "SELECT counter, n FROM telnxo_usage WHERE workspace_id = $1 ORDER BY counter",
            &[&workspace_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get(0), row.get::<_, i64>(1) as u64))
        .collect())
}

pub(super) async fn telnxo_usage(t: &PgTxn, workspace_id: &str, counter: &str) -> Result<u64> {
    if !storable(workspace_id) || !storable(counter) {
        return Ok(0);
    }
    let c = t.on(Part::Telnxo, Scope::Workspace(workspace_id)).await?;
    Ok(c.query_opt(
        "SELECT n FROM telnxo_usage WHERE workspace_id = $1 AND counter = $2",
        &[&workspace_id, &counter],
    )
    .await?
    .map_or(0, |row| row.get::<_, i64>(0) as u64))
}

pub(super) async fn inbound_parts(t: &PgTxn, key: &str) -> Result<Vec<(u8, String)>> {
    if !storable(key) {
        return Ok(Vec::new());
    }
    let c = t.on(Part::Telnxo, Scope::Service).await?;
    let rows = c
        .query(
            "SELECT seq, body FROM telnxo_inbound_parts WHERE message_key = $1 ORDER BY seq",
            &[&key],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let seq = u8::try_from(row.get::<_, i16>(0))
                .map_err(|_| StoreError::Corrupt("an inbound part's number".into()))?;
            let body: Vec<u8> = row.get(1);
            Ok((seq, String::from_utf8_lossy(&body).into_owned()))
        })
        .collect()
}

pub(super) async fn parked_reports(t: &PgTxn, limit: usize) -> Result<Vec<ParkedReport>> {
    let c = t.on(Part::Telnxo, Scope::Service).await?;
    c.records(
        "SELECT record FROM telnxo_parked_reports ORDER BY id LIMIT $1",
        &[&limit_of(limit)],
    )
    .await
}

pub(super) async fn put_telnxo_number(t: &PgTxn, number: &TelnxoNumber) -> Result<()> {
    component("number", &number.number)?;
    component("workspace id", &number.workspace_id)?;
    let c = t
        .on(Part::Telnxo, Scope::Workspace(&number.workspace_id))
        .await?;
    let (n, ws, rec) = (&number.number, &number.workspace_id, json(number));
    let given = replace_or_add(
        c,
        (
            "UPDATE telnxo_numbers SET record = $3 WHERE number = $1 AND workspace_id = $2",
            &[n, ws, &rec],
        ),
        (
            "INSERT INTO telnxo_numbers (number, workspace_id, record) VALUES ($1, $2, $3)
            ON CONFLICT (number) DO NOTHING",
            &[n, ws, &rec],
        ),
    )
    .await?;
    if !given {
        return Err(StoreError::Conflict(format!(
            "{n} belongs to another workspace"
        )));
    }
    Ok(())
}

pub(super) async fn delete_telnxo_number(t: &PgTxn, number: &str) -> Result<bool> {
    if !storable(number) {
        return Ok(false);
    }
    let c = t.on(Part::Telnxo, Scope::Service).await?;
    Ok(
        c.execute("DELETE FROM telnxo_numbers WHERE number = $1", &[&number])
            .await?
            > 0,
    )
}

fn changes_workspace(id: &str) -> StoreError {
    StoreError::Invalid(format!("{id} does not change workspace"))
}

pub(super) async fn put_telnxo_message(t: &PgTxn, message: &TelnxoMessage) -> Result<()> {
    component("message id", &message.id)?;
    component("workspace id", &message.workspace_id)?;
    let c = t
        .on(Part::Telnxo, Scope::Workspace(&message.workspace_id))
        .await?;
    let (id, ws, channel) = (&message.id, &message.workspace_id, message.channel.as_str());
    let (due, rec) = (message.due_at_ms.map(order_ms), json(message));
    let kept = replace_or_add(
        c,
        (
            "UPDATE telnxo_messages SET channel = $3, due_ms = $4, record = $5
            WHERE id = $1 AND workspace_id = $2",
            &[id, ws, &channel, &due, &rec],
        ),
        (
            "INSERT INTO telnxo_messages (id, workspace_id, channel, due_ms, record, created_ms)
            VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
            &[
                id,
                ws,
                &channel,
                &due,
                &rec,
                &order_ms(message.created_at_ms),
            ],
        ),
    )
    .await?;
    if !kept {
        return Err(changes_workspace(id));
    }
    Ok(())
}

pub(super) async fn put_call(t: &PgTxn, call: &Call) -> Result<()> {
    component("call id", &call.id)?;
    component("workspace id", &call.workspace_id)?;
    let c = t
        .on(Part::Telnxo, Scope::Workspace(&call.workspace_id))
        .await?;
    let (id, ws) = (&call.id, &call.workspace_id);
    let (due, rec) = (call.due_at_ms.map(order_ms), json(call));
    let kept = replace_or_add(
        c,
        (
            "UPDATE telnxo_calls SET due_ms = $3, record = $4 WHERE id = $1 AND workspace_id = $2",
            &[id, ws, &due, &rec],
        ),
        (
            "INSERT INTO telnxo_calls (id, workspace_id, due_ms, record, created_ms)
            VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
            &[id, ws, &due, &rec, &order_ms(call.created_at_ms)],
        ),
    )
    .await?;
    if !kept {
        return Err(changes_workspace(id));
    }
    Ok(())
}

pub(super) async fn put_carrier_id(
    t: &PgTxn,
    channel: Channel,
    carrier_id: &str,
    id: &str,
    part: u32,
) -> Result<()> {
    component("carrier id", carrier_id)?;
    if id.contains('\0') {
        return Err(StoreError::Invalid("message id must be without NUL".into()));
    }
    let c = t.on(Part::Telnxo, Scope::Service).await?;
    c.execute(
        "INSERT INTO telnxo_carrier_ids (channel, carrier_id, message_id, part) VALUES ($1, $2, $3, $4)
        ON CONFLICT (channel, carrier_id) DO UPDATE SET message_id = EXCLUDED.message_id, part = EXCLUDED.part",
        &[&channel.as_str(), &carrier_id, &id, &i64::from(part)],
    )
    .await?;
    Ok(())
}

pub(super) async fn set_whatsapp_window(
    t: &PgTxn,
    workspace_id: &str,
    customer: &str,
    at_ms: i64,
) -> Result<()> {
    component("workspace id", workspace_id)?;
    component("number", customer)?;
    let c = t.on(Part::Telnxo, Scope::Workspace(workspace_id)).await?;
    c.execute(
        "INSERT INTO telnxo_whatsapp_windows (workspace_id, customer, at_ms) VALUES ($1, $2, $3)
        ON CONFLICT (workspace_id, customer) DO UPDATE SET at_ms = EXCLUDED.at_ms",
        &[&workspace_id, &customer, &at_ms],
    )
    .await?;
    Ok(())
}

pub(super) async fn put_inbound_part(t: &PgTxn, key: &str, seq: u8, body: &str) -> Result<()> {
    component("inbound message key", key)?;
    let c = t.on(Part::Telnxo, Scope::Service).await?;
    c.execute(
        "INSERT INTO telnxo_inbound_parts (message_key, seq, body) VALUES ($1, $2, $3)
        ON CONFLICT (message_key, seq) DO UPDATE SET body = EXCLUDED.body",
        &[&key, &i16::from(seq), &body.as_bytes()],
    )
    .await?;
    Ok(())
}

pub(super) async fn delete_inbound_parts(t: &PgTxn, key: &str) -> Result<()> {
    if !storable(key) {
        return Ok(());
    }
    let c = t.on(Part::Telnxo, Scope::Service).await?;
    c.execute(
        "DELETE FROM telnxo_inbound_parts WHERE message_key = $1",
        &[&key],
    )
    .await?;
    Ok(())
}

pub(super) async fn put_parked_report(t: &PgTxn, report: &ParkedReport) -> Result<()> {
    component("parked report id", &report.id)?;
    let c = t.on(Part::Telnxo, Scope::Service).await?;
    c.execute(
        "INSERT INTO telnxo_parked_reports (id, record) VALUES ($1, $2)
        ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
        &[&report.id, &json(report)],
    )
    .await?;
    Ok(())
}

pub(super) async fn delete_parked_report(t: &PgTxn, id: &str) -> Result<bool> {
    if !storable(id) {
        return Ok(false);
    }
    let c = t.on(Part::Telnxo, Scope::Service).await?;
    Ok(
        c.execute("DELETE FROM telnxo_parked_reports WHERE id = $1", &[&id])
            .await?
            > 0,
    )
}

/// The counter is a bigint: it saturates at `i64::MAX` where sled's (a
/// u64) would at `u64::MAX`, either way far past any count of sends.
pub(super) async fn add_telnxo_usage(
    t: &PgTxn,
    workspace_id: &str,
    counter: &str,
    n: u64,
) -> Result<u64> {
    component("workspace id", workspace_id)?;
    component("counter", counter)?;
    let c = t.on(Part::Telnxo, Scope::Workspace(workspace_id)).await?;
    let row = c
        .query_opt(
            "INSERT INTO telnxo_usage (workspace_id, counter, n) VALUES ($1, $2, $3)
            ON CONFLICT (workspace_id, counter)
            DO UPDATE SET n = LEAST(telnxo_usage.n::numeric + EXCLUDED.n, 9223372036854775807)::bigint
            RETURNING n",
            &[&workspace_id, &counter, &i64::try_from(n).unwrap_or(i64::MAX)],
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt("a usage counter's total".into()))?;
    Ok(row.get::<_, i64>(0) as u64)
}
