//! Copying the shared state from one store into another, verifiably: how a
//! single node's sled store moves into PostgreSQL (`rackwave storage
//! migrate --from sled --to postgres`). Written against [`Store`] and
//! [`Txn`] only, so it copies between any two backends.
//!
//! # Contract
//!
//! * **Into an empty store only.** A target holding workspaces, clients,
//!   invoices or named positions is refused before anything is written:
//!   merging two installations would renumber invoices and mix tenants.
//! * **Checked before writing.** Every event must be one this binary can
//!   append again byte for byte (see [`copy`]); one that cannot stops the
//!   copy before its first write.
//! * **Verified after writing.** Both stores are read whole by the same
//!   walk, which counts each family of records and hashes its records'
//!   canonical JSON in listing order: [`FamilyReport`] says whether the
//!   target reads back as the source does. Differences are reported, not
//!   raised: the caller shows them.
//! * **Bounded transactions.** The target is written 500 writes per
//!   transaction. A copy that fails halfway leaves part of
//!   itself behind: recreate the target's databases before trying again.
//!
//! # What is copied, and how
//!
//! Per workspace: the workspace, its SMTP accounts, API keys, sender
//! domains, suppressions, Telnxo numbers, messages and calls (oldest
//! first), usage counters and WhatsApp windows. Every carrier id. Per
//! owner of a log (each workspace, and each portal client, whose events
//! and endpoints are its own): its events, oldest first (the target gives
//! them new positions), its webhook endpoints and their deliveries, oldest
//! first, each naming its event's new position. Clients, subscriptions
//! (and which one each workspace belongs to), invoices with their payments
//! and credit notes, queued notices (renumbered by the target), the audit
//! trail, parked carrier reports, and every named position: the invoice
//! and credit note number series live there, so numbering goes on where
//! it stood instead of handing out taken numbers again.
//!
//! Each event's daily counts are counted again as it is appended, so the
//! stats of days whose events retention has already deleted start empty.
//!
//! # What is deliberately not copied
//!
//! * Client logins, platform sessions, sign-on tokens and password reset
//!   links: they live minutes to days; users sign in again.
//! * Idempotency keys: they are kept 24 hours; a request retried across
//!   the move is carried out again.
//! * Leases and quota claims: what running nodes agree on now, taken again
//!   when they start.
//! * Parts of a concatenated inbound SMS still waiting for the rest.
//! * The spool (messages, bodies, the feed): it stays on the node.

use std::future::Future;

use rackwave_core::event::Event;
use rackwave_core::Timestamp;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::sso::AuditEntry;
use crate::telnxo::{Call, Channel, ParkedReport, TelnxoMessage, TelnxoNumber};
use crate::{
    ApiKey, Client, CreditNote, Delivery, Endpoint, EventQuery, Invoice, Notice, Page, Payment,
    Result, SenderDomain, SmtpAccount, Store, StoreError, StoredEvent, Subscription,
    SubscriptionStatus, Suppression, Txn, Workspace,
};

/// Records asked for per listing call.
const PAGE: usize = 500;

/// Writes per transaction of the target.
const WRITES_PER_TXN: usize = 500;

/// The `event_seq` of a delivery whose event is no longer in its log (as
/// retention leaves some): a position no store gives.
const NO_EVENT: u64 = u64::MAX;

/// The families of records, in the order they are copied and reported.
const FAMILIES: [&str; 24] = [
    "workspaces",
    "smtp_accounts",
    "api_keys",
    "sender_domains",
    "suppressions",
    "telnxo_numbers",
    "telnxo_messages",
    "calls",
    "telnxo_usage",
    "whatsapp_windows",
    "carrier_ids",
    "clients",
    "events",
    "endpoints",
    "deliveries",
    "subscriptions",
    "workspace_subscriptions",
    "invoices",
    "payments",
    "credit_notes",
    "notices",
    "audit_entries",
    "parked_reports",
    "named_positions",
];

/// One family of records on both sides of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyReport {
    /// `workspaces`, `events`, … (see the module docs).
    pub family: &'static str,
    /// Read from the source.
    pub from: Tally,
    /// Read back from the target after the copy.
    pub to: Tally,
}

/// A [`Tally`] kept as records go by, for a family copied outside this
/// module (a node's spool messages into the shared message log): their
/// JSON lines in the order given.
#[derive(Default)]
pub struct Tallying {
    count: u64,
    hash: Sha256,
}

impl Tallying {
    pub fn add<T: Serialize>(&mut self, record: &T) {
        self.add_line(&serde_json::to_string(record).expect("records serialize"));
    }

    fn add_line(&mut self, line: &str) {
        self.count += 1;
        self.hash.update(line);
        self.hash.update(b"\n");
    }

    pub fn finish(self) -> Tally {
        Tally {
            count: self.count,
            sha256: hex::encode(self.hash.finalize()),
        }
    }
}

impl FamilyReport {
    /// Whether the target holds what the source does.
    pub fn equal(&self) -> bool {
        self.from == self.to
    }
}

/// How many records of a family one store holds, and the hex SHA-256 of
/// their canonical JSON (keys sorted, one record a line, in listing
/// order). Events are hashed by id, workspace, time and the envelope's
/// exact text; deliveries and notices without the position their store
/// gave them, a delivery naming its event by its place in its log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub count: u64,
    pub sha256: String,
}

/// Copies every family of records from `from` into `to` (empty), then reads
/// both back: one report per family, in the order of the module docs.
///
/// Events are appended again as [`Event`]s read back from their stored
/// envelopes, with their stored time; one whose envelope this version
/// would not write byte for byte (written by an older version with fewer
/// fields, say) is refused, before anything is written: what was signed
/// and sent is what a resend sends.
pub async fn copy(from: &Store, to: &Store) -> Result<Vec<FamilyReport>> {
    refuse_unless_empty(to).await?;
    let mut before = Tallies::default();
    walk(from, &mut before).await?;
    let mut copier = Copier {
        to,
        txn: None,
        writes: 0,
        log: (String::new(), Vec::new()),
    };
    let copied = match walk(from, &mut copier).await {
        Ok(()) => copier.finish().await,
        Err(e) => Err(e),
    };
    copied.map_err(|e| {
        let why = format!(
            "{e}; the target holds part of the copy: recreate its databases before trying again"
        );
        match e {
            StoreError::Unavailable(_) => StoreError::Unavailable(why),
            StoreError::Corrupt(_) => StoreError::Corrupt(why),
            StoreError::Conflict(_) => StoreError::Conflict(why),
            StoreError::Invalid(_) => StoreError::Invalid(why),
        }
    })?;
    let mut after = Tallies::default();
    walk(to, &mut after).await?;
    Ok(before.report(after))
}

async fn refuse_unless_empty(to: &Store) -> Result<()> {
    let mut held = Vec::new();
    if !to.workspaces().await?.is_empty() {
        held.push("workspaces");
    }
    if !to.clients(None, 1).await?.items.is_empty() {
        held.push("clients");
    }
    if !to.invoices(None, 1).await?.items.is_empty() {
        held.push("invoices");
    }
    if !to.cursors().await?.is_empty() {
        held.push("named positions");
    }
    if held.is_empty() {
        return Ok(());
    }
    Err(StoreError::Invalid(format!(
        "the target already holds data ({}): a copy goes into empty databases only",
        held.join(", ")
    )))
}

/// The event to append again for a stored one (see [`copy`]).
fn reappendable(stored: &StoredEvent) -> Result<Event> {
    let envelope = stored.event.get();
    let mut event: Event = serde_json::from_str(envelope).map_err(|e| {
        StoreError::Invalid(format!("event {} cannot be read back: {e}", stored.id))
    })?;
    // The envelope shows whole seconds; the log keeps the millisecond.
    event.timestamp = Timestamp(stored.at_ms);
    let again = serde_json::to_string(&event).expect("an event serializes");
    if again != envelope {
        return Err(StoreError::Invalid(format!(
            "event {} would not be copied byte for byte: stored {envelope}, this version writes {again}",
            stored.id
        )));
    }
    Ok(event)
}

/// One record of one family, as the walk reads it.
enum Record {
    Workspace(Workspace),
    SmtpAccount(SmtpAccount),
    ApiKey(ApiKey),
    SenderDomain(SenderDomain),
    Suppression(Suppression),
    TelnxoNumber(TelnxoNumber),
    TelnxoMessage(TelnxoMessage),
    Call(Call),
    TelnxoUsage {
        workspace_id: String,
        counter: String,
        total: u64,
    },
    WhatsappWindow {
        workspace_id: String,
        customer: String,
        at_ms: i64,
    },
    CarrierId {
        channel: Channel,
        carrier_id: String,
        message_id: String,
        part: u32,
    },
    Client(Client),
    Event(StoredEvent),
    Endpoint(Endpoint),
    /// `event`: the place of its event in its log (oldest first), if the
    /// event is still there.
    Delivery {
        delivery: Delivery,
        event: Option<usize>,
    },
    Subscription(Subscription),
    WorkspaceSubscription {
        workspace_id: String,
        subscription: Subscription,
    },
    Invoice(Invoice),
    Payment(Payment),
    CreditNote(CreditNote),
    Notice(Notice),
    AuditEntry(AuditEntry),
    ParkedReport(ParkedReport),
    Cursor {
        name: String,
        value: u64,
    },
}

fn fields<T: Serialize>(record: &T) -> Value {
    serde_json::to_value(record).expect("records serialize")
}

impl Record {
    fn family(&self) -> &'static str {
        match self {
            Record::Workspace(_) => "workspaces",
            Record::SmtpAccount(_) => "smtp_accounts",
            Record::ApiKey(_) => "api_keys",
            Record::SenderDomain(_) => "sender_domains",
            Record::Suppression(_) => "suppressions",
            Record::TelnxoNumber(_) => "telnxo_numbers",
            Record::TelnxoMessage(_) => "telnxo_messages",
            Record::Call(_) => "calls",
            Record::TelnxoUsage { .. } => "telnxo_usage",
            Record::WhatsappWindow { .. } => "whatsapp_windows",
            Record::CarrierId { .. } => "carrier_ids",
            Record::Client(_) => "clients",
            Record::Event(_) => "events",
            Record::Endpoint(_) => "endpoints",
            Record::Delivery { .. } => "deliveries",
            Record::Subscription(_) => "subscriptions",
            Record::WorkspaceSubscription { .. } => "workspace_subscriptions",
            Record::Invoice(_) => "invoices",
            Record::Payment(_) => "payments",
            Record::CreditNote(_) => "credit_notes",
            Record::Notice(_) => "notices",
            Record::AuditEntry(_) => "audit_entries",
            Record::ParkedReport(_) => "parked_reports",
            Record::Cursor { .. } => "named_positions",
        }
    }

    /// What is compared of it (see [`Tally`]).
    fn canonical(&self) -> Value {
        match self {
            Record::Workspace(r) => fields(r),
            Record::SmtpAccount(r) => fields(r),
            Record::ApiKey(r) => fields(r),
            Record::SenderDomain(r) => fields(r),
            Record::Suppression(r) => fields(r),
            Record::TelnxoNumber(r) => fields(r),
            Record::TelnxoMessage(r) => fields(r),
            Record::Call(r) => fields(r),
            Record::TelnxoUsage {
                workspace_id,
                counter,
                total,
            } => json!([workspace_id, counter, total]),
            Record::WhatsappWindow {
                workspace_id,
                customer,
                at_ms,
            } => json!([workspace_id, customer, at_ms]),
            Record::CarrierId {
                channel,
                carrier_id,
                message_id,
                part,
            } => json!([channel, carrier_id, message_id, part]),
            Record::Client(r) => fields(r),
            Record::Event(e) => json!({
                "id": e.id,
                "workspace_id": e.workspace_id,
                "at_ms": e.at_ms,
                "envelope": e.event.get(),
            }),
            Record::Endpoint(r) => fields(r),
            Record::Delivery { delivery, event } => {
                let mut v = fields(delivery);
                if let Some(named) = v.as_object_mut() {
                    named.remove("seq");
                    named.remove("event_seq");
                    named.insert("event_in_log".into(), json!(event));
                }
                v
            }
            Record::Subscription(r) => fields(r),
            Record::WorkspaceSubscription {
                workspace_id,
                subscription,
            } => json!([workspace_id, subscription.id]),
            Record::Invoice(r) => fields(r),
            Record::Payment(r) => fields(r),
            Record::CreditNote(r) => fields(r),
            Record::Notice(r) => fields(r),
            Record::AuditEntry(r) => fields(r),
            Record::ParkedReport(r) => fields(r),
            Record::Cursor { name, value } => json!([name, value]),
        }
    }
}

/// What the walk hands each record to.
trait Visit {
    async fn visit(&mut self, record: Record) -> Result<()>;
}

/// Reads every family of `store`, in the order of the module docs, and
/// hands each record to `v`.
async fn walk(store: &Store, v: &mut impl Visit) -> Result<()> {
    let workspaces = store.workspaces().await?;
    for ws in &workspaces {
        let id = ws.id.as_str();
        v.visit(Record::Workspace(ws.clone())).await?;
        each(v, store.smtp_accounts_of(id).await?, Record::SmtpAccount).await?;
        each(v, store.api_keys_of(id).await?, Record::ApiKey).await?;
        each(v, store.sender_domains_of(id).await?, Record::SenderDomain).await?;
        in_order(
            v,
            move |c| async move { store.suppressions(id, None, c.as_deref(), PAGE).await },
            Record::Suppression,
        )
        .await?;
        each(v, store.telnxo_numbers_of(id).await?, Record::TelnxoNumber).await?;
        oldest_first(
            v,
            move |c| async move { store.telnxo_messages_of(id, None, c.as_deref(), PAGE).await },
            Record::TelnxoMessage,
        )
        .await?;
        oldest_first(
            v,
            move |c| async move { store.calls_of(id, c.as_deref(), PAGE).await },
            Record::Call,
        )
        .await?;
        let workspace_id = || id.to_string();
        each(v, store.telnxo_usage_of(id).await?, |(counter, total)| {
            Record::TelnxoUsage {
                workspace_id: workspace_id(),
                counter,
                total,
            }
        })
        .await?;
        each(
            v,
            store.whatsapp_windows_of(id).await?,
            |(customer, at_ms)| Record::WhatsappWindow {
                workspace_id: workspace_id(),
                customer,
                at_ms,
            },
        )
        .await?;
    }

    let mut after = None;
    loop {
        let batch = store.carrier_ids(after.take(), PAGE).await?;
        let full = batch.len() == PAGE;
        for (channel, carrier_id, message_id, part) in batch {
            after = Some((channel, carrier_id.clone()));
            v.visit(Record::CarrierId {
                channel,
                carrier_id,
                message_id,
                part,
            })
            .await?;
        }
        if !full {
            break;
        }
    }

    // Portal clients own a log and endpoints of their own.
    let mut owners: Vec<String> = workspaces.iter().map(|w| w.id.clone()).collect();
    in_order(
        v,
        |c| async move { store.clients(c.as_deref(), PAGE).await },
        |client| {
            owners.push(client.id.clone());
            Record::Client(client)
        },
    )
    .await?;
    let oldest = EventQuery {
        ascending: true,
        ..EventQuery::default()
    };
    for owner in &owners {
        let owner = owner.as_str();
        let oldest = &oldest;
        // The log's positions, oldest first: a delivery names its event by
        // its place among them.
        let mut log = Vec::new();
        in_order(
            v,
            move |c| async move { store.events(owner, oldest, c.as_deref(), PAGE).await },
            |e| {
                log.push(e.seq);
                Record::Event(e)
            },
        )
        .await?;
        for endpoint in store.endpoints_of(owner).await? {
            let ep = endpoint.id.clone();
            v.visit(Record::Endpoint(endpoint)).await?;
            let ep = ep.as_str();
            let log = &log;
            oldest_first(
                v,
                move |c| async move { store.deliveries_of(ep, None, c.as_deref(), PAGE).await },
                |delivery| Record::Delivery {
                    event: (delivery.workspace_id == owner)
                        .then(|| log.binary_search(&delivery.event_seq).ok())
                        .flatten(),
                    delivery,
                },
            )
            .await?;
        }
    }

    in_order(
        v,
        |c| async move { store.subscriptions(c.as_deref(), PAGE).await },
        Record::Subscription,
    )
    .await?;
    for ws in &workspaces {
        if let Some(subscription) = store.subscription_of_workspace(&ws.id).await? {
            v.visit(Record::WorkspaceSubscription {
                workspace_id: ws.id.clone(),
                subscription,
            })
            .await?;
        }
    }
    let mut invoices = Vec::new();
    in_order(
        v,
        |c| async move { store.invoices(c.as_deref(), PAGE).await },
        |invoice| {
            invoices.push(invoice.id.clone());
            Record::Invoice(invoice)
        },
    )
    .await?;
    for invoice in &invoices {
        each(v, store.payments_of(invoice).await?, Record::Payment).await?;
        each(v, store.credit_notes_of(invoice).await?, Record::CreditNote).await?;
    }

    for (_, notice) in store.notices(usize::MAX).await? {
        v.visit(Record::Notice(notice)).await?;
    }
    each(
        v,
        store.audit_entries(usize::MAX).await?,
        Record::AuditEntry,
    )
    .await?;
    each(
        v,
        store.parked_reports(usize::MAX).await?,
        Record::ParkedReport,
    )
    .await?;
    // Last: numbering the notices above must not move them on.
    for (name, value) in store.cursors().await? {
        v.visit(Record::Cursor { name, value }).await?;
    }
    Ok(())
}

/// Hands each of `items` to `v` as `record` makes it.
async fn each<T>(v: &mut impl Visit, items: Vec<T>, record: impl FnMut(T) -> Record) -> Result<()> {
    for r in items.into_iter().map(record) {
        v.visit(r).await?;
    }
    Ok(())
}

/// Every item of a paged listing, in its order.
async fn in_order<T, F, Fut>(
    v: &mut impl Visit,
    mut page: F,
    mut record: impl FnMut(T) -> Record,
) -> Result<()>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<T>>>,
{
    let mut cursor = None;
    loop {
        let Page { items, next_cursor } = page(cursor).await?;
        for item in items {
            v.visit(record(item)).await?;
        }
        match next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// Every item of a paged listing that is newest first, oldest first: the
/// pages' cursors are gathered, then the pages read again from the last,
/// so memory holds one page, however long the listing.
async fn oldest_first<T, F, Fut>(
    v: &mut impl Visit,
    mut page: F,
    mut record: impl FnMut(T) -> Record,
) -> Result<()>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<T>>>,
{
    let mut starts = vec![None];
    while let Some(next) = page(starts.last().cloned().flatten()).await?.next_cursor {
        starts.push(Some(next));
    }
    for start in starts.into_iter().rev() {
        for item in page(start).await?.items.into_iter().rev() {
            v.visit(record(item)).await?;
        }
    }
    Ok(())
}

/// Counts and hashes of each family, as one store reads.
struct Tallies(Vec<(&'static str, Tallying)>);

impl Default for Tallies {
    fn default() -> Self {
        Tallies(
            FAMILIES
                .iter()
                .map(|family| (*family, Tallying::default()))
                .collect(),
        )
    }
}

impl Tallies {
    fn add(&mut self, record: &Record) {
        let family = record.family();
        let at = match self.0.iter().position(|(f, _)| *f == family) {
            Some(at) => at,
            None => {
                self.0.push((family, Tallying::default()));
                self.0.len() - 1
            }
        };
        self.0[at]
            .1
            .add_line(&canonical(record.canonical()).to_string());
    }

    /// The report of a copy: these tallies the source's, `to` the target's.
    fn report(self, to: Tallies) -> Vec<FamilyReport> {
        let mut to = to.0;
        let mut out: Vec<FamilyReport> = self
            .0
            .into_iter()
            .map(|(family, here)| {
                let there = match to.iter().position(|(f, _)| *f == family) {
                    Some(at) => to.remove(at).1,
                    None => Tallying::default(),
                };
                FamilyReport {
                    family,
                    from: here.finish(),
                    to: there.finish(),
                }
            })
            .collect();
        out.extend(to.into_iter().map(|(family, there)| FamilyReport {
            family,
            from: Tallying::default().finish(),
            to: there.finish(),
        }));
        out
    }
}

impl Visit for Tallies {
    async fn visit(&mut self, record: Record) -> Result<()> {
        if let Record::Event(e) = &record {
            reappendable(e)?;
        }
        self.add(&record);
        Ok(())
    }
}

/// JSON with every object's keys sorted, whatever order the store (a
/// `jsonb` column) gave them in.
fn canonical(v: Value) -> Value {
    match v {
        Value::Object(fields) => {
            let mut fields: Vec<(String, Value)> =
                fields.into_iter().map(|(k, v)| (k, canonical(v))).collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(fields.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// Writes each record into the target.
struct Copier<'a> {
    to: &'a Store,
    txn: Option<Txn>,
    /// Writes in `txn` so far.
    writes: usize,
    /// The owner of the log being copied and the positions the target gave
    /// its events, oldest first.
    log: (String, Vec<u64>),
}

impl Copier<'_> {
    /// The transaction of the next write: committed and begun again every
    /// [`WRITES_PER_TXN`] writes.
    async fn txn(&mut self) -> Result<&mut Txn> {
        if self.writes == WRITES_PER_TXN {
            if let Some(full) = self.txn.take() {
                full.commit().await?;
            }
            self.writes = 0;
        }
        self.writes += 1;
        let txn = match self.txn.take() {
            Some(txn) => txn,
            None => self.to.begin().await?,
        };
        Ok(self.txn.insert(txn))
    }

    async fn finish(mut self) -> Result<()> {
        match self.txn.take() {
            Some(txn) => txn.commit().await,
            None => Ok(()),
        }
    }
}

impl Visit for Copier<'_> {
    async fn visit(&mut self, record: Record) -> Result<()> {
        match record {
            Record::Workspace(r) => self.txn().await?.insert_workspace(&r).await,
            Record::SmtpAccount(r) => self.txn().await?.insert_smtp_account(&r).await,
            Record::ApiKey(r) => self.txn().await?.insert_api_key(&r).await,
            Record::SenderDomain(r) => self.txn().await?.insert_sender_domain(&r).await,
            Record::Suppression(r) => self.txn().await?.put_suppression(&r).await,
            Record::TelnxoNumber(r) => self.txn().await?.put_telnxo_number(&r).await,
            Record::TelnxoMessage(r) => self.txn().await?.put_telnxo_message(&r).await,
            Record::Call(r) => self.txn().await?.put_call(&r).await,
            Record::TelnxoUsage {
                workspace_id,
                counter,
                total,
            } => {
                let txn = self.txn().await?;
                txn.add_telnxo_usage(&workspace_id, &counter, total)
                    .await
                    .map(drop)
            }
            Record::WhatsappWindow {
                workspace_id,
                customer,
                at_ms,
            } => {
                let txn = self.txn().await?;
                txn.set_whatsapp_window(&workspace_id, &customer, at_ms)
                    .await
            }
            Record::CarrierId {
                channel,
                carrier_id,
                message_id,
                part,
            } => {
                let txn = self.txn().await?;
                txn.put_carrier_id(channel, &carrier_id, &message_id, part)
                    .await
            }
            Record::Client(r) => self.txn().await?.insert_client(&r).await,
            Record::Event(stored) => {
                let event = reappendable(&stored)?;
                let appended = self.txn().await?.append_event(&event).await?;
                if self.log.0 != stored.workspace_id {
                    self.log = (stored.workspace_id, Vec::new());
                }
                self.log.1.push(appended.seq);
                Ok(())
            }
            Record::Endpoint(r) => self.txn().await?.put_endpoint(&r).await,
            Record::Delivery {
                mut delivery,
                event,
            } => {
                let (owner, positions) = &self.log;
                delivery.event_seq = event
                    .filter(|_| *owner == delivery.workspace_id)
                    .and_then(|at| positions.get(at).copied())
                    .unwrap_or(NO_EVENT);
                self.txn().await?.insert_delivery(&mut delivery).await
            }
            Record::Subscription(r) => self.txn().await?.put_subscription(&r).await,
            Record::WorkspaceSubscription { subscription, .. } => {
                // Putting a subscription links its workspace to it unless
                // it is cancelled; one cancelled since it was linked is
                // put live first, then as it is.
                let live = Subscription {
                    status: SubscriptionStatus::Active,
                    ..subscription.clone()
                };
                self.txn().await?.put_subscription(&live).await?;
                self.txn().await?.put_subscription(&subscription).await
            }
            Record::Invoice(r) => self.txn().await?.insert_invoice(&r).await,
            Record::Payment(r) => self.txn().await?.insert_payment(&r).await,
            Record::CreditNote(r) => self.txn().await?.insert_credit_note(&r).await,
            Record::Notice(r) => self.txn().await?.queue_notice(&r).await.map(drop),
            Record::AuditEntry(r) => self.txn().await?.append_audit(&r).await,
            Record::ParkedReport(r) => self.txn().await?.put_parked_report(&r).await,
            Record::Cursor { name, value } => self.txn().await?.set_cursor(&name, value).await,
        }
    }
}
