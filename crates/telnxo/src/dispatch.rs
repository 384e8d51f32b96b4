//! A channel's worker: takes what is due from the channel's queue, hands
//! it to the connector within the route's rate and concurrency, and
//! records each outcome with its event in one transaction.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rackwave_core::event::{
    EventData, SmsFailed, SmsSent, VoiceFailed, VoiceInitiated, WhatsappFailed, WhatsappSent,
};
use rackwave_core::Timestamp;
use rackwave_store::{Channel, CommError, CommStatus, Txn};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::time::Instant;

use crate::connectors::{OutboundCall, OutboundSms, OutboundWhatsapp, SendError, WhatsappContent};
use crate::send::step;
use crate::{Telnxo, TelnxoError};

/// How often a worker looks at its queue when nothing wakes it (a retry
/// coming due, a test moving the clock).
const POLL: Duration = Duration::from_millis(200);
/// How long the route rests after the carrier throttles us.
const THROTTLE_PAUSE: Duration = Duration::from_secs(1);
/// First retry after a temporary failure; doubles each time.
const FIRST_RETRY_MS: i64 = 30_000;
const LONGEST_RETRY_MS: i64 = 30 * 60_000;

/// The delay before try `attempts + 1`, after `attempts` tries failed for
/// now.
pub(crate) fn retry_delay_ms(attempts: u32) -> i64 {
    let doublings = attempts.saturating_sub(1).min(16);
    (FIRST_RETRY_MS << doublings).min(LONGEST_RETRY_MS)
}

/// Paces sends to `per_second` (0: unpaced), in real time: the route's
/// limit is the carrier's, which counts real seconds.
struct Pacer {
    interval: Option<Duration>,
    next: Instant,
}

impl Pacer {
    fn new(per_second: u32) -> Pacer {
        Pacer {
            interval: (per_second > 0).then(|| Duration::from_secs(1) / per_second),
            next: Instant::now(),
        }
    }

    async fn wait(&mut self) {
        let Some(interval) = self.interval else {
            return;
        };
        let now = Instant::now();
        if self.next > now {
            tokio::time::sleep_until(self.next).await;
        }
        // No bursts after an idle spell: the carrier's window is short.
        self.next = self.next.max(now) + interval;
    }
}

/// What became of one send.
enum Outcome {
    /// Taken by the carrier, with its ids.
    Taken(Vec<String>),
    /// Throttled: stays at the head of the queue.
    Throttled,
    Retry(String),
    Failed {
        code: String,
        description: String,
    },
}

impl From<Result<Vec<String>, SendError>> for Outcome {
    fn from(r: Result<Vec<String>, SendError>) -> Outcome {
        match r {
            Ok(ids) => Outcome::Taken(ids),
            Err(SendError::Throttled) => Outcome::Throttled,
            Err(SendError::Temporary(why)) => Outcome::Retry(why),
            Err(SendError::Permanent { code, description }) => {
                Outcome::Failed { code, description }
            }
        }
    }
}

pub(crate) async fn run(telnxo: Telnxo, channel: Channel, mut shutdown: watch::Receiver<bool>) {
    let limits = telnxo.inner.config.limits(channel).clone();
    let concurrency = telnxo.concurrency(channel);
    let permits = Arc::new(Semaphore::new(concurrency));
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    let paused_until: Arc<Mutex<Option<Instant>>> = Arc::default();
    let mut pacer = Pacer::new(limits.rate_per_second);
    // Sends in flight end before the worker does: a shutdown lets each
    // finish and record its outcome (bounded by the connector's timeouts).
    let mut sends = tokio::task::JoinSet::new();
    // Outcomes are recorded by one task, many to a transaction: the store
    // takes one commit a batch instead of one a send.
    let (settle, outcomes) = mpsc::channel::<Settle>(RECORD_BATCH * 4);
    let recorder = tokio::spawn(record_outcomes(telnxo.clone(), channel, outcomes));
    let stopped = |shutdown: &watch::Receiver<bool>| *shutdown.borrow();
    loop {
        while sends.try_join_next().is_some() {}
        if stopped(&shutdown) {
            while sends.join_next().await.is_some() {}
            drop(settle);
            let _ = recorder.await;
            return;
        }
        let pause = *paused_until.lock().expect("pause lock");
        if let Some(until) = pause.filter(|u| *u > Instant::now()) {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = shutdown.wait_for(|s| *s) => {}
            }
            continue;
        }
        let now = telnxo.inner.clock.now_ms();
        let due = match telnxo
            .inner
            .store
            .telnxo_due(channel, now, concurrency * 4)
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(channel = channel.as_str(), error = %e, "reading the queue failed");
                Vec::new()
            }
        };
        let fresh: Vec<String> = {
            let running = in_flight.lock().expect("in-flight lock");
            due.into_iter().filter(|id| !running.contains(id)).collect()
        };
        if fresh.is_empty() {
            tokio::select! {
                _ = telnxo.inner.wake[channel as usize].notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.wait_for(|s| *s) => {}
            }
            continue;
        }
        for id in fresh {
            pacer.wait().await;
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            if stopped(&shutdown) {
                break;
            }
            if paused_until
                .lock()
                .expect("pause lock")
                .is_some_and(|u| u > Instant::now())
            {
                break;
            }
            in_flight.lock().expect("in-flight lock").insert(id.clone());
            let (telnxo, in_flight, paused_until, settle) = (
                telnxo.clone(),
                in_flight.clone(),
                paused_until.clone(),
                settle.clone(),
            );
            sends.spawn(async move {
                match telnxo.attempt(channel, &id).await {
                    Ok(Some(Outcome::Throttled)) => {
                        // Stays at the head of the queue, as it was.
                        *paused_until.lock().expect("pause lock") =
                            Some(Instant::now() + THROTTLE_PAUSE);
                    }
                    Ok(Some(outcome)) => {
                        // Out of the in-flight set only once recorded: an
                        // id still due in the store must not go twice.
                        let (done, recorded) = oneshot::channel();
                        if settle.send((id.clone(), outcome, done)).await.is_ok() {
                            if let Ok(Err(e)) = recorded.await {
                                tracing::warn!(channel = channel.as_str(), id, error = %e, "recording a send failed; it is sent again");
                            }
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(channel = channel.as_str(), id, error = %e, "reading a queued message failed");
                    }
                }
                in_flight.lock().expect("in-flight lock").remove(&id);
                drop(permit);
                telnxo.wake(channel);
            });
        }
    }
}

/// Outcomes recorded in one transaction at most.
const RECORD_BATCH: usize = 256;

/// A send's outcome on its way to the recorder, with where to say it is
/// recorded.
type Settle = (String, Outcome, oneshot::Sender<Result<(), String>>);

/// Records outcomes as they come, each batch one durable transaction.
async fn record_outcomes(telnxo: Telnxo, channel: Channel, mut outcomes: mpsc::Receiver<Settle>) {
    while let Some(first) = outcomes.recv().await {
        let mut batch = vec![first];
        while batch.len() < RECORD_BATCH {
            match outcomes.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (items, replies): (Vec<(String, Outcome)>, Vec<_>) = batch
            .into_iter()
            .map(|(id, outcome, done)| ((id, outcome), done))
            .unzip();
        let result = telnxo
            .record(channel, &items)
            .await
            .map_err(|e| e.to_string());
        for reply in replies {
            let _ = reply.send(result.clone());
        }
    }
}

/// The renderings under which a carrier may name a part later: as given,
/// and a hex id also in decimal and a decimal one also in hex (carriers
/// answer `submit_sm` with one and write receipts with the other).
pub(crate) fn carrier_aliases(id: &str) -> Vec<String> {
    // A carrier that took a part without naming it can never report on
    // it: nothing to index.
    if id.is_empty() || id.bytes().any(|b| b < 0x20) {
        return Vec::new();
    }
    let mut out = vec![id.to_string()];
    if id.len() <= 16 && !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        if let Ok(n) = u64::from_str_radix(id, 16) {
            out.push(n.to_string());
        }
    }
    if id.len() <= 19 && !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = id.parse::<u64>() {
            out.push(format!("{n:x}"));
        }
    }
    out.sort();
    out.dedup();
    out
}

impl Telnxo {
    /// Hands one queued message or call to its connector: what became of
    /// it, or `None` when it is no longer waiting.
    async fn attempt(&self, channel: Channel, id: &str) -> Result<Option<Outcome>, TelnxoError> {
        match channel {
            Channel::Sms | Channel::Whatsapp => self.send_message(id).await,
            Channel::Voice => self.dial(id).await,
        }
    }

    /// Records the outcomes of a batch of sends in one durable
    /// transaction, with their events.
    async fn record(
        &self,
        channel: Channel,
        batch: &[(String, Outcome)],
    ) -> Result<(), TelnxoError> {
        let mut tx = self.inner.store.begin().await?;
        for (id, outcome) in batch {
            let settled = match channel {
                Channel::Sms | Channel::Whatsapp => {
                    self.record_message(&mut tx, id, outcome).await?
                }
                Channel::Voice => self.record_call(&mut tx, id, outcome).await?,
            };
            if let Some((workspace_id, event)) = settled {
                self.inner
                    .events
                    .emit_in(&mut tx, &workspace_id, event)
                    .await?;
            }
        }
        tx.commit().await?;
        self.inner.events.kick();
        Ok(())
    }

    async fn send_message(&self, id: &str) -> Result<Option<Outcome>, TelnxoError> {
        let store = &self.inner.store;
        let Some(m) = store.telnxo_message(id).await? else {
            return Ok(None);
        };
        if m.status != CommStatus::Queued || m.due_at_ms.is_none() {
            return Ok(None);
        }
        let now = self.inner.clock.now_ms();
        let outcome = if now > m.expires_at_ms {
            Outcome::Failed {
                code: "expired".into(),
                description: "not sent within its validity period".into(),
            }
        } else if m.channel == Channel::Sms {
            // The reference ties the parts of one message together on the
            // handset; any byte does, as long as the parts share it.
            let reference = id
                .bytes()
                .fold(0u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
            let sms = OutboundSms {
                message_id: m.id.clone(),
                from: m.from.clone(),
                to: m.to.clone(),
                encoded: rackwave_sms::encode(&m.body, reference),
            };
            self.inner.sms.submit(&sms).await.into()
        } else {
            let part = m
                .whatsapp
                .clone()
                .unwrap_or_else(|| rackwave_store::WhatsappPart {
                    kind: "text".into(),
                    template_name: None,
                    content: serde_json::Value::Null,
                    button: None,
                });
            let content = match part.kind.as_str() {
                "template" => WhatsappContent::Template {
                    name: part.template_name.clone().unwrap_or_default(),
                    language: part.content["language"].as_str().unwrap_or("en").into(),
                    components: part.content["components"].clone(),
                },
                "interactive" => WhatsappContent::Interactive(part.content.clone()),
                _ => WhatsappContent::Text {
                    body: m.body.clone(),
                },
            };
            let message = OutboundWhatsapp {
                message_id: m.id.clone(),
                to: m.to.clone(),
                content,
            };
            self.inner
                .whatsapp
                .send(&message)
                .await
                .map(|w| vec![w])
                .into()
        };
        Ok(Some(outcome))
    }

    /// Applies a send's outcome to its message in `tx`: the event it
    /// causes, with its workspace.
    async fn record_message(
        &self,
        tx: &mut Txn,
        id: &str,
        outcome: &Outcome,
    ) -> Result<Option<(String, EventData)>, TelnxoError> {
        // Re-read: the record as this transaction sees it.
        let Some(mut m) = tx.telnxo_message(id).await? else {
            return Ok(None);
        };
        let now = self.inner.clock.now_ms();
        m.attempts += 1;
        let event: Option<EventData> = match outcome {
            Outcome::Taken(ids) => {
                m.status = CommStatus::Sent;
                m.due_at_ms = None;
                m.receipts = vec![None; ids.len()];
                for (part, carrier_id) in ids.iter().enumerate() {
                    for alias in carrier_aliases(carrier_id) {
                        tx.put_carrier_id(m.channel, &alias, &m.id, part as u32)
                            .await?;
                    }
                }
                m.carrier_ids = ids.clone();
                m.history.push(step(CommStatus::Sent, now, None));
                Some(match m.channel {
                    Channel::Sms => SmsSent {
                        message_id: m.id.clone(),
                        to: m.to.clone(),
                        from: m.from.clone(),
                        sent_at: Timestamp(now),
                        parts: m.parts,
                    }
                    .into(),
                    _ => WhatsappSent {
                        message_id: m.id.clone(),
                        to: m.to.clone(),
                        template_name: m.whatsapp.as_ref().and_then(|w| w.template_name.clone()),
                        sent_at: Timestamp(now),
                    }
                    .into(),
                })
            }
            Outcome::Throttled => None,
            Outcome::Retry(why) => {
                let limits = self.inner.config.limits(m.channel);
                let next = now + retry_delay_ms(m.attempts);
                if m.attempts >= limits.max_attempts || next > m.expires_at_ms {
                    let code = if next > m.expires_at_ms {
                        "expired"
                    } else {
                        "retries_exhausted"
                    };
                    Some(self.fail_message(&mut m, now, code, why))
                } else {
                    m.due_at_ms = Some(next);
                    m.history.push(step(
                        CommStatus::Queued,
                        now,
                        Some(format!("will retry: {why}")),
                    ));
                    None
                }
            }
            Outcome::Failed { code, description } => {
                Some(self.fail_message(&mut m, now, code, description))
            }
        };
        tx.put_telnxo_message(&m).await?;
        Ok(event.map(|e| (m.workspace_id.clone(), e)))
    }

    /// Marks a message failed; its event.
    pub(crate) fn fail_message(
        &self,
        m: &mut rackwave_store::TelnxoMessage,
        now: i64,
        code: &str,
        description: &str,
    ) -> EventData {
        m.status = CommStatus::Failed;
        m.due_at_ms = None;
        m.error = Some(CommError {
            code: code.into(),
            description: description.into(),
        });
        m.history.push(step(
            CommStatus::Failed,
            now,
            Some(format!("{code}: {description}")),
        ));
        match m.channel {
            Channel::Sms => SmsFailed {
                message_id: m.id.clone(),
                to: m.to.clone(),
                failed_at: Timestamp(now),
                error_code: code.into(),
                error_description: description.into(),
            }
            .into(),
            _ => WhatsappFailed {
                message_id: m.id.clone(),
                to: m.to.clone(),
                failed_at: Timestamp(now),
                error_code: code.into(),
                error_title: description.into(),
            }
            .into(),
        }
    }

    async fn dial(&self, id: &str) -> Result<Option<Outcome>, TelnxoError> {
        let store = &self.inner.store;
        let Some(c) = store.call(id).await? else {
            return Ok(None);
        };
        if c.status != CommStatus::Queued || c.due_at_ms.is_none() {
            return Ok(None);
        }
        let now = self.inner.clock.now_ms();
        let outcome: Outcome = if now > c.expires_at_ms {
            Outcome::Failed {
                code: "expired".into(),
                description: "not placed within its validity period".into(),
            }
        } else {
            let call = OutboundCall {
                call_id: c.id.clone(),
                from: c.from.clone(),
                to: c.to.clone(),
                tts: c.tts.clone(),
                audio_url: c.audio_url.clone(),
                record: c.record,
            };
            self.inner
                .voice
                .dial(&call)
                .await
                .map(|()| Vec::new())
                .into()
        };
        Ok(Some(outcome))
    }

    /// Applies a dial's outcome to its call in `tx`: the event it causes,
    /// with its workspace.
    async fn record_call(
        &self,
        tx: &mut Txn,
        id: &str,
        outcome: &Outcome,
    ) -> Result<Option<(String, EventData)>, TelnxoError> {
        let Some(mut c) = tx.call(id).await? else {
            return Ok(None);
        };
        let now = self.inner.clock.now_ms();
        c.attempts += 1;
        let event: Option<EventData> = match outcome {
            Outcome::Taken(_) => {
                c.due_at_ms = None;
                c.initiated_at_ms = Some(now);
                // Progress may have been reported before this is recorded.
                if c.status == CommStatus::Queued {
                    c.status = CommStatus::Initiated;
                }
                c.history.push(step(CommStatus::Initiated, now, None));
                Some(
                    VoiceInitiated {
                        call_id: c.id.clone(),
                        to: c.to.clone(),
                        from: c.from.clone(),
                        initiated_at: Timestamp(now),
                    }
                    .into(),
                )
            }
            Outcome::Throttled => None,
            Outcome::Retry(why) => {
                let limits = self.inner.config.limits(Channel::Voice);
                let next = now + retry_delay_ms(c.attempts);
                if c.attempts >= limits.max_attempts || next > c.expires_at_ms {
                    Some(fail_call(&mut c, now, "retries_exhausted", why))
                } else {
                    c.due_at_ms = Some(next);
                    c.history.push(step(
                        CommStatus::Queued,
                        now,
                        Some(format!("will retry: {why}")),
                    ));
                    None
                }
            }
            Outcome::Failed { code, description } => {
                Some(fail_call(&mut c, now, code, description))
            }
        };
        tx.put_call(&c).await?;
        Ok(event.map(|e| (c.workspace_id.clone(), e)))
    }
}

/// Marks a call failed; its event.
pub(crate) fn fail_call(
    c: &mut rackwave_store::Call,
    now: i64,
    code: &str,
    description: &str,
) -> EventData {
    c.status = CommStatus::Failed;
    c.due_at_ms = None;
    c.ended_at_ms = Some(now);
    c.error = Some(CommError {
        code: code.into(),
        description: description.into(),
    });
    c.history.push(step(
        CommStatus::Failed,
        now,
        Some(format!("{code}: {description}")),
    ));
    VoiceFailed {
        call_id: c.id.clone(),
        to: c.to.clone(),
        failed_at: Timestamp(now),
        error_code: code.into(),
        error_description: description.into(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_cover_hex_and_decimal() {
        let a = carrier_aliases("1A2B");
        assert!(a.contains(&"1A2B".to_string()) && a.contains(&"6699".to_string()));
        let d = carrier_aliases("6699");
        assert!(d.contains(&"1a2b".to_string()));
        assert_eq!(carrier_aliases("msg-abc"), vec!["msg-abc".to_string()]);
        assert!(carrier_aliases("").is_empty());
        assert_eq!(
            carrier_aliases("FFFFFFFFFFFFFFFFFF").len(),
            1,
            "too long for u64"
        );
    }

    #[test]
    fn retries_back_off() {
        assert_eq!(retry_delay_ms(1), 30_000);
        assert_eq!(retry_delay_ms(2), 60_000);
        assert_eq!(retry_delay_ms(30), LONGEST_RETRY_MS);
    }
}
