//! What carriers report after a send, or unprompted: applied in batches,
//! each batch one durable transaction with its events.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rackwave_core::event::{
    EventData, SmsDelivered, SmsInbound as SmsInboundEvent, VoiceAnswered, VoiceCompleted,
    VoiceNoAnswer, WhatsappButtonReply, WhatsappDelivered, WhatsappInbound as WhatsappInboundEvent,
    WhatsappRead,
};
use rackwave_core::Timestamp;
use rackwave_store::{
    Channel, CommStatus, Direction, ParkedReport, TelnxoMessage, Txn, WhatsappPart,
};
use tokio::sync::{mpsc, watch};

use crate::connectors::{
    CallEvent, CallReport, Handed, Report, SmsInbound, SmsReceipt, WaStatus, WhatsappInbound,
    WhatsappStatus,
};
use crate::dispatch::{fail_call, lookup_keys, EVERY_PART, NO_RECEIPT};
use crate::send::{new_message, step};
use crate::{Telnxo, TelnxoError};

/// Reports applied in one transaction at most.
const BATCH: usize = 256;
/// A report about a message whose sending is not recorded yet (a receipt
/// can overtake the recording of the `submit_sm_resp` it follows) is
/// parked in the store and applied again this often, this many times.
const PARKED_RETRY: Duration = Duration::from_millis(250);
const PARKED_TRIES: u32 = 20;
/// A batch that fails this many times is applied one report at a time, so
/// one report that cannot be applied holds up no other.
const BATCH_FAILURES: u32 = 3;

/// What became of one report.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    Done,
    /// A repeat, or nothing to change.
    Ignored,
    /// About a message not (yet) known.
    Unknown,
}

/// Applies what the connectors hand over until `stop`, then what is left.
pub(crate) async fn run(
    telnxo: Telnxo,
    mut incoming: mpsc::Receiver<Handed>,
    mut stop: watch::Receiver<bool>,
) {
    // Reports parked by an earlier run are tried again from the start.
    let mut parked = true;
    loop {
        let mut batch: Vec<Handed> = Vec::new();
        let stopping = tokio::select! {
            r = incoming.recv() => match r {
                Some(h) => {
                    batch.push(h);
                    false
                }
                None => true,
            },
            _ = tokio::time::sleep(PARKED_RETRY), if parked => false,
            _ = telnxo.inner.parked.notified() => {
                parked = true;
                false
            }
            _ = stop.wait_for(|s| *s) => true,
        };
        // On the way out, everything the connectors handed over before they
        // stopped (they stop first).
        let limit = if stopping { usize::MAX } else { BATCH };
        while batch.len() < limit {
            match incoming.try_recv() {
                Ok(h) => batch.push(h),
                Err(_) => break,
            }
        }
        let retry = if parked {
            telnxo
                .inner
                .store
                .parked_reports(BATCH)
                .await
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut failures = 0;
        loop {
            let result = if failures < BATCH_FAILURES {
                telnxo.apply_batch(&mut batch, &retry).await
            } else {
                telnxo.apply_one_by_one(&mut batch, &retry).await
            };
            match result {
                Ok(still_parked) => {
                    parked = still_parked;
                    break;
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, failures, "recording carrier reports failed; trying again");
                    if stopping && failures > BATCH_FAILURES {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200 * failures as u64)).await;
                }
            }
        }
        if stopping {
            return;
        }
    }
}

fn park(report: &Report) -> ParkedReport {
    ParkedReport {
        id: format!("{:016x}", rackwave_core::time_ordered_id()),
        tries: 0,
        report: serde_json::to_string(report).expect("reports serialize"),
    }
}

impl Telnxo {
    /// Applies fresh reports and parked ones in one durable transaction,
    /// parking the fresh ones whose message is not known yet; then tells
    /// each carrier waiting that its report is recorded. Whether reports
    /// remain parked.
    async fn apply_batch(
        &self,
        batch: &mut Vec<Handed>,
        parked: &[ParkedReport],
    ) -> Result<bool, TelnxoError> {
        let mut tx = self.inner.store.begin().await?;
        let mut still_parked = false;
        for h in batch.iter() {
            if self.apply(&mut tx, &h.report).await? == Applied::Unknown {
                tx.put_parked_report(&park(&h.report)).await?;
                still_parked = true;
            }
        }
        for p in parked {
            still_parked |= self.retry_parked(&mut tx, p).await?;
        }
        tx.commit().await?;
        self.inner.events.kick();
        for h in batch.drain(..) {
            if let Some(recorded) = h.recorded {
                let _ = recorded.send(());
            }
        }
        Ok(still_parked)
    }

    /// [`apply_batch`](Self::apply_batch) for one report at a time: a
    /// report that cannot be recorded is dropped with an error line (and
    /// not acknowledged, so a carrier that waits on it sends it again).
    async fn apply_one_by_one(
        &self,
        batch: &mut Vec<Handed>,
        parked: &[ParkedReport],
    ) -> Result<bool, TelnxoError> {
        let mut still_parked = false;
        for h in batch.drain(..) {
            let mut one = vec![h];
            match self.apply_batch(&mut one, &[]).await {
                Ok(p) => still_parked |= p,
                Err(e) => {
                    tracing::error!(error = %e, report = ?one[0].report, "a carrier report cannot be recorded; dropped");
                }
            }
        }
        for p in parked {
            let mut tx = self.inner.store.begin().await?;
            match self.retry_parked(&mut tx, p).await {
                Ok(p) => {
                    tx.commit().await?;
                    still_parked |= p;
                }
                Err(e) => {
                    tracing::error!(error = %e, id = %p.id, "a parked carrier report cannot be applied; dropped");
                    drop(tx);
                    let mut tx = self.inner.store.begin().await?;
                    tx.delete_parked_report(&p.id).await?;
                    tx.commit().await?;
                }
            }
        }
        self.inner.events.kick();
        Ok(still_parked)
    }

    /// Applies a parked report again in `tx`: forgotten once applied (or
    /// after its last try); whether it stays parked.
    async fn retry_parked(&self, tx: &mut Txn, p: &ParkedReport) -> Result<bool, TelnxoError> {
        let report: Report = match serde_json::from_str(&p.report) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(id = %p.id, error = %e, "an unreadable parked report; dropped");
                tx.delete_parked_report(&p.id).await?;
                return Ok(false);
            }
        };
        if self.apply(tx, &report).await? != Applied::Unknown {
            tx.delete_parked_report(&p.id).await?;
            return Ok(false);
        }
        if p.tries + 1 >= PARKED_TRIES {
            tracing::warn!(
                ?report,
                "a carrier report names no message of ours; dropped"
            );
            tx.delete_parked_report(&p.id).await?;
            return Ok(false);
        }
        tx.put_parked_report(&ParkedReport {
            tries: p.tries + 1,
            ..p.clone()
        })
        .await?;
        Ok(true)
    }

    /// Applies reports that came over HTTP (WhatsApp's callbacks): durable
    /// when it returns, those about messages not recorded yet parked.
    pub async fn ingest(&self, reports: Vec<Report>) -> Result<(), TelnxoError> {
        let mut batch: Vec<Handed> = reports
            .into_iter()
            .map(|report| Handed {
                report,
                recorded: None,
            })
            .collect();
        if self.apply_batch(&mut batch, &[]).await? {
            // The report loop tries them again.
            self.inner.parked.notify_one();
        }
        Ok(())
    }

    async fn apply(&self, tx: &mut Txn, report: &Report) -> Result<Applied, TelnxoError> {
        match report {
            Report::SmsReceipt(r) => self.sms_receipt(tx, r).await,
            Report::SmsInbound(r) => self.sms_inbound(tx, r).await,
            Report::WhatsappStatus(r) => self.whatsapp_status(tx, r).await,
            Report::WhatsappInbound(r) => self.whatsapp_inbound(tx, r).await,
            Report::Call(r) => self.call_progress(tx, r).await,
        }
    }

    async fn sms_receipt(&self, tx: &mut Txn, r: &SmsReceipt) -> Result<Applied, TelnxoError> {
        if !r.is_final() {
            return Ok(Applied::Ignored);
        }
        // The rendering this carrier has been writing receipts in first;
        // a candidate that is already settled gives way to the other.
        let score = &self.inner.other_base_score;
        let other_first = score.load(Ordering::Relaxed) > 0;
        let mut known = false;
        let mut found = None;
        for (i, key) in lookup_keys(&r.carrier_id, other_first).iter().enumerate() {
            let Some((id, part)) = tx.telnxo_by_carrier_id(Channel::Sms, key).await? else {
                continue;
            };
            known = true;
            let Some(m) = tx.telnxo_message(&id).await? else {
                continue;
            };
            let open = |p: usize| m.receipts.get(p).is_some_and(Option::is_none);
            let waiting = match part {
                EVERY_PART => (0..m.receipts.len()).any(open),
                p => open(p as usize),
            };
            if m.status == CommStatus::Sent && waiting {
                let other_base = (i == 0) == other_first;
                let step = if other_base { 1 } else { -1 };
                let _ = score.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    Some((v + step).clamp(-1000, 1000))
                });
                found = Some((m, part));
                break;
            }
        }
        let Some((mut m, part)) = found else {
            return Ok(if known {
                Applied::Ignored
            } else {
                Applied::Unknown
            });
        };
        // A failed part keeps its error code beside its status.
        let slot = match r.error.as_deref().filter(|e| !e.is_empty()) {
            Some(err) if !r.is_delivered() => format!("{}:{err}", r.stat),
            _ => r.stat.clone(),
        };
        let parts: Vec<usize> = match part {
            EVERY_PART => (0..m.receipts.len()).collect(),
            p => vec![p as usize],
        };
        for p in &parts {
            if let Some(s @ None) = m.receipts.get_mut(*p) {
                *s = Some(slot.clone());
            }
        }
        let now = self.inner.clock.now_ms();
        let settled: Vec<String> = m
            .receipts
            .iter()
            .flatten()
            .filter(|s| *s != NO_RECEIPT)
            .cloned()
            .collect();
        let event = if m.receipts.iter().any(Option::is_none) {
            m.history.push(step(
                CommStatus::Sent,
                now,
                Some(format!(
                    "part {} of {}: {}",
                    parts[0] + 1,
                    m.receipts.len(),
                    r.stat
                )),
            ));
            None
        } else if settled.iter().all(|s| *s == "DELIVRD") {
            m.status = CommStatus::Delivered;
            m.history
                .push(step(CommStatus::Delivered, now, Some("DELIVRD".into())));
            Some(EventData::from(SmsDelivered {
                message_id: m.id.clone(),
                to: m.to.clone(),
                delivered_at: Timestamp(now),
                dlr_status: "DELIVRD".into(),
            }))
        } else {
            // The first part that did not arrive names the failure.
            let failed = settled
                .iter()
                .find(|s| *s != "DELIVRD")
                .map(String::as_str)
                .unwrap_or_default();
            let (stat, err) = failed.split_once(':').unwrap_or((failed, ""));
            let code = if err.is_empty() { stat } else { err };
            Some(self.fail_message(&mut m, now, code, &receipt_description(stat)))
        };
        tx.put_telnxo_message(&m).await?;
        if let Some(event) = event {
            self.inner
                .events
                .emit_in(tx, &m.workspace_id, event)
                .await?;
        }
        Ok(Applied::Done)
    }

    /// Records an inbound message for the workspace owning `to`.
    async fn inbound(
        &self,
        tx: &mut Txn,
        m: TelnxoMessage,
        event: EventData,
    ) -> Result<Applied, TelnxoError> {
        tx.put_telnxo_message(&m).await?;
        self.inner
            .events
            .emit_in(tx, &m.workspace_id, event)
            .await?;
        Ok(Applied::Done)
    }

    async fn sms_inbound(&self, tx: &mut Txn, r: &SmsInbound) -> Result<Applied, TelnxoError> {
        let Some(ws) = self.owner_of(&r.to, Channel::Sms).await? else {
            tracing::info!(to = %r.to, "an inbound SMS to a number no workspace has; dropped");
            return Ok(Applied::Ignored);
        };
        // A part of a longer message waits (durably) for the others; the
        // last to arrive makes the one message.
        let body = match r.segment {
            None => r.body.clone(),
            Some(seg) => {
                let key = format!("{}|{}|{}|{}", r.to, r.from, seg.reference, seg.total);
                tx.put_inbound_part(&key, seg.seq, &r.body).await?;
                let parts = tx.inbound_parts(&key).await?;
                if parts.len() < usize::from(seg.total) {
                    return Ok(Applied::Done);
                }
                tx.delete_inbound_parts(&key).await?;
                parts.into_iter().map(|(_, text)| text).collect()
            }
        };
        let now = self.inner.clock.now_ms();
        let m = received(&ws, Channel::Sms, &r.from, &r.to, &body, None, now);
        let event = SmsInboundEvent {
            message_id: m.id.clone(),
            from: r.from.clone(),
            to: r.to.clone(),
            body,
            received_at: Timestamp(now),
        };
        self.inbound(tx, m, event.into()).await
    }

    async fn whatsapp_status(
        &self,
        tx: &mut Txn,
        r: &WhatsappStatus,
    ) -> Result<Applied, TelnxoError> {
        let key = format!("={}", r.wamid);
        let Some((id, _)) = tx.telnxo_by_carrier_id(Channel::Whatsapp, &key).await? else {
            return Ok(Applied::Unknown);
        };
        let Some(mut m) = tx.telnxo_message(&id).await? else {
            return Ok(Applied::Unknown);
        };
        if m.direction != Direction::Outbound {
            return Ok(Applied::Ignored);
        }
        let rank = |s: CommStatus| match s {
            CommStatus::Queued => 0,
            CommStatus::Sent => 1,
            CommStatus::Delivered => 2,
            CommStatus::Read => 3,
            _ => 4,
        };
        let at = r.at_ms;
        let (status, event): (CommStatus, EventData) = match r.status {
            // Recorded (and announced) when the Cloud API took it.
            WaStatus::Sent => return Ok(Applied::Ignored),
            WaStatus::Delivered => (
                CommStatus::Delivered,
                WhatsappDelivered {
                    message_id: m.id.clone(),
                    to: m.to.clone(),
                    delivered_at: Timestamp(at),
                }
                .into(),
            ),
            WaStatus::Read => (
                CommStatus::Read,
                WhatsappRead {
                    message_id: m.id.clone(),
                    to: m.to.clone(),
                    read_at: Timestamp(at),
                }
                .into(),
            ),
            WaStatus::Failed => {
                if rank(m.status) >= rank(CommStatus::Read) {
                    return Ok(Applied::Ignored);
                }
                let (code, title) = r
                    .error
                    .clone()
                    .unwrap_or_else(|| ("unknown".into(), "failed".into()));
                let event = self.fail_message(&mut m, at, &code, &title);
                tx.put_telnxo_message(&m).await?;
                self.inner
                    .events
                    .emit_in(tx, &m.workspace_id, event)
                    .await?;
                return Ok(Applied::Done);
            }
        };
        // Never backwards, each state once; `read` may come without
        // `delivered` (the user read it on a device that reported late).
        if rank(status) <= rank(m.status) {
            return Ok(Applied::Ignored);
        }
        m.status = status;
        m.history.push(step(status, at, None));
        tx.put_telnxo_message(&m).await?;
        self.inner
            .events
            .emit_in(tx, &m.workspace_id, event)
            .await?;
        Ok(Applied::Done)
    }

    async fn whatsapp_inbound(
        &self,
        tx: &mut Txn,
        r: &WhatsappInbound,
    ) -> Result<Applied, TelnxoError> {
        if tx
            .telnxo_by_carrier_id(Channel::Whatsapp, &r.wamid)
            .await?
            .is_some()
        {
            // WhatsApp delivers callbacks at least once.
            return Ok(Applied::Ignored);
        }
        let Some(ws) = self.owner_of(&r.to, Channel::Whatsapp).await? else {
            tracing::info!(to = %r.to, "a WhatsApp message to a number no workspace has; dropped");
            return Ok(Applied::Ignored);
        };
        let now = self.inner.clock.now_ms();
        let part = WhatsappPart {
            kind: r.kind.clone(),
            template_name: None,
            content: serde_json::Value::Null,
            button: r.button.clone(),
        };
        let m = received(
            &ws,
            Channel::Whatsapp,
            &r.from,
            &r.to,
            &r.body,
            Some(part),
            now,
        );
        tx.put_carrier_id(Channel::Whatsapp, &r.wamid, &m.id, 0)
            .await?;
        // The user's message opens (or extends) the 24-hour window, from
        // when it reached us: our clock, not the sender's.
        tx.set_whatsapp_window(&ws, &r.from, now).await?;
        let event: EventData = match &r.button {
            Some((button_id, button_title)) => WhatsappButtonReply {
                message_id: m.id.clone(),
                from: r.from.clone(),
                button_id: button_id.clone(),
                button_title: button_title.clone(),
                replied_at: Timestamp(now),
            }
            .into(),
            None => WhatsappInboundEvent {
                message_id: m.id.clone(),
                from: r.from.clone(),
                kind: r.kind.clone(),
                body: r.body.clone(),
                received_at: Timestamp(now),
            }
            .into(),
        };
        self.inbound(tx, m, event).await
    }

    async fn call_progress(&self, tx: &mut Txn, r: &CallReport) -> Result<Applied, TelnxoError> {
        let Some(mut c) = tx.call(&r.call_id).await? else {
            tracing::info!(call_id = %r.call_id, "call progress for a call we do not know; dropped");
            return Ok(Applied::Ignored);
        };
        if c.status.is_final() {
            return Ok(Applied::Ignored);
        }
        // Before its dial is recorded (FreeSWITCH can answer a `bgapi`
        // fast): waits, so `voice.initiated` comes first.
        if c.status == CommStatus::Queued {
            return Ok(Applied::Unknown);
        }
        let now = self.inner.clock.now_ms();
        let event: EventData = match &r.event {
            CallEvent::Answered { at_ms } => {
                if c.status == CommStatus::Answered {
                    return Ok(Applied::Ignored);
                }
                c.status = CommStatus::Answered;
                c.answered_at_ms = Some(*at_ms);
                c.history.push(step(CommStatus::Answered, *at_ms, None));
                VoiceAnswered {
                    call_id: c.id.clone(),
                    to: c.to.clone(),
                    answered_at: Timestamp(*at_ms),
                }
                .into()
            }
            CallEvent::Hangup {
                at_ms,
                cause,
                answered,
                billsec,
                ring_secs,
                recording_url,
            } => {
                c.ended_at_ms = Some(*at_ms);
                c.ring_seconds = Some(*ring_secs);
                if *answered {
                    // Talk time counts against the plan's minutes, each
                    // minute begun as a whole one.
                    if let Some((counter, _)) =
                        self.allowance(tx, &c.workspace_id, Channel::Voice).await?
                    {
                        tx.add_telnxo_usage(&c.workspace_id, &counter, billsec.div_ceil(60))
                            .await?;
                    }
                    c.status = CommStatus::Completed;
                    c.duration_seconds = Some(*billsec);
                    c.recording_url = recording_url.clone();
                    c.history
                        .push(step(CommStatus::Completed, *at_ms, Some(cause.clone())));
                    VoiceCompleted {
                        call_id: c.id.clone(),
                        to: c.to.clone(),
                        duration_seconds: *billsec,
                        ended_at: Timestamp(*at_ms),
                        recording_url: recording_url.clone(),
                    }
                    .into()
                } else if is_no_answer(cause) {
                    c.status = CommStatus::NoAnswer;
                    c.history
                        .push(step(CommStatus::NoAnswer, *at_ms, Some(cause.clone())));
                    VoiceNoAnswer {
                        call_id: c.id.clone(),
                        to: c.to.clone(),
                        ring_duration_seconds: *ring_secs,
                        ended_at: Timestamp(*at_ms),
                    }
                    .into()
                } else {
                    fail_call(&mut c, *at_ms, cause, &cause_description(cause))
                }
            }
            CallEvent::Failed { cause } => fail_call(&mut c, now, cause, &cause_description(cause)),
        };
        c.due_at_ms = None;
        tx.put_call(&c).await?;
        self.inner
            .events
            .emit_in(tx, &c.workspace_id, event)
            .await?;
        Ok(Applied::Done)
    }
}

/// A received message's record.
fn received(
    workspace_id: &str,
    channel: Channel,
    from: &str,
    to: &str,
    body: &str,
    whatsapp: Option<WhatsappPart>,
    now: i64,
) -> TelnxoMessage {
    let mut m = new_message(
        workspace_id,
        channel,
        Direction::Inbound,
        from,
        to,
        body,
        now,
    );
    m.whatsapp = whatsapp;
    m
}

/// Hangup causes of a call that rang out unanswered (FreeSWITCH's names,
/// from Q.850).
fn is_no_answer(cause: &str) -> bool {
    matches!(
        cause,
        "NO_ANSWER" | "NO_USER_RESPONSE" | "ORIGINATOR_CANCEL" | "ALLOTTED_TIMEOUT"
    )
}

fn cause_description(cause: &str) -> String {
    match cause {
        "USER_BUSY" => "the line is busy",
        "CALL_REJECTED" => "the call was rejected",
        "UNALLOCATED_NUMBER" => "the number does not exist",
        "NO_ROUTE_DESTINATION" => "no route to the destination",
        "NORMAL_TEMPORARY_FAILURE" => "the network failed for now",
        "DESTINATION_OUT_OF_ORDER" => "the destination is out of order",
        "INVALID_NUMBER_FORMAT" => "the number is not valid",
        "NETWORK_OUT_OF_ORDER" => "the network is out of order",
        "RECOVERY_ON_TIMER_EXPIRE" => "the carrier did not answer in time",
        _ => "the call could not be connected",
    }
    .into()
}

/// What an SMPP receipt status means.
fn receipt_description(stat: &str) -> String {
    match stat {
        "UNDELIV" => "undeliverable to the handset",
        "EXPIRED" => "the carrier gave up before the handset could be reached",
        "REJECTD" => "rejected by the carrier",
        "DELETED" => "deleted by the carrier",
        "UNKNOWN" => "the carrier does not know what became of it",
        _ => "not delivered",
    }
    .into()
}
