//! What the spool's test files share.
#![allow(unreachable_pub, dead_code)]

use std::path::Path;

use rackwave_core::event::{BounceType, BouncedDetail, DeferredDetail, EmailEvent};
use rackwave_core::Timestamp;
use rackwave_queue::{DeliveryAttempt, MessageRecord, Spool, SpoolError, Submission};

/// Opens the sled database at `path` as the server does (the store
/// crate's [`Database`](rackwave_store::Database), which waits out a lock
/// still held by handles just dropped).
pub fn open_db(path: &Path) -> sled::Db {
    rackwave_store::Database::open(path, 64)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
        .sled()
        .clone()
}

/// A submission from alice to `rcpts` in workspace `ws`, received at `at`,
/// with a small fixed body.
pub fn submission(ws: &str, rcpts: &[&str], at: i64) -> Submission {
    Submission {
        queue_id: None,
        workspace_id: ws.into(),
        submitter: "alice".into(),
        mail_from: "alice@example.com".into(),
        recipients: rcpts.iter().map(|r| r.to_string()).collect(),
        subject: Some("hello".into()),
        body: b"Subject: hello\r\n\r\nhi\r\n".to_vec(),
        received_at_ms: at,
        tags: Vec::new(),
        metadata: Default::default(),
        return_path: None,
    }
}

/// The three settlements by name: `Spool::settle` with the outcome set.
#[allow(dead_code, async_fn_in_trait)]
pub trait Settle {
    async fn delivered(&self, id: &str, a: DeliveryAttempt) -> Result<MessageRecord, SpoolError>;
    async fn defer(
        &self,
        id: &str,
        retry_at_ms: i64,
        a: DeliveryAttempt,
    ) -> Result<MessageRecord, SpoolError>;
    async fn bounce(&self, id: &str, a: DeliveryAttempt) -> Result<MessageRecord, SpoolError>;
}

impl Settle for Spool {
    async fn delivered(&self, id: &str, a: DeliveryAttempt) -> Result<MessageRecord, SpoolError> {
        self.settle(id, outcome(a, EmailEvent::Delivered)).await
    }

    async fn defer(
        &self,
        id: &str,
        retry_at_ms: i64,
        a: DeliveryAttempt,
    ) -> Result<MessageRecord, SpoolError> {
        let detail = DeferredDetail {
            defer_reason: a.reply.clone(),
            defer_code: "4.0.0".into(),
            defer_type: BounceType::TemporaryFailure,
            next_retry_at: Timestamp(retry_at_ms),
            classified_by: "test".into(),
        };
        self.settle(id, outcome(a, EmailEvent::Deferred(detail)))
            .await
    }

    async fn bounce(&self, id: &str, a: DeliveryAttempt) -> Result<MessageRecord, SpoolError> {
        let detail = BouncedDetail {
            bounce_type: BounceType::InvalidRecipient,
            bounce_code: "5.1.1".into(),
            bounce_reason: a.reply.clone(),
            classified_by: "test".into(),
        };
        self.settle(id, outcome(a, EmailEvent::Bounced(detail)))
            .await
    }
}

fn outcome(mut a: DeliveryAttempt, outcome: EmailEvent) -> DeliveryAttempt {
    a.outcome = outcome;
    a
}

/// An attempt at `at_ms` (its outcome is set by the [`Settle`] method
/// used).
#[allow(dead_code)]
pub fn attempt_at(at_ms: i64) -> DeliveryAttempt {
    DeliveryAttempt {
        at_ms,
        remote_host: Some("mx.example.net".into()),
        remote_ip: Some("192.0.2.1".into()),
        tls: true,
        reply: "250 ok".into(),
        sent_at_ms: None,
        outcome: EmailEvent::Delivered,
    }
}
