//! Enqueue: a submission becomes one record per recipient, sharing one
//! body, with its indexes, counters and `email.queued` feed entries.

use rackwave_core::event::EmailEvent;
use tracing::warn;

use super::lanes::Entry;
use super::staged::Staged;
use super::DAY_MS;
use crate::error::SpoolError;
use crate::ids;
use crate::keys;
use crate::record::{status_index, Enqueued, MessageRecord, Status, StatusChange, Submission};

/// Rejects input that would break the key layout or make no sense.
fn validate(sub: &Submission) -> Result<(), SpoolError> {
    let nul = |what: &str, v: &str| {
        if v.contains('\0') {
            Err(SpoolError::Invalid(format!("{what} contains a NUL byte")))
        } else {
            Ok(())
        }
    };
    if sub.workspace_id.is_empty() {
        return Err(SpoolError::Invalid("workspace id is empty".into()));
    }
    if sub.recipients.is_empty() {
        return Err(SpoolError::Invalid("submission has no recipients".into()));
    }
    if sub.recipients.len() > u32::MAX as usize {
        return Err(SpoolError::Invalid("too many recipients".into()));
    }
    nul("workspace id", &sub.workspace_id)?;
    nul("submitter", &sub.submitter)?;
    for r in &sub.recipients {
        nul("recipient", r)?;
    }
    Ok(())
}

/// Stages a submission. `fresh_ids`: ids drawn now cannot be stored
/// already (the spool raised the id floor above its newest one when it
/// opened), so only a chosen queue id is looked up, by its body: a
/// submission still being delivered cannot be overwritten by a caller
/// reusing its id. Otherwise every id is checked against the tree, in case
/// the clock stepped back behind ids of a foreign shape.
pub(super) fn stage_enqueue(
    st: &mut Staged<'_>,
    sub: Submission,
    fresh_ids: bool,
) -> Result<Enqueued, SpoolError> {
    validate(&sub)?;
    let in_use = |st: &Staged<'_>, q: &str| -> Result<bool, SpoolError> {
        if fresh_ids {
            st.exists(&keys::body(q))
        } else {
            st.any_with_prefix(&keys::queue_prefix(q))
        }
    };
    let queue_id = if let Some(q) = sub.queue_id.clone() {
        if !ids::is_queue_id(&q) || in_use(st, &q)? {
            return Err(SpoolError::Invalid(format!(
                "queue id {q} is malformed or already in use"
            )));
        }
        q
    } else if fresh_ids {
        ids::new_queue_id()
    } else {
        loop {
            let q = ids::new_queue_id();
            if !in_use(st, &q)? {
                break q;
            }
            warn!(queue_id = %q, "queue id collision; drawing another");
        }
    };
    let n = sub.recipients.len() as u64;
    let at = sub.received_at_ms;
    let mut message_ids = Vec::with_capacity(sub.recipients.len());
    for (index, to) in sub.recipients.iter().enumerate() {
        let id = loop {
            let id = ids::new_message_id();
            if fresh_ids || !st.exists(&keys::record(&id))? {
                break id;
            }
            warn!(message_id = %id, "message id collision; drawing another");
        };
        let mut rec = MessageRecord {
            id: id.clone(),
            queue_id: queue_id.clone(),
            workspace_id: sub.workspace_id.clone(),
            submitter: sub.submitter.clone(),
            from: sub.mail_from.clone(),
            to: to.clone(),
            subject: sub.subject.clone(),
            status: Status::Queued,
            created_at_ms: at,
            next_attempt_at_ms: Some(at),
            attempts: 0,
            history: Vec::with_capacity(1),
            delivery_attempts: Vec::new(),
            tags: sub.tags.clone(),
            metadata: sub.metadata.clone(),
            return_path: sub.return_path.clone(),
        };
        st.history(
            &mut rec,
            StatusChange {
                status: Status::Queued,
                at_ms: at,
                event: EmailEvent::Queued,
            },
            None,
        )?;
        st.put_record(&rec)?;
        st.lane_add(&sub.workspace_id, at, &id, Entry::New)?;
        let suffix = keys::listing_suffix(at, &id);
        let mut k = keys::workspace_prefix(&sub.workspace_id);
        k.extend_from_slice(&suffix);
        st.put(k, Vec::new());
        let mut k = keys::recipient_prefix(&sub.workspace_id, &to.to_lowercase());
        k.extend_from_slice(&suffix);
        st.put(k, Vec::new());
        st.put(keys::queue_member(&queue_id, index as u32, &id), Vec::new());
        message_ids.push(id);
    }
    st.put_body(&queue_id, sub.body, n)?;
    let ck = keys::accepted(&sub.submitter, at.div_euclid(DAY_MS));
    let accepted = st.get_counter(&ck)?.unwrap_or(0).saturating_add(n);
    st.put(ck, keys::encode_u64(accepted).to_vec());
    st.changes.delta[status_index(Status::Queued)] += n as i64;
    Ok(Enqueued {
        queue_id,
        message_ids,
    })
}
