//! Data types stored in and returned by the spool.
//!
//! Records are stored as JSON (`serde_json`) because they are small, are read
//! far less often than written, and JSON keeps the on-disk format readable
//! and tolerant of added optional fields (`#[serde(default)]`) across
//! upgrades.

use serde::{Deserialize, Serialize};

/// Delivery state of one message (one recipient of a submission).
///
/// `Queued` and `Deferred` are *pending*: the message sits in the due index
/// and will be leased again. `Delivered` and `Bounced` are *final*: the
/// message leaves the due index for good and stops holding its body alive.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Deferred,
    Delivered,
    Bounced,
}

impl Status {
    /// All statuses, in counter order.
    pub const ALL: [Status; 4] = [
        Status::Queued,
        Status::Deferred,
        Status::Delivered,
        Status::Bounced,
    ];

    /// The lowercase name used in JSON, in storage keys and in APIs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Deferred => "deferred",
            Status::Delivered => "delivered",
            Status::Bounced => "bounced",
        }
    }

    /// Whether no further delivery attempt will be made.
    pub fn is_final(&self) -> bool {
        matches!(self, Status::Delivered | Status::Bounced)
    }

    /// Event name recorded in the history when a message enters this status
    /// and the caller did not supply one.
    pub fn default_event(&self) -> &'static str {
        match self {
            Status::Queued => "email.queued",
            Status::Deferred => "email.deferred",
            Status::Delivered => "email.delivered",
            Status::Bounced => "email.bounced",
        }
    }

    pub(crate) fn index(&self) -> usize {
        match self {
            Status::Queued => 0,
            Status::Deferred => 1,
            Status::Delivered => 2,
            Status::Bounced => 3,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown status {s:?}"))
    }
}

/// One entry of a message's status history; the history is what an API or
/// webhook consumer sees as the message timeline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StatusChange {
    pub status: Status,
    pub at_ms: i64,
    /// Event name, e.g. `email.queued`, `email.deferred`, `email.delivered`.
    pub event: String,
    #[serde(default)]
    pub detail: Option<String>,
}

/// History event recorded when the message data was handed to the remote
/// server, i.e. the remote SMTP server received the complete message (the
/// end of DATA / the last BDAT chunk was transmitted), whatever it then
/// replied. It is written by a settlement whose
/// [`DeliveryAttempt::sent_at_ms`] is set, just before that settlement's own
/// history entry, and carries the status the message had before the
/// settlement (e.g. `Queued` or `Deferred`).
pub const SENT_EVENT: &str = "email.sent";

/// What happened during one delivery attempt. Supplied by the delivery
/// engine when it settles a lease, stored verbatim in the record.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct DeliveryAttempt {
    pub at_ms: i64,
    #[serde(default)]
    pub remote_host: Option<String>,
    #[serde(default)]
    pub remote_ip: Option<String>,
    #[serde(default)]
    pub tls: bool,
    /// The remote SMTP reply (or a local error description).
    pub reply: String,
    /// Event name for the history entry, e.g. `email.delivered`. If empty,
    /// the default event of the resulting status is used.
    pub event: String,
    #[serde(default)]
    pub detail: Option<String>,
    /// When the message data was handed to the remote server (see
    /// [`SENT_EVENT`]); `None` if the attempt never got that far (connection
    /// or envelope failure). When set, settling adds an `email.sent` history
    /// entry at this time before the settlement's own entry.
    #[serde(default)]
    pub sent_at_ms: Option<i64>,
}

/// One recipient of one submission: the unit of delivery, leasing and
/// listing. A submission with N recipients produces N records sharing one
/// body and one queue id.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MessageRecord {
    /// `msg_` + 16 lowercase hex, random.
    pub id: String,
    /// The submission this message belongs to (16 uppercase hex).
    pub queue_id: String,
    pub workspace_id: String,
    /// Who submitted it (the authenticated SMTP user / API key owner).
    pub submitter: String,
    /// Envelope sender.
    pub from: String,
    /// Envelope recipient, as given at submission.
    pub to: String,
    #[serde(default)]
    pub subject: Option<String>,
    pub status: Status,
    pub created_at_ms: i64,
    /// When the next attempt is due; `None` once the status is final.
    pub next_attempt_at_ms: Option<i64>,
    /// Number of settled delivery attempts.
    pub attempts: u32,
    pub history: Vec<StatusChange>,
    #[serde(default)]
    pub delivery_attempts: Vec<DeliveryAttempt>,
}

/// A message accepted over SMTP (or the API), as handed to
/// [`Spool::enqueue`](crate::Spool::enqueue).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Submission {
    /// The queue id to use, drawn beforehand with [`new_queue_id`](crate::new_queue_id)
    /// so it can be written into a `Received:` header before the message is
    /// stored; `None` lets the spool draw one. A chosen id already in use
    /// (or not of the queue id shape) is refused as `Invalid`.
    pub queue_id: Option<String>,
    pub workspace_id: String,
    pub submitter: String,
    pub mail_from: String,
    /// Envelope recipients; must not be empty. Each becomes one record.
    pub recipients: Vec<String>,
    pub subject: Option<String>,
    /// The complete message (headers and body) as received.
    pub body: Vec<u8>,
    /// Becomes the records' creation time, their first due time and the
    /// day for the per-submitter accepted counter.
    pub received_at_ms: i64,
}

/// The result of a durable enqueue.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Enqueued {
    /// Reported to the SMTP client as `queued as <queue_id>`.
    pub queue_id: String,
    /// One per recipient, in recipient order.
    pub message_ids: Vec<String>,
}

/// Filter for [`Spool::list`](crate::Spool::list). The workspace is
/// mandatory because listing is always tenant-scoped; the indexes are laid
/// out per workspace so one tenant's volume never slows another's listing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ListFilter {
    pub workspace_id: String,
    /// Recipient address, compared case-insensitively.
    pub to: Option<String>,
    pub status: Option<Status>,
}

/// One page of a listing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Page {
    /// Newest first. With a status filter a page may hold fewer than `limit`
    /// messages (even none) while `next_cursor` is still set, because each
    /// call scans a bounded number of index entries.
    pub messages: Vec<MessageRecord>,
    /// Pass back to continue; `None` when the listing is exhausted.
    pub next_cursor: Option<String>,
}

/// Number of messages per status.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub queued: u64,
    pub deferred: u64,
    pub delivered: u64,
    pub bounced: u64,
}

impl StatusCounts {
    pub fn get(&self, status: Status) -> u64 {
        match status {
            Status::Queued => self.queued,
            Status::Deferred => self.deferred,
            Status::Delivered => self.delivered,
            Status::Bounced => self.bounced,
        }
    }

    pub(crate) fn get_mut(&mut self, status: Status) -> &mut u64 {
        match status {
            Status::Queued => &mut self.queued,
            Status::Deferred => &mut self.deferred,
            Status::Delivered => &mut self.delivered,
            Status::Bounced => &mut self.bounced,
        }
    }

    /// Messages still waiting for delivery (queued + deferred).
    pub fn pending(&self) -> u64 {
        self.queued + self.deferred
    }

    pub fn total(&self) -> u64 {
        self.queued + self.deferred + self.delivered + self.bounced
    }
}

/// Process-local write-path statistics (reset at open), for metrics such as
/// "fsyncs per accepted message" and flush latency.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// `db.flush()` (fsync) calls made by the writer.
    pub flushes: u64,
    /// Atomic batches applied (one per group). Equals `flushes` except for
    /// groups made only of feed trims, which are applied without a flush.
    pub commits: u64,
    /// Recipients (message records) enqueued.
    pub records_enqueued: u64,
    /// Submissions enqueued.
    pub submissions: u64,
    /// Settlements (delivered / deferred / bounced) committed.
    pub settlements: u64,
    /// Duration of the most recent flush (the body segment's fdatasync
    /// plus sled's flush, the two fsyncs of a group commit).
    pub last_flush_nanos: u64,
    /// Sum of all flush durations; divide by `flushes` for the mean.
    pub total_flush_nanos: u64,
}

/// One entry of the spool's change feed (see the crate docs, "Change
/// feed"): exactly one per history entry the spool writes, committed in the
/// same atomic batch as that history entry.
///
/// `seq` is the entry's position in the feed: strictly increasing in commit
/// order, never reused (not even after trimming or a restart), and
/// contiguous as issued (gaps only appear where the consumer trimmed).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FeedEntry {
    pub seq: u64,
    pub message_id: String,
    pub queue_id: String,
    pub workspace_id: String,
    /// The history entry's event, e.g. `email.queued`, [`SENT_EVENT`],
    /// `email.deferred`, `email.delivered`, `email.bounced` or a custom
    /// settlement event.
    pub event: String,
    /// The history entry's status (for [`SENT_EVENT`] the status the
    /// message had before the settlement, as in the history).
    pub status: Status,
    /// The history entry's time.
    pub at_ms: i64,
    /// Envelope recipient.
    pub to: String,
    /// Envelope sender.
    pub from: String,
    #[serde(default)]
    pub subject: Option<String>,
    /// 0 for `email.queued`; for [`SENT_EVENT`] and settlement events the
    /// 1-based number of the delivery attempt (the record's `attempts`
    /// after the settlement).
    pub attempt_number: u32,
    /// The DeliveryAttempt's detail (JSON text) for settlement events,
    /// None for email.queued and email.sent
    #[serde(default)]
    pub detail: Option<String>,
    /// Remote reply (raw) for settlement events, None for email.queued and
    /// email.sent.
    #[serde(default)]
    pub reply: Option<String>,
}
