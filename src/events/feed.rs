//! The spool's change feed turned into events. Each entry the spool writes
//! (in the same atomic batch as the message's history) is read after a
//! durable cursor; its event, one delivery per matching endpoint (the
//! outbox) and the new cursor are written in ONE batch and flushed, and
//! only then is the spool's feed trimmed. A crash at any point therefore
//! neither loses an event nor stores one twice.

use std::collections::HashMap;
use std::time::Duration;

use rackwave_queue::FeedEntry;
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use super::endpoints::Endpoint;
use super::model::{EventType, Product};
use super::{EventsError, Inner};
use crate::clock::rfc3339;

const CURSOR: &[u8] = b"c/feed";
/// Feed entries consumed per batch.
const BATCH: usize = 512;

pub fn cursor(tree: &sled::Tree) -> Result<u64, EventsError> {
    Ok(tree
        .get(CURSOR)?
        .and_then(|v| v.as_ref().try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0))
}

/// The data of an email event from its feed entry: the seed's fields, with
/// bounce and deferral details taken from the attempt's detail JSON, plus
/// `queue_id`, `status` and the remote reply when there is one.
pub fn email_data(entry: &FeedEntry, ty: EventType) -> Value {
    let detail: Map<String, Value> = entry
        .detail
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default();
    let at = rfc3339(entry.at_ms);
    let from_detail = |key: &str, default: Value| detail.get(key).cloned().unwrap_or(default);
    let mut data = json!({
        "message_id": entry.message_id,
        "queue_id": entry.queue_id,
        "to": entry.to,
        "from": entry.from,
        "subject": entry.subject,
        "status": entry.status.as_str(),
    });
    let obj = data.as_object_mut().expect("an object");
    match ty {
        EventType::EmailQueued => {
            obj.insert("queued_at".into(), json!(at));
        }
        EventType::EmailSent => {
            obj.insert("sent_at".into(), json!(at));
            obj.insert("attempt_number".into(), json!(entry.attempt_number));
        }
        EventType::EmailDelivered => {
            obj.insert(
                "delivered_at".into(),
                from_detail("delivered_at", json!(at)),
            );
            obj.insert("attempt_number".into(), json!(entry.attempt_number));
        }
        EventType::EmailBounced => {
            obj.insert(
                "bounce_type".into(),
                from_detail("bounce_type", json!("other")),
            );
            obj.insert(
                "bounce_code".into(),
                from_detail(
                    "bounce_code",
                    json!(entry.reply.as_deref().and_then(|r| r.get(..3))),
                ),
            );
            obj.insert(
                "bounce_reason".into(),
                from_detail("bounce_reason", json!(entry.reply)),
            );
            obj.insert("bounced_at".into(), json!(at));
            obj.insert("attempt_number".into(), json!(entry.attempt_number));
        }
        EventType::EmailDeferred => {
            obj.insert(
                "defer_reason".into(),
                from_detail("defer_reason", json!(entry.reply)),
            );
            obj.insert(
                "next_retry_at".into(),
                from_detail("next_retry_at", Value::Null),
            );
            obj.insert(
                "attempt_number".into(),
                from_detail("attempt_number", json!(entry.attempt_number)),
            );
            for extra in ["defer_code", "defer_type"] {
                if let Some(v) = detail.get(extra) {
                    obj.insert(extra.into(), v.clone());
                }
            }
            obj.insert("deferred_at".into(), json!(at));
        }
        _ => {}
    }
    if let Some(reply) = &entry.reply {
        obj.insert("smtp_response".into(), json!(reply));
    }
    data
}

/// Consumes what the feed has; returns how many entries it handled.
pub(crate) async fn consume(inner: &Inner) -> Result<usize, EventsError> {
    let after = cursor(&inner.tree)?;
    let entries = inner.spool.feed(after, BATCH)?;
    let Some(last) = entries.last().map(|e| e.seq) else {
        return Ok(0);
    };
    let mut batch = sled::Batch::default();
    let mut endpoints: HashMap<String, Vec<Endpoint>> = HashMap::new();
    let now = inner.clock.now_ms();
    let mut staged = 0;
    for entry in &entries {
        let Some(ty) = EventType::parse(&entry.event).filter(|t| t.product() == Product::Migosmtp)
        else {
            tracing::debug!(event = %entry.event, seq = entry.seq, "feed entry without a webhook event");
            continue;
        };
        if !endpoints.contains_key(&entry.workspace_id) {
            let eps = inner.endpoints.of_workspace(&entry.workspace_id)?;
            endpoints.insert(entry.workspace_id.clone(), eps);
        }
        let eps = &endpoints[&entry.workspace_id];
        let targets: Vec<&Endpoint> = eps.iter().filter(|e| e.wants(ty)).collect();
        inner.stage_event(
            &mut batch,
            &entry.workspace_id,
            Product::Migosmtp,
            ty,
            email_data(entry, ty),
            entry.at_ms,
            now,
            &targets,
        )?;
        staged += 1;
    }
    batch.insert(CURSOR, &last.to_be_bytes());
    inner.tree.apply_batch(batch)?;
    crate::storage::flush(&inner.db).await?;
    inner.spool.trim_feed(last).await?;
    if staged > 0 {
        inner.emitter.kick();
    }
    Ok(entries.len())
}

/// Follows the feed until `shutdown` turns true.
pub(crate) async fn run(inner: std::sync::Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    let notify = inner.spool.feed_notify();
    let poll = Duration::from_millis(inner.config.poll_interval_ms.max(1));
    loop {
        if *shutdown.borrow() {
            return;
        }
        let notified = notify.notified();
        match consume(&inner).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "webhook events: reading the spool feed failed"),
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(poll) => {}
            _ = shutdown.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rackwave_queue::Status;

    fn entry(event: &str, detail: Option<Value>) -> FeedEntry {
        FeedEntry {
            seq: 7,
            message_id: "msg_1".into(),
            queue_id: "q1".into(),
            workspace_id: "ws_a".into(),
            event: event.into(),
            status: Status::Deferred,
            at_ms: 0,
            to: "rcpt@example.com".into(),
            from: "app@example.org".into(),
            subject: Some("Hi".into()),
            attempt_number: 2,
            detail: detail.map(|d| d.to_string()),
            reply: Some("451 4.7.1 try later".into()),
        }
    }

    #[test]
    fn every_email_event_carries_the_seed_fields() {
        let cases = [
            ("email.queued", None),
            ("email.sent", None),
            (
                "email.delivered",
                Some(json!({"delivered_at": "1970-01-01T00:00:01Z"})),
            ),
            (
                "email.bounced",
                Some(
                    json!({"bounce_type": "invalid_recipient", "bounce_code": "5.1.1", "bounce_reason": "no such user"}),
                ),
            ),
            (
                "email.deferred",
                Some(
                    json!({"defer_reason": "greylisted", "next_retry_at": "1970-01-01T00:05:00Z", "attempt_number": 2}),
                ),
            ),
        ];
        for (event, detail) in cases {
            let ty = EventType::parse(event).unwrap();
            let data = email_data(&entry(event, detail), ty);
            assert!(ty.missing_fields(&data).is_empty(), "{event}: {data}");
        }
        let bounced = email_data(
            &entry(
                "email.bounced",
                Some(
                    json!({"bounce_type": "invalid_recipient", "bounce_code": "5.1.1", "bounce_reason": "no such user"}),
                ),
            ),
            EventType::EmailBounced,
        );
        assert_eq!(bounced["bounce_code"], "5.1.1");
        assert_eq!(bounced["bounce_type"], "invalid_recipient");
        let deferred = email_data(
            &entry(
                "email.deferred",
                Some(
                    json!({"defer_reason": "greylisted", "next_retry_at": "x", "attempt_number": 2}),
                ),
            ),
            EventType::EmailDeferred,
        );
        assert_eq!(deferred["defer_reason"], "greylisted");
        assert_eq!(deferred["attempt_number"], 2);
    }
}
