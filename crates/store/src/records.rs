//! What the store keeps, one type per record. Backends store these as they
//! are (JSON in sled); features read and write them only through
//! [`Store`](crate::Store) and [`Txn`](crate::Txn).

use rackwave_core::event::EventType;
use rackwave_core::{Platform, Product, Timestamp};
use serde::{Deserialize, Serialize};

/// A tenant: everything else belongs to one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    /// Optional cap on accepted recipients per UTC day across all of the
    /// workspace's SMTP accounts.
    pub daily_quota: Option<u64>,
    pub created_at: String,
    /// Send from any domain even once the workspace has a verified sending
    /// domain (by default, mail is then only accepted from verified ones).
    #[serde(default)]
    pub allow_unverified_senders: bool,
    /// What is added to its messages for their recipients.
    #[serde(default)]
    pub tracking: TrackingSettings,
    /// Why it may not send (its subscription is suspended or cancelled);
    /// `None` while it may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<String>,
}

/// A workspace's default for what its messages carry per recipient (a
/// message may say otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackingSettings {
    /// The open pixel in the HTML.
    #[serde(default)]
    pub opens: bool,
    /// Links in the HTML through the click endpoint.
    #[serde(default)]
    pub clicks: bool,
    /// RFC 8058 one-click unsubscribe headers.
    #[serde(default)]
    pub unsubscribe: bool,
}

/// SMTP AUTH credentials of one workspace; the username is unique across
/// the server (AUTH carries no workspace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpAccount {
    pub workspace_id: String,
    pub username: String,
    /// argon2 PHC string; the password is never stored.
    pub password_hash: String,
    /// Accepted recipients per UTC day.
    pub daily_quota: u64,
    pub created_at: String,
}

/// An API key of one workspace and platform, found by the SHA-256 of the
/// secret (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    /// Hex SHA-256 of the key: what a presented key is looked up by.
    #[serde(default)]
    pub digest: String,
    pub workspace_id: String,
    pub platform: Platform,
    /// The first characters of the key, so operators can tell keys apart.
    pub prefix: String,
    pub created_at: String,
    /// When it was last presented (to the minute: recorded at most once a
    /// minute).
    #[serde(default)]
    pub last_used_at_ms: Option<i64>,
}

/// A DKIM signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum DkimAlgorithm {
    /// rsa-sha256 with a 2048-bit key: what every verifier understands.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// ed25519-sha256 (RFC 8463): small keys, not yet verified everywhere.
    #[serde(rename = "ed25519")]
    Ed25519,
}

/// A sender domain of one workspace (unique across the server) with its
/// DKIM key. The private key must be usable to sign, so it cannot be
/// hashed: the data directory (or database) is the secret, as OpenDKIM's
/// key files are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderDomain {
    pub workspace_id: String,
    pub domain: String,
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    /// RSA: PKCS#1 DER; Ed25519: PKCS#8 DER; base64.
    pub private_key: String,
    /// The `p=` value of the DNS record.
    pub public_key: String,
    pub created_at: String,
    /// What the last verification found, record by record.
    #[serde(default)]
    pub checks: Vec<RecordCheck>,
    /// When DKIM, SPF and the return path last all checked out (`None`:
    /// unverified).
    #[serde(default)]
    pub verified_at_ms: Option<i64>,
    /// The domain's own host for tracking links (`click.example.com`), a
    /// CNAME to the host of `[tracking] base_url`; used once its `tracking`
    /// record checks out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_host: Option<String>,
    /// What mail from this domain carries per recipient, instead of the
    /// workspace's default (a message may still say otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking: Option<TrackingSettings>,
}

/// One DNS record a sending domain publishes, and what was found for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecordCheck {
    /// `dkim`, `spf`, `return_path`, `dmarc` or `tracking`.
    pub purpose: String,
    /// `TXT` or `CNAME`.
    #[serde(rename = "type")]
    pub record_type: String,
    pub name: String,
    /// What to publish (for SPF: the mechanism the record must include).
    pub value: String,
    pub verified: bool,
    /// What the last check found at the name, if anything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub found: Vec<String>,
}

/// An event in the log: the envelope exactly as it was serialized once
/// (what the API lists and a webhook POSTs), with what the log filters on.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Position in the log (increasing in the order events were stored).
    pub seq: u64,
    /// When it happened.
    pub at_ms: i64,
    /// `evt_…`
    pub id: String,
    pub workspace_id: String,
    /// `None` for a type this version does not know.
    pub event_type: Option<EventType>,
    /// The message it is about, if any (indexed).
    pub message_id: Option<String>,
    /// The envelope JSON.
    pub event: Box<serde_json::value::RawValue>,
}

impl StoredEvent {
    /// The envelope's bytes, as sent.
    pub fn body(&self) -> &[u8] {
        self.event.get().as_bytes()
    }

    pub fn timestamp(&self) -> Timestamp {
        Timestamp(self.at_ms)
    }
}

/// What an event listing filters on.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only these types (empty: all).
    pub types: Vec<EventType>,
    /// Only events of these products (empty: all).
    pub products: Vec<rackwave_core::Product>,
    pub message_id: Option<String>,
    /// Inclusive lower bound, ms since the epoch.
    pub since_ms: Option<i64>,
    /// Exclusive upper bound, ms since the epoch.
    pub until_ms: Option<i64>,
    /// Oldest first instead of newest first.
    pub ascending: bool,
}

impl EventQuery {
    /// Whether an event passes the filter.
    pub fn accepts(&self, e: &StoredEvent) -> bool {
        let t = e.event_type;
        (self.types.is_empty() || t.is_some_and(|t| self.types.contains(&t)))
            && (self.products.is_empty() || t.is_some_and(|t| self.products.contains(&t.product())))
            && self.since_ms.is_none_or(|s| e.at_ms >= s)
            && self.until_ms.is_none_or(|u| e.at_ms < u)
            && self
                .message_id
                .as_ref()
                .is_none_or(|m| e.message_id.as_deref() == Some(m.as_str()))
    }
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back as the cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A signing secret of a webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret {
    pub secret: String,
    pub created_at_ms: i64,
    /// When a rotated-out secret stops signing; `None` for the current one.
    pub expires_at_ms: Option<i64>,
}

/// A webhook endpoint of one workspace and platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    /// Whose: a workspace of the platforms, or a client of the portal
    /// (`cus_…`).
    pub workspace_id: String,
    /// The product whose API manages it (`migosmtp`, `telnxo`, or the
    /// portal's `rackwave`), which decides the events it sees.
    #[serde(alias = "platform")]
    pub product: Product,
    pub url: String,
    /// The types it wants; empty means every type its platform sees.
    pub event_types: Vec<EventType>,
    pub enabled: bool,
    pub description: Option<String>,
    /// The current secret first, then rotated-out ones.
    pub secrets: Vec<Secret>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl Endpoint {
    /// The secrets that sign at `now_ms`, current first.
    pub fn signing_secrets(&self, now_ms: i64) -> impl Iterator<Item = &str> {
        self.secrets
            .iter()
            .filter(move |s| s.expires_at_ms.is_none_or(|e| e > now_ms))
            .map(|s| s.secret.as_str())
    }

    /// Whether an event of this type goes to this endpoint.
    pub fn wants(&self, t: EventType) -> bool {
        self.enabled
            && t != EventType::Ping
            && t.visible_to(self.product)
            && (self.event_types.is_empty() || self.event_types.contains(&t))
    }

    /// When the oldest rotated-out secret still signing stops, if any.
    pub fn previous_secret_expires_at_ms(&self, now_ms: i64) -> Option<i64> {
        self.secrets
            .iter()
            .filter_map(|s| s.expires_at_ms)
            .filter(|e| *e > now_ms)
            .max()
    }
}

/// Where a webhook delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its first attempt.
    Pending,
    /// Failed so far; the next attempt is scheduled.
    Retrying,
    Succeeded,
    /// The final attempt failed (or the event is gone); only a manual
    /// resend tries again.
    Failed,
}

impl DeliveryState {
    pub fn parse(s: &str) -> Option<DeliveryState> {
        match s {
            "pending" => Some(DeliveryState::Pending),
            "retrying" => Some(DeliveryState::Retrying),
            "succeeded" => Some(DeliveryState::Succeeded),
            "failed" => Some(DeliveryState::Failed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::Failed => "failed",
        }
    }
}

/// One HTTP attempt of a webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Injected-clock time the attempt started.
    pub at_ms: i64,
    /// The response status, if a response came.
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    /// The first KiB of the response body (lossy UTF-8).
    pub response_body: Option<String>,
    /// What went wrong, if anything (connection refused, timeout, non-2xx…).
    pub error: Option<String>,
    pub success: bool,
    /// A resend asked for by hand (outside the schedule).
    pub manual: bool,
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub endpoint_id: String,
    pub workspace_id: String,
    pub event_id: String,
    pub event_type: EventType,
    /// Where the event sits in the log.
    pub event_seq: u64,
    pub state: DeliveryState,
    pub created_at_ms: i64,
    pub first_attempt_at_ms: Option<i64>,
    /// When the schedule makes the next attempt.
    pub next_attempt_at_ms: Option<i64>,
    /// When an attempt is due (the schedule's, or now for a resend): the
    /// outbox's due index has an entry exactly while this is set.
    pub due_at_ms: Option<i64>,
    /// A manual resend is waiting.
    pub resend: bool,
    pub attempts: Vec<Attempt>,
    /// Order of creation, given by the store (for listing).
    pub seq: u64,
    /// The node whose lease it is on (see `Writes::lease_deliveries`),
    /// until the attempt is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leased_by: Option<String>,
}

impl Delivery {
    /// Whether retention may delete it: created before the cutoff and
    /// finished (no attempt due, not retrying).
    pub fn past_retention(&self, cutoff_ms: i64) -> bool {
        self.created_at_ms < cutoff_ms
            && self.due_at_ms.is_none()
            && self.state != DeliveryState::Retrying
    }
}

/// A request made with an `Idempotency-Key`, remembered so a retry gets
/// the first answer instead of doing the work again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub workspace_id: String,
    /// The client's key (printable ASCII).
    pub key: String,
    /// Hex SHA-256 of what was asked (method, path and body): the same key
    /// with another request is a conflict.
    pub request: String,
    pub created_at_ms: i64,
    /// `None` while the first request is being carried out.
    pub response: Option<IdempotentResponse>,
}

/// The first answer to an idempotent request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotentResponse {
    pub status: u16,
    /// The JSON body, as sent.
    pub body: String,
}

/// Why an address is on a workspace's suppression list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionReason {
    /// A bounce said the mailbox or its domain does not exist.
    HardBounce,
    /// The recipient reported a message as spam.
    Complaint,
    /// The recipient unsubscribed.
    Unsubscribe,
    /// Added by the workspace (API, import) or an operator.
    Manual,
}

impl SuppressionReason {
    pub const ALL: [SuppressionReason; 4] = [
        SuppressionReason::HardBounce,
        SuppressionReason::Complaint,
        SuppressionReason::Unsubscribe,
        SuppressionReason::Manual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::HardBounce => "hard_bounce",
            SuppressionReason::Complaint => "complaint",
            SuppressionReason::Unsubscribe => "unsubscribe",
            SuppressionReason::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<SuppressionReason> {
        SuppressionReason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A client of the portal (Layer 1 of the seed): who signs up, logs in
/// and is billed; their workspaces on the platforms are provisioned by
/// their subscriptions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// `cus_` + 16 hex.
    pub id: String,
    /// Lowercase; unique across clients.
    pub email: String,
    /// argon2 PHC string; the password is never stored.
    pub password_hash: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    /// The billing address.
    pub address: String,
    /// GST state code of the billing address: the place of supply.
    pub state_code: String,
    /// When registered for GST (validated, of `state_code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gstin: Option<String>,
    pub created_at_ms: i64,
    /// Paise the client has to its credit (over-payments, credit notes):
    /// the next invoice uses it first.
    #[serde(default)]
    pub credit_paise: i64,
    /// Who receives the notifications besides the account's own email.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<Contact>,
    /// Sessions of an earlier epoch are over: a password change or reset
    /// moves it on, logging every session out.
    #[serde(default)]
    pub session_epoch: u64,
    /// When the last password reset link was asked for (they are rate
    /// limited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_requested_at_ms: Option<i64>,
}

/// A password reset link's token, stored as its SHA-256 only; used once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordReset {
    /// Hex SHA-256 of the token.
    pub digest: String,
    pub client_id: String,
    pub expires_at_ms: i64,
    /// The client's session epoch when it was asked for: a password
    /// change or reset since voids it.
    #[serde(default)]
    pub epoch: u64,
}

/// Someone at a client who receives its notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Lowercase.
    pub email: String,
    pub name: String,
    /// Invoices, payments and dunning.
    pub billing: bool,
    /// Service changes: activation, suspension, cancellation.
    pub technical: bool,
}

impl Contact {
    /// Most contacts a client may have.
    pub const MAX_PER_CLIENT: usize = 10;
}

/// A client's subscription to a platform's plan: what provisions and
/// pays for one of the client's workspaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// `sub_` + 16 hex.
    pub id: String,
    pub client_id: String,
    /// `migosmtp` or `telnxo`.
    pub platform: String,
    /// The plan's id in `[[billing.plans]]`.
    pub plan_id: String,
    pub status: SubscriptionStatus,
    /// The workspace it provisioned on the platform.
    pub workspace_id: String,
    /// The current period (the trial, or the paid month): its start and
    /// end (`expires_at`).
    pub period_start_ms: i64,
    pub period_end_ms: i64,
    pub created_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspension_reason: Option<String>,
    /// What a suspended subscription was, so reactivation restores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_from: Option<SubscriptionStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at_ms: Option<i64>,
    /// A downgrade waiting for the period's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_plan_id: Option<String>,
    /// The unpaid invoice a suspension is for: paying it ends the
    /// suspension (an operator's suspension has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_for: Option<String>,
}

/// Where a subscription is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Trial,
    /// Waiting for its first payment.
    Pending,
    Active,
    Suspended,
    Cancelled,
}

/// A GST tax invoice (or a bill of supply at 0 %): what a client owes for
/// a period of a subscription. Money is whole paise. The parties are
/// copied in when it is issued, so a later change of address or GSTIN
/// never rewrites an issued invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    /// `inv_` + 16 hex.
    pub id: String,
    /// `RW/26-27/00042`: consecutive per financial year.
    pub number: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    pub kind: InvoiceKind,
    pub status: InvoiceStatus,
    pub lines: Vec<InvoiceLine>,
    /// The taxable value: the sum of the lines.
    pub subtotal_paise: i64,
    pub cgst_paise: i64,
    pub sgst_paise: i64,
    pub igst_paise: i64,
    /// The rate applied, in basis points (1800 = 18 %).
    pub gst_rate_bp: u32,
    /// Subtotal plus every tax head.
    pub total_paise: i64,
    /// Taken from the client's credit when it was issued.
    pub credit_applied_paise: i64,
    /// Received in payments.
    pub paid_paise: i64,
    /// Taken off by credit notes while it was unpaid.
    pub credited_paise: i64,
    pub seller: Party,
    pub buyer: Party,
    /// State code of the place of supply (the buyer's).
    pub place_of_supply: String,
    pub issued_at_ms: i64,
    pub due_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overdue_since_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_at_ms: Option<i64>,
    /// Whether the reminder before the due date went out.
    #[serde(default)]
    pub reminded: bool,
    /// When the dunning next looks at it (a reminder, overdue, the
    /// suspension); none once it is settled or its steps are done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_action_ms: Option<i64>,
}

impl Invoice {
    /// What is still to be paid.
    pub fn balance_paise(&self) -> i64 {
        (self.total_paise - self.credit_applied_paise - self.paid_paise - self.credited_paise)
            .max(0)
    }
}

/// Why an invoice was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceKind {
    /// The first paid period (a paid start, or a trial's end).
    Activation,
    Renewal,
    /// The difference of an upgrade for the rest of the period.
    Proration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Open,
    Paid,
    Overdue,
    /// Cancelled by a credit note for its whole value before payment.
    Void,
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InvoiceLine {
    pub description: String,
    /// Services accounting code.
    pub sac: String,
    pub period_start_ms: i64,
    pub period_end_ms: i64,
    pub amount_paise: i64,
}

/// A party to an invoice as it was when the invoice was issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Party {
    pub name: String,
    pub address: String,
    pub state_code: String,
    pub gstin: Option<String>,
}

/// Money received against an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// `pay_` + 16 hex.
    pub id: String,
    pub invoice_id: String,
    pub client_id: String,
    pub amount_paise: i64,
    /// `operator` or `gateway`.
    pub method: String,
    /// The gateway's payment id or the operator's reference: unique, so a
    /// replayed callback is never counted twice.
    pub reference: String,
    pub received_at_ms: i64,
}

/// A credit note: value given back on an invoice, with its tax, numbered
/// in its own series. It settles what is unpaid first; the rest becomes
/// the client's credit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditNote {
    /// `cn_` + 16 hex.
    pub id: String,
    pub number: String,
    pub invoice_id: String,
    pub client_id: String,
    pub subtotal_paise: i64,
    pub cgst_paise: i64,
    pub sgst_paise: i64,
    pub igst_paise: i64,
    pub total_paise: i64,
    pub reason: String,
    pub issued_at_ms: i64,
}

/// A notification waiting to be mailed to a client's contacts: what
/// happened (`kind`: an event type, or `invoice_reminder`) and what the
/// template shows. Queued in the transaction of the change it tells of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub client_id: String,
    pub kind: String,
    pub data: serde_json::Value,
    pub created_at_ms: i64,
}

/// A client's login: a random token given once, stored as its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSession {
    /// Hex SHA-256 of the token.
    pub digest: String,
    pub client_id: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    /// The client's session epoch when it was opened.
    #[serde(default)]
    pub epoch: u64,
}

/// An address a workspace no longer sends to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    pub workspace_id: String,
    /// Lowercase.
    pub address: String,
    pub reason: SuppressionReason,
    /// The message that caused it (a bounce, a complaint, an unsubscribe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// What was said (the bounce reply, the report's source, a note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub created_at_ms: i64,
}

impl Suppression {
    /// The stored form of an address, the one every path looks it up by:
    /// trimmed and lowercase (large mailbox providers ignore case).
    pub fn address_key(address: &str) -> String {
        address.trim().to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_stored_before_products_still_read() {
        // Written when an endpoint named its platform.
        let old = r#"{"id":"ep_1","workspace_id":"ws_1","platform":"telnxo","url":"https://x.test/h",
            "event_types":[],"enabled":true,"description":null,"secrets":[],
            "created_at_ms":1,"updated_at_ms":2}"#;
        let ep: Endpoint = serde_json::from_str(old).unwrap();
        assert_eq!(ep.product, Product::Telnxo);
        let again: Endpoint = serde_json::from_str(&serde_json::to_string(&ep).unwrap()).unwrap();
        assert_eq!(again, ep);
    }
}
