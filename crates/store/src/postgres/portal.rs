//! The portal's records: clients and their logins, subscriptions,
//! invoices, payments, credit notes, notices, sign-on tokens, platform
//! sessions and the audit trail (tables in `0004_portal.sql`).
//!
//! They belong to clients, not workspaces, so they are no tenant tables:
//! every statement runs in the service's scope on the portal's database.
//! A refused insert (a key taken) is found by the rows an `INSERT … ON
//! CONFLICT DO NOTHING` changed, never by a failing statement, which would
//! abort the whole transaction where sled's caller may go on; and it
//! leaves nothing of itself behind.

use serde::de::DeserializeOwned;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::Row;

use super::txn::{json, record, Conn, Part, PgTxn};
use super::{fetch_limit, limit_of, page, storable, Scope};
use crate::sled::keys::component;
use crate::*;

async fn portal(t: &PgTxn) -> Result<&Conn> {
    t.on(Part::Portal, Scope::Service).await
}

/// A paging cursor as a bound to compare stored keys with. Keys never
/// contain NUL, so the cursor cut at its first NUL orders every stored
/// key as sled's bytewise comparison of the whole does, and PostgreSQL
/// takes it.
fn bound(cursor: &str) -> &str {
    cursor.split('\0').next().unwrap_or_default()
}

/// A time as a time index orders it: before 1970 as 1970 (sled's
/// `keys::timed`).
fn index_ms(ms: i64) -> i64 {
    ms.max(0)
}

fn column<'r, T: FromSql<'r>>(row: &'r Row, i: usize) -> Result<T> {
    row.try_get(i)
        .map_err(|e| StoreError::Corrupt(format!("a stored portal column: {e}")))
}

/// The record `sql` finds by `key` (its only parameter).
async fn lookup<T: DeserializeOwned>(t: &PgTxn, sql: &str, key: &str) -> Result<Option<T>> {
    if !storable(key) {
        return Ok(None);
    }
    portal(t).await?.record(sql, &[&key]).await
}

/// The records `sql` lists of `key` (its only parameter).
async fn listing<T: DeserializeOwned>(t: &PgTxn, sql: &str, key: &str) -> Result<Vec<T>> {
    if !storable(key) {
        return Ok(Vec::new());
    }
    portal(t).await?.records(sql, &[&key]).await
}

/// Deletes what `sql` names by `key`; whether it existed.
async fn delete(t: &PgTxn, sql: &str, key: &str) -> Result<bool> {
    if !storable(key) {
        return Ok(false);
    }
    Ok(portal(t).await?.execute(sql, &[&key]).await? > 0)
}

/// The `Conflict` of an insert that added nothing, naming the key sled
/// names first: `first` when `lookup` finds `key` taken, else `other`.
async fn taken(
    c: &Conn,
    lookup: &str,
    key: &str,
    first: impl FnOnce() -> String,
    other: impl FnOnce() -> String,
) -> Result<()> {
    let message = if exists(c, lookup, &[&key]).await? {
        first()
    } else {
        other()
    };
    Err(StoreError::Conflict(message))
}

async fn exists(c: &Conn, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<bool> {
    Ok(c.query_opt(sql, params).await?.is_some())
}

/// One page of `sql`'s records ($1 the id after which, $2 the limit),
/// by id; the cursor is the last one's id, as on sled.
async fn page_by_id<T: DeserializeOwned>(
    t: &PgTxn,
    sql: &str,
    after: Option<&str>,
    limit: usize,
    id_of: impl Fn(&T) -> String,
) -> Result<Page<T>> {
    // Every id sorts after the empty one.
    let after = bound(after.unwrap_or(""));
    let rows = portal(t)
        .await?
        .records(sql, &[&after, &fetch_limit(limit)])
        .await?;
    Ok(page(rows, limit, id_of))
}

/// Up to `limit` `(ms, id)` of a time index up to `until_ms`, earliest
/// first, after `after`: the rows of `sql` ($1 the bound, $2 and $3 the
/// cursor, $4 the limit). The bound and cursor count times before 1970 as
/// 1970, as the index does.
async fn timed_until(
    t: &PgTxn,
    sql: &str,
    until_ms: i64,
    after: Option<(i64, String)>,
    limit: usize,
) -> Result<Vec<(i64, String)>> {
    // Before every entry: indexed times are never negative.
    let (after_ms, after_id) = match &after {
        Some((ms, id)) => (index_ms(*ms), bound(id)),
        None => (-1, ""),
    };
    portal(t)
        .await?
        .query(
            sql,
            &[&index_ms(until_ms), &after_ms, &after_id, &limit_of(limit)],
        )
        .await?
        .iter()
        .map(|row| Ok((column(row, 0)?, column(row, 1)?)))
        .collect()
}

pub(super) async fn client(t: &PgTxn, id: &str) -> Result<Option<Client>> {
    lookup(t, "SELECT record FROM clients WHERE id = $1", id).await
}

pub(super) async fn client_by_email(t: &PgTxn, email: &str) -> Result<Option<Client>> {
    lookup(t, "SELECT record FROM clients WHERE email = $1", email).await
}

pub(super) async fn client_session(t: &PgTxn, digest: &str) -> Result<Option<ClientSession>> {
    lookup(
        t,
        "SELECT record FROM client_sessions WHERE digest = $1",
        digest,
    )
    .await
}

pub(super) async fn subscription(t: &PgTxn, id: &str) -> Result<Option<Subscription>> {
    lookup(t, "SELECT record FROM subscriptions WHERE id = $1", id).await
}

pub(super) async fn subscriptions_of(t: &PgTxn, client_id: &str) -> Result<Vec<Subscription>> {
    listing(
        t,
        "SELECT record FROM subscriptions WHERE client_id = $1 ORDER BY created_at_ms, id",
        client_id,
    )
    .await
}

pub(super) async fn subscriptions_ending(
    t: &PgTxn,
    until_ms: i64,
    after: Option<(i64, String)>,
    limit: usize,
) -> Result<Vec<(i64, String)>> {
    timed_until(
        t,
        "SELECT ending_ms, id FROM subscriptions
          WHERE ending_ms <= $1 AND (ending_ms, id) > ($2, $3)
          ORDER BY ending_ms, id LIMIT $4",
        until_ms,
        after,
        limit,
    )
    .await
}

pub(super) async fn clients(t: &PgTxn, after: Option<&str>, limit: usize) -> Result<Page<Client>> {
    page_by_id(
        t,
        "SELECT record FROM clients WHERE id > $1 ORDER BY id LIMIT $2",
        after,
        limit,
        |c: &Client| c.id.clone(),
    )
    .await
}

pub(super) async fn subscriptions(
    t: &PgTxn,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<Subscription>> {
    page_by_id(
        t,
        "SELECT record FROM subscriptions WHERE id > $1 ORDER BY id LIMIT $2",
        after,
        limit,
        |s: &Subscription| s.id.clone(),
    )
    .await
}

pub(super) async fn invoice(t: &PgTxn, id: &str) -> Result<Option<Invoice>> {
    lookup(t, "SELECT record FROM invoices WHERE id = $1", id).await
}

pub(super) async fn invoices_of(t: &PgTxn, client_id: &str) -> Result<Vec<Invoice>> {
    listing(
        t,
        "SELECT record FROM invoices WHERE client_id = $1
          ORDER BY issued_at_ms DESC, number DESC",
        client_id,
    )
    .await
}

pub(super) async fn invoices(
    t: &PgTxn,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<Invoice>> {
    page_by_id(
        t,
        "SELECT record FROM invoices WHERE id > $1 ORDER BY id LIMIT $2",
        after,
        limit,
        |i: &Invoice| i.id.clone(),
    )
    .await
}

pub(super) async fn invoices_due(
    t: &PgTxn,
    until_ms: i64,
    after: Option<(i64, String)>,
    limit: usize,
) -> Result<Vec<(i64, String)>> {
    timed_until(
        t,
        "SELECT next_action_ms, id FROM invoices
          WHERE next_action_ms <= $1 AND (next_action_ms, id) > ($2, $3)
          ORDER BY next_action_ms, id LIMIT $4",
        until_ms,
        after,
        limit,
    )
    .await
}

pub(super) async fn payment_by_reference(t: &PgTxn, reference: &str) -> Result<Option<Payment>> {
    lookup(
        t,
        "SELECT record FROM payments WHERE reference = $1",
        reference,
    )
    .await
}

pub(super) async fn payments_of(t: &PgTxn, invoice_id: &str) -> Result<Vec<Payment>> {
    listing(
        t,
        "SELECT record FROM payments WHERE invoice_id = $1 ORDER BY received_at_ms, id",
        invoice_id,
    )
    .await
}

pub(super) async fn credit_notes_of(t: &PgTxn, invoice_id: &str) -> Result<Vec<CreditNote>> {
    listing(
        t,
        "SELECT record FROM credit_notes WHERE invoice_id = $1 ORDER BY issued_at_ms, number",
        invoice_id,
    )
    .await
}

pub(super) async fn password_reset(t: &PgTxn, digest: &str) -> Result<Option<PasswordReset>> {
    lookup(
        t,
        "SELECT record FROM password_resets WHERE digest = $1",
        digest,
    )
    .await
}

pub(super) async fn notices(t: &PgTxn, limit: usize) -> Result<Vec<(u64, Notice)>> {
    portal(t)
        .await?
        .query(
            "SELECT seq, record FROM notices ORDER BY seq LIMIT $1",
            &[&limit_of(limit)],
        )
        .await?
        .iter()
        .map(|row| Ok((column::<i64>(row, 0)? as u64, record(row, 1)?)))
        .collect()
}

pub(super) async fn sso_token(t: &PgTxn, digest: &str) -> Result<Option<SsoToken>> {
    lookup(t, "SELECT record FROM sso_tokens WHERE digest = $1", digest).await
}

pub(super) async fn platform_session(t: &PgTxn, digest: &str) -> Result<Option<PlatformSession>> {
    lookup(
        t,
        "SELECT record FROM platform_sessions WHERE digest = $1",
        digest,
    )
    .await
}

pub(super) async fn audit_entries(t: &PgTxn, limit: usize) -> Result<Vec<AuditEntry>> {
    portal(t)
        .await?
        .records(
            "SELECT record FROM audit_entries ORDER BY id DESC LIMIT $1",
            &[&limit_of(limit)],
        )
        .await
}

pub(super) async fn subscription_of_workspace(
    t: &PgTxn,
    workspace_id: &str,
) -> Result<Option<Subscription>> {
    lookup(
        t,
        "SELECT s.record FROM workspace_subscriptions w
           JOIN subscriptions s ON s.id = w.subscription_id
          WHERE w.workspace_id = $1",
        workspace_id,
    )
    .await
}

pub(super) async fn insert_client(t: &PgTxn, client: &Client) -> Result<()> {
    component("client id", &client.id)?;
    component("email", &client.email)?;
    let c = portal(t).await?;
    let added = c
        .execute(
            "INSERT INTO clients (id, email, record) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&client.id, &client.email, &json(client)],
        )
        .await?;
    if added > 0 {
        return Ok(());
    }
    // Which key is taken, the email first as on sled.
    taken(
        c,
        "SELECT 1 FROM clients WHERE email = $1",
        &client.email,
        || format!("a client with email {} exists", client.email),
        || format!("client {} exists", client.id),
    )
    .await
}

pub(super) async fn put_client(t: &PgTxn, client: &Client) -> Result<()> {
    let c = portal(t).await?;
    let replaced = storable(&client.id)
        && c.execute(
            "UPDATE clients SET record = $3 WHERE id = $1 AND email = $2",
            &[&client.id, &client.email, &json(client)],
        )
        .await?
            > 0;
    if replaced {
        return Ok(());
    }
    let found = storable(&client.id)
        && exists(c, "SELECT 1 FROM clients WHERE id = $1", &[&client.id]).await?;
    Err(StoreError::Invalid(if found {
        "a client's email does not change here".into()
    } else {
        format!("no client {}", client.id)
    }))
}

pub(super) async fn put_client_session(t: &PgTxn, session: &ClientSession) -> Result<()> {
    component("session digest", &session.digest)?;
    put_expiring(
        t,
        "client_sessions",
        &session.digest,
        session.expires_at_ms,
        &json(session),
    )
    .await
}

pub(super) async fn delete_client_session(t: &PgTxn, digest: &str) -> Result<bool> {
    delete(t, "DELETE FROM client_sessions WHERE digest = $1", digest).await
}

pub(super) async fn put_subscription(t: &PgTxn, subscription: &Subscription) -> Result<()> {
    component("subscription id", &subscription.id)?;
    component("client id", &subscription.client_id)?;
    // What the billing run renews or converts at the period's end (a
    // pending subscription's period starts with its first payment).
    let live = matches!(
        subscription.status,
        SubscriptionStatus::Trial | SubscriptionStatus::Active
    );
    let ending_ms = live.then_some(index_ms(subscription.period_end_ms));
    let c = portal(t).await?;
    let stored = c
        .execute(
            "INSERT INTO subscriptions (id, client_id, created_at_ms, ending_ms, record)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE
                SET created_at_ms = excluded.created_at_ms,
                    ending_ms = excluded.ending_ms,
                    record = excluded.record
              WHERE subscriptions.client_id = excluded.client_id",
            &[
                &subscription.id,
                &subscription.client_id,
                &subscription.created_at_ms,
                &ending_ms,
                &json(subscription),
            ],
        )
        .await?;
    if stored == 0 {
        return Err(StoreError::Invalid(
            "a subscription's client does not change".into(),
        ));
    }
    // The workspace's subscription: the newest that is not cancelled (a
    // cancelled client's new start takes its old workspace back).
    if subscription.status != SubscriptionStatus::Cancelled {
        c.execute(
            "INSERT INTO workspace_subscriptions (workspace_id, subscription_id) VALUES ($1, $2)
             ON CONFLICT (workspace_id) DO UPDATE SET subscription_id = excluded.subscription_id",
            &[&subscription.workspace_id, &subscription.id],
        )
        .await?;
    }
    Ok(())
}

/// Adds an invoice or a credit note (by `insert`, an `INSERT … ON
/// CONFLICT DO NOTHING`): takes its number first (`number_taken` if it
/// is, whichever document has it), then its id (`id_taken`, the number
/// given back).
async fn insert_numbered(
    c: &Conn,
    number: &str,
    id: &str,
    insert: &str,
    params: &[&(dyn ToSql + Sync)],
    number_taken: impl FnOnce() -> String,
    id_taken: impl FnOnce() -> String,
) -> Result<()> {
    let claimed = c
        .execute(
            "INSERT INTO document_numbers (number, document_id) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
            &[&number, &id],
        )
        .await?;
    if claimed == 0 {
        return Err(StoreError::Conflict(number_taken()));
    }
    if c.execute(insert, params).await? == 0 {
        c.execute("DELETE FROM document_numbers WHERE number = $1", &[&number])
            .await?;
        return Err(StoreError::Conflict(id_taken()));
    }
    Ok(())
}

pub(super) async fn insert_invoice(t: &PgTxn, invoice: &Invoice) -> Result<()> {
    component("invoice id", &invoice.id)?;
    component("client id", &invoice.client_id)?;
    component("invoice number", &invoice.number)?;
    insert_numbered(
        portal(t).await?,
        &invoice.number,
        &invoice.id,
        "INSERT INTO invoices (id, number, client_id, issued_at_ms, next_action_ms, record)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        &[
            &invoice.id,
            &invoice.number,
            &invoice.client_id,
            &invoice.issued_at_ms,
            &invoice.next_action_ms.map(index_ms),
            &json(invoice),
        ],
        || format!("invoice number {} is taken", invoice.number),
        || format!("invoice {} exists", invoice.id),
    )
    .await
}

pub(super) async fn put_invoice(t: &PgTxn, invoice: &Invoice) -> Result<()> {
    component("invoice id", &invoice.id)?;
    let c = portal(t).await?;
    let replaced = c
        .execute(
            "UPDATE invoices SET issued_at_ms = $4, next_action_ms = $5, record = $6
              WHERE id = $1 AND client_id = $2 AND number = $3",
            &[
                &invoice.id,
                &invoice.client_id,
                &invoice.number,
                &invoice.issued_at_ms,
                &invoice.next_action_ms.map(index_ms),
                &json(invoice),
            ],
        )
        .await?;
    if replaced > 0 {
        return Ok(());
    }
    // Only an inserted invoice is put (insert_invoice took its number).
    Err(StoreError::Invalid(
        if exists(c, "SELECT 1 FROM invoices WHERE id = $1", &[&invoice.id]).await? {
            "an invoice's client and number do not change".into()
        } else {
            format!("no invoice {}", invoice.id)
        },
    ))
}

pub(super) async fn insert_payment(t: &PgTxn, payment: &Payment) -> Result<()> {
    component("payment id", &payment.id)?;
    component("invoice id", &payment.invoice_id)?;
    component("payment reference", &payment.reference)?;
    let c = portal(t).await?;
    let added = c
        .execute(
            "INSERT INTO payments (id, reference, invoice_id, received_at_ms, record)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[
                &payment.id,
                &payment.reference,
                &payment.invoice_id,
                &payment.received_at_ms,
                &json(payment),
            ],
        )
        .await?;
    if added > 0 {
        return Ok(());
    }
    // Which key is taken, the reference first as on sled.
    taken(
        c,
        "SELECT 1 FROM payments WHERE reference = $1",
        &payment.reference,
        || format!("payment {} was recorded before", payment.reference),
        || format!("payment {} exists", payment.id),
    )
    .await
}

pub(super) async fn insert_credit_note(t: &PgTxn, note: &CreditNote) -> Result<()> {
    component("credit note id", &note.id)?;
    component("invoice id", &note.invoice_id)?;
    component("credit note number", &note.number)?;
    insert_numbered(
        portal(t).await?,
        &note.number,
        &note.id,
        "INSERT INTO credit_notes (id, number, invoice_id, issued_at_ms, record)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        &[
            &note.id,
            &note.number,
            &note.invoice_id,
            &note.issued_at_ms,
            &json(note),
        ],
        || format!("credit note number {} is taken", note.number),
        || format!("credit note {} exists", note.id),
    )
    .await
}

pub(super) async fn put_password_reset(t: &PgTxn, reset: &PasswordReset) -> Result<()> {
    component("reset digest", &reset.digest)?;
    put_expiring(
        t,
        "password_resets",
        &reset.digest,
        reset.expires_at_ms,
        &json(reset),
    )
    .await
}

pub(super) async fn delete_password_reset(t: &PgTxn, digest: &str) -> Result<bool> {
    delete(t, "DELETE FROM password_resets WHERE digest = $1", digest).await
}

/// The tables of expiring tokens, in the order a prune takes them (each
/// by digest), as on sled.
const EXPIRING: [&str; 4] = [
    "client_sessions",
    "password_resets",
    "sso_tokens",
    "platform_sessions",
];

/// Adds or replaces a token's record (in `table`, one of [`EXPIRING`])
/// by its digest.
async fn put_expiring(
    t: &PgTxn,
    table: &str,
    digest: &str,
    expires_at_ms: i64,
    record: &(dyn ToSql + Sync),
) -> Result<()> {
    // The table's name is ours, not a value.
    let sql = format!(
        "INSERT INTO {table} (digest, expires_at_ms, record) VALUES ($1, $2, $3)
         ON CONFLICT (digest) DO UPDATE
            SET expires_at_ms = excluded.expires_at_ms, record = excluded.record"
    );
    portal(t)
        .await?
        .execute(&sql, &[&digest, &expires_at_ms, record])
        .await?;
    Ok(())
}

pub(super) async fn prune_client_tokens(
    t: &PgTxn,
    now_ms: i64,
    limit: usize,
) -> Result<(u64, bool)> {
    let c = portal(t).await?;
    let mut pruned = 0;
    for table in EXPIRING {
        let left = limit - pruned;
        if left == 0 {
            break;
        }
        // The table's name is ours, not a value.
        let sql = format!(
            "DELETE FROM {table} WHERE digest IN
               (SELECT digest FROM {table} WHERE expires_at_ms <= $1 ORDER BY digest LIMIT $2)"
        );
        pruned += c.execute(&sql, &[&now_ms, &limit_of(left)]).await? as usize;
    }
    Ok((pruned as u64, pruned == limit))
}

pub(super) async fn queue_notice(t: &PgTxn, notice: &Notice) -> Result<u64> {
    let row = portal(t)
        .await?
        .query_opt(
            "INSERT INTO notices (record) VALUES ($1) RETURNING seq",
            &[&json(notice)],
        )
        .await?
        .ok_or_else(|| StoreError::Unavailable("a queued notice without its number".into()))?;
    Ok(column::<i64>(&row, 0)? as u64)
}

pub(super) async fn delete_notice(t: &PgTxn, seq: u64) -> Result<bool> {
    // Numbers past i64 were never given.
    let Ok(seq) = i64::try_from(seq) else {
        return Ok(false);
    };
    Ok(portal(t)
        .await?
        .execute("DELETE FROM notices WHERE seq = $1", &[&seq])
        .await?
        > 0)
}

pub(super) async fn put_sso_token(t: &PgTxn, token: &SsoToken) -> Result<()> {
    component("token digest", &token.digest)?;
    put_expiring(
        t,
        "sso_tokens",
        &token.digest,
        token.expires_at_ms,
        &json(token),
    )
    .await
}

pub(super) async fn put_platform_session(t: &PgTxn, session: &PlatformSession) -> Result<()> {
    component("session digest", &session.digest)?;
    put_expiring(
        t,
        "platform_sessions",
        &session.digest,
        session.expires_at_ms,
        &json(session),
    )
    .await
}

pub(super) async fn delete_platform_session(t: &PgTxn, digest: &str) -> Result<bool> {
    delete(t, "DELETE FROM platform_sessions WHERE digest = $1", digest).await
}

pub(super) async fn append_audit(t: &PgTxn, entry: &AuditEntry) -> Result<()> {
    component("audit id", &entry.id)?;
    portal(t)
        .await?
        .execute(
            "INSERT INTO audit_entries (id, record) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET record = excluded.record",
            &[&entry.id, &json(entry)],
        )
        .await?;
    Ok(())
}
