//! What carriers report after a send, or unprompted: applied in batches,
//! each batch one durable transaction with its events.

use std::time::Duration;

use rackwave_core::event::{
    EventData, SmsDelivered, SmsInbound as SmsInboundEvent, VoiceAnswered, VoiceCompleted,
    VoiceNoAnswer, WhatsappButtonReply, WhatsappDelivered, WhatsappInbound as WhatsappInboundEvent,
    WhatsappRead,
};
use rackwave_core::Timestamp;
use rackwave_store::{Channel, CommStatus, Direction, TelnxoMessage, Txn, WhatsappPart};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::connectors::{
    CallEvent, CallReport, Report, SmsInbound, SmsReceipt, WaStatus, WhatsappInbound,
    WhatsappStatus,
};
use crate::dispatch::fail_call;
use crate::send::step;
use crate::{Telnxo, TelnxoError};

/// Reports applied in one transaction at most.
const BATCH: usize = 256;
/// A report about a message whose sending is not recorded yet is tried
/// again this often, this many times (a receipt can overtake the
/// recording of the `submit_sm_resp` it follows).
const WAIT_RETRY: Duration = Duration::from_millis(250);
const WAIT_TRIES: u32 = 120;

/// What became of one report.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    Done,
    /// A repeat, or nothing to change.
    Ignored,
    /// About a message not (yet) known.
    Unknown,
}

pub(crate) async fn run(
    telnxo: Telnxo,
    mut incoming: mpsc::Receiver<Report>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut waiting: Vec<(Instant, u32, Report)> = Vec::new();
    loop {
        let mut batch: Vec<(u32, Report)> = Vec::new();
        tokio::select! {
            r = incoming.recv() => match r {
                Some(r) => batch.push((0, r)),
                None => return,
            },
            _ = tokio::time::sleep(WAIT_RETRY), if !waiting.is_empty() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        while batch.len() < BATCH {
            match incoming.try_recv() {
                Ok(r) => batch.push((0, r)),
                Err(_) => break,
            }
        }
        let now = Instant::now();
        let (ready, later): (Vec<_>, Vec<_>) = waiting.drain(..).partition(|(at, _, _)| *at <= now);
        waiting = later;
        batch.extend(ready.into_iter().map(|(_, tries, r)| (tries, r)));
        loop {
            match telnxo.apply_all(&batch).await {
                Ok(outcomes) => {
                    for ((tries, report), applied) in batch.into_iter().zip(outcomes) {
                        if applied != Applied::Unknown {
                            continue;
                        }
                        if tries + 1 < WAIT_TRIES {
                            waiting.push((Instant::now() + WAIT_RETRY, tries + 1, report));
                        } else {
                            tracing::warn!(
                                ?report,
                                "a carrier report names no message of ours; dropped"
                            );
                        }
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "recording carrier reports failed; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.wait_for(|s| *s) => return,
                    }
                }
            }
        }
    }
}

impl Telnxo {
    /// Applies reports in one durable transaction; what became of each.
    pub(crate) async fn apply_all(
        &self,
        batch: &[(u32, Report)],
    ) -> Result<Vec<Applied>, TelnxoError> {
        let mut tx = self.inner.store.begin().await?;
        let mut out = Vec::with_capacity(batch.len());
        for (_, report) in batch {
            out.push(self.apply(&mut tx, report).await?);
        }
        if out.contains(&Applied::Done) {
            tx.commit().await?;
            self.inner.events.kick();
        }
        Ok(out)
    }

    /// Applies reports that came over HTTP (WhatsApp's callbacks): durable
    /// when it returns; those about messages not recorded yet wait in the
    /// report loop.
    pub async fn ingest(&self, reports: Vec<Report>) -> Result<usize, TelnxoError> {
        let batch: Vec<(u32, Report)> = reports.into_iter().map(|r| (0, r)).collect();
        let outcomes = self.apply_all(&batch).await?;
        let mut applied = 0;
        for ((_, report), outcome) in batch.into_iter().zip(outcomes) {
            match outcome {
                Applied::Done => applied += 1,
                Applied::Unknown => {
                    if self.inner.reports.try_send(report).is_err() {
                        return Err(TelnxoError::Store(rackwave_store::StoreError::Unavailable(
                            "the report backlog is full".into(),
                        )));
                    }
                }
                Applied::Ignored => {}
            }
        }
        Ok(applied)
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
        let Some((id, part)) = tx.telnxo_by_carrier_id(Channel::Sms, &r.carrier_id).await? else {
            return Ok(Applied::Unknown);
        };
        let Some(mut m) = tx.telnxo_message(&id).await? else {
            return Ok(Applied::Unknown);
        };
        let part = part as usize;
        if m.status != CommStatus::Sent || !r.is_final() {
            return Ok(Applied::Ignored);
        }
        match m.receipts.get_mut(part) {
            Some(slot @ None) => *slot = Some(r.stat.clone()),
            _ => return Ok(Applied::Ignored),
        }
        let now = self.inner.clock.now_ms();
        let event = if m.receipts.iter().any(Option::is_none) {
            m.history.push(step(
                CommStatus::Sent,
                now,
                Some(format!(
                    "part {} of {}: {}",
                    part + 1,
                    m.receipts.len(),
                    r.stat
                )),
            ));
            None
        } else if m.receipts.iter().all(|s| s.as_deref() == Some("DELIVRD")) {
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
            let stat = m
                .receipts
                .iter()
                .flatten()
                .find(|s| *s != "DELIVRD")
                .cloned()
                .unwrap_or_default();
            let code = r
                .error
                .clone()
                .filter(|e| !e.is_empty())
                .unwrap_or(stat.clone());
            Some(self.fail_message(&mut m, now, &code, &receipt_description(&stat)))
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
        let now = self.inner.clock.now_ms();
        let m = received(&ws, Channel::Sms, &r.from, &r.to, &r.body, None, now);
        let event = SmsInboundEvent {
            message_id: m.id.clone(),
            from: r.from.clone(),
            to: r.to.clone(),
            body: r.body.clone(),
            received_at: Timestamp(now),
        };
        self.inbound(tx, m, event.into()).await
    }

    async fn whatsapp_status(
        &self,
        tx: &mut Txn,
        r: &WhatsappStatus,
    ) -> Result<Applied, TelnxoError> {
        let Some((id, _)) = tx.telnxo_by_carrier_id(Channel::Whatsapp, &r.wamid).await? else {
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
    TelnxoMessage {
        id: format!("msg_{:016x}", rackwave_core::time_ordered_id()),
        workspace_id: workspace_id.into(),
        channel,
        direction: Direction::Inbound,
        from: from.into(),
        to: to.into(),
        body: body.into(),
        encoding: None,
        parts: 1,
        whatsapp,
        status: CommStatus::Received,
        attempts: 0,
        due_at_ms: None,
        expires_at_ms: now,
        carrier_ids: Vec::new(),
        receipts: Vec::new(),
        error: None,
        history: vec![step(CommStatus::Received, now, None)],
        created_at_ms: now,
    }
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
