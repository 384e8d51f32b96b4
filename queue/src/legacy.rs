//! Records and feed entries written by earlier versions, read back in
//! today's shapes.
//!
//! Before the typed event model, a history entry, a delivery attempt and a
//! feed entry named their event as a string (`"email.deferred"`) and kept
//! its data as a JSON document inside a string (`detail`). Messages queued
//! by such a version are still in the spool after an upgrade, so every
//! decode that fails in today's shape is tried here before it counts as
//! corrupt. The detail documents used the field names of today's
//! [`DeferredDetail`] and [`BouncedDetail`], so they parse into them.

use rackwave_core::event::{BouncedDetail, DeferredDetail, EmailEvent, MessageRef};
use serde::Deserialize;

use crate::record::{DeliveryAttempt, FeedEntry, MessageRecord, Status, StatusChange};

#[derive(Deserialize)]
struct OldChange {
    status: Status,
    at_ms: i64,
    event: String,
    #[serde(default)]
    detail: Option<String>,
}

#[derive(Deserialize)]
struct OldAttempt {
    at_ms: i64,
    #[serde(default)]
    remote_host: Option<String>,
    #[serde(default)]
    remote_ip: Option<String>,
    #[serde(default)]
    tls: bool,
    reply: String,
    event: String,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    sent_at_ms: Option<i64>,
}

#[derive(Deserialize)]
struct OldRecord {
    id: String,
    queue_id: String,
    workspace_id: String,
    submitter: String,
    from: String,
    to: String,
    #[serde(default)]
    subject: Option<String>,
    status: Status,
    created_at_ms: i64,
    next_attempt_at_ms: Option<i64>,
    attempts: u32,
    history: Vec<OldChange>,
    #[serde(default)]
    delivery_attempts: Vec<OldAttempt>,
}

#[derive(Deserialize)]
struct OldFeedEntry {
    message_id: String,
    queue_id: String,
    workspace_id: String,
    event: String,
    status: Status,
    at_ms: i64,
    to: String,
    from: String,
    #[serde(default)]
    subject: Option<String>,
    attempt_number: u32,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    reply: Option<String>,
}

/// The typed event of an old (name, detail) pair. A settlement event other
/// than the three the old delivery engine wrote is taken by the status it
/// settled to.
fn event(name: &str, detail: Option<&str>, status: Status) -> Result<EmailEvent, String> {
    let deferred = || -> Result<EmailEvent, String> {
        let d: DeferredDetail = parse(detail)?;
        Ok(EmailEvent::Deferred(d))
    };
    let bounced = || -> Result<EmailEvent, String> {
        let d: BouncedDetail = parse(detail)?;
        Ok(EmailEvent::Bounced(d))
    };
    match (name, status) {
        ("email.queued", _) => Ok(EmailEvent::Queued),
        ("email.sent", _) => Ok(EmailEvent::Sent),
        ("email.delivered", _) | (_, Status::Delivered) => Ok(EmailEvent::Delivered),
        ("email.deferred", _) | (_, Status::Deferred) => deferred(),
        ("email.bounced", _) | (_, Status::Bounced) => bounced(),
        (other, _) => Err(format!("unknown event {other:?}")),
    }
}

/// An old detail document; a missing or unreadable one gives the defaults
/// (the event itself is kept).
fn parse<T: for<'de> Deserialize<'de> + Default>(detail: Option<&str>) -> Result<T, String> {
    Ok(detail
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default())
}

/// A record in the shape of an earlier version.
pub(crate) fn record(raw: &[u8]) -> Result<MessageRecord, String> {
    let old: OldRecord = serde_json::from_slice(raw).map_err(|e| e.to_string())?;
    let history = old
        .history
        .iter()
        .map(|h| {
            Ok(StatusChange {
                status: h.status,
                at_ms: h.at_ms,
                event: event(&h.event, h.detail.as_deref(), h.status)?,
            })
        })
        .collect::<Result<_, String>>()?;
    // An attempt's status is that of its settlement entry in the history.
    let settled: Vec<Status> = old
        .history
        .iter()
        .filter(|h| !matches!(h.event.as_str(), "email.queued" | "email.sent"))
        .map(|h| h.status)
        .collect();
    let delivery_attempts = old
        .delivery_attempts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let status = settled.get(i).copied().unwrap_or(old.status);
            Ok(DeliveryAttempt {
                at_ms: a.at_ms,
                remote_host: a.remote_host.clone(),
                remote_ip: a.remote_ip.clone(),
                tls: a.tls,
                reply: a.reply.clone(),
                sent_at_ms: a.sent_at_ms,
                outcome: event(&a.event, a.detail.as_deref(), status)?,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(MessageRecord {
        id: old.id,
        queue_id: old.queue_id,
        workspace_id: old.workspace_id,
        submitter: old.submitter,
        from: old.from,
        to: old.to,
        subject: old.subject,
        status: old.status,
        created_at_ms: old.created_at_ms,
        next_attempt_at_ms: old.next_attempt_at_ms,
        attempts: old.attempts,
        history,
        delivery_attempts,
        tags: Vec::new(),
        metadata: Default::default(),
        return_path: None,
    })
}

/// A feed entry in the shape of an earlier version.
pub(crate) fn feed_entry(seq: u64, raw: &[u8]) -> Result<FeedEntry, String> {
    let old: OldFeedEntry = serde_json::from_slice(raw).map_err(|e| e.to_string())?;
    Ok(FeedEntry {
        seq,
        event: event(&old.event, old.detail.as_deref(), old.status)?,
        message: MessageRef {
            message_id: old.message_id,
            queue_id: old.queue_id,
            to: old.to,
            from: old.from,
            subject: old.subject,
            status: old.status,
            ..Default::default()
        },
        workspace_id: old.workspace_id,
        at_ms: old.at_ms,
        attempt_number: old.attempt_number,
        reply: old.reply,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rackwave_core::event::BounceType;

    #[test]
    fn a_record_of_the_previous_version_reads_with_typed_events() {
        let old = r#"{"id":"msg_0123456789abcdef","queue_id":"0123456789ABCDEF","workspace_id":"ws_a",
            "submitter":"app","from":"a@b.test","to":"c@d.test","subject":"Hi","status":"deferred",
            "created_at_ms":1,"next_attempt_at_ms":300001,"attempts":1,
            "history":[{"status":"queued","at_ms":1,"event":"email.queued","detail":null},
                       {"status":"queued","at_ms":5,"event":"email.sent","detail":null},
                       {"status":"deferred","at_ms":6,"event":"email.deferred",
                        "detail":"{\"defer_reason\":\"greylisted\",\"defer_code\":\"4.7.1\",\"defer_type\":\"temporary_failure\",\"next_retry_at\":\"1970-01-01T00:05:00Z\",\"attempt_number\":1,\"classified_by\":\"Greylisting\"}"}],
            "delivery_attempts":[{"at_ms":6,"remote_host":"mx","remote_ip":"192.0.2.1","tls":false,
                "reply":"451 4.7.1 greylisted","event":"email.deferred","detail":null}]}"#;
        let r = record(old.as_bytes()).unwrap();
        assert_eq!(r.history[0].event, EmailEvent::Queued);
        assert_eq!(r.history[1].event, EmailEvent::Sent);
        match &r.history[2].event {
            EmailEvent::Deferred(d) => {
                assert_eq!(d.defer_reason, "greylisted");
                assert_eq!(d.defer_type, BounceType::TemporaryFailure);
                assert_eq!(d.next_retry_at.ms(), 300_000);
            }
            other => panic!("{other:?}"),
        }
        // No detail in the attempt: the event is kept, with defaults.
        assert!(matches!(
            r.delivery_attempts[0].outcome,
            EmailEvent::Deferred(_)
        ));
        assert_eq!(r.delivery_attempts[0].sent_at_ms, None);
    }

    #[test]
    fn an_old_feed_entry_reads_with_a_typed_event() {
        let old = r#"{"seq":9,"message_id":"msg_1","queue_id":"Q","workspace_id":"ws_a","event":"email.bounced",
            "status":"bounced","at_ms":7,"to":"c@d.test","from":"a@b.test","subject":null,"attempt_number":1,
            "detail":"{\"bounce_type\":\"invalid_recipient\",\"bounce_code\":\"5.1.1\",\"bounce_reason\":\"no such user\",\"classified_by\":\"x\"}",
            "reply":"550 5.1.1 no such user"}"#;
        let e = feed_entry(9, old.as_bytes()).unwrap();
        assert_eq!(e.seq, 9);
        match e.event {
            EmailEvent::Bounced(d) => assert_eq!(d.bounce_type, BounceType::InvalidRecipient),
            other => panic!("{other:?}"),
        }
        assert_eq!(e.message.message_id, "msg_1");
        assert!(feed_entry(1, b"{\"event\":\"nonsense\"}").is_err());
    }
}
