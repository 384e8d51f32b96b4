//! The simulator: a carrier for every channel that runs offline, so the
//! shipped configuration works with no outside service and integrations
//! can be tried end to end. Outcomes are deterministic, chosen by the
//! **last digit of the destination number**; what happens later (receipts,
//! statuses, answers) happens after realistic delays on the injectable
//! clock, so tests move the clock instead of sleeping.
//!
//! | last digit | SMS                                   | WhatsApp                          | call                                  |
//! |------------|---------------------------------------|-----------------------------------|---------------------------------------|
//! | `1`        | refused at submit (`ESME_RINVDSTADR`) | sent, then `failed` (131026)      | busy: `voice.failed` `USER_BUSY`      |
//! | `2`        | receipt `UNDELIV` (err 001) after 3 s | sent, delivered, never read       | rings 30 s, no answer                 |
//! | `3`        | first try fails for now, then as `0`  | first try fails for now, then as `0` | first try fails for now, then as `0` |
//! | `4`        | sent, never a receipt                 | sent, never anything more          | answered, hung up at once (0 s)      |
//! | other      | receipt `DELIVRD` after 3 s per part  | sent 1 s, delivered 2 s, read 5 s | answered after 5 s, 30 s talk        |
//!
//! Inbound messages come on demand ([`Simulator::inbound_sms`],
//! [`Simulator::inbound_whatsapp`]; the API's `POST
//! /telnxo/v1/simulator/inbound`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rackwave_core::Clock;
use tokio::sync::watch;

use super::{
    CallEvent, CallReport, OutboundCall, OutboundSms, OutboundWhatsapp, Report, Reports, SendError,
    SmsInbound, SmsReceipt, WaStatus, WhatsappInbound, WhatsappStatus,
};

const SECOND: i64 = 1000;
/// How often the simulator looks at the clock for reports that are due.
const TICK: Duration = Duration::from_millis(50);

/// The simulated carrier of every channel (cheap to clone).
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Clock,
    reports: Reports,
    /// Reports to make, with the clock time they are due.
    scheduled: Mutex<Vec<(i64, Report)>>,
    /// Destinations whose one temporary failure (digit `3`) has happened.
    failed_once: Mutex<HashSet<String>>,
    ids: AtomicU64,
}

fn last_digit(number: &str) -> u8 {
    number
        .bytes()
        .last()
        .filter(u8::is_ascii_digit)
        .map_or(0, |b| b - b'0')
}

impl Simulator {
    /// Starts the simulator's clock watcher.
    pub fn start(clock: Clock, reports: Reports, mut shutdown: watch::Receiver<bool>) -> Simulator {
        let sim = Simulator {
            inner: Arc::new(Inner {
                clock,
                reports,
                scheduled: Mutex::new(Vec::new()),
                failed_once: Mutex::new(HashSet::new()),
                ids: AtomicU64::new(0x5100_0000),
            }),
        };
        let ticking = sim.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(TICK) => {}
                    _ = shutdown.wait_for(|s| *s) => return,
                }
                ticking.release_due().await;
            }
        });
        sim
    }

    async fn release_due(&self) {
        let now = self.inner.clock.now_ms();
        let due: Vec<Report> = {
            let mut scheduled = self.inner.scheduled.lock().expect("simulator lock");
            scheduled.sort_by_key(|(at, _)| *at);
            let n = scheduled.partition_point(|(at, _)| *at <= now);
            scheduled.drain(..n).map(|(_, r)| r).collect()
        };
        for report in due {
            if self.inner.reports.send(report).await.is_err() {
                return;
            }
        }
    }

    fn later(&self, after_ms: i64, report: Report) {
        let at = self.inner.clock.now_ms() + after_ms;
        self.inner
            .scheduled
            .lock()
            .expect("simulator lock")
            .push((at, report));
    }

    /// Digit `3`: the first try to reach `to` fails for now.
    fn fails_once(&self, channel: &str, to: &str) -> bool {
        last_digit(to) == 3
            && self
                .inner
                .failed_once
                .lock()
                .expect("simulator lock")
                .insert(format!("{channel}:{to}"))
    }

    fn next_id(&self) -> u64 {
        self.inner.ids.fetch_add(1, Ordering::Relaxed)
    }

    pub async fn submit_sms(&self, sms: &OutboundSms) -> Result<Vec<String>, SendError> {
        if self.fails_once("sms", &sms.to) {
            return Err(SendError::Temporary("simulated: message queue full".into()));
        }
        if last_digit(&sms.to) == 1 {
            return Err(SendError::Permanent {
                code: "ESME_RINVDSTADR".into(),
                description: "invalid destination address (simulated)".into(),
            });
        }
        let ids: Vec<String> = sms
            .encoded
            .parts
            .iter()
            .map(|_| format!("{:X}", self.next_id()))
            .collect();
        let (stat, error) = match last_digit(&sms.to) {
            2 => ("UNDELIV", Some("001".to_string())),
            4 => return Ok(ids),
            _ => ("DELIVRD", None),
        };
        for id in &ids {
            self.later(
                3 * SECOND,
                Report::SmsReceipt(SmsReceipt {
                    carrier_id: id.clone(),
                    stat: stat.into(),
                    error: error.clone(),
                }),
            );
        }
        Ok(ids)
    }

    pub async fn send_whatsapp(&self, m: &OutboundWhatsapp) -> Result<String, SendError> {
        if self.fails_once("whatsapp", &m.to) {
            return Err(SendError::Temporary(
                "simulated: service unavailable".into(),
            ));
        }
        let wamid = format!("wamid.SIM{:016X}", self.next_id());
        let status = |status, after: i64, error: Option<(String, String)>| {
            (
                after,
                Report::WhatsappStatus(WhatsappStatus {
                    wamid: wamid.clone(),
                    status,
                    recipient: m.to.clone(),
                    at_ms: self.inner.clock.now_ms() + after,
                    error,
                }),
            )
        };
        let mut steps = vec![status(WaStatus::Sent, SECOND, None)];
        match last_digit(&m.to) {
            1 => steps.push(status(
                WaStatus::Failed,
                2 * SECOND,
                Some(("131026".into(), "Message undeliverable".into())),
            )),
            2 => steps.push(status(WaStatus::Delivered, 2 * SECOND, None)),
            4 => {}
            _ => {
                steps.push(status(WaStatus::Delivered, 2 * SECOND, None));
                steps.push(status(WaStatus::Read, 5 * SECOND, None));
            }
        }
        for (after, report) in steps {
            self.later(after, report);
        }
        Ok(wamid)
    }

    pub async fn dial(&self, call: &OutboundCall) -> Result<(), SendError> {
        if self.fails_once("voice", &call.to) {
            return Err(SendError::Temporary(
                "simulated: gateway unreachable".into(),
            ));
        }
        let now = self.inner.clock.now_ms();
        let report = |event| {
            Report::Call(CallReport {
                call_id: call.call_id.clone(),
                event,
            })
        };
        let hangup = |after: i64, cause: &str, answered: bool, billsec: u64, ring_secs: u64| {
            (
                after,
                report(CallEvent::Hangup {
                    at_ms: now + after,
                    cause: cause.into(),
                    answered,
                    billsec,
                    ring_secs,
                    recording_url: (answered && call.record).then(|| {
                        format!(
                            "https://simulator.telnxo.invalid/recordings/{}.wav",
                            call.call_id
                        )
                    }),
                }),
            )
        };
        let steps = match last_digit(&call.to) {
            1 => vec![(
                2 * SECOND,
                report(CallEvent::Failed {
                    cause: "USER_BUSY".into(),
                }),
            )],
            2 => vec![hangup(30 * SECOND, "NO_ANSWER", false, 0, 30)],
            4 => vec![
                (
                    5 * SECOND,
                    report(CallEvent::Answered {
                        at_ms: now + 5 * SECOND,
                    }),
                ),
                hangup(5 * SECOND, "NORMAL_CLEARING", true, 0, 5),
            ],
            _ => vec![
                (
                    5 * SECOND,
                    report(CallEvent::Answered {
                        at_ms: now + 5 * SECOND,
                    }),
                ),
                hangup(35 * SECOND, "NORMAL_CLEARING", true, 30, 5),
            ],
        };
        for (after, r) in steps {
            self.later(after, r);
        }
        Ok(())
    }

    /// A text message from a handset to one of our numbers, now.
    pub async fn inbound_sms(&self, from: &str, to: &str, body: &str) {
        let _ = self
            .inner
            .reports
            .send(Report::SmsInbound(SmsInbound {
                from: from.into(),
                to: to.into(),
                body: body.into(),
                segment: None,
            }))
            .await;
    }

    /// A WhatsApp message (or, with `button`, a reply button tapped) from a
    /// user to one of our numbers, now.
    pub async fn inbound_whatsapp(
        &self,
        from: &str,
        to: &str,
        body: &str,
        button: Option<(String, String)>,
    ) -> String {
        let wamid = format!("wamid.SIMIN{:016X}", self.next_id());
        let kind = if button.is_some() {
            "interactive"
        } else {
            "text"
        };
        let _ = self
            .inner
            .reports
            .send(Report::WhatsappInbound(WhatsappInbound {
                wamid: wamid.clone(),
                from: from.into(),
                to: to.into(),
                kind: kind.into(),
                body: body.into(),
                button,
                at_ms: self.inner.clock.now_ms(),
            }))
            .await;
        wamid
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn digits_choose_outcomes() {
        assert_eq!(super::last_digit("+919876543211"), 1);
        assert_eq!(super::last_digit("+919876543210"), 0);
        assert_eq!(super::last_digit("RACKWAVE"), 0);
    }
}
