//! Key layout of the store's tree. Variable-length components end with
//! NUL, so ids, names and workspace ids never contain NUL (refused as
//! invalid); numbers are big-endian so key order is numeric order.
//!
//! | key                                   | value                           |
//! |---------------------------------------|---------------------------------|
//! | `ws/<id>`                             | `Workspace`                     |
//! | `sa/<username>`                       | `SmtpAccount`                   |
//! | `sw/<ws>\0<username>`                 | empty: accounts of a workspace  |
//! | `ak/<digest>`                         | `ApiKey`                        |
//! | `kw/<ws>\0<key id>`                   | digest: keys of a workspace     |
//! | `sd/<domain>`                         | `SenderDomain`                  |
//! | `dw/<ws>\0<domain>`                   | empty: domains of a workspace   |
//! | `e/<ws>\0<seq>`                       | seq, time, envelope: the log    |
//! | `i/<event id>`                        | `<ws>\0<seq>`: events by id     |
//! | `m/<ws>\0<message id>\0<seq>`         | empty: events by message        |
//! | `c/<name>`                            | u64: named positions            |
//! | `p/<endpoint id>`                     | `Endpoint`                      |
//! | `w/<ws>\0<endpoint id>`               | empty: endpoints of a workspace |
//! | `d/<delivery id>`                     | `Delivery`                      |
//! | `q/<endpoint>\0<due>\0<delivery id>`  | empty: the outbox's due index   |
//! | `l/<endpoint>\0<seq>`                 | delivery id: deliveries listed  |
//! | `ik/<ws>\0<key>`                      | `IdempotencyRecord`             |
//! | `sc/<ws>\0<day>\0<tag>\0<type>`       | u64: events a day (tag "": all) |
//! | `it/<created ms>\0<ws>\0<key>`        | empty: idempotency by age       |
//! | `su/<ws>\0<address>`                  | `Suppression`                   |
//! | `cl/<client id>`                      | `Client`                        |
//! | `ce/<email>`                          | client id: clients by email     |
//! | `cs/<token digest>`                   | `ClientSession`                 |
//! | `sb/<subscription id>`                | `Subscription`                  |
//! | `bc/<client>\0<subscription id>`      | empty: subscriptions of a client |
//! | `be/<period end>\0<subscription id>`  | empty: live subscriptions by period end |
//! | `iv/<invoice id>`                     | `Invoice`                       |
//! | `ic/<client>\0<invoice id>`           | empty: invoices of a client     |
//! | `ia/<next action>\0<invoice id>`      | empty: the dunning's work       |
//! | `iu/<number>`                         | invoice or credit note id: numbers used |
//! | `py/<payment id>`                     | `Payment`                       |
//! | `pr/<reference>`                      | payment id: references seen     |
//! | `pi/<invoice>\0<payment id>`          | empty: payments of an invoice   |
//! | `cn/<credit note id>`                 | `CreditNote`                    |
//! | `ci/<invoice>\0<credit note id>`      | empty: credit notes of an invoice |
//! | `nq/<seq>`                            | `Notice`: notifications to mail |
//! | `pw/<token digest>`                   | `PasswordReset`                 |
//! | `tn/<number>`                         | `TelnxoNumber`                  |
//! | `tw/<ws>\0<number>`                   | empty: numbers of a workspace   |
//! | `tm/<message id>`                     | `TelnxoMessage`                 |
//! | `tv/<call id>`                        | `Call`                          |
//! | `tl/<ws>\0<created>\0<message id>`    | empty: messages listed          |
//! | `tk/<ws>\0<created>\0<call id>`       | empty: calls listed             |
//! | `tq/<channel>\0<due>\0<id>`           | empty: a channel's queue        |
//! | `tc/<channel>\0<carrier id>`          | `<id>\0<part u32>`: carrier ids |
//! | `tx/<ws>\0<number>`                   | i64: last WhatsApp message from |
//! | `td/<ws>\0<counter>`                  | u64: Telnxo usage (a day's sends, a period's units) |
//! | `bw/<ws>`                             | subscription id: a workspace's  |
//! | `tr/<id>`                             | `ParkedReport`: carrier reports waiting for their message |
//! | `ti/<message key>\0<seq u8>`          | body: parts of a concatenated inbound SMS |
//! | `so/<token digest>`                   | `SsoToken`                      |
//! | `ps/<token digest>`                   | `PlatformSession`               |
//! | `au/<id>`                             | `AuditEntry`                    |
//! | `ls/<name>`                           | `Lease`: who runs what, until when |
//! | `qc/<counter>\0<day>`                 | u64: quota units claimed on a day |
//! | `ml/<message id>`                     | `MessageLogEntry`: the shared message log |
//! | `mw/<ws>\0<created>\0<message id>`    | empty: log entries listed       |
//! | `mr/<ws>\0<to>\0<created>\0<id>`      | empty: log entries by recipient (lowercase) |
//! | `mq/<queue id>\0<message id>`         | empty: log entries of a submission |
//! | `mx/<finished>\0<message id>`         | empty: final log entries by age |
//! | `mp/<ws>\0<message id>`               | empty: log entries not final yet |
//!
//! The one-letter families are the event log's and outbox's since their
//! first version; the two-letter ones moved in with the store crate.

use crate::{Result, StoreError};

pub(crate) const WORKSPACE: &[u8] = b"ws/";
pub(crate) const ACCOUNT: &[u8] = b"sa/";
pub(crate) const ACCOUNTS_OF: &[u8] = b"sw/";
pub(crate) const API_KEY: &[u8] = b"ak/";
pub(crate) const KEYS_OF: &[u8] = b"kw/";
pub(crate) const DOMAIN: &[u8] = b"sd/";
pub(crate) const DOMAINS_OF: &[u8] = b"dw/";
pub(crate) const EVENT: &[u8] = b"e/";
pub(crate) const EVENT_BY_ID: &[u8] = b"i/";
pub(crate) const EVENT_BY_MESSAGE: &[u8] = b"m/";
pub(crate) const CURSOR: &[u8] = b"c/";
pub(crate) const ENDPOINT: &[u8] = b"p/";
pub(crate) const ENDPOINTS_OF: &[u8] = b"w/";
pub(crate) const DELIVERY: &[u8] = b"d/";
pub(crate) const DUE: &[u8] = b"q/";
pub(crate) const DELIVERIES_OF: &[u8] = b"l/";
pub(crate) const IDEMPOTENCY: &[u8] = b"ik/";
pub(crate) const DAILY_COUNT: &[u8] = b"sc/";
pub(crate) const SUPPRESSION: &[u8] = b"su/";
pub(crate) const CLIENT: &[u8] = b"cl/";
pub(crate) const CLIENT_BY_EMAIL: &[u8] = b"ce/";
pub(crate) const CLIENT_SESSION: &[u8] = b"cs/";
pub(crate) const SUBSCRIPTION: &[u8] = b"sb/";
pub(crate) const SUBSCRIPTIONS_OF: &[u8] = b"bc/";
pub(crate) const SUBSCRIPTIONS_ENDING: &[u8] = b"be/";
pub(crate) const INVOICE: &[u8] = b"iv/";
pub(crate) const INVOICES_OF: &[u8] = b"ic/";
pub(crate) const INVOICES_DUE: &[u8] = b"ia/";
pub(crate) const NUMBER_USED: &[u8] = b"iu/";
pub(crate) const PAYMENT: &[u8] = b"py/";
pub(crate) const PAYMENT_REFERENCE: &[u8] = b"pr/";
pub(crate) const PAYMENTS_OF: &[u8] = b"pi/";
pub(crate) const CREDIT_NOTE: &[u8] = b"cn/";
pub(crate) const CREDIT_NOTES_OF: &[u8] = b"ci/";
pub(crate) const NOTICE: &[u8] = b"nq/";
pub(crate) const PASSWORD_RESET: &[u8] = b"pw/";
pub(crate) const TELNXO_NUMBER: &[u8] = b"tn/";
pub(crate) const TELNXO_NUMBERS_OF: &[u8] = b"tw/";
pub(crate) const TELNXO_MESSAGE: &[u8] = b"tm/";
pub(crate) const TELNXO_CALL: &[u8] = b"tv/";
pub(crate) const TELNXO_MESSAGES_OF: &[u8] = b"tl/";
pub(crate) const TELNXO_CALLS_OF: &[u8] = b"tk/";
pub(crate) const TELNXO_QUEUE: &[u8] = b"tq/";
pub(crate) const TELNXO_CARRIER_ID: &[u8] = b"tc/";
pub(crate) const TELNXO_WINDOW: &[u8] = b"tx/";
pub(crate) const TELNXO_USAGE: &[u8] = b"td/";
pub(crate) const SUBSCRIPTION_OF_WORKSPACE: &[u8] = b"bw/";
pub(crate) const TELNXO_PARKED: &[u8] = b"tr/";
pub(crate) const TELNXO_INBOUND_PARTS: &[u8] = b"ti/";
pub(crate) const SSO_TOKEN: &[u8] = b"so/";
pub(crate) const PLATFORM_SESSION: &[u8] = b"ps/";
pub(crate) const AUDIT: &[u8] = b"au/";
pub(crate) const LEASE: &[u8] = b"ls/";
pub(crate) const QUOTA_CLAIMED: &[u8] = b"qc/";
pub(crate) const MESSAGE_LOG: &[u8] = b"ml/";
pub(crate) const MESSAGE_LOG_OF: &[u8] = b"mw/";
pub(crate) const MESSAGE_LOG_TO: &[u8] = b"mr/";
pub(crate) const MESSAGE_LOG_QUEUE: &[u8] = b"mq/";
pub(crate) const MESSAGE_LOG_FINISHED: &[u8] = b"mx/";
pub(crate) const MESSAGE_LOG_PENDING: &[u8] = b"mp/";
/// The named position holding the last notice number.
pub(crate) const NOTICE_SEQ: &str = "notice-seq";

/// `<index><ms>\0<id>`: an entry of a time index (`be/`, `ia/`); times
/// before 1970 sort as 1970.
pub(crate) fn timed(index: &[u8], ms: i64, id: &str) -> Vec<u8> {
    cat(&[
        index,
        &(ms.max(0) as u64).to_be_bytes(),
        b"\0",
        id.as_bytes(),
    ])
}

/// `sc/<ws>\0<day>`: the start of a workspace's counters of one day (days
/// since the epoch, offset so negative days sort first).
pub(crate) fn daily_counts(ws: &str, day: i64) -> Vec<u8> {
    pair(DAILY_COUNT, ws, &((day as u64) ^ (1 << 63)).to_be_bytes())
}

pub(crate) fn daily_count(ws: &str, day: i64, tag: &str, event_type: &str) -> Vec<u8> {
    cat(&[
        &daily_counts(ws, day),
        b"\0",
        tag.as_bytes(),
        b"\0",
        event_type.as_bytes(),
    ])
}
pub(crate) const IDEMPOTENCY_BY_AGE: &[u8] = b"it/";

pub(crate) fn idempotency(ws: &str, key: &str) -> Vec<u8> {
    pair(IDEMPOTENCY, ws, key.as_bytes())
}

pub(crate) fn idempotency_by_age(created_ms: i64, ws: &str, key: &str) -> Vec<u8> {
    cat(&[
        IDEMPOTENCY_BY_AGE,
        &(created_ms.max(0) as u64).to_be_bytes(),
        b"\0",
        ws.as_bytes(),
        b"\0",
        key.as_bytes(),
    ])
}

pub(crate) fn cat(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// Refuses a key component that would break the layout.
pub(crate) fn component(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.bytes().any(|b| b == 0 || b == 1) {
        return Err(StoreError::Invalid(format!(
            "{what} must be non-empty, without NUL or \\x01"
        )));
    }
    Ok(())
}

/// `<family><a>\0`: the prefix of one group (a workspace's, an endpoint's).
pub(crate) fn group(family: &[u8], a: &str) -> Vec<u8> {
    cat(&[family, a.as_bytes(), b"\0"])
}

/// `<family><a>\0<b>`
pub(crate) fn pair(family: &[u8], a: &str, b: &[u8]) -> Vec<u8> {
    cat(&[family, a.as_bytes(), b"\0", b])
}

pub(crate) fn event(ws: &str, seq: u64) -> Vec<u8> {
    pair(EVENT, ws, &seq.to_be_bytes())
}

pub(crate) fn event_by_message(ws: &str, msg: &str, seq: u64) -> Vec<u8> {
    cat(&[
        EVENT_BY_MESSAGE,
        ws.as_bytes(),
        b"\0",
        msg.as_bytes(),
        b"\0",
        &seq.to_be_bytes(),
    ])
}

pub(crate) fn due(endpoint: &str, due_ms: i64, id: &str) -> Vec<u8> {
    cat(&[
        DUE,
        endpoint.as_bytes(),
        b"\0",
        &(due_ms.max(0) as u64).to_be_bytes(),
        b"\0",
        id.as_bytes(),
    ])
}

/// The sequence number at the end of a key.
pub(crate) fn seq_suffix(key: &[u8]) -> Result<u64> {
    key.len()
        .checked_sub(8)
        .and_then(|at| key[at..].try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "key {} has no sequence number",
                String::from_utf8_lossy(key)
            ))
        })
}

/// A sequence number as a page cursor.
pub(crate) fn cursor_of(seq: u64) -> String {
    format!("{seq:016x}")
}

pub(crate) fn parse_cursor(c: &str) -> Result<u64> {
    u64::from_str_radix(c, 16)
        .ok()
        .filter(|_| c.len() == 16)
        .ok_or_else(|| StoreError::Invalid("cursor is not one we issued".into()))
}
