//! SMS over SMPP 3.4: one `bind_transceiver` to the carrier's SMSC, kept
//! up for as long as the connector lives.
//!
//! The contract:
//! - [`SmppConnector::submit`] sends each part of a message as its own
//!   `submit_sm` and answers with the carrier's id of every part, or why
//!   not ([`SendError`]). It never waits longer than about
//!   `response_timeout_secs` for the bind plus as long again for the
//!   answer: a lost connection or a silent SMSC is a `Temporary` error,
//!   never a hang.
//! - At most `window` submits are unanswered on the bind at any time; a
//!   caller waits for room. An `ESME_RTHROTTLED` answer pauses every
//!   submit on the bind for `throttle_pause_ms`.
//! - Receipts and inbound messages become [`Report`](super::Report)s, and
//!   a `deliver_sm` is acknowledged only once its report has been handed
//!   to the reports channel: the SMSC keeps (and redelivers) whatever we
//!   could not pass on. When the service falls far behind, a `deliver_sm`
//!   is answered `ESME_RX_T_APPN` (try again later) rather than stalling
//!   the bind.
//! - The link heals itself: a refused bind, a dropped connection, an
//!   unanswered `enquire_link` lead to a reconnect with exponential
//!   backoff, never to an error anyone has to handle.
//!
//! `session` runs the link; `frames` cuts the stream into PDUs; `receipt`
//! reads what a `deliver_sm` says; `status` says what a `command_status`
//! means for a send.

mod frames;
mod receipt;
mod session;
mod status;

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusmpp::pdus::SubmitSm;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{DataCoding, EsmClass, Npi, RegisteredDelivery, Ton};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::{OutboundSms, Reports, SendError};

/// `[telnxo.sms.smpp]` of config.toml: where the SMSC is and how we
/// treat it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmppConfig {
    pub host: String,
    pub port: u16,
    /// The account at the carrier (SMPP allows 15 characters).
    pub system_id: String,
    /// SMPP allows 8 characters.
    pub password: String,
    /// Often empty; some carriers route by it.
    pub system_type: String,
    /// Unanswered `submit_sm`s allowed on the bind.
    pub window: usize,
    /// How often we check the link when nothing else proves it alive.
    pub enquire_link_secs: u64,
    /// How long a `submit_sm` (or a bind, or an `enquire_link`) waits for
    /// its answer.
    pub response_timeout_secs: u64,
    /// Reconnect backoff: the first wait, doubled after every failure up
    /// to the last.
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    /// How long every submit waits after an `ESME_RTHROTTLED`.
    pub throttle_pause_ms: u64,
}

impl Default for SmppConfig {
    fn default() -> Self {
        SmppConfig {
            host: "127.0.0.1".into(),
            port: 2775,
            system_id: String::new(),
            password: String::new(),
            system_type: String::new(),
            window: 10,
            enquire_link_secs: 30,
            response_timeout_secs: 10,
            reconnect_min_ms: 500,
            reconnect_max_ms: 30_000,
            throttle_pause_ms: 1000,
        }
    }
}

impl SmppConfig {
    /// Whether the configuration can work at all; the message says which
    /// key is wrong.
    pub fn check(&self) -> Result<(), String> {
        let ascii_up_to = |key: &str, value: &str, max: usize| {
            if !value.is_ascii() || value.len() > max || value.contains('\0') {
                Err(format!(
                    "telnxo.sms.smpp.{key}: at most {max} ASCII characters"
                ))
            } else {
                Ok(())
            }
        };
        if self.host.trim().is_empty() {
            return Err("telnxo.sms.smpp.host: empty".into());
        }
        if self.port == 0 {
            return Err("telnxo.sms.smpp.port: 0".into());
        }
        if self.system_id.is_empty() {
            return Err("telnxo.sms.smpp.system_id: empty".into());
        }
        // Bounds of the bind PDU's C-octet strings (SMPP 3.4 §4.1.1).
        ascii_up_to("system_id", &self.system_id, 15)?;
        ascii_up_to("password", &self.password, 8)?;
        ascii_up_to("system_type", &self.system_type, 12)?;
        if self.window == 0 || self.window > 10_000 {
            return Err("telnxo.sms.smpp.window: between 1 and 10000".into());
        }
        if self.enquire_link_secs == 0 {
            return Err("telnxo.sms.smpp.enquire_link_secs: at least 1".into());
        }
        if self.response_timeout_secs == 0 {
            return Err("telnxo.sms.smpp.response_timeout_secs: at least 1".into());
        }
        if self.reconnect_min_ms == 0 || self.reconnect_min_ms > self.reconnect_max_ms {
            return Err(
                "telnxo.sms.smpp.reconnect_min_ms: at least 1 and at most reconnect_max_ms".into(),
            );
        }
        Ok(())
    }

    fn response_timeout(&self) -> Duration {
        Duration::from_secs(self.response_timeout_secs)
    }

    fn throttle_pause(&self) -> Duration {
        Duration::from_millis(self.throttle_pause_ms)
    }
}

/// What the connector has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SmppStats {
    /// `submit_sm`s written.
    pub submitted: u64,
    /// Answered with a message id.
    pub accepted: u64,
    /// Answered `ESME_RTHROTTLED`.
    pub throttled: u64,
    /// Answered with another error, or not in time.
    pub failed: u64,
    pub receipts: u64,
    pub inbound: u64,
    /// Successful binds (the first and every rebind).
    pub binds: u64,
}

#[derive(Default)]
struct Counters {
    submitted: AtomicU64,
    accepted: AtomicU64,
    throttled: AtomicU64,
    failed: AtomicU64,
    receipts: AtomicU64,
    inbound: AtomicU64,
    binds: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the callers and the session task share.
struct Shared {
    config: SmppConfig,
    /// One permit per unanswered submit; the session holds a permit
    /// until the submit's answer (or its failure).
    window: Arc<Semaphore>,
    bound: watch::Sender<bool>,
    /// Submits wait until then after an `ESME_RTHROTTLED`.
    paused_until: Mutex<Option<Instant>>,
    counters: Counters,
}

impl Shared {
    fn pause(&self) {
        let until = Instant::now() + Duration::from_millis(self.config.throttle_pause_ms);
        let mut paused = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }

    async fn wait_while_paused(&self) {
        loop {
            let until = *self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
            match until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => return,
            }
        }
    }
}

/// One part on its way to the session task.
struct Submit {
    pdu: SubmitSm,
    reply: oneshot::Sender<Result<String, SendError>>,
    /// The part's place in the window, given back with its answer.
    permit: OwnedSemaphorePermit,
}

/// A bind to one SMSC; clones share it.
/// Tries of a later part of a message whose first part the SMSC took.
const LATER_PART_TRIES: u32 = 5;

#[derive(Clone)]
pub struct SmppConnector {
    shared: Arc<Shared>,
    requests: mpsc::Sender<Submit>,
}

impl SmppConnector {
    /// Starts the session task: it connects, binds and keeps the bind up
    /// until `shutdown` turns true or the last clone is dropped.
    pub fn start(
        config: SmppConfig,
        reports: Reports,
        shutdown: watch::Receiver<bool>,
    ) -> SmppConnector {
        let window = config.window.max(1);
        let shared = Arc::new(Shared {
            window: Arc::new(Semaphore::new(window)),
            bound: watch::Sender::new(false),
            paused_until: Mutex::new(None),
            counters: Counters::default(),
            config,
        });
        let (requests, incoming) = mpsc::channel(window);
        tokio::spawn(session::run(shared.clone(), incoming, reports, shutdown));
        SmppConnector { shared, requests }
    }

    /// Whether the bind is up now.
    pub fn is_bound(&self) -> bool {
        *self.shared.bound.borrow()
    }

    pub fn stats(&self) -> SmppStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SmppStats {
            submitted: get(&c.submitted),
            accepted: get(&c.accepted),
            throttled: get(&c.throttled),
            failed: get(&c.failed),
            receipts: get(&c.receipts),
            inbound: get(&c.inbound),
            binds: get(&c.binds),
        }
    }

    /// Submits every part, one after the other, and returns the carrier's
    /// id of each in part order.
    ///
    /// Once the first part is taken, a later part that is throttled or
    /// fails for now is tried again here (after the bind's pause), so the
    /// handset does not get the first parts twice. Only when it keeps
    /// failing, or is refused for good, is the error returned, and the
    /// service retries the whole message (a message missing its middle
    /// would be worse than repeated parts).
    pub async fn submit(&self, sms: &OutboundSms) -> Result<Vec<String>, SendError> {
        let pdus = submit_pdus(sms)?;
        let mut ids = Vec::with_capacity(pdus.len());
        for pdu in pdus {
            let mut tries = 0;
            let id = loop {
                match self.submit_part(pdu.clone()).await {
                    Err(SendError::Throttled | SendError::Temporary(_))
                        if !ids.is_empty() && tries < LATER_PART_TRIES =>
                    {
                        tries += 1;
                        tokio::time::sleep(self.shared.config.throttle_pause()).await;
                    }
                    other => break other?,
                }
            };
            ids.push(id);
        }
        Ok(ids)
    }

    async fn submit_part(&self, pdu: SubmitSm) -> Result<String, SendError> {
        let shared = &self.shared;
        let timeout = shared.config.response_timeout();
        let stopped = || SendError::Temporary("the SMPP connector has stopped".into());
        let permit = shared
            .window
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| stopped())?;
        shared.wait_while_paused().await;
        let mut bound = shared.bound.subscribe();
        if !*bound.borrow_and_update() {
            match tokio::time::timeout(timeout, bound.wait_for(|b| *b)).await {
                Ok(Ok(_)) => {}
                _ => return Err(SendError::Temporary("not bound".into())),
            }
        }
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Submit { pdu, reply, permit })
            .await
            .map_err(|_| stopped())?;
        // The session answers every submit it took, at the latest when
        // the submit's own deadline passes; this bound only guards
        // against a session task that is itself stuck.
        match tokio::time::timeout(timeout + Duration::from_secs(1), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(SendError::Temporary("the SMPP connection was lost".into())),
            Err(_) => Err(SendError::Temporary("no submit_sm_resp in time".into())),
        }
    }
}

/// TON and NPI of a source address, and the address as SMPP carries it:
/// a number (E.164, with or without `+`) is international/ISDN without
/// its `+`; anything else is an alphanumeric sender id.
fn source_address(from: &str) -> (u8, u8, &str) {
    let digits = from.strip_prefix('+').unwrap_or(from);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        (1, 1, digits)
    } else {
        (5, 0, from)
    }
}

/// The destination number without its `+` (always international/ISDN).
fn destination_address(to: &str) -> Option<&str> {
    let digits = to.strip_prefix('+').unwrap_or(to);
    (!digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(digits)
}

/// A `submit_sm` per part. What SMPP cannot carry is refused here, as
/// the SMSC would refuse it.
fn submit_pdus(sms: &OutboundSms) -> Result<Vec<SubmitSm>, SendError> {
    let refuse = |status: u32| {
        let (code, description) = status::describe(status);
        SendError::Permanent { code, description }
    };
    let (ton, npi, source) = source_address(&sms.from);
    let source = COctetString::from_str(source).map_err(|_| refuse(0x0A))?;
    let destination = destination_address(&sms.to).ok_or_else(|| refuse(0x0B))?;
    let destination = COctetString::from_str(destination).map_err(|_| refuse(0x0B))?;
    let several = sms.encoded.parts.len() > 1;
    let esm_class = if several { 0x40 } else { 0x00 };
    let data_coding = sms.encoded.encoding.data_coding();
    sms.encoded
        .parts
        .iter()
        .map(|part| {
            let short_message = OctetString::from_slice(part).map_err(|_| refuse(0x01))?;
            Ok(SubmitSm::builder()
                .source_addr_ton(Ton::from(ton))
                .source_addr_npi(Npi::from(npi))
                .source_addr(source.clone())
                .dest_addr_ton(Ton::International)
                .dest_addr_npi(Npi::Isdn)
                .destination_addr(destination.clone())
                .esm_class(EsmClass::from(esm_class))
                // SMSC delivery receipt on success and failure.
                .registered_delivery(RegisteredDelivery::from(1))
                .data_coding(DataCoding::from(data_coding))
                .short_message(short_message)
                .build())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rackwave_sms::encode;

    #[test]
    fn source_ton_npi() {
        assert_eq!(source_address("+919812345678"), (1, 1, "919812345678"));
        assert_eq!(source_address("919812345678"), (1, 1, "919812345678"));
        assert_eq!(source_address("RACKWV"), (5, 0, "RACKWV"));
        assert_eq!(source_address("Rack 42"), (5, 0, "Rack 42"));
        assert_eq!(source_address("+"), (5, 0, "+"));
        assert_eq!(destination_address("+447700900123"), Some("447700900123"));
        assert_eq!(destination_address("+44 7700"), None);
        assert_eq!(destination_address(""), None);
    }

    fn sms(from: &str, to: &str, text: &str) -> OutboundSms {
        OutboundSms {
            message_id: "msg_1".into(),
            from: from.into(),
            to: to.into(),
            encoded: encode(text, 9),
        }
    }

    #[test]
    fn parts_become_submits() {
        let one = submit_pdus(&sms("RACKWV", "+447700900123", "hello")).unwrap();
        assert_eq!(one.len(), 1);
        let p = &one[0];
        assert_eq!(
            (u8::from(p.source_addr_ton), u8::from(p.source_addr_npi)),
            (5, 0)
        );
        assert_eq!(p.destination_addr.as_str(), "447700900123");
        assert_eq!(u8::from(p.esm_class), 0);
        assert_eq!(u8::from(p.data_coding), 0);
        assert_eq!(u8::from(p.registered_delivery), 1);
        assert_eq!(p.short_message().as_ref(), b"hello");

        let three = submit_pdus(&sms("+15550001111", "+447700900123", &"क".repeat(150))).unwrap();
        assert_eq!(three.len(), 3);
        for (i, p) in three.iter().enumerate() {
            assert_eq!(u8::from(p.esm_class), 0x40);
            assert_eq!(u8::from(p.data_coding), 8);
            assert_eq!(p.source_addr.as_str(), "15550001111");
            assert_eq!(
                &p.short_message().as_ref()[..6],
                &[5, 0, 3, 9, 3, i as u8 + 1]
            );
        }
    }

    #[test]
    fn what_smpp_cannot_carry_is_refused() {
        let long_sender = "A".repeat(25);
        assert!(matches!(
            submit_pdus(&sms(&long_sender, "+4477", "x")),
            Err(SendError::Permanent { code, .. }) if code == "ESME_RINVSRCADR"
        ));
        assert!(matches!(
            submit_pdus(&sms("RACK", "not a number", "x")),
            Err(SendError::Permanent { code, .. }) if code == "ESME_RINVDSTADR"
        ));
    }

    #[test]
    fn config_checks() {
        let ok = SmppConfig {
            system_id: "rackwave".into(),
            ..SmppConfig::default()
        };
        assert_eq!(ok.check(), Ok(()));
        for bad in [
            SmppConfig {
                window: 0,
                ..ok.clone()
            },
            SmppConfig {
                system_id: String::new(),
                ..ok.clone()
            },
            SmppConfig {
                password: "123456789".into(),
                ..ok.clone()
            },
            SmppConfig {
                port: 0,
                ..ok.clone()
            },
            SmppConfig {
                reconnect_min_ms: 40_000,
                ..ok.clone()
            },
            SmppConfig {
                response_timeout_secs: 0,
                ..ok.clone()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        let parsed: SmppConfig =
            serde_json::from_str(r#"{"host":"smsc.example","window":50}"#).unwrap();
        assert_eq!(
            (parsed.port, parsed.window, parsed.throttle_pause_ms),
            (2775, 50, 1000)
        );
        assert!(serde_json::from_str::<SmppConfig>(r#"{"windw":5}"#).is_err());
    }
}
