//! The shared message log on PostgreSQL (`migrations/0007_message_log.sql`):
//! what every node's listings read. A listing filters in the query, on
//! the workspace's or the recipient's index; a message is looked up by id
//! in the service's scope (the caller compares its workspace).

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::txn::{Part, PgTxn};
use super::{fetch_limit, limit_of, storable, Position, Scope, BEFORE};
use crate::message_log::{MessageLogEntry, MessageLogQuery};
use crate::{Page, Result, StoreError};

/// The columns an entry is read back from ([`entry_of`]).
const ENTRY: &str =
    "id, workspace_id, queue_id, sender, recipient, status, tags, created_at_ms, finished_at_ms, node, record";

fn entry_of(row: &Row) -> Result<MessageLogEntry> {
    let corrupt =
        |e: tokio_postgres::Error| StoreError::Corrupt(format!("a message log entry: {e}"));
    Ok(MessageLogEntry {
        id: row.try_get(0).map_err(corrupt)?,
        workspace_id: row.try_get(1).map_err(corrupt)?,
        queue_id: row.try_get(2).map_err(corrupt)?,
        from: row.try_get(3).map_err(corrupt)?,
        to: row.try_get(4).map_err(corrupt)?,
        status: row.try_get(5).map_err(corrupt)?,
        tags: row.try_get(6).map_err(corrupt)?,
        created_at_ms: row.try_get(7).map_err(corrupt)?,
        finished_at_ms: row.try_get(8).map_err(corrupt)?,
        node: row.try_get(9).map_err(corrupt)?,
        record: row.try_get(10).map_err(corrupt)?,
    })
}

pub(super) async fn message_log_entry(t: &PgTxn, id: &str) -> Result<Option<MessageLogEntry>> {
    if !storable(id) {
        return Ok(None);
    }
    let c = t.on(Part::Migosmtp, Scope::Service).await?;
    c.query_opt(
        &format!("SELECT {ENTRY} FROM message_log WHERE id = $1"),
        &[&id],
    )
    .await?
    .as_ref()
    .map(entry_of)
    .transpose()
}

pub(super) async fn message_log_of_queue(
    t: &PgTxn,
    queue_id: &str,
) -> Result<Vec<MessageLogEntry>> {
    if !storable(queue_id) {
        return Ok(Vec::new());
    }
    let c = t.on(Part::Migosmtp, Scope::Service).await?;
    c.query(
        &format!("SELECT {ENTRY} FROM message_log WHERE queue_id = $1 ORDER BY id"),
        &[&queue_id],
    )
    .await?
    .iter()
    .map(entry_of)
    .collect()
}

pub(super) async fn message_log_pending(t: &PgTxn, workspace_id: &str) -> Result<u64> {
    if !storable(workspace_id) {
        return Ok(0);
    }
    let c = t.on(Part::Migosmtp, Scope::Workspace(workspace_id)).await?;
    let row = c
        .query_opt(
            "SELECT count(*) FROM message_log WHERE workspace_id = $1 AND finished_at_ms IS NULL",
            &[&workspace_id],
        )
        .await?
        .ok_or_else(|| StoreError::Unavailable("no count".into()))?;
    let n: i64 = row
        .try_get(0)
        .map_err(|e| StoreError::Corrupt(format!("a count: {e}")))?;
    Ok(n as u64)
}

/// One page, newest first, filtered in the query: a page is full unless
/// the listing ends (sled's may come back short on a rare filter).
pub(super) async fn message_log(
    t: &PgTxn,
    workspace_id: &str,
    query: &MessageLogQuery,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page<MessageLogEntry>> {
    let from = Position::after(cursor)?;
    if limit == 0 || !storable(workspace_id) {
        return Ok(Page {
            items: Vec::new(),
            next_cursor: None,
        });
    }
    let to = query.to.as_ref().map(|t| t.to_lowercase());
    let sender = query.from.as_ref().map(|f| f.to_lowercase());
    let since = query.since_ms.map(|ms| ms.max(0));
    let until = query.until_ms.map(|ms| ms.max(0));
    let fetch = fetch_limit(limit);
    let mut sql = format!("SELECT {ENTRY} FROM message_log WHERE {BEFORE}");
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&workspace_id, &from.created_ms, &from.id];
    // Only the conditions asked for, so each shape of listing gets its
    // own plan (the recipient's index for a recipient).
    let conditions: [(&str, Option<&(dyn ToSql + Sync)>); 6] = [
        ("to_key = $", to.as_ref().map(|v| v as _)),
        ("from_key = $", sender.as_ref().map(|v| v as _)),
        ("status = $", query.status.as_ref().map(|v| v as _)),
        ("tags @> ARRAY[$::text]", query.tag.as_ref().map(|v| v as _)),
        ("created_ms >= $", since.as_ref().map(|v| v as _)),
        ("created_ms < $", until.as_ref().map(|v| v as _)),
    ];
    for (condition, value) in conditions {
        if let Some(value) = value {
            params.push(value);
            sql.push_str(" AND ");
            sql.push_str(&condition.replace('$', &format!("${}", params.len())));
        }
    }
    params.push(&fetch);
    sql.push_str(&format!(
        " ORDER BY created_ms DESC, id DESC LIMIT ${}",
        params.len()
    ));
    let c = t.on(Part::Migosmtp, Scope::Workspace(workspace_id)).await?;
    let rows = c.query(&sql, &params).await?;
    let items = rows.iter().map(entry_of).collect::<Result<Vec<_>>>()?;
    Ok(super::page(items, limit, |e| {
        Position::cursor(e.created_at_ms.max(0), &e.id)
    }))
}

pub(super) async fn put_message_log(t: &PgTxn, entries: &[MessageLogEntry]) -> Result<()> {
    for e in entries {
        e.check()?;
    }
    // One row per id, the last given (a statement may not change a row
    // twice).
    let mut last = std::collections::HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        last.insert(e.id.as_str(), i);
    }
    let entries: Vec<&MessageLogEntry> = entries
        .iter()
        .enumerate()
        .filter(|(i, e)| last[e.id.as_str()] == *i)
        .map(|(_, e)| e)
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    // Text columns borrowed from the entries; the derived ones made here.
    let text =
        |f: fn(&MessageLogEntry) -> &str| entries.iter().map(|e| f(e)).collect::<Vec<&str>>();
    let made = |f: fn(&MessageLogEntry) -> String| entries.iter().map(|e| f(e)).collect::<Vec<_>>();
    let ids = text(|e| &e.id);
    let workspaces = text(|e| &e.workspace_id);
    let queues = text(|e| &e.queue_id);
    let tos = made(MessageLogEntry::recipient_key);
    let froms = made(MessageLogEntry::sender_key);
    let statuses = text(|e| &e.status);
    let tags = made(|e| serde_json::to_string(&e.tags).expect("strings serialize"));
    let senders = text(|e| &e.from);
    let recipients = text(|e| &e.to);
    let nodes = text(|e| &e.node);
    let records = text(|e| &e.record);
    let created: Vec<i64> = entries.iter().map(|e| e.created_at_ms).collect();
    let finished: Vec<Option<i64>> = entries.iter().map(|e| e.finished_at_ms).collect();
    // The feed's batches mix workspaces, so this runs in the service's
    // scope; an id is the spool's and never another tenant's, and the
    // update still changes only a row of the same workspace.
    let c = t.on(Part::Migosmtp, Scope::Service).await?;
    c.execute(
        "INSERT INTO message_log
            (id, workspace_id, queue_id, to_key, from_key, status, tags, created_ms, finished_at_ms,
             sender, recipient, created_at_ms, node, record)
         SELECT id, ws, q, t, f, st,
                ARRAY(SELECT tag FROM jsonb_array_elements_text(tg::jsonb) WITH ORDINALITY AS g(tag, n) ORDER BY n),
                greatest(cr, 0), fin, s, r, cr, n, rec
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                       $7::text[], $8::bigint[], $9::bigint[], $10::text[], $11::text[],
                       $12::text[], $13::text[])
             AS x(id, ws, q, t, f, st, tg, cr, fin, s, r, n, rec)
         ON CONFLICT (id) DO UPDATE SET
            status = excluded.status, tags = excluded.tags, to_key = excluded.to_key,
            from_key = excluded.from_key, sender = excluded.sender,
            recipient = excluded.recipient, finished_at_ms = excluded.finished_at_ms,
            node = excluded.node, record = excluded.record
          WHERE message_log.workspace_id = excluded.workspace_id",
        &[
            &ids,
            &workspaces,
            &queues,
            &tos,
            &froms,
            &statuses,
            &tags,
            &created,
            &finished,
            &senders,
            &recipients,
            &nodes,
            &records,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn prune_message_log(
    t: &PgTxn,
    cutoff_ms: i64,
    stale_before_ms: i64,
    limit: usize,
) -> Result<(u64, bool)> {
    let c = t.on(Part::Migosmtp, Scope::Service).await?;
    let finished = c
        .execute(
            "DELETE FROM message_log WHERE id IN (
                SELECT id FROM message_log WHERE finished_at_ms < $1
                 ORDER BY finished_at_ms LIMIT $2)",
            &[&cutoff_ms, &limit_of(limit)],
        )
        .await?;
    let left = limit.saturating_sub(finished as usize);
    let stale = if left == 0 {
        0
    } else {
        c.execute(
            "DELETE FROM message_log WHERE id IN (
                SELECT id FROM message_log WHERE finished_at_ms IS NULL AND created_at_ms < $1
                 LIMIT $2)",
            &[&stale_before_ms, &limit_of(left)],
        )
        .await?
    };
    let n = finished + stale;
    Ok((n, n as usize >= limit))
}
