//! Data types stored in and returned by the spool.
//!
//! Records are stored as JSON (`serde_json`) because they are small, are read
//! far less often than written, and JSON keeps the on-disk format readable
//! and tolerant of added optional fields (`#[serde(default)]`) across
//! upgrades.

use rackwave_core::event::{EmailEvent, MessageRef};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Delivery state of one message (one recipient of a submission), as the
/// event model names it.
///
/// `Queued` and `Deferred` are *pending*: the message sits in the due index
/// and will be leased again. `Delivered` and `Bounced` are *final*: the
/// message leaves the due index for good and stops holding its body alive.
pub use rackwave_core::event::MessageStatus as Status;

/// The position of a status's counter in per-status arrays.
pub(crate) fn status_index(status: Status) -> usize {
    match status {
        Status::Queued => 0,
        Status::Deferred => 1,
        Status::Delivered => 2,
        Status::Bounced => 3,
    }
}

/// One entry of a message's status history; the history is what an API or
/// webhook consumer sees as the message timeline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StatusChange {
    /// The status after the entry (for `email.sent`, the status the message
    /// had before the settlement that follows it).
    pub status: Status,
    pub at_ms: i64,
    /// What happened, with the data only this step knows.
    pub event: EmailEvent,
}

/// What happened during one delivery attempt. Supplied by the delivery
/// engine when it settles a lease ([`Spool::settle`](crate::Spool::settle)),
/// stored verbatim in the record.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
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
    /// When the message data was handed to the remote server; `None` if
    /// the attempt never got that far (connection or envelope failure).
    /// When set, settling adds an `email.sent` history entry at this time
    /// before the settlement's own entry.
    #[serde(default)]
    pub sent_at_ms: Option<i64>,
    /// The outcome, which decides the settlement: `Delivered`,
    /// `Deferred` (due again at its `next_retry_at`) or `Bounced`.
    pub outcome: EmailEvent,
}

/// What the receiving side reported about a delivered message later, in a
/// delivery status notification (RFC 3464) sent to its return path: it
/// failed after all (`Bounced`: the message becomes bounced) or it is
/// delayed further down the line (`Deferred`: recorded, the message stays
/// delivered as far as we are concerned). See
/// [`Spool::report`](crate::Spool::report).
#[derive(Clone, Debug, PartialEq)]
pub struct LateReport {
    /// When the report arrived.
    pub at_ms: i64,
    pub outcome: EmailEvent,
    /// The report's diagnostic (the remote reply it quotes).
    pub reply: String,
}

/// One recipient of one submission: the unit of delivery, leasing and
/// listing. A submission with N recipients produces N records sharing one
/// body and one queue id.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MessageRecord {
    /// `msg_` + 16 lowercase hex, time-ordered.
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
    /// Labels and key/value pairs the sender gave the message; carried by
    /// every event of the message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// The host of the envelope sender's address when delivering (its
    /// VERP bounce address): the sending domain's return-path host when the
    /// domain is verified, so bounces align with it; `None`: the server's
    /// bounce domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_path: Option<String>,
}

impl MessageRecord {
    /// The message as events name it, with its current status.
    pub fn message_ref(&self) -> MessageRef {
        MessageRef {
            message_id: self.id.clone(),
            queue_id: self.queue_id.clone(),
            to: self.to.clone(),
            from: self.from.clone(),
            subject: self.subject.clone(),
            status: self.status,
            tags: self.tags.clone(),
            metadata: self.metadata.clone(),
        }
    }
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
    /// Stored with every record (see [`MessageRecord::tags`]).
    pub tags: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    /// See [`MessageRecord::return_path`].
    pub return_path: Option<String>,
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
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ListFilter {
    pub workspace_id: String,
    /// Recipient address, compared case-insensitively.
    pub to: Option<String>,
    pub status: Option<Status>,
    /// Envelope sender, compared case-insensitively.
    pub from: Option<String>,
    /// Messages sent with this tag.
    pub tag: Option<String>,
    /// Created at or after, before (ms): bounds of the index scan, so a
    /// window costs no more than its messages.
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

impl ListFilter {
    /// Whether a message of `status` from `from` with `tags` is listed
    /// (the recipient and time are the index's business).
    pub fn admits<T: AsRef<str>>(&self, status: Status, from: &str, tags: &[T]) -> bool {
        self.status.is_none_or(|s| s == status)
            && self
                .from
                .as_ref()
                .is_none_or(|f| f.eq_ignore_ascii_case(from))
            && self
                .tag
                .as_ref()
                .is_none_or(|t| tags.iter().any(|x| x.as_ref() == t))
    }
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
    /// Finished records deleted by retention.
    #[serde(default)]
    pub records_pruned: u64,
    /// Duration of the most recent flush (the body segment's fdatasync
    /// plus the index journal's, the two syncs of a group commit).
    pub last_flush_nanos: u64,
    /// Sum of all flush durations; divide by `flushes` for the mean.
    pub total_flush_nanos: u64,
}

/// One entry of the spool's change feed (see the crate docs, "Change
/// feed"): exactly one per history entry the spool writes, committed in the
/// same atomic batch as that history entry, with everything the event
/// needs.
///
/// `seq` is the entry's position in the feed: strictly increasing in commit
/// order, never reused (not even after trimming or a restart), and
/// contiguous as issued (gaps only appear where the consumer trimmed).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FeedEntry {
    pub seq: u64,
    pub workspace_id: String,
    /// The message, with its status as of this entry.
    pub message: MessageRef,
    /// The history entry's time.
    pub at_ms: i64,
    /// 0 for `email.queued`; for `email.sent` and settlements the 1-based
    /// number of the delivery attempt.
    pub attempt_number: u32,
    /// The history entry's event.
    pub event: EmailEvent,
    /// The remote reply, for settlements.
    #[serde(default)]
    pub reply: Option<String>,
}

/// A feed entry that could not be read: reported, with its place, so the
/// consumer can count it and go on instead of dropping it silently or
/// stopping the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableEntry {
    pub seq: u64,
    pub reason: String,
}
