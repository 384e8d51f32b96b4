//! Settlements (delivered, deferred, bounced: the attempt's outcome says
//! which), and the reports about delivered messages that arrive later.

use rackwave_core::event::EmailEvent;
use tracing::warn;

use super::lanes::Entry;
use super::staged::Staged;
use super::{decode_record, lock, Shared};
use crate::bodies::BodyRef;
use crate::error::SpoolError;
use crate::keys;
use crate::record::{
    status_index, DeliveryAttempt, LateReport, MessageRecord, Status, StatusChange,
};

/// Loads the record of a lease being settled, checking that
/// the lease is held (and not already used in this group) and that the
/// message is still pending.
fn leased_record(st: &Staged<'_>, shared: &Shared, id: &str) -> Result<MessageRecord, SpoolError> {
    if st.group.settled.contains(id) || !lock(&shared.leased).contains(id) {
        return Err(SpoolError::NotLeased(id.to_string()));
    }
    let key = keys::record(id);
    let raw = st
        .get(&key)?
        .ok_or_else(|| SpoolError::NotFound(id.to_string()))?;
    let rec = decode_record(&key, &raw)?;
    if rec.status.is_final() {
        return Err(SpoolError::AlreadyFinal(id.to_string(), rec.status));
    }
    Ok(rec)
}

/// Records an attempt and moves the message to the status its outcome
/// names: back into the due index at the deferral's `next_retry_at`, or
/// out of it for good (freeing the body after the submission's last
/// recipient, and indexing the record for retention).
pub(super) fn stage_settle(
    st: &mut Staged<'_>,
    shared: &Shared,
    id: &str,
    attempt: DeliveryAttempt,
) -> Result<MessageRecord, SpoolError> {
    let Some(new) = attempt.outcome.settles_as() else {
        return Err(SpoolError::Invalid(format!(
            "{} is not the outcome of a delivery attempt",
            attempt.outcome.event_type()
        )));
    };
    let mut rec = leased_record(st, shared, id)?;
    let old = rec.status;
    if let Some(due) = rec.next_attempt_at_ms {
        st.lane_remove(&rec.workspace_id, due, id)?;
    }
    rec.status = new;
    rec.attempts = rec.attempts.saturating_add(1);
    if let Some(sent_at) = attempt.sent_at_ms {
        let sent = StatusChange {
            status: old,
            at_ms: sent_at,
            event: EmailEvent::Sent,
        };
        st.history(&mut rec, sent, None)?;
    }
    let settled = StatusChange {
        status: new,
        at_ms: attempt.at_ms,
        event: attempt.outcome.clone(),
    };
    st.history(&mut rec, settled, Some(&attempt.reply))?;
    match &attempt.outcome {
        EmailEvent::Deferred(detail) => {
            let retry_at_ms = detail.next_retry_at.ms();
            rec.next_attempt_at_ms = Some(retry_at_ms);
            st.lane_add(&rec.workspace_id, retry_at_ms, id, Entry::Requeued)?;
        }
        _ => {
            rec.next_attempt_at_ms = None;
            settle_pending(st, &rec.queue_id)?;
            st.put(keys::finished(attempt.at_ms, id), Vec::new());
        }
    }
    rec.delivery_attempts.push(attempt);
    st.put_record(&rec)?;
    st.changes.delta[status_index(old)] -= 1;
    st.changes.delta[status_index(new)] += 1;
    Ok(rec)
}

/// Counts one message of a submission as final: the body goes with the
/// last one. The count is in the body's reference, or (written by an
/// earlier version) under `r/<queueid>`.
fn settle_pending(st: &mut Staged<'_>, queue_id: &str) -> Result<(), SpoolError> {
    let bk = keys::body(queue_id);
    let stored = st.get(&bk)?;
    let reference = stored.as_deref().and_then(BodyRef::decode);
    if let (Some(r), Some(n)) = (reference, stored.as_deref().and_then(BodyRef::pending_of)) {
        match n.saturating_sub(1) {
            0 => st.remove_body(queue_id, reference)?,
            left => st.put(bk, r.encode_with_pending(left)),
        }
        return Ok(());
    }
    let rk = keys::remaining(queue_id);
    let left = match st.get_counter(&rk)? {
        Some(n) => n.saturating_sub(1),
        None => {
            warn!(queue_id, "remaining counter missing; freeing body");
            0
        }
    };
    if left == 0 {
        st.remove(rk);
        st.remove_body(queue_id, reference)?;
    } else {
        st.put(rk, keys::encode_u64(left).to_vec());
    }
    Ok(())
}

/// Later reports a delivered message takes at most: a bounce ends them,
/// and a sender repeating delays cannot grow the record without bound.
pub(crate) const MAX_LATE_REPORTS: usize = 3;

/// Records a later report about a delivered message: a bounce makes it
/// bounced (it stays out of the due index and in the retention index), a
/// deferral is only recorded. The message's attempts are ours and stay as
/// they are.
pub(super) fn stage_report(
    st: &mut Staged<'_>,
    id: &str,
    report: LateReport,
) -> Result<MessageRecord, SpoolError> {
    let key = keys::record(id);
    let raw = st
        .get(&key)?
        .ok_or_else(|| SpoolError::NotFound(id.to_string()))?;
    let mut rec = decode_record(&key, &raw)?;
    if rec.status != Status::Delivered {
        return Err(SpoolError::Invalid(format!(
            "{id} is {}: only a delivered message takes a later report",
            rec.status
        )));
    }
    let late = rec
        .history
        .iter()
        .rev()
        .take_while(|h| h.event != EmailEvent::Delivered)
        .count();
    if late >= MAX_LATE_REPORTS {
        return Err(SpoolError::Invalid(format!(
            "{id} already has {late} later reports"
        )));
    }
    let new = match &report.outcome {
        EmailEvent::Bounced(_) => Status::Bounced,
        EmailEvent::Deferred(_) => Status::Delivered,
        other => {
            return Err(SpoolError::Invalid(format!(
                "{} is not a later report",
                other.event_type()
            )))
        }
    };
    let change = StatusChange {
        status: new,
        at_ms: report.at_ms,
        event: report.outcome,
    };
    st.history(&mut rec, change, Some(&report.reply))?;
    rec.status = new;
    st.put_record(&rec)?;
    st.changes.delta[status_index(Status::Delivered)] -= 1;
    st.changes.delta[status_index(new)] += 1;
    Ok(rec)
}
