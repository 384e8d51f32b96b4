//! The store's operations on sled: reads once for any [`Kv`] view (the
//! committed tree or a transaction), writes for a transaction.

use rackwave_core::event::{Event, EventType};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::keys::{self, cat, component, group, pair};
use super::kv::{decode, encode, prefix_end, Kv};
use super::SledTxn;
use crate::sso::{AuditEntry, PlatformSession, SsoToken};
use crate::telnxo::{Call, Channel, ParkedReport, TelnxoMessage, TelnxoNumber};
use crate::{
    ApiKey, Client, ClientSession, CreditNote, Delivery, DeliveryState, Endpoint, EventQuery,
    IdempotencyRecord, Invoice, MessageLogEntry, MessageLogQuery, Notice, Page, PasswordReset,
    Payment, Reads, Result, SenderDomain, SmtpAccount, StoreError, StoredEvent, Subscription,
    SubscriptionStatus, Suppression, SuppressionReason, Workspace, Writes,
};

/// Most entries one listing call examines, so a selective filter over a
/// huge log answers in bounded time (with a cursor to go on from).
const SCAN_BUDGET: usize = 20_000;

/// Walks the keys of `[start, end)` (newest first when `descending`) for
/// one page of a listing: reads in chunks near the page size (a short page
/// reads a few entries, however long the range), at most [`SCAN_BUDGET`]
/// entries, and hands each to `take` until it says the page is full
/// (`false`). Whether entries remain past what was taken or examined.
pub(super) fn walk_page(
    kv: &impl Kv,
    start: Vec<u8>,
    end: Vec<u8>,
    descending: bool,
    page: usize,
    mut take: impl FnMut(&[u8], &[u8]) -> Result<bool>,
) -> Result<bool> {
    let (mut from, mut to) = (start, end);
    let mut scanned = 0;
    let mut chunk = (page + 1).clamp(16, 1024);
    loop {
        let want = chunk.min(SCAN_BUDGET + 1 - scanned);
        let entries = kv.scan(&from, &to, descending, want)?;
        for (key, value) in &entries {
            if scanned >= SCAN_BUDGET || !take(key, value)? {
                return Ok(true);
            }
            scanned += 1;
        }
        match entries.last() {
            Some((last, _)) if entries.len() == want => {
                if descending {
                    to = last.clone();
                } else {
                    from = cat(&[last, &[0]]);
                }
            }
            _ => return Ok(false),
        }
        chunk = (chunk * 2).min(1024);
    }
}

/// Up to `limit` entries of a time index ([`keys::timed`]) up to
/// `until_ms`, earliest first, after `after`, as `(ms, id)`.
fn timed_until(
    kv: &impl Kv,
    index: &[u8],
    until_ms: i64,
    after: Option<(i64, String)>,
    limit: usize,
) -> Result<Vec<(i64, String)>> {
    let start = match &after {
        // The smallest key after the cursor's.
        Some((ms, id)) => cat(&[&keys::timed(index, *ms, id), b"\0"]),
        None => index.to_vec(),
    };
    let end = cat(&[index, &(until_ms.max(0) as u64 + 1).to_be_bytes()]);
    let at = index.len();
    kv.scan(&start, &end, false, limit)?
        .into_iter()
        .map(|(k, _)| {
            let ms = k
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| StoreError::Corrupt("time index key".into()))?;
            let id = String::from_utf8_lossy(k.get(at + 9..).unwrap_or_default()).into_owned();
            Ok((ms as i64, id))
        })
        .collect()
}

/// One page of the records under `family` (`<family><id>`), by id, after
/// the id `after`.
fn records_page<T: for<'de> Deserialize<'de>>(
    kv: &impl Kv,
    family: &[u8],
    after: Option<&str>,
    limit: usize,
) -> Result<Page<T>> {
    let start = match after {
        Some(a) => cat(&[family, a.as_bytes(), b"\0"]),
        None => family.to_vec(),
    };
    let mut items = Vec::new();
    let mut last = None;
    let more = walk_page(kv, start, prefix_end(family), false, limit, |key, raw| {
        if items.len() == limit {
            return Ok(false);
        }
        last = Some(String::from_utf8_lossy(&key[family.len()..]).into_owned());
        items.push(decode(key, raw)?);
        Ok(true)
    })?;
    Ok(Page {
        items,
        next_cursor: if more { last } else { None },
    })
}

fn members<K: Kv, T: for<'de> Deserialize<'de>>(
    kv: &K,
    index: &[u8],
    workspace_id: &str,
    record: impl Fn(&[u8], &[u8]) -> Vec<u8>,
) -> Result<Vec<T>> {
    let prefix = group(index, workspace_id);
    let mut out = Vec::new();
    for (key, value) in kv.scan_prefix(&prefix)? {
        if let Some(found) = kv.get_json(&record(&key[prefix.len()..], &value))? {
            out.push(found);
        }
    }
    Ok(out)
}

/// What the sled backend keeps of an event: its place in the log, its time
/// and the envelope exactly as it was serialized once. Its id, type,
/// workspace and message are read back from the envelope: writing them
/// beside it would make every event a third larger on the hot path (two
/// events per delivered message) for the benefit of the listing, which
/// reads a page at a time.
#[derive(Serialize)]
struct Stored<'a> {
    seq: u64,
    at_ms: i64,
    event: &'a RawValue,
}

fn decode_event(key: &[u8], raw: &[u8]) -> Result<StoredEvent> {
    #[derive(Deserialize)]
    struct Form {
        seq: u64,
        at_ms: i64,
        event: Box<RawValue>,
    }
    #[derive(Deserialize)]
    struct Data {
        /// A call's events name it by `call_id`.
        #[serde(alias = "call_id")]
        message_id: Option<String>,
    }
    #[derive(Deserialize)]
    struct Envelope {
        id: String,
        event: String,
        workspace_id: String,
        data: Option<Data>,
    }
    let form: Form = decode(key, raw)?;
    let env: Envelope = decode(key, form.event.get().as_bytes())?;
    Ok(StoredEvent {
        seq: form.seq,
        at_ms: form.at_ms,
        id: env.id,
        workspace_id: env.workspace_id,
        event_type: EventType::parse(&env.event),
        message_id: env.data.and_then(|d| d.message_id),
        event: form.event,
    })
}

fn get_event<K: Kv>(kv: &K, key: &[u8]) -> Result<Option<StoredEvent>> {
    kv.get(key)?.map(|raw| decode_event(key, &raw)).transpose()
}

/// A named position's stored value. A damaged one is an error, never 0:
/// an invoice series read as 0 would hand out its numbers again.
fn position(name: &str, raw: &[u8]) -> Result<u64> {
    raw.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt(format!("position {name} has {} bytes", raw.len())))
}

impl<K: Kv> Reads for K {
    async fn workspace(&self, id: &str) -> Result<Option<Workspace>> {
        self.get_json(&cat(&[keys::WORKSPACE, id.as_bytes()]))
    }

    async fn workspaces(&self) -> Result<Vec<Workspace>> {
        self.scan_prefix(keys::WORKSPACE)?
            .iter()
            .map(|(k, v)| decode(k, v))
            .collect()
    }

    async fn suspended_workspaces(&self) -> Result<Vec<String>> {
        // One node reads this at start only (it keeps its own suspensions
        // up to date): no index.
        Ok(self
            .workspaces()
            .await?
            .into_iter()
            .filter(|w| w.suspended.is_some())
            .map(|w| w.id)
            .collect())
    }

    async fn smtp_account(&self, username: &str) -> Result<Option<SmtpAccount>> {
        self.get_json(&cat(&[keys::ACCOUNT, username.as_bytes()]))
    }

    async fn smtp_accounts_of(&self, workspace_id: &str) -> Result<Vec<SmtpAccount>> {
        members(self, keys::ACCOUNTS_OF, workspace_id, |name, _| {
            cat(&[keys::ACCOUNT, name])
        })
    }

    async fn api_key(&self, digest: &str) -> Result<Option<ApiKey>> {
        self.get_json(&cat(&[keys::API_KEY, digest.as_bytes()]))
    }

    async fn api_keys_of(&self, workspace_id: &str) -> Result<Vec<ApiKey>> {
        members(self, keys::KEYS_OF, workspace_id, |_, digest| {
            cat(&[keys::API_KEY, digest])
        })
    }

    async fn sender_domain(&self, domain: &str) -> Result<Option<SenderDomain>> {
        self.get_json(&cat(&[keys::DOMAIN, domain.as_bytes()]))
    }

    async fn sender_domains_of(&self, workspace_id: &str) -> Result<Vec<SenderDomain>> {
        members(self, keys::DOMAINS_OF, workspace_id, |name, _| {
            cat(&[keys::DOMAIN, name])
        })
    }

    async fn event(&self, workspace_id: &str, seq: u64) -> Result<Option<StoredEvent>> {
        get_event(self, &keys::event(workspace_id, seq))
    }

    async fn event_by_id(&self, id: &str) -> Result<Option<StoredEvent>> {
        match self.get(&cat(&[keys::EVENT_BY_ID, id.as_bytes()]))? {
            Some(at) => get_event(self, &cat(&[keys::EVENT, &at])),
            None => Ok(None),
        }
    }

    async fn events(
        &self,
        workspace_id: &str,
        query: &EventQuery,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<StoredEvent>> {
        let after = cursor.map(keys::parse_cursor).transpose()?;
        // With a message id, walk its index; otherwise the workspace's log.
        let (prefix, via_index) = match &query.message_id {
            Some(m) => (
                cat(&[
                    keys::EVENT_BY_MESSAGE,
                    workspace_id.as_bytes(),
                    b"\0",
                    m.as_bytes(),
                    b"\0",
                ]),
                true,
            ),
            None => (group(keys::EVENT, workspace_id), false),
        };
        let end = prefix_end(&prefix);
        let (start, end) = match (after, query.ascending) {
            (Some(seq), true) => (cat(&[&prefix, &seq.saturating_add(1).to_be_bytes()]), end),
            (Some(seq), false) => (prefix.clone(), cat(&[&prefix, &seq.to_be_bytes()])),
            (None, _) => (prefix.clone(), end),
        };
        let mut items = Vec::new();
        let mut last_seq = None;
        let more = walk_page(self, start, end, !query.ascending, limit, |key, value| {
            if items.len() == limit {
                return Ok(false);
            }
            let seq = keys::seq_suffix(key)?;
            last_seq = Some(seq);
            let stored = if via_index {
                match get_event(self, &keys::event(workspace_id, seq))? {
                    Some(s) => s,
                    None => return Ok(true),
                }
            } else {
                decode_event(key, value)?
            };
            if query.accepts(&stored) {
                items.push(stored);
            }
            Ok(true)
        })?;
        Ok(Page {
            items,
            next_cursor: if more {
                last_seq.map(keys::cursor_of)
            } else {
                None
            },
        })
    }

    async fn cursor(&self, name: &str) -> Result<u64> {
        match self.get(&cat(&[keys::CURSOR, name.as_bytes()]))? {
            None => Ok(0),
            Some(v) => position(name, &v),
        }
    }

    async fn cursors(&self) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for (key, value) in self.scan_prefix(keys::CURSOR)? {
            let name = String::from_utf8_lossy(&key[keys::CURSOR.len()..]).into_owned();
            // This backend's own numbering of notices (PostgreSQL numbers
            // them itself), not a position anyone set.
            if name != keys::NOTICE_SEQ {
                let at = position(&name, &value)?;
                out.push((name, at));
            }
        }
        Ok(out)
    }

    async fn endpoint(&self, id: &str) -> Result<Option<Endpoint>> {
        self.get_json(&cat(&[keys::ENDPOINT, id.as_bytes()]))
    }

    async fn endpoints_of(&self, workspace_id: &str) -> Result<Vec<Endpoint>> {
        let mut out: Vec<Endpoint> = members(self, keys::ENDPOINTS_OF, workspace_id, |id, _| {
            cat(&[keys::ENDPOINT, id])
        })?;
        out.sort_by_key(|e| e.created_at_ms);
        Ok(out)
    }

    async fn delivery(&self, id: &str) -> Result<Option<Delivery>> {
        self.get_json(&cat(&[keys::DELIVERY, id.as_bytes()]))
    }

    async fn deliveries_of(
        &self,
        endpoint_id: &str,
        state: Option<DeliveryState>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Delivery>> {
        let prefix = group(keys::DELIVERIES_OF, endpoint_id);
        let end = match cursor {
            Some(c) => cat(&[&prefix, &keys::parse_cursor(c)?.to_be_bytes()]),
            None => prefix_end(&prefix),
        };
        let mut items = Vec::new();
        let mut last = None;
        let more = walk_page(self, prefix, end, true, limit, |key, id| {
            if items.len() == limit {
                return Ok(false);
            }
            last = Some(keys::seq_suffix(key)?);
            let found: Option<Delivery> = self.get_json(&cat(&[keys::DELIVERY, id]))?;
            if let Some(d) = found.filter(|d| state.is_none_or(|s| s == d.state)) {
                items.push(d);
            }
            Ok(true)
        })?;
        Ok(Page {
            items,
            next_cursor: if more {
                last.map(keys::cursor_of)
            } else {
                None
            },
        })
    }

    async fn due_endpoints(
        &self,
        after: Option<&str>,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<String>> {
        let mut from = match after {
            Some(ep) => cat(&[keys::DUE, ep.as_bytes(), b"\x01"]),
            None => keys::DUE.to_vec(),
        };
        let end = prefix_end(keys::DUE);
        let mut out = Vec::new();
        while out.len() < limit {
            let Some((key, _)) = self.scan(&from, &end, false, 1)?.pop() else {
                break;
            };
            let rest = &key[keys::DUE.len()..];
            let nul = rest
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(|| StoreError::Corrupt("due key without an endpoint".into()))?;
            let endpoint = String::from_utf8_lossy(&rest[..nul]).into_owned();
            // The group's first entry is its earliest.
            let due = rest
                .get(nul + 1..nul + 9)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .unwrap_or(u64::MAX);
            if due <= now_ms.max(0) as u64 {
                out.push(endpoint.clone());
            }
            from = cat(&[keys::DUE, endpoint.as_bytes(), b"\x01"]);
        }
        Ok(out)
    }

    async fn due_deliveries(
        &self,
        endpoint_id: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<String>> {
        let prefix = group(keys::DUE, endpoint_id);
        let upper = cat(&[&prefix, &((now_ms.max(0) as u64) + 1).to_be_bytes()]);
        Ok(self
            .scan(&prefix, &upper, false, limit)?
            .into_iter()
            .map(|(key, _)| String::from_utf8_lossy(&key[prefix.len() + 9..]).into_owned())
            .collect())
    }

    async fn idempotency(
        &self,
        workspace_id: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>> {
        self.get_json(&keys::idempotency(workspace_id, key))
    }

    async fn event_counts(
        &self,
        workspace_id: &str,
        since_day: i64,
        until_day: i64,
        tag: Option<&str>,
    ) -> Result<Vec<(i64, String, u64)>> {
        let start = keys::daily_counts(workspace_id, since_day);
        let end = keys::daily_counts(workspace_id, until_day.saturating_add(1));
        let prefix = keys::group(keys::DAILY_COUNT, workspace_id).len();
        let want = tag.unwrap_or("");
        let mut out = Vec::new();
        for (key, value) in self.scan(&start, &end, false, usize::MAX)? {
            // `<8-byte day>\0<tag>\0<type>`
            let rest = &key[prefix..];
            let (Some(day), Some(tail)) = (rest.get(..8), rest.get(9..)) else {
                continue;
            };
            let day = (u64::from_be_bytes(day.try_into().expect("8 bytes")) ^ (1 << 63)) as i64;
            let Some(split) = tail.iter().position(|b| *b == 0) else {
                continue;
            };
            if &tail[..split] != want.as_bytes() {
                continue;
            }
            let n = u64::from_be_bytes(value.as_slice().try_into().unwrap_or([0; 8]));
            out.push((
                day,
                String::from_utf8_lossy(&tail[split + 1..]).into_owned(),
                n,
            ));
        }
        Ok(out)
    }

    async fn suppression(&self, workspace_id: &str, address: &str) -> Result<Option<Suppression>> {
        if address.is_empty() {
            return Ok(None);
        }
        self.get_json(&pair(keys::SUPPRESSION, workspace_id, address.as_bytes()))
    }

    async fn suppressions(
        &self,
        workspace_id: &str,
        reason: Option<SuppressionReason>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Suppression>> {
        let prefix = group(keys::SUPPRESSION, workspace_id);
        let start = match after {
            // The smallest key after the cursor's address.
            Some(a) => cat(&[&prefix, a.as_bytes(), b"\0"]),
            None => prefix.clone(),
        };
        let mut items = Vec::new();
        let mut last = None;
        let end = prefix_end(&prefix);
        let more = walk_page(self, start, end, false, limit, |key, raw| {
            if items.len() == limit {
                return Ok(false);
            }
            last = Some(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
            let s: Suppression = decode(key, raw)?;
            if reason.is_none_or(|r| r == s.reason) {
                items.push(s);
            }
            Ok(true)
        })?;
        Ok(Page {
            items,
            next_cursor: if more { last } else { None },
        })
    }

    async fn client(&self, id: &str) -> Result<Option<Client>> {
        self.get_json(&cat(&[keys::CLIENT, id.as_bytes()]))
    }

    async fn client_by_email(&self, email: &str) -> Result<Option<Client>> {
        match self.get(&cat(&[keys::CLIENT_BY_EMAIL, email.as_bytes()]))? {
            Some(id) => self.get_json(&cat(&[keys::CLIENT, &id])),
            None => Ok(None),
        }
    }

    async fn client_session(&self, digest: &str) -> Result<Option<ClientSession>> {
        self.get_json(&cat(&[keys::CLIENT_SESSION, digest.as_bytes()]))
    }

    async fn subscription(&self, id: &str) -> Result<Option<Subscription>> {
        self.get_json(&cat(&[keys::SUBSCRIPTION, id.as_bytes()]))
    }

    async fn subscriptions_ending(
        &self,
        until_ms: i64,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<(i64, String)>> {
        timed_until(self, keys::SUBSCRIPTIONS_ENDING, until_ms, after, limit)
    }

    async fn subscriptions_of(&self, client_id: &str) -> Result<Vec<Subscription>> {
        let mut out: Vec<Subscription> =
            members(self, keys::SUBSCRIPTIONS_OF, client_id, |id, _| {
                cat(&[keys::SUBSCRIPTION, id])
            })?;
        out.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(out)
    }

    async fn clients(&self, after: Option<&str>, limit: usize) -> Result<Page<Client>> {
        records_page(self, keys::CLIENT, after, limit)
    }

    async fn subscriptions(&self, after: Option<&str>, limit: usize) -> Result<Page<Subscription>> {
        records_page(self, keys::SUBSCRIPTION, after, limit)
    }

    async fn invoice(&self, id: &str) -> Result<Option<Invoice>> {
        self.get_json(&cat(&[keys::INVOICE, id.as_bytes()]))
    }

    async fn invoices_of(&self, client_id: &str) -> Result<Vec<Invoice>> {
        let mut out: Vec<Invoice> = members(self, keys::INVOICES_OF, client_id, |id, _| {
            cat(&[keys::INVOICE, id])
        })?;
        out.sort_by(|a, b| (b.issued_at_ms, &b.number).cmp(&(a.issued_at_ms, &a.number)));
        Ok(out)
    }

    async fn invoices(&self, after: Option<&str>, limit: usize) -> Result<Page<Invoice>> {
        records_page(self, keys::INVOICE, after, limit)
    }

    async fn invoices_due(
        &self,
        until_ms: i64,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<(i64, String)>> {
        timed_until(self, keys::INVOICES_DUE, until_ms, after, limit)
    }

    async fn payment_by_reference(&self, reference: &str) -> Result<Option<Payment>> {
        match self.get(&cat(&[keys::PAYMENT_REFERENCE, reference.as_bytes()]))? {
            Some(id) => self.get_json(&cat(&[keys::PAYMENT, &id])),
            None => Ok(None),
        }
    }

    async fn payments_of(&self, invoice_id: &str) -> Result<Vec<Payment>> {
        let mut out: Vec<Payment> = members(self, keys::PAYMENTS_OF, invoice_id, |id, _| {
            cat(&[keys::PAYMENT, id])
        })?;
        out.sort_by(|a, b| (a.received_at_ms, &a.id).cmp(&(b.received_at_ms, &b.id)));
        Ok(out)
    }

    async fn credit_notes_of(&self, invoice_id: &str) -> Result<Vec<CreditNote>> {
        let mut out: Vec<CreditNote> =
            members(self, keys::CREDIT_NOTES_OF, invoice_id, |id, _| {
                cat(&[keys::CREDIT_NOTE, id])
            })?;
        out.sort_by(|a, b| (a.issued_at_ms, &a.number).cmp(&(b.issued_at_ms, &b.number)));
        Ok(out)
    }

    async fn password_reset(&self, digest: &str) -> Result<Option<PasswordReset>> {
        self.get_json(&cat(&[keys::PASSWORD_RESET, digest.as_bytes()]))
    }

    async fn notices(&self, limit: usize) -> Result<Vec<(u64, Notice)>> {
        self.scan(keys::NOTICE, &prefix_end(keys::NOTICE), false, limit)?
            .into_iter()
            .map(|(k, v)| {
                let seq = k
                    .get(keys::NOTICE.len()..)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(|| StoreError::Corrupt("notice key".into()))?;
                Ok((seq, decode(&k, &v)?))
            })
            .collect()
    }

    async fn telnxo_number(&self, number: &str) -> Result<Option<TelnxoNumber>> {
        super::telnxo::number(self, number)
    }

    async fn telnxo_numbers_of(&self, workspace_id: &str) -> Result<Vec<TelnxoNumber>> {
        super::telnxo::numbers_of(self, workspace_id)
    }

    async fn telnxo_message(&self, id: &str) -> Result<Option<TelnxoMessage>> {
        super::telnxo::message(self, id)
    }

    async fn telnxo_messages_of(
        &self,
        workspace_id: &str,
        channel: Option<Channel>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<TelnxoMessage>> {
        super::listing::newest_first(
            self,
            keys::group(keys::TELNXO_MESSAGES_OF, workspace_id),
            Default::default(),
            cursor,
            limit,
            |id| super::telnxo::message(self, id),
            |m: &TelnxoMessage| channel.is_none_or(|c| c == m.channel),
        )
    }

    async fn call(&self, id: &str) -> Result<Option<Call>> {
        super::telnxo::call(self, id)
    }

    async fn calls_of(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Call>> {
        super::listing::newest_first(
            self,
            keys::group(keys::TELNXO_CALLS_OF, workspace_id),
            Default::default(),
            cursor,
            limit,
            |id| super::telnxo::call(self, id),
            |_| true,
        )
    }

    async fn telnxo_by_carrier_id(
        &self,
        channel: Channel,
        carrier_id: &str,
    ) -> Result<Option<(String, u32)>> {
        super::telnxo::by_carrier_id(self, channel, carrier_id)
    }

    async fn carrier_ids(
        &self,
        after: Option<(Channel, String)>,
        limit: usize,
    ) -> Result<Vec<(Channel, String, String, u32)>> {
        super::telnxo::carrier_ids(self, after, limit)
    }

    async fn telnxo_due(&self, channel: Channel, now_ms: i64, limit: usize) -> Result<Vec<String>> {
        super::telnxo::due(self, channel, now_ms, limit)
    }

    async fn whatsapp_window(&self, workspace_id: &str, customer: &str) -> Result<Option<i64>> {
        super::telnxo::window(self, workspace_id, customer)
    }

    async fn whatsapp_windows_of(&self, workspace_id: &str) -> Result<Vec<(String, i64)>> {
        super::telnxo::windows_of(self, workspace_id)
    }

    async fn telnxo_usage(&self, workspace_id: &str, counter: &str) -> Result<u64> {
        super::telnxo::usage(self, workspace_id, counter)
    }

    async fn telnxo_usage_of(&self, workspace_id: &str) -> Result<Vec<(String, u64)>> {
        super::telnxo::usage_of(self, workspace_id)
    }

    async fn sso_token(&self, digest: &str) -> Result<Option<SsoToken>> {
        self.get_json(&cat(&[keys::SSO_TOKEN, digest.as_bytes()]))
    }

    async fn platform_session(&self, digest: &str) -> Result<Option<PlatformSession>> {
        self.get_json(&cat(&[keys::PLATFORM_SESSION, digest.as_bytes()]))
    }

    async fn audit_entries(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        self.scan(keys::AUDIT, &prefix_end(keys::AUDIT), true, limit)?
            .into_iter()
            .map(|(k, v)| decode(&k, &v))
            .collect()
    }

    async fn inbound_parts(&self, key: &str) -> Result<Vec<(u8, String)>> {
        let prefix = group(keys::TELNXO_INBOUND_PARTS, key);
        Ok(self
            .scan_prefix(&prefix)?
            .into_iter()
            .filter_map(|(k, v)| {
                let seq = *k.get(prefix.len())?;
                Some((seq, String::from_utf8_lossy(&v).into_owned()))
            })
            .collect())
    }

    async fn parked_reports(&self, limit: usize) -> Result<Vec<ParkedReport>> {
        self.scan(
            keys::TELNXO_PARKED,
            &prefix_end(keys::TELNXO_PARKED),
            false,
            limit,
        )?
        .into_iter()
        .map(|(k, v)| decode(&k, &v))
        .collect()
    }

    async fn subscription_of_workspace(&self, workspace_id: &str) -> Result<Option<Subscription>> {
        match self.get(&cat(&[
            keys::SUBSCRIPTION_OF_WORKSPACE,
            workspace_id.as_bytes(),
        ]))? {
            Some(id) => self.get_json(&cat(&[keys::SUBSCRIPTION, &id])),
            None => Ok(None),
        }
    }

    async fn message_log_entry(&self, id: &str) -> Result<Option<MessageLogEntry>> {
        super::message_log::entry(self, id)
    }

    async fn message_log(
        &self,
        workspace_id: &str,
        query: &MessageLogQuery,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<MessageLogEntry>> {
        super::message_log::listing(self, workspace_id, query, cursor, limit)
    }

    async fn message_log_of_queue(&self, queue_id: &str) -> Result<Vec<MessageLogEntry>> {
        super::message_log::of_queue(self, queue_id)
    }

    async fn message_log_pending(&self, workspace_id: &str) -> Result<u64> {
        super::message_log::pending(self, workspace_id)
    }
}

impl SledTxn {
    fn insert_new(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
        taken: impl FnOnce() -> String,
    ) -> Result<()> {
        if self.get(&key)?.is_some() {
            return Err(StoreError::Conflict(taken()));
        }
        self.put(key, value);
        Ok(())
    }

    /// Replaces an existing record; `Invalid` if there is none (what names
    /// it comes from `what`).
    fn replace(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
        what: impl FnOnce() -> String,
    ) -> Result<()> {
        if self.get(&key)?.is_none() {
            return Err(StoreError::Invalid(format!("{} does not exist", what())));
        }
        self.put(key, value);
        Ok(())
    }

    /// The keys of one delivery's due entry and listing entry.
    fn delivery_index(d: &Delivery) -> (Option<Vec<u8>>, Vec<u8>) {
        (
            d.due_at_ms.map(|due| keys::due(&d.endpoint_id, due, &d.id)),
            pair(keys::DELIVERIES_OF, &d.endpoint_id, &d.seq.to_be_bytes()),
        )
    }
}

impl Writes for SledTxn {
    async fn insert_workspace(&mut self, workspace: &Workspace) -> Result<()> {
        component("workspace id", &workspace.id)?;
        let key = cat(&[keys::WORKSPACE, workspace.id.as_bytes()]);
        self.insert_new(key, encode(workspace), || {
            format!("workspace {} already exists", workspace.id)
        })
    }

    async fn insert_smtp_account(&mut self, account: &SmtpAccount) -> Result<()> {
        component("username", &account.username)?;
        component("workspace id", &account.workspace_id)?;
        let key = cat(&[keys::ACCOUNT, account.username.as_bytes()]);
        self.insert_new(key, encode(account), || {
            format!("smtp account {} already exists", account.username)
        })?;
        self.put(
            pair(
                keys::ACCOUNTS_OF,
                &account.workspace_id,
                account.username.as_bytes(),
            ),
            Vec::new(),
        );
        Ok(())
    }

    async fn insert_api_key(&mut self, key: &ApiKey) -> Result<()> {
        component("key digest", &key.digest)?;
        component("workspace id", &key.workspace_id)?;
        let k = cat(&[keys::API_KEY, key.digest.as_bytes()]);
        self.insert_new(k, encode(key), || {
            "an API key with this digest exists".into()
        })?;
        self.put(
            pair(keys::KEYS_OF, &key.workspace_id, key.id.as_bytes()),
            key.digest.as_bytes().to_vec(),
        );
        Ok(())
    }

    async fn put_workspace(&mut self, workspace: &Workspace) -> Result<()> {
        let k = cat(&[keys::WORKSPACE, workspace.id.as_bytes()]);
        self.replace(k, encode(workspace), || {
            format!("workspace {}", workspace.id)
        })
    }

    async fn put_api_key(&mut self, key: &ApiKey) -> Result<()> {
        let k = cat(&[keys::API_KEY, key.digest.as_bytes()]);
        self.replace(k, encode(key), || format!("API key {}", key.id))
    }

    async fn delete_api_key(&mut self, digest: &str) -> Result<bool> {
        let k = cat(&[keys::API_KEY, digest.as_bytes()]);
        let Some(key) = self.get_json::<ApiKey>(&k)? else {
            return Ok(false);
        };
        self.remove(pair(keys::KEYS_OF, &key.workspace_id, key.id.as_bytes()));
        self.remove(k);
        Ok(true)
    }

    async fn delete_smtp_account(&mut self, username: &str) -> Result<bool> {
        let k = cat(&[keys::ACCOUNT, username.as_bytes()]);
        let Some(account) = self.get_json::<SmtpAccount>(&k)? else {
            return Ok(false);
        };
        self.remove(pair(
            keys::ACCOUNTS_OF,
            &account.workspace_id,
            username.as_bytes(),
        ));
        self.remove(k);
        Ok(true)
    }

    async fn put_sender_domain(&mut self, domain: &SenderDomain) -> Result<()> {
        let k = cat(&[keys::DOMAIN, domain.domain.as_bytes()]);
        self.replace(k, encode(domain), || format!("domain {}", domain.domain))
    }

    async fn delete_sender_domain(&mut self, domain: &str) -> Result<bool> {
        let k = cat(&[keys::DOMAIN, domain.as_bytes()]);
        let Some(d) = self.get_json::<SenderDomain>(&k)? else {
            return Ok(false);
        };
        self.remove(pair(keys::DOMAINS_OF, &d.workspace_id, domain.as_bytes()));
        self.remove(k);
        Ok(true)
    }

    async fn insert_sender_domain(&mut self, domain: &SenderDomain) -> Result<()> {
        component("domain", &domain.domain)?;
        component("workspace id", &domain.workspace_id)?;
        let key = cat(&[keys::DOMAIN, domain.domain.as_bytes()]);
        self.insert_new(key, encode(domain), || {
            format!("domain {} is already registered", domain.domain)
        })?;
        self.put(
            pair(
                keys::DOMAINS_OF,
                &domain.workspace_id,
                domain.domain.as_bytes(),
            ),
            Vec::new(),
        );
        Ok(())
    }

    async fn append_event(&mut self, event: &Event) -> Result<StoredEvent> {
        let ws = &event.workspace_id;
        component("workspace id", ws)?;
        let stored = StoredEvent {
            seq: self.next_id()?,
            at_ms: event.timestamp.ms(),
            id: event.id.clone(),
            workspace_id: ws.clone(),
            event_type: Some(event.event_type()),
            message_id: event.data.message_id().map(str::to_string),
            event: serde_json::value::to_raw_value(event)
                .map_err(|e| StoreError::Corrupt(format!("event envelope: {e}")))?,
        };
        self.put(
            keys::event(ws, stored.seq),
            encode(&Stored {
                seq: stored.seq,
                at_ms: stored.at_ms,
                event: &stored.event,
            }),
        );
        self.put(
            cat(&[keys::EVENT_BY_ID, stored.id.as_bytes()]),
            cat(&[ws.as_bytes(), b"\0", &stored.seq.to_be_bytes()]),
        );
        if let Some(msg) = &stored.message_id {
            self.put(keys::event_by_message(ws, msg, stored.seq), Vec::new());
        }
        // The day's counters, overall and per tag (stats without a scan).
        let day = stored.at_ms.div_euclid(86_400_000);
        let event_type = event.event_type();
        for tag in std::iter::once("").chain(event.data.tags().iter().map(String::as_str)) {
            if tag.contains('\0') {
                continue;
            }
            let key = keys::daily_count(ws, day, tag, event_type.as_str());
            let n = match self.get(&key)? {
                Some(v) => u64::from_be_bytes(v.as_slice().try_into().unwrap_or([0; 8])),
                None => 0,
            };
            self.put(key, (n + 1).to_be_bytes().to_vec());
        }
        Ok(stored)
    }

    async fn append_events(&mut self, events: &[Event]) -> Result<Vec<StoredEvent>> {
        let mut stored = Vec::with_capacity(events.len());
        for event in events {
            stored.push(self.append_event(event).await?);
        }
        Ok(stored)
    }

    async fn set_cursor(&mut self, name: &str, value: u64) -> Result<()> {
        self.put(
            cat(&[keys::CURSOR, name.as_bytes()]),
            value.to_be_bytes().to_vec(),
        );
        Ok(())
    }

    async fn put_endpoint(&mut self, endpoint: &Endpoint) -> Result<()> {
        component("endpoint id", &endpoint.id)?;
        component("workspace id", &endpoint.workspace_id)?;
        self.put(
            cat(&[keys::ENDPOINT, endpoint.id.as_bytes()]),
            encode(endpoint),
        );
        self.put(
            pair(
                keys::ENDPOINTS_OF,
                &endpoint.workspace_id,
                endpoint.id.as_bytes(),
            ),
            Vec::new(),
        );
        Ok(())
    }

    async fn delete_endpoint(&mut self, id: &str) -> Result<bool> {
        let key = cat(&[keys::ENDPOINT, id.as_bytes()]);
        let Some(ep) = self.get_json::<Endpoint>(&key)? else {
            return Ok(false);
        };
        self.remove(key);
        self.remove(pair(keys::ENDPOINTS_OF, &ep.workspace_id, id.as_bytes()));
        for (due, _) in self.scan_prefix(&group(keys::DUE, id))? {
            self.remove(due);
        }
        for (listing, delivery) in self.scan_prefix(&group(keys::DELIVERIES_OF, id))? {
            self.remove(cat(&[keys::DELIVERY, &delivery]));
            self.remove(listing);
        }
        Ok(true)
    }

    async fn insert_delivery(&mut self, delivery: &mut Delivery) -> Result<()> {
        component("delivery id", &delivery.id)?;
        component("endpoint id", &delivery.endpoint_id)?;
        delivery.seq = self.next_id()?;
        let (due, listing) = SledTxn::delivery_index(delivery);
        if let Some(due) = due {
            self.put(due, Vec::new());
        }
        self.put(listing, delivery.id.as_bytes().to_vec());
        self.put(
            cat(&[keys::DELIVERY, delivery.id.as_bytes()]),
            encode(&*delivery),
        );
        Ok(())
    }

    async fn put_delivery(&mut self, delivery: &Delivery) -> Result<()> {
        let key = cat(&[keys::DELIVERY, delivery.id.as_bytes()]);
        let old: Option<Delivery> = self.get_json(&key)?;
        let Some(old) = old else {
            return Err(StoreError::Invalid(format!(
                "delivery {} does not exist",
                delivery.id
            )));
        };
        let (old_due, _) = SledTxn::delivery_index(&old);
        let (new_due, _) = SledTxn::delivery_index(delivery);
        if old_due != new_due {
            if let Some(k) = old_due {
                self.remove(k);
            }
            if let Some(k) = new_due {
                self.put(k, Vec::new());
            }
        }
        self.put(key, encode(delivery));
        Ok(())
    }

    async fn prune_events(&mut self, cutoff_ms: i64, limit: usize) -> Result<(u64, bool)> {
        let mut doomed = Vec::new();
        let more = walk_groups(self, keys::EVENT, limit, |key, raw| {
            let stored = decode_event(key, raw)?;
            if stored.at_ms >= cutoff_ms {
                return Ok(Visit::Stop);
            }
            let mut keys = vec![
                key.to_vec(),
                cat(&[keys::EVENT_BY_ID, stored.id.as_bytes()]),
            ];
            if let Some(msg) = &stored.message_id {
                keys.push(keys::event_by_message(
                    &stored.workspace_id,
                    msg,
                    stored.seq,
                ));
            }
            doomed.push(keys);
            Ok(Visit::Take)
        })?;
        let n = doomed.len() as u64;
        for key in doomed.into_iter().flatten() {
            self.remove(key);
        }
        Ok((n, more))
    }

    async fn prune_deliveries(&mut self, cutoff_ms: i64, limit: usize) -> Result<(u64, bool)> {
        let mut doomed = Vec::new();
        let more = walk_groups(self, keys::DELIVERIES_OF, limit, |key, id| {
            let found: Option<Delivery> = self.get_json(&cat(&[keys::DELIVERY, id]))?;
            Ok(match found {
                Some(d) if d.created_at_ms >= cutoff_ms => Visit::Stop,
                Some(d) if !d.past_retention(cutoff_ms) => Visit::Keep,
                _ => {
                    doomed.push((key.to_vec(), cat(&[keys::DELIVERY, id])));
                    Visit::Take
                }
            })
        })?;
        let n = doomed.len() as u64;
        for (listing, record) in doomed {
            self.remove(listing);
            self.remove(record);
        }
        Ok((n, more))
    }

    async fn put_idempotency(&mut self, record: &IdempotencyRecord) -> Result<()> {
        component("workspace id", &record.workspace_id)?;
        component("idempotency key", &record.key)?;
        let key = keys::idempotency(&record.workspace_id, &record.key);
        let old: Option<IdempotencyRecord> = self.get_json(&key)?;
        if let Some(old) = old {
            self.remove(keys::idempotency_by_age(
                old.created_at_ms,
                &old.workspace_id,
                &old.key,
            ));
        }
        self.put(
            keys::idempotency_by_age(record.created_at_ms, &record.workspace_id, &record.key),
            Vec::new(),
        );
        self.put(key, encode(record));
        Ok(())
    }

    async fn delete_idempotency(&mut self, workspace_id: &str, key: &str) -> Result<()> {
        let k = keys::idempotency(workspace_id, key);
        let old: Option<IdempotencyRecord> = self.get_json(&k)?;
        if let Some(old) = old {
            self.remove(keys::idempotency_by_age(
                old.created_at_ms,
                workspace_id,
                key,
            ));
            self.remove(k);
        }
        Ok(())
    }

    async fn prune_idempotency(&mut self, cutoff_ms: i64, limit: usize) -> Result<(u64, bool)> {
        let start = keys::IDEMPOTENCY_BY_AGE.to_vec();
        let end = cat(&[
            keys::IDEMPOTENCY_BY_AGE,
            &(cutoff_ms.max(0) as u64).to_be_bytes(),
        ]);
        let old = self.scan(&start, &end, false, limit)?;
        let more = old.len() == limit;
        let n = old.len() as u64;
        for (index, _) in old {
            // `it/<8 bytes>\0<ws>\0<key>`
            let rest = &index[keys::IDEMPOTENCY_BY_AGE.len() + 9..];
            if let Some(split) = rest.iter().position(|b| *b == 0) {
                let (ws, key) = (&rest[..split], &rest[split + 1..]);
                self.remove(cat(&[keys::IDEMPOTENCY, ws, b"\0", key]));
            }
            self.remove(index);
        }
        Ok((n, more))
    }

    async fn put_suppression(&mut self, suppression: &Suppression) -> Result<()> {
        component("workspace id", &suppression.workspace_id)?;
        component("address", &suppression.address)?;
        self.put(
            pair(
                keys::SUPPRESSION,
                &suppression.workspace_id,
                suppression.address.as_bytes(),
            ),
            encode(suppression),
        );
        Ok(())
    }

    async fn delete_suppression(&mut self, workspace_id: &str, address: &str) -> Result<bool> {
        let key = pair(keys::SUPPRESSION, workspace_id, address.as_bytes());
        if self.get(&key)?.is_none() {
            return Ok(false);
        }
        self.remove(key);
        Ok(true)
    }

    async fn insert_client(&mut self, client: &Client) -> Result<()> {
        component("client id", &client.id)?;
        component("email", &client.email)?;
        let by_email = cat(&[keys::CLIENT_BY_EMAIL, client.email.as_bytes()]);
        self.insert_new(by_email, client.id.as_bytes().to_vec(), || {
            format!("a client with email {} exists", client.email)
        })?;
        self.insert_new(
            cat(&[keys::CLIENT, client.id.as_bytes()]),
            encode(client),
            || format!("client {} exists", client.id),
        )
    }

    async fn put_client(&mut self, client: &Client) -> Result<()> {
        let key = cat(&[keys::CLIENT, client.id.as_bytes()]);
        let Some(old) = self.get_json::<Client>(&key)? else {
            return Err(StoreError::Invalid(format!("no client {}", client.id)));
        };
        if old.email != client.email {
            return Err(StoreError::Invalid(
                "a client's email does not change here".into(),
            ));
        }
        self.put(key, encode(client));
        Ok(())
    }

    async fn put_client_session(&mut self, session: &ClientSession) -> Result<()> {
        component("session digest", &session.digest)?;
        self.put(
            cat(&[keys::CLIENT_SESSION, session.digest.as_bytes()]),
            encode(session),
        );
        Ok(())
    }

    async fn put_subscription(&mut self, subscription: &Subscription) -> Result<()> {
        component("subscription id", &subscription.id)?;
        component("client id", &subscription.client_id)?;
        let key = cat(&[keys::SUBSCRIPTION, subscription.id.as_bytes()]);
        if let Some(old) = self.get_json::<Subscription>(&key)? {
            if old.client_id != subscription.client_id {
                return Err(StoreError::Invalid(
                    "a subscription's client does not change".into(),
                ));
            }
            self.remove(keys::timed(
                keys::SUBSCRIPTIONS_ENDING,
                old.period_end_ms,
                &old.id,
            ));
        }
        // What the billing run renews or converts at the period's end (a
        // pending subscription's period starts with its first payment).
        let live = matches!(
            subscription.status,
            SubscriptionStatus::Trial | SubscriptionStatus::Active
        );
        if live {
            self.put(
                keys::timed(
                    keys::SUBSCRIPTIONS_ENDING,
                    subscription.period_end_ms,
                    &subscription.id,
                ),
                Vec::new(),
            );
        }
        self.put(key, encode(subscription));
        // The workspace's subscription: the newest that is not cancelled
        // (a cancelled client's new start takes its old workspace back).
        if subscription.status != SubscriptionStatus::Cancelled {
            self.put(
                cat(&[
                    keys::SUBSCRIPTION_OF_WORKSPACE,
                    subscription.workspace_id.as_bytes(),
                ]),
                subscription.id.as_bytes().to_vec(),
            );
        }
        self.put(
            pair(
                keys::SUBSCRIPTIONS_OF,
                &subscription.client_id,
                subscription.id.as_bytes(),
            ),
            Vec::new(),
        );
        Ok(())
    }

    async fn insert_invoice(&mut self, invoice: &Invoice) -> Result<()> {
        component("invoice id", &invoice.id)?;
        component("client id", &invoice.client_id)?;
        component("invoice number", &invoice.number)?;
        self.insert_new(
            cat(&[keys::NUMBER_USED, invoice.number.as_bytes()]),
            invoice.id.as_bytes().to_vec(),
            || format!("invoice number {} is taken", invoice.number),
        )?;
        let key = cat(&[keys::INVOICE, invoice.id.as_bytes()]);
        if self.get(&key)?.is_some() {
            return Err(StoreError::Conflict(format!(
                "invoice {} exists",
                invoice.id
            )));
        }
        self.put(
            pair(keys::INVOICES_OF, &invoice.client_id, invoice.id.as_bytes()),
            Vec::new(),
        );
        self.put_invoice(invoice).await
    }

    async fn put_invoice(&mut self, invoice: &Invoice) -> Result<()> {
        component("invoice id", &invoice.id)?;
        let key = cat(&[keys::INVOICE, invoice.id.as_bytes()]);
        let old: Option<Invoice> = self.get_json(&key)?;
        match &old {
            Some(old) => {
                if (&old.client_id, &old.number) != (&invoice.client_id, &invoice.number) {
                    return Err(StoreError::Invalid(
                        "an invoice's client and number do not change".into(),
                    ));
                }
                if let Some(ms) = old.next_action_ms {
                    self.remove(keys::timed(keys::INVOICES_DUE, ms, &old.id));
                }
            }
            // Only through insert_invoice, which takes its number.
            None if self.get(&cat(&[keys::NUMBER_USED, invoice.number.as_bytes()]))?
                != Some(invoice.id.as_bytes().to_vec()) =>
            {
                return Err(StoreError::Invalid(format!("no invoice {}", invoice.id)));
            }
            None => {}
        }
        if let Some(ms) = invoice.next_action_ms {
            self.put(keys::timed(keys::INVOICES_DUE, ms, &invoice.id), Vec::new());
        }
        self.put(key, encode(invoice));
        Ok(())
    }

    async fn insert_payment(&mut self, payment: &Payment) -> Result<()> {
        component("payment id", &payment.id)?;
        component("invoice id", &payment.invoice_id)?;
        component("payment reference", &payment.reference)?;
        self.insert_new(
            cat(&[keys::PAYMENT_REFERENCE, payment.reference.as_bytes()]),
            payment.id.as_bytes().to_vec(),
            || format!("payment {} was recorded before", payment.reference),
        )?;
        self.insert_new(
            cat(&[keys::PAYMENT, payment.id.as_bytes()]),
            encode(payment),
            || format!("payment {} exists", payment.id),
        )?;
        self.put(
            pair(
                keys::PAYMENTS_OF,
                &payment.invoice_id,
                payment.id.as_bytes(),
            ),
            Vec::new(),
        );
        Ok(())
    }

    async fn insert_credit_note(&mut self, note: &CreditNote) -> Result<()> {
        component("credit note id", &note.id)?;
        component("invoice id", &note.invoice_id)?;
        component("credit note number", &note.number)?;
        self.insert_new(
            cat(&[keys::NUMBER_USED, note.number.as_bytes()]),
            note.id.as_bytes().to_vec(),
            || format!("credit note number {} is taken", note.number),
        )?;
        self.insert_new(
            cat(&[keys::CREDIT_NOTE, note.id.as_bytes()]),
            encode(note),
            || format!("credit note {} exists", note.id),
        )?;
        self.put(
            pair(keys::CREDIT_NOTES_OF, &note.invoice_id, note.id.as_bytes()),
            Vec::new(),
        );
        Ok(())
    }

    async fn put_password_reset(&mut self, reset: &PasswordReset) -> Result<()> {
        component("reset digest", &reset.digest)?;
        self.put(
            cat(&[keys::PASSWORD_RESET, reset.digest.as_bytes()]),
            encode(reset),
        );
        Ok(())
    }

    async fn delete_password_reset(&mut self, digest: &str) -> Result<bool> {
        let key = cat(&[keys::PASSWORD_RESET, digest.as_bytes()]);
        if self.get(&key)?.is_none() {
            return Ok(false);
        }
        self.remove(key);
        Ok(true)
    }

    async fn prune_client_tokens(&mut self, now_ms: i64, limit: usize) -> Result<(u64, bool)> {
        // Few enough to walk whole (one per login of the last 14 days, one
        // per reset link of the last hour, per sign-on link of the last
        // minutes, per platform or operator session of the last hours); no
        // time index to keep.
        #[derive(Deserialize)]
        struct Expiring {
            expires_at_ms: i64,
        }
        let mut expired = Vec::new();
        for family in [
            keys::CLIENT_SESSION,
            keys::PASSWORD_RESET,
            keys::SSO_TOKEN,
            keys::PLATFORM_SESSION,
        ] {
            for (key, raw) in self.scan_prefix(family)? {
                let e: Expiring = decode(&key, &raw)?;
                if e.expires_at_ms <= now_ms {
                    expired.push(key);
                    if expired.len() == limit {
                        break;
                    }
                }
            }
            if expired.len() == limit {
                break;
            }
        }
        let n = expired.len();
        for key in expired {
            self.remove(key);
        }
        Ok((n as u64, n == limit))
    }

    async fn queue_notice(&mut self, notice: &Notice) -> Result<u64> {
        let seq = self.cursor(keys::NOTICE_SEQ).await? + 1;
        self.set_cursor(keys::NOTICE_SEQ, seq).await?;
        self.put(cat(&[keys::NOTICE, &seq.to_be_bytes()]), encode(notice));
        Ok(seq)
    }

    async fn delete_notice(&mut self, seq: u64) -> Result<bool> {
        let key = cat(&[keys::NOTICE, &seq.to_be_bytes()]);
        if self.get(&key)?.is_none() {
            return Ok(false);
        }
        self.remove(key);
        Ok(true)
    }

    async fn delete_client_session(&mut self, digest: &str) -> Result<bool> {
        let key = cat(&[keys::CLIENT_SESSION, digest.as_bytes()]);
        if self.get(&key)?.is_none() {
            return Ok(false);
        }
        self.remove(key);
        Ok(true)
    }

    async fn put_telnxo_number(&mut self, number: &TelnxoNumber) -> Result<()> {
        self.telnxo_put_number(number)
    }

    async fn delete_telnxo_number(&mut self, number: &str) -> Result<bool> {
        self.telnxo_delete_number(number)
    }

    async fn put_telnxo_message(&mut self, message: &TelnxoMessage) -> Result<()> {
        self.telnxo_put_message(message)
    }

    async fn put_call(&mut self, call: &Call) -> Result<()> {
        self.telnxo_put_call(call)
    }

    async fn put_carrier_id(
        &mut self,
        channel: Channel,
        carrier_id: &str,
        id: &str,
        part: u32,
    ) -> Result<()> {
        self.telnxo_put_carrier_id(channel, carrier_id, id, part)
    }

    async fn set_whatsapp_window(
        &mut self,
        workspace_id: &str,
        customer: &str,
        at_ms: i64,
    ) -> Result<()> {
        self.telnxo_set_window(workspace_id, customer, at_ms)
    }

    async fn put_sso_token(&mut self, token: &SsoToken) -> Result<()> {
        component("token digest", &token.digest)?;
        self.put(
            cat(&[keys::SSO_TOKEN, token.digest.as_bytes()]),
            encode(token),
        );
        Ok(())
    }

    async fn put_platform_session(&mut self, session: &PlatformSession) -> Result<()> {
        component("session digest", &session.digest)?;
        self.put(
            cat(&[keys::PLATFORM_SESSION, session.digest.as_bytes()]),
            encode(session),
        );
        Ok(())
    }

    async fn delete_platform_session(&mut self, digest: &str) -> Result<bool> {
        let key = cat(&[keys::PLATFORM_SESSION, digest.as_bytes()]);
        let existed = self.get(&key)?.is_some();
        self.remove(key);
        Ok(existed)
    }

    async fn append_audit(&mut self, entry: &AuditEntry) -> Result<()> {
        component("audit id", &entry.id)?;
        self.put(cat(&[keys::AUDIT, entry.id.as_bytes()]), encode(entry));
        Ok(())
    }

    async fn put_inbound_part(&mut self, key: &str, seq: u8, body: &str) -> Result<()> {
        component("inbound message key", key)?;
        self.put(
            pair(keys::TELNXO_INBOUND_PARTS, key, &[seq]),
            body.as_bytes().to_vec(),
        );
        Ok(())
    }

    async fn delete_inbound_parts(&mut self, key: &str) -> Result<()> {
        for (k, _) in self.scan_prefix(&group(keys::TELNXO_INBOUND_PARTS, key))? {
            self.remove(k);
        }
        Ok(())
    }

    async fn put_parked_report(&mut self, report: &ParkedReport) -> Result<()> {
        component("parked report id", &report.id)?;
        self.put(
            cat(&[keys::TELNXO_PARKED, report.id.as_bytes()]),
            encode(report),
        );
        Ok(())
    }

    async fn delete_parked_report(&mut self, id: &str) -> Result<bool> {
        let key = cat(&[keys::TELNXO_PARKED, id.as_bytes()]);
        let existed = self.get(&key)?.is_some();
        self.remove(key);
        Ok(existed)
    }

    async fn add_telnxo_usage(&mut self, workspace_id: &str, counter: &str, n: u64) -> Result<u64> {
        self.telnxo_add_usage(workspace_id, counter, n)
    }

    async fn lease_deliveries(
        &mut self,
        endpoint_id: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        let mut leased = Vec::new();
        for id in self.due_deliveries(endpoint_id, now_ms, limit).await? {
            let Some(mut d) = self.delivery(&id).await? else {
                continue;
            };
            d.due_at_ms = Some(until_ms);
            d.leased_by = Some(holder.to_string());
            self.put_delivery(&d).await?;
            leased.push(d);
        }
        Ok(leased)
    }

    async fn release_leases(&mut self, holder: &str, now_ms: i64) -> Result<u64> {
        // Every due entry (a start-up's walk): `q/<endpoint>\0<due>\0<id>`.
        let mut released = 0;
        for (key, _) in self.scan_prefix(keys::DUE)? {
            let Some(id) = key.get(keys::DUE.len()..).and_then(|rest| {
                let nul = rest.iter().position(|b| *b == 0)?;
                rest.get(nul + 10..)
            }) else {
                continue;
            };
            let id = String::from_utf8_lossy(id).into_owned();
            let Some(mut d) = self.delivery(&id).await? else {
                continue;
            };
            if d.leased_by.as_deref() == Some(holder) {
                d.due_at_ms = Some(now_ms);
                d.leased_by = None;
                self.put_delivery(&d).await?;
                released += 1;
            }
        }
        Ok(released)
    }

    async fn claim_lease(
        &mut self,
        name: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool> {
        #[derive(Serialize, Deserialize)]
        struct Lease {
            holder: String,
            until_ms: i64,
        }
        let key = cat(&[keys::LEASE, name.as_bytes()]);
        if let Some(held) = self.get_json::<Lease>(&key)? {
            if held.holder != holder && held.until_ms > now_ms {
                return Ok(false);
            }
        }
        let lease = Lease {
            holder: holder.to_string(),
            until_ms,
        };
        self.put(key, encode(&lease));
        Ok(true)
    }

    async fn claim_quota(
        &mut self,
        counter: &str,
        day: i64,
        cap: u64,
        want: u64,
    ) -> Result<(u64, u64)> {
        component("quota counter", counter)?;
        let key = cat(&[
            keys::QUOTA_CLAIMED,
            counter.as_bytes(),
            b"\0",
            &day.to_be_bytes(),
        ]);
        let used = match self.get(&key)? {
            Some(v) => u64::from_be_bytes(v.as_slice().try_into().unwrap_or([0; 8])),
            None => 0,
        };
        let granted = want.min(cap.saturating_sub(used));
        if granted > 0 {
            self.put(key, (used + granted).to_be_bytes().to_vec());
        }
        Ok((granted, cap.saturating_sub(used + granted)))
    }

    async fn put_message_log(&mut self, entries: &[MessageLogEntry]) -> Result<()> {
        self.put_log_entries(entries)
    }

    async fn prune_message_log(
        &mut self,
        cutoff_ms: i64,
        stale_before_ms: i64,
        limit: usize,
    ) -> Result<(u64, bool)> {
        self.prune_log(cutoff_ms, stale_before_ms, limit)
    }
}

/// What a retention walk does with one entry.
enum Visit {
    /// Delete it and go on.
    Take,
    /// Keep it and go on with the group.
    Keep,
    /// Keep it and everything after it in the group.
    Stop,
}

/// Walks every group under `family` (keys `<family><group>\0<seq>`, oldest
/// first within a group) until `limit` entries are taken; reads only what
/// it takes plus one entry per group. Returns whether it stopped at the
/// limit (more may be due).
fn walk_groups<K: Kv>(
    kv: &K,
    family: &[u8],
    limit: usize,
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<Visit>,
) -> Result<bool> {
    let end = prefix_end(family);
    let mut from = family.to_vec();
    let mut taken = 0;
    loop {
        let Some((first, _)) = kv.scan(&from, &end, false, 1)?.pop() else {
            return Ok(false);
        };
        let Some(nul) = first[family.len()..].iter().position(|b| *b == 0) else {
            // Not of the group shape: step over it.
            from = cat(&[&first, &[0]]);
            continue;
        };
        let group_end = cat(&[&first[..family.len() + nul], &[1]]);
        let mut at = first.clone();
        'group: loop {
            let batch = kv.scan(&at, &group_end, false, 256)?;
            let Some((last, _)) = batch.last() else {
                break;
            };
            at = cat(&[last, &[0]]);
            for (key, value) in &batch {
                if taken >= limit {
                    return Ok(true);
                }
                match visit(key, value)? {
                    Visit::Take => taken += 1,
                    Visit::Keep => {}
                    Visit::Stop => break 'group,
                }
            }
        }
        from = group_end;
    }
}
