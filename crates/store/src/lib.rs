//! Rackwave's shared state: workspaces, SMTP accounts, API keys, sender
//! domains, the event log (with the feed cursor) and the webhook outbox
//! (endpoints and deliveries), behind one [`Store`] with explicit
//! transactions ([`Txn`]).
//!
//! # Contract
//!
//! * **Transactions.** [`Store::begin`] opens a write transaction: it reads
//!   its own writes, and [`Txn::commit`] makes all of them visible at once,
//!   or none if the transaction is dropped. So a state change and the
//!   events it causes (an event, one delivery per endpoint, a cursor) are
//!   committed together, and a crash neither loses nor duplicates one.
//!   Write transactions are serializable.
//! * **Durability.** [`Txn::commit`] returns once the commit is on disk;
//!   [`Txn::commit_eventually`] returns at once and the commit reaches the
//!   disk within a second (sled's flush interval; PostgreSQL's WAL writer
//!   with `synchronous_commit` off), for bookkeeping whose
//!   loss only repeats work (a webhook attempt's record). Concurrent
//!   durable commits share one flush.
//! * **Reads** outside a transaction see every committed write; on
//!   PostgreSQL, three that every message makes (a workspace, its sending
//!   domains, a domain) may lag writes made on *another* node by up to a
//!   second (a node's own writes are seen at once).
//! * **Tenancy.** Records carry their workspace; listings are per
//!   workspace. Lookups by a global key (a username, a domain, an API key
//!   digest, an id) return the record whatever its workspace: the caller
//!   compares the workspace, and answers "not found" for another tenant's.
//! * **Backends** implement [`Reads`] and [`Writes`]; features never name
//!   one. sled, embedded in the data directory ([`Database`]), serves one
//!   node; PostgreSQL ([`postgres::Databases`]) several, where write
//!   transactions take turns across all of them. Nothing in the
//!   signatures is particular to either: no key prefixes, iterators,
//!   batches or SQL.
//!
//! The operations are listed once, in the [`store_api!`] invocation below,
//! which generates the backend traits and the methods of [`Store`] and
//! [`Txn`] from the same list.

pub mod copy;
pub mod message_log;
pub mod postgres;
mod records;
mod sled;
pub mod sso;
pub mod telnxo;

use std::sync::Arc;

use rackwave_core::event::Event;
use rackwave_core::{Classify, ErrorKind};

pub use message_log::{MessageLogEntry, MessageLogQuery};
pub use records::{
    ApiKey, Attempt, Client, ClientSession, Contact, CreditNote, Delivery, DeliveryState,
    DkimAlgorithm, Endpoint, EventQuery, IdempotencyRecord, IdempotentResponse, Invoice,
    InvoiceKind, InvoiceLine, InvoiceStatus, Notice, Page, Party, PasswordReset, Payment,
    RecordCheck, Secret, SenderDomain, SmtpAccount, StoredEvent, Subscription, SubscriptionStatus,
    Suppression, SuppressionReason, TrackingSettings, Workspace,
};
pub use sled::Database;
pub use sso::{AuditEntry, PlatformSession, SsoToken};
pub use telnxo::{
    Call, Channel, CommError, CommStatus, CommStep, Direction, ParkedReport, TelnxoMessage,
    TelnxoNumber, WhatsappPart,
};

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, a lost connection): nothing was changed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Stored data does not decode.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A unique name (username, domain, id) is taken.
    #[error("{0}")]
    Conflict(String),
    /// The request cannot be right (a malformed cursor, say).
    #[error("{0}")]
    Invalid(String),
}

impl Classify for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Unavailable(_) => ErrorKind::Unavailable,
            StoreError::Corrupt(_) => ErrorKind::Internal,
            StoreError::Conflict(_) => ErrorKind::Conflict,
            StoreError::Invalid(_) => ErrorKind::Invalid,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The shared state, on one of the backends. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sled(Arc<sled::SledStore>),
    Postgres(Arc<postgres::txn::PgStore>),
}

/// A write transaction (see the crate docs). Dropping it without
/// committing discards its writes.
pub struct Txn {
    inner: TxnInner,
}

enum TxnInner {
    Sled(sled::SledTxn),
    Postgres(Box<postgres::txn::PgTxn>),
}

impl Store {
    /// The store in an embedded sled database ([`Database::store`]).
    fn on_sled(db: ::sled::Db) -> Result<Store> {
        Ok(Store {
            backend: Backend::Sled(Arc::new(sled::SledStore::open(db)?)),
        })
    }

    /// The store on PostgreSQL ([`postgres::Databases::store`]).
    fn on_postgres(store: postgres::txn::PgStore) -> Store {
        Store {
            backend: Backend::Postgres(Arc::new(store)),
        }
    }

    /// Starts a write transaction; waits while another one is open (on
    /// PostgreSQL, on any node).
    pub async fn begin(&self) -> Result<Txn> {
        Ok(Txn {
            inner: match &self.backend {
                Backend::Sled(s) => TxnInner::Sled(s.begin().await),
                Backend::Postgres(s) => TxnInner::Postgres(Box::new(s.begin().await?)),
            },
        })
    }

    /// Whether several nodes may share this store: then what every node
    /// must see of a node's own data (the message log) is put in it.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// [`Writes::claim_lease`] in a transaction of its own (durable):
    /// whether `holder` holds the lease `name` until `until_ms` now.
    pub async fn hold_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let held = tx.claim_lease(name, holder, now_ms, until_ms).await?;
        tx.commit().await?;
        Ok(held)
    }

    /// Makes every commit so far durable (at shutdown).
    pub async fn flush(&self) -> Result<()> {
        match &self.backend {
            Backend::Sled(s) => s.flush().await,
            // Each durable commit was on the server's disk when it returned.
            Backend::Postgres(_) => Ok(()),
        }
    }
}

impl Txn {
    /// Commits; returns once the commit is durable.
    pub async fn commit(self) -> Result<()> {
        match self.inner {
            TxnInner::Sled(t) => t.commit(true).await,
            TxnInner::Postgres(t) => (*t).commit(true).await,
        }
    }

    /// Commits; durable within the backend's flush interval.
    pub async fn commit_eventually(self) -> Result<()> {
        match self.inner {
            TxnInner::Sled(t) => t.commit(false).await,
            TxnInner::Postgres(t) => (*t).commit(false).await,
        }
    }
}

/// Declares every store operation once: the backend traits ([`Reads`],
/// [`Writes`]) and the methods of [`Store`] (reads) and [`Txn`] (reads and
/// writes) that dispatch to the backend.
macro_rules! store_api {
    (
        reads { $( $(#[$rdoc:meta])* fn $read:ident ( $( $rarg:ident : $rty:ty ),* ) -> $rret:ty; )* }
        writes { $( $(#[$wdoc:meta])* fn $write:ident ( $( $warg:ident : $wty:ty ),* ) -> $wret:ty; )* }
    ) => {
        /// What a backend answers, inside a transaction or outside one.
        #[allow(async_fn_in_trait)]
        pub trait Reads {
            $( $(#[$rdoc])* async fn $read(&self $(, $rarg: $rty)*) -> Result<$rret>; )*
        }

        /// What a backend's transaction changes.
        #[allow(async_fn_in_trait)]
        pub trait Writes: Reads {
            $( $(#[$wdoc])* async fn $write(&mut self $(, $warg: $wty)*) -> Result<$wret>; )*
        }

        impl Store {
            $(
                $(#[$rdoc])*
                pub async fn $read(&self $(, $rarg: $rty)*) -> Result<$rret> {
                    match &self.backend {
                        Backend::Sled(s) => s.reader().$read($($rarg),*).await,
                        Backend::Postgres(s) => {
                            let view = s.reader();
                            let out = view.$read($($rarg),*).await?;
                            view.finish();
                            Ok(out)
                        }
                    }
                }
            )*
        }

        impl Txn {
            $(
                $(#[$rdoc])*
                pub async fn $read(&self $(, $rarg: $rty)*) -> Result<$rret> {
                    match &self.inner {
                        TxnInner::Sled(t) => t.$read($($rarg),*).await,
                        TxnInner::Postgres(t) => t.$read($($rarg),*).await,
                    }
                }
            )*
            $(
                $(#[$wdoc])*
                pub async fn $write(&mut self $(, $warg: $wty)*) -> Result<$wret> {
                    match &mut self.inner {
                        TxnInner::Sled(t) => t.$write($($warg),*).await,
                        TxnInner::Postgres(t) => t.$write($($warg),*).await,
                    }
                }
            )*
        }
    };
}

store_api! {
    reads {
        /// One workspace.
        fn workspace(id: &str) -> Option<Workspace>;
        /// Every workspace, oldest id first.
        fn workspaces() -> Vec<Workspace>;
        /// The ids of the workspaces that may not send now (`suspended`
        /// set), by id.
        fn suspended_workspaces() -> Vec<String>;
        /// The SMTP account with this username, whatever its workspace.
        fn smtp_account(username: &str) -> Option<SmtpAccount>;
        /// A workspace's SMTP accounts, by username.
        fn smtp_accounts_of(workspace_id: &str) -> Vec<SmtpAccount>;
        /// The API key with this digest, whatever its workspace.
        fn api_key(digest: &str) -> Option<ApiKey>;
        /// A workspace's API keys, by id.
        fn api_keys_of(workspace_id: &str) -> Vec<ApiKey>;
        /// The sender domain (lowercase), whatever its workspace.
        fn sender_domain(domain: &str) -> Option<SenderDomain>;
        /// A workspace's sender domains, by name.
        fn sender_domains_of(workspace_id: &str) -> Vec<SenderDomain>;
        /// Event `seq` of a workspace's log.
        fn event(workspace_id: &str, seq: u64) -> Option<StoredEvent>;
        /// An event by its id, whatever its workspace.
        fn event_by_id(id: &str) -> Option<StoredEvent>;
        /// One page of a workspace's events, newest first unless the query
        /// says otherwise. Examines a bounded number of events per call, so
        /// a selective filter may give a short page with a cursor.
        fn events(workspace_id: &str, query: &EventQuery, cursor: Option<&str>, limit: usize) -> Page<StoredEvent>;
        /// A named position (the spool feed consumer's), 0 if never set.
        fn cursor(name: &str) -> u64;
        /// Every named position set with [`Writes::set_cursor`] (the spool
        /// feed's, each invoice and credit note number series), by name.
        fn cursors() -> Vec<(String, u64)>;
        /// A webhook endpoint, whatever its workspace.
        fn endpoint(id: &str) -> Option<Endpoint>;
        /// A workspace's endpoints (every platform), oldest first.
        fn endpoints_of(workspace_id: &str) -> Vec<Endpoint>;
        /// A webhook delivery, whatever its endpoint.
        fn delivery(id: &str) -> Option<Delivery>;
        /// One page of an endpoint's deliveries, newest first.
        fn deliveries_of(endpoint_id: &str, state: Option<DeliveryState>, cursor: Option<&str>, limit: usize) -> Page<Delivery>;
        /// Up to `limit` endpoints (by id, after `after`) with a delivery
        /// due at `now_ms`.
        fn due_endpoints(after: Option<&str>, now_ms: i64, limit: usize) -> Vec<String>;
        /// Up to `limit` deliveries of an endpoint due at `now_ms`, oldest
        /// due first.
        fn due_deliveries(endpoint_id: &str, now_ms: i64, limit: usize) -> Vec<String>;
        /// The request a workspace made with an idempotency key.
        fn idempotency(workspace_id: &str, key: &str) -> Option<IdempotencyRecord>;
        /// A workspace's events counted per UTC day (days since the epoch,
        /// `since_day..=until_day`) and type, as `(day, type, count)` in day
        /// order; only those of messages tagged `tag` when one is given.
        fn event_counts(workspace_id: &str, since_day: i64, until_day: i64, tag: Option<&str>) -> Vec<(i64, String, u64)>;
        /// A workspace's suppression of an address (lowercase).
        fn suppression(workspace_id: &str, address: &str) -> Option<Suppression>;
        /// One page of a workspace's suppressions, by address, after the
        /// address `after`; only those with `reason` when one is given.
        /// Examines a bounded number per call, so a filter may give a short
        /// page with a cursor.
        fn suppressions(workspace_id: &str, reason: Option<SuppressionReason>, after: Option<&str>, limit: usize) -> Page<Suppression>;
        /// A portal client by id.
        fn client(id: &str) -> Option<Client>;
        /// A portal client by email (lowercase).
        fn client_by_email(email: &str) -> Option<Client>;
        /// A client's login by the digest of its token.
        fn client_session(digest: &str) -> Option<ClientSession>;
        /// A subscription, whatever its client.
        fn subscription(id: &str) -> Option<Subscription>;
        /// A client's subscriptions, oldest first.
        fn subscriptions_of(client_id: &str) -> Vec<Subscription>;
        /// Up to `limit` live (trial, active) subscriptions whose
        /// period ends by `until_ms`, earliest first, after the `(period
        /// end, id)` of `after`: the billing run's work, as `(period end,
        /// id)`.
        fn subscriptions_ending(until_ms: i64, after: Option<(i64, String)>, limit: usize) -> Vec<(i64, String)>;
        /// One page of every client, by id, after `after`.
        fn clients(after: Option<&str>, limit: usize) -> Page<Client>;
        /// One page of every subscription, by id, after `after`.
        fn subscriptions(after: Option<&str>, limit: usize) -> Page<Subscription>;
        /// An invoice, whatever its client.
        fn invoice(id: &str) -> Option<Invoice>;
        /// A client's invoices, newest first.
        fn invoices_of(client_id: &str) -> Vec<Invoice>;
        /// One page of every invoice, by id, after `after`.
        fn invoices(after: Option<&str>, limit: usize) -> Page<Invoice>;
        /// Up to `limit` invoices whose next dunning step is due by
        /// `until_ms`, earliest first, after `after`, as `(when, id)`.
        fn invoices_due(until_ms: i64, after: Option<(i64, String)>, limit: usize) -> Vec<(i64, String)>;
        /// The payment with this reference, whatever its invoice.
        fn payment_by_reference(reference: &str) -> Option<Payment>;
        /// An invoice's payments, oldest first.
        fn payments_of(invoice_id: &str) -> Vec<Payment>;
        /// An invoice's credit notes, oldest first.
        fn credit_notes_of(invoice_id: &str) -> Vec<CreditNote>;
        /// A password reset by the digest of its token.
        fn password_reset(digest: &str) -> Option<PasswordReset>;
        /// Up to `limit` queued notices, oldest first, with their numbers.
        fn notices(limit: usize) -> Vec<(u64, Notice)>;
        /// A Telnxo number or sender id, whatever its workspace.
        fn telnxo_number(number: &str) -> Option<TelnxoNumber>;
        /// A workspace's Telnxo numbers, in order.
        fn telnxo_numbers_of(workspace_id: &str) -> Vec<TelnxoNumber>;
        /// A Telnxo message, whatever its workspace.
        fn telnxo_message(id: &str) -> Option<TelnxoMessage>;
        /// One page of a workspace's Telnxo messages (of one channel when
        /// given), newest first. Examines a bounded number per call.
        fn telnxo_messages_of(workspace_id: &str, channel: Option<Channel>, cursor: Option<&str>, limit: usize) -> Page<TelnxoMessage>;
        /// A call, whatever its workspace.
        fn call(id: &str) -> Option<Call>;
        /// One page of a workspace's calls, newest first.
        fn calls_of(workspace_id: &str, cursor: Option<&str>, limit: usize) -> Page<Call>;
        /// The message (and part) a carrier id names on a channel.
        fn telnxo_by_carrier_id(channel: Channel, carrier_id: &str) -> Option<(String, u32)>;
        /// Up to `limit` carrier ids of every channel, as `(channel, carrier
        /// id, message id, part)`, by channel and carrier id, after `after`.
        fn carrier_ids(after: Option<(Channel, String)>, limit: usize) -> Vec<(Channel, String, String, u32)>;
        /// Up to `limit` ids in a channel's queue due by `now_ms`, earliest
        /// first.
        fn telnxo_due(channel: Channel, now_ms: i64, limit: usize) -> Vec<String>;
        /// When a WhatsApp user last wrote to the workspace (unix ms).
        fn whatsapp_window(workspace_id: &str, customer: &str) -> Option<i64>;
        /// Every WhatsApp window of a workspace, as `(customer, unix ms)`, by
        /// customer.
        fn whatsapp_windows_of(workspace_id: &str) -> Vec<(String, i64)>;
        /// A workspace's Telnxo usage counter (`day:<n>` sends of a UTC
        /// day, `<channel>:<period start>` units of a billing period).
        fn telnxo_usage(workspace_id: &str, counter: &str) -> u64;
        /// Every Telnxo usage counter of a workspace, as `(counter, total)`,
        /// by counter.
        fn telnxo_usage_of(workspace_id: &str) -> Vec<(String, u64)>;
        /// The parts of a concatenated inbound SMS received so far, by
        /// their sequence number.
        fn inbound_parts(key: &str) -> Vec<(u8, String)>;
        /// A sign-on token by its digest.
        fn sso_token(digest: &str) -> Option<SsoToken>;
        /// A platform session by its digest.
        fn platform_session(digest: &str) -> Option<PlatformSession>;
        /// The newest `limit` audit entries, newest first.
        fn audit_entries(limit: usize) -> Vec<AuditEntry>;
        /// Up to `limit` parked carrier reports, oldest first.
        fn parked_reports(limit: usize) -> Vec<ParkedReport>;
        /// The live (or latest) subscription a workspace belongs to.
        fn subscription_of_workspace(workspace_id: &str) -> Option<Subscription>;
        /// A message of the shared log ([`message_log`]), whatever its
        /// workspace.
        fn message_log_entry(id: &str) -> Option<MessageLogEntry>;
        /// One page of a workspace's messages in the shared log, newest
        /// first (by creation time, then id).
        fn message_log(workspace_id: &str, query: &MessageLogQuery, cursor: Option<&str>, limit: usize) -> Page<MessageLogEntry>;
        /// The messages of one submission in the shared log, by id.
        fn message_log_of_queue(queue_id: &str) -> Vec<MessageLogEntry>;
        /// How many of a workspace's messages in the shared log are not
        /// final yet (queued or deferred on their node).
        fn message_log_pending(workspace_id: &str) -> u64;
    }
    writes {
        /// Adds a workspace; its id must be new.
        fn insert_workspace(workspace: &Workspace) -> ();
        /// Replaces an existing workspace's record (its settings).
        fn put_workspace(workspace: &Workspace) -> ();
        /// Adds an SMTP account; `Conflict` if the username is taken.
        fn insert_smtp_account(account: &SmtpAccount) -> ();
        /// Adds an API key; `Conflict` if its digest is taken.
        fn insert_api_key(key: &ApiKey) -> ();
        /// Replaces an existing API key's record (its last use).
        fn put_api_key(key: &ApiKey) -> ();
        /// Deletes an API key by digest; whether it existed.
        fn delete_api_key(digest: &str) -> bool;
        /// Deletes an SMTP account; whether it existed.
        fn delete_smtp_account(username: &str) -> bool;
        /// Adds a sender domain; `Conflict` if the domain is taken.
        fn insert_sender_domain(domain: &SenderDomain) -> ();
        /// Replaces an existing sender domain's record (its verification).
        fn put_sender_domain(domain: &SenderDomain) -> ();
        /// Deletes a sender domain with its key; whether it existed.
        fn delete_sender_domain(domain: &str) -> bool;
        /// Appends an event to its workspace's log, serialized once here.
        fn append_event(event: &Event) -> StoredEvent;
        /// Appends events (of any workspaces) in order, as
        /// [`Writes::append_event`] would one by one, at the cost of one.
        fn append_events(events: &[Event]) -> Vec<StoredEvent>;
        /// Sets a named position.
        fn set_cursor(name: &str, value: u64) -> ();
        /// Adds or replaces an endpoint.
        fn put_endpoint(endpoint: &Endpoint) -> ();
        /// Deletes an endpoint with all its deliveries; whether it existed.
        fn delete_endpoint(id: &str) -> bool;
        /// Adds a delivery, giving it its `seq`.
        fn insert_delivery(delivery: &mut Delivery) -> ();
        /// Replaces a delivery, keeping the due index in step with its
        /// `due_at_ms`.
        fn put_delivery(delivery: &Delivery) -> ();
        /// Deletes up to `limit` events stored before `cutoff_ms`; how many,
        /// and whether more are that old.
        fn prune_events(cutoff_ms: i64, limit: usize) -> (u64, bool);
        /// Deletes up to `limit` finished deliveries created before
        /// `cutoff_ms` (see [`Delivery::past_retention`]); how many, and
        /// whether more may be.
        fn prune_deliveries(cutoff_ms: i64, limit: usize) -> (u64, bool);
        /// Adds or replaces an idempotent request's record.
        fn put_idempotency(record: &IdempotencyRecord) -> ();
        /// Forgets an idempotent request (its first attempt failed for a
        /// reason a retry may not meet).
        fn delete_idempotency(workspace_id: &str, key: &str) -> ();
        /// Deletes up to `limit` idempotency records created before
        /// `cutoff_ms`; how many, and whether more may be.
        fn prune_idempotency(cutoff_ms: i64, limit: usize) -> (u64, bool);
        /// Adds or replaces a suppression (the address lowercase).
        fn put_suppression(suppression: &Suppression) -> ();
        /// Deletes a suppression; whether it existed.
        fn delete_suppression(workspace_id: &str, address: &str) -> bool;
        /// Adds a client; `Conflict` if the id or the email is taken.
        fn insert_client(client: &Client) -> ();
        /// Replaces an existing client's record (its email stays).
        fn put_client(client: &Client) -> ();
        /// Adds or replaces a client's login.
        fn put_client_session(session: &ClientSession) -> ();
        /// Deletes a client's login; whether it existed.
        fn delete_client_session(digest: &str) -> bool;
        /// Adds or replaces a subscription (its client never changes).
        fn put_subscription(subscription: &Subscription) -> ();
        /// Adds an invoice; `Conflict` if its id or number is taken.
        fn insert_invoice(invoice: &Invoice) -> ();
        /// Replaces an existing invoice, keeping the dunning index in step
        /// with its `next_action_ms`.
        fn put_invoice(invoice: &Invoice) -> ();
        /// Adds a payment; `Conflict` if its reference was seen before.
        fn insert_payment(payment: &Payment) -> ();
        /// Adds a credit note; `Conflict` if its id or number is taken.
        fn insert_credit_note(note: &CreditNote) -> ();
        /// Adds a password reset.
        fn put_password_reset(reset: &PasswordReset) -> ();
        /// Uses up a password reset; whether it existed.
        fn delete_password_reset(digest: &str) -> bool;
        /// Deletes up to `limit` client sessions, password resets, sign-on
        /// tokens and platform sessions that expired by `now_ms`; how many,
        /// and whether more may be.
        fn prune_client_tokens(now_ms: i64, limit: usize) -> (u64, bool);
        /// Queues a notice; its number.
        fn queue_notice(notice: &Notice) -> u64;
        /// Forgets a notice once it is mailed; whether it was queued.
        fn delete_notice(seq: u64) -> bool;
        /// Adds or replaces a number; `Conflict` if another workspace has it.
        fn put_telnxo_number(number: &TelnxoNumber) -> ();
        /// Takes a number back; whether it was given.
        fn delete_telnxo_number(number: &str) -> bool;
        /// Adds or replaces a message, keeping its channel's queue in step
        /// with its `due_at_ms`.
        fn put_telnxo_message(message: &TelnxoMessage) -> ();
        /// Adds or replaces a call, keeping the voice queue in step.
        fn put_call(call: &Call) -> ();
        /// Remembers which message (and part) a carrier id names.
        fn put_carrier_id(channel: Channel, carrier_id: &str, id: &str, part: u32) -> ();
        /// Notes a WhatsApp user's latest message to the workspace.
        fn set_whatsapp_window(workspace_id: &str, customer: &str, at_ms: i64) -> ();
        /// Adds or replaces a sign-on token.
        fn put_sso_token(token: &SsoToken) -> ();
        /// Adds a platform session.
        fn put_platform_session(session: &PlatformSession) -> ();
        /// Ends a platform session; whether it existed.
        fn delete_platform_session(digest: &str) -> bool;
        /// Appends to the audit trail.
        fn append_audit(entry: &AuditEntry) -> ();
        /// Keeps one part of a concatenated inbound SMS.
        fn put_inbound_part(key: &str, seq: u8, body: &str) -> ();
        /// Forgets the parts of a concatenated inbound SMS (put together).
        fn delete_inbound_parts(key: &str) -> ();
        /// Keeps (or updates) a parked carrier report.
        fn put_parked_report(report: &ParkedReport) -> ();
        /// Forgets a parked carrier report; whether it was kept.
        fn delete_parked_report(id: &str) -> bool;
        /// Adds to a Telnxo usage counter; the new total.
        fn add_telnxo_usage(workspace_id: &str, counter: &str, n: u64) -> u64;
        /// Takes up to `limit` of an endpoint's deliveries due by `now_ms`,
        /// oldest due first, for `holder`, moving their due time to
        /// `until_ms`: a lease. Until it ends no other caller, on any node,
        /// gets them; the attempt's record settles them, and if the node
        /// making it dies they are due again when the lease ends (or when
        /// it starts again: [`Writes::release_leases`]).
        fn lease_deliveries(endpoint_id: &str, holder: &str, now_ms: i64, until_ms: i64, limit: usize) -> Vec<Delivery>;
        /// Makes every delivery leased by `holder` due at `now_ms` again (a
        /// node starting again: its attempts in flight died with it); how
        /// many.
        fn release_leases(holder: &str, now_ms: i64) -> u64;
        /// Holds the lease `name` for `holder` until `until_ms` when it is
        /// free, ended by `now_ms`, or the holder's already; whether
        /// `holder` holds it now (one node at a time runs what it guards).
        fn claim_lease(name: &str, holder: &str, now_ms: i64, until_ms: i64) -> bool;
        /// Takes up to `want` units of a counter's `cap` for a UTC day: how
        /// many it took (0 once the cap is reached) and how many are left.
        /// Concurrent claims, on any node, never take more than `cap`
        /// together.
        fn claim_quota(counter: &str, day: i64, cap: u64, want: u64) -> (u64, u64);
        /// Adds or replaces messages of the shared log (each checked with
        /// [`MessageLogEntry::check`]; one refused, none put).
        fn put_message_log(entries: &[MessageLogEntry]) -> ();
        /// Deletes up to `limit` log entries that became final before
        /// `cutoff_ms`, or were created before `stale_before_ms` and never
        /// became final (their node never said: it is gone, or its spool
        /// lost them); how many, and whether more may be.
        fn prune_message_log(cutoff_ms: i64, stale_before_ms: i64, limit: usize) -> (u64, bool);
    }
}
