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
    /// Its workspace may not send now (suspended): it waits.
    Held,
}

/// How long a suspended workspace's queued messages wait before they are
/// looked at again.
const HOLD_MS: i64 = 60_000;

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
                                // The carrier has it: keep it out of the
                                // queue's reach until a restart rather
                                // than send it again and again.
                                tracing::error!(channel = channel.as_str(), id, error = %e, "a send cannot be recorded; it is held until the next start");
                                return;
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
/// Tries of a batch's transaction before its outcomes are recorded one by
/// one.
const RECORD_TRIES: u32 = 5;

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
        // A store that fails for a moment is waited out: the carrier
        // took these, so giving up would send them again.
        let mut recorded = Err(String::new());
        for attempt in 0..RECORD_TRIES {
            match telnxo.record(channel, &items).await {
                Ok(()) => {
                    recorded = Ok(());
                    break;
                }
                Err(e) => {
                    tracing::warn!(channel = channel.as_str(), error = %e, attempt, "recording sends failed; trying again");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
            }
        }
        if recorded.is_ok() {
            for reply in replies {
                let _ = reply.send(Ok(()));
            }
            continue;
        }
        // Then one at a time, so one that cannot be recorded holds up no
        // other.
        for (item, reply) in items.into_iter().zip(replies) {
            let one = telnxo
                .record(channel, std::slice::from_ref(&item))
                .await
                .map_err(|e| e.to_string());
            let _ = reply.send(one);
        }
    }
}

/// The part a carrier id names when the carrier gave every part the same
/// id (and sends one receipt for them all).
pub(crate) const EVERY_PART: u32 = u32::MAX;
/// The receipt slot of a part the carrier took without naming it: no
/// receipt will come for it.
pub(crate) const NO_RECEIPT: &str = "-";

/// A carrier id as the carrier may write it again: lowercase, and without
/// leading zeros when it is a number (SMPP's receipt text pads `id:` to
/// ten digits).
pub(crate) fn normalized(id: &str) -> String {
    let id = id.trim().to_ascii_lowercase();
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        let trimmed = id.trim_start_matches('0');
        return if trimmed.is_empty() {
            "0".into()
        } else {
            trimmed.into()
        };
    }
    id
}

/// The keys an SMS part is indexed under: its id as given (`=`), and the
/// id rendered in the other base (`~`): carriers answer `submit_sm` in hex
/// and write receipts in decimal, or the other way round. The two kinds
/// are kept apart, so a later part whose own id happens to equal an
/// earlier part's other rendering takes nothing from it.
pub(crate) fn index_keys(id: &str) -> Vec<String> {
    let n = normalized(id);
    if n.is_empty() || n.bytes().any(|b| b < 0x20) {
        return Vec::new();
    }
    let mut keys = vec![format!("={n}")];
    if n.len() <= 16 && n.bytes().all(|b| b.is_ascii_hexdigit()) {
        if let Ok(v) = u64::from_str_radix(&n, 16) {
            keys.push(format!("~{v}"));
        }
    }
    if n.len() <= 19 && n.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(v) = n.parse::<u64>() {
            keys.push(format!("~{v:x}"));
        }
    }
    keys.dedup();
    keys
}

/// The keys a receipt's id is looked up under, the rendering the carrier
/// has been using first.
pub(crate) fn lookup_keys(id: &str, other_base_first: bool) -> [String; 2] {
    let n = normalized(id);
    let (literal, other) = (format!("={n}"), format!("~{n}"));
    if other_base_first {
        [other, literal]
    } else {
        [literal, other]
    }
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
        let now = self.inner.clock.now_ms();
        // Due: not a retry that came back early (its backoff is in
        // `due_at_ms`).
        if m.status != CommStatus::Queued || m.due_at_ms.is_none_or(|due| due > now) {
            return Ok(None);
        }
        let outcome = if now > m.expires_at_ms {
            Outcome::Failed {
                code: "expired".into(),
                description: "not sent within its validity period".into(),
            }
        } else if (self.inner.held)(&m.workspace_id) {
            Outcome::Held
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
        if m.status != CommStatus::Queued {
            return Ok(None);
        }
        if matches!(outcome, Outcome::Held) {
            m.due_at_ms = Some(now + HOLD_MS);
            tx.put_telnxo_message(&m).await?;
            return Ok(None);
        }
        m.attempts += 1;
        let event: Option<EventData> = match outcome {
            Outcome::Taken(ids) => {
                m.status = CommStatus::Sent;
                m.due_at_ms = None;
                m.receipts = vec![None; ids.len()];
                for (part, carrier_id) in ids.iter().enumerate() {
                    if m.channel == Channel::Whatsapp {
                        // A wamid is case-sensitive and reported as given.
                        tx.put_carrier_id(m.channel, &format!("={carrier_id}"), &m.id, 0)
                            .await?;
                        continue;
                    }
                    let keys = index_keys(carrier_id);
                    if keys.is_empty() {
                        m.receipts[part] = Some(NO_RECEIPT.into());
                    }
                    // One id for several parts: its receipt settles them all.
                    let shared = ids
                        .iter()
                        .filter(|i| normalized(i) == normalized(carrier_id))
                        .count()
                        > 1;
                    let part = if shared { EVERY_PART } else { part as u32 };
                    for key in keys {
                        tx.put_carrier_id(m.channel, &key, &m.id, part).await?;
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
            Outcome::Throttled | Outcome::Held => None,
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
        let now = self.inner.clock.now_ms();
        if c.status != CommStatus::Queued || c.due_at_ms.is_none_or(|due| due > now) {
            return Ok(None);
        }
        let outcome: Outcome = if now > c.expires_at_ms {
            Outcome::Failed {
                code: "expired".into(),
                description: "not placed within its validity period".into(),
            }
        } else if (self.inner.held)(&c.workspace_id) {
            Outcome::Held
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
        if c.status != CommStatus::Queued {
            c.due_at_ms = None;
            tx.put_call(&c).await?;
            return Ok(None);
        }
        if matches!(outcome, Outcome::Held) {
            c.due_at_ms = Some(now + HOLD_MS);
            tx.put_call(&c).await?;
            return Ok(None);
        }
        c.attempts += 1;
        let event: Option<EventData> = match outcome {
            Outcome::Taken(_) => {
                c.due_at_ms = None;
                c.initiated_at_ms = Some(now);
                c.status = CommStatus::Initiated;
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
            Outcome::Throttled | Outcome::Held => None,
            Outcome::Retry(why) => {
                let limits = self.inner.config.limits(Channel::Voice);
                let next = now + retry_delay_ms(c.attempts);
                if c.attempts >= limits.max_attempts || next > c.expires_at_ms {
                    let code = if next > c.expires_at_ms {
                        "expired"
                    } else {
                        "retries_exhausted"
                    };
                    Some(fail_call(&mut c, now, code, why))
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
    fn carrier_ids_in_both_bases_apart() {
        assert_eq!(index_keys("1A2B"), vec!["=1a2b", "~6699"]);
        assert_eq!(index_keys("6699"), vec!["=6699", "~26265", "~1a2b"]);
        assert_eq!(index_keys("msg-abc"), vec!["=msg-abc"]);
        assert!(index_keys("").is_empty());
        assert_eq!(
            index_keys("FFFFFFFFFFFFFFFFFF").len(),
            1,
            "too long for u64"
        );
        // Receipt text pads decimal ids to ten digits.
        assert_eq!(normalized("0100000000"), "100000000");
        assert!(index_keys("5F5E100").contains(&"~100000000".to_string()));
        assert_eq!(lookup_keys("0100000000", true)[0], "~100000000");
        assert_eq!(lookup_keys("1A2B", false)[0], "=1a2b");
    }

    #[test]
    fn retries_back_off() {
        assert_eq!(retry_delay_ms(1), 30_000);
        assert_eq!(retry_delay_ms(2), 60_000);
        assert_eq!(retry_delay_ms(30), LONGEST_RETRY_MS);
    }
}
