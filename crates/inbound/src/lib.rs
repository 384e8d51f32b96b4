//! The inbound side of MigoSMTP: the MX of the bounce domain and of each
//! sending domain's return-path host, where mailbox providers send the
//! bounces that come after a message was accepted and the complaints of
//! their users.
//!
//! # Which addresses it takes
//!
//! Only three kinds, and `550 5.1.1` for everything else: it never relays
//! and needs no AUTH, like any MX ([`Inbound::mailbox`]).
//! - The VERP return paths of our messages, `bounce-<message id>-<sig>@<host>`,
//!   whose signature (made with the tracking key, see
//!   `TrackingKey::return_path_tag`) is ours, whose message exists and
//!   whose host is the one that message was sent with. A guessed,
//!   altered or other workspace's address is refused at `RCPT`.
//! - The feedback address the feedback loops are registered with
//!   (`[inbound] feedback_address`).
//! - `postmaster` at the bounce domain and the return-path hosts (RFC 5321
//!   §4.5.1): read like the rest (a provider may send its reports there),
//!   logged and dropped when it is not a report.
//!
//! # What it does with them
//!
//! Each message is read once ([`report::read`]):
//! - A delivery status notification (RFC 3464) becomes a later report of
//!   the original message in the spool (`Spool::report`): `failed` makes
//!   it bounced with `email.bounced`, `delayed` records `email.deferred`;
//!   the remote reply it quotes is classified by the same rules as a reply
//!   during delivery, and the events, webhooks and suppression of hard
//!   bounces follow from the spool's feed as for any bounce.
//! - A feedback report (RFC 5965) of type `abuse`, `fraud` or `virus`
//!   becomes `email.complained` (with `feedback_source`) and a `complaint`
//!   entry on the workspace's suppression list, in one transaction.
//! - Out-of-office replies, success notifications, `not-spam` reports,
//!   reports about messages we cannot identify and anything unreadable are
//!   logged and dropped: never a bounce.
//!
//! The message a report is about is found from the envelope recipient
//! (the VERP address it was sent to) or, for a report sent elsewhere (the
//! feedback address), from the original it returns: its envelope sender
//! (`Original-Mail-From`, `Return-Path`) or our signed unsubscribe link.
//! Everything is checked against our signatures, so a forged report can
//! name only messages its sender received.

mod arf;
mod config;
mod dsn;
mod metrics;
pub mod report;

use std::collections::BTreeSet;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use rackwave_accounts::RETURN_PATH_LABEL;
use rackwave_core::event::{BouncedDetail, DeferredDetail, EmailComplained, EmailEvent};
use rackwave_core::{Clock, Timestamp};
use rackwave_delivery::classify::{classify_with_reason, BounceType, Verdict};
use rackwave_events::{Events, EventsError};
use rackwave_queue::{LateReport, MessageRecord, Spool, SpoolError};
use rackwave_smtp_proto::address::verp;
use rackwave_store::{StoreError, Suppression, SuppressionReason};
use rackwave_tracking::{Link, TrackingKey};
use tokio::sync::Semaphore;

pub use arf::Feedback;
pub use config::InboundConfig;
pub use dsn::{Action, Dsn, RecipientStatus};
pub use report::{Original, Report};

use metrics::InboundMetrics;

/// An address the MX takes mail for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mailbox {
    /// The return path of one of our messages.
    ReturnPath {
        message_id: String,
    },
    /// The feedback loops' address.
    Feedback,
    Postmaster,
}

/// Why an address or a message is refused, as an SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub enhanced: &'static str,
    pub text: String,
}

impl Refusal {
    /// Storage could not answer: the sender should try again.
    fn try_later() -> Refusal {
        Refusal {
            code: 451,
            enhanced: "4.3.0",
            text: "Temporary failure, try again later".into(),
        }
    }
}

/// A message received by the MX.
pub struct Received<'a> {
    pub mail_from: &'a str,
    pub mailboxes: &'a [Mailbox],
    pub message: Vec<u8>,
}

/// What became of a received message (also the metric's label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Bounced,
    Deferred,
    Complained,
    /// Dropped, and why.
    Dropped(&'static str),
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Bounced => "bounced",
            Outcome::Deferred => "deferred",
            Outcome::Complained => "complained",
            Outcome::Dropped(why) => why,
        }
    }
}

/// Why a report could not be recorded now: the sender is answered `451`
/// and tries again.
#[derive(Debug)]
struct Later(String);

/// A spool error while looking a message up: data of one message that
/// cannot be read is skipped (logged), the spool failing is [`Later`].
fn skip_unreadable<T: Default>(r: Result<T, SpoolError>, what: &str) -> Result<T, Later> {
    match r {
        Ok(v) => Ok(v),
        Err(
            e @ (SpoolError::Encoding { .. } | SpoolError::Corrupt(_) | SpoolError::Invalid(_)),
        ) => {
            tracing::error!(error = %e, what, "inbound: skipped an unreadable record");
            Ok(T::default())
        }
        Err(e) => Err(Later(e.to_string())),
    }
}

/// The inbound service (cheap to clone).
#[derive(Clone)]
pub struct Inbound {
    inner: Arc<Inner>,
}

struct Inner {
    bounce_domain: String,
    feedback_address: String,
    key: TrackingKey,
    spool: Spool,
    events: Events,
    clock: Clock,
    metrics: InboundMetrics,
    /// Reports read at once: reading is CPU work off the I/O threads,
    /// and the MX is open to anyone.
    reading: Semaphore,
}

/// What the service works with.
pub struct Parts {
    pub config: InboundConfig,
    /// `[delivery] bounce_domain`.
    pub bounce_domain: String,
    /// The key the return paths and links are signed with.
    pub key: TrackingKey,
    pub spool: Spool,
    pub events: Events,
    pub clock: Clock,
}

impl Inbound {
    pub fn new(parts: Parts, registry: &mut Registry) -> Inbound {
        let bounce_domain = parts.bounce_domain.to_ascii_lowercase();
        let feedback_address = parts
            .config
            .feedback_address
            .clone()
            .unwrap_or_else(|| format!("fbl@{bounce_domain}"))
            .to_ascii_lowercase();
        Inbound {
            inner: Arc::new(Inner {
                bounce_domain,
                feedback_address,
                key: parts.key,
                spool: parts.spool,
                events: parts.events,
                clock: parts.clock,
                metrics: InboundMetrics::register(registry),
                reading: Semaphore::new(2),
            }),
        }
    }

    /// Whether the MX takes mail for `address` (at `RCPT`).
    pub fn mailbox(&self, address: &str) -> Result<Mailbox, Refusal> {
        let inner = &self.inner;
        let lower = address.to_ascii_lowercase();
        let ours = |host: &str| {
            host == inner.bounce_domain
                || host
                    .strip_prefix(RETURN_PATH_LABEL)
                    .is_some_and(|rest| rest.starts_with('.'))
        };
        if lower == "postmaster" || lower.strip_prefix("postmaster@").is_some_and(ours) {
            return Ok(Mailbox::Postmaster);
        }
        if lower == inner.feedback_address {
            return Ok(Mailbox::Feedback);
        }
        let unknown = || Refusal {
            code: 550,
            enhanced: "5.1.1",
            text: format!("<{address}>: no such mailbox here"),
        };
        let Some((tag, host)) = verp::split(address) else {
            return Err(unknown());
        };
        let Some(id) = inner.key.message_of_return_path_tag(tag) else {
            tracing::info!(%address, "inbound: refused a return path we did not sign");
            return Err(unknown());
        };
        let id = id.to_ascii_lowercase();
        let found = skip_unreadable(inner.spool.get(&id), &id).map_err(|Later(e)| {
            tracing::error!(error = %e, "inbound: reading the spool failed");
            Refusal::try_later()
        })?;
        match found {
            Some(rec) if host.eq_ignore_ascii_case(self.return_host(&rec)) => {
                Ok(Mailbox::ReturnPath { message_id: id })
            }
            _ => {
                tracing::info!(%address, "inbound: refused a return path of no message sent with it");
                Err(unknown())
            }
        }
    }

    /// Reads a received message and records what it reports. `Err` only
    /// when that could not be done now (the sender should try again).
    pub async fn receive(&self, mail: Received<'_>) -> Result<Outcome, Refusal> {
        let report = {
            let _reading = self
                .inner
                .reading
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let message = mail.message;
            tokio::task::spawn_blocking(move || report::read(&message))
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "inbound: reading a report failed");
                    Refusal::try_later()
                })?
        };
        let outcome = match report {
            Report::Delivery(dsn) => self.delivery_report(mail.mailboxes, &dsn).await,
            Report::Feedback(f) => self.feedback_report(mail.mailboxes, &f).await,
            Report::AutoReply => {
                tracing::info!(from = %mail.mail_from, "inbound: dropped an automatic reply");
                Ok(Outcome::Dropped("auto_reply"))
            }
            Report::Unreadable(why) => {
                tracing::info!(from = %mail.mail_from, why, "inbound: dropped a message that is not a report");
                Ok(Outcome::Dropped("unreadable"))
            }
        };
        match outcome {
            Ok(o) => {
                self.inner.metrics.received(o.label());
                Ok(o)
            }
            Err(Later(e)) => {
                self.inner.metrics.received("failed");
                tracing::error!(error = %e, "inbound: recording a report failed");
                Err(Refusal::try_later())
            }
        }
    }

    /// The host a message's return path was at.
    fn return_host<'r>(&'r self, rec: &'r MessageRecord) -> &'r str {
        rec.return_path
            .as_deref()
            .unwrap_or(&self.inner.bounce_domain)
    }

    /// The messages a report is about: the return paths it was sent to,
    /// else the first one the original names.
    fn messages_of(
        &self,
        mailboxes: &[Mailbox],
        named: &[&str],
        original: &Original,
    ) -> Result<Vec<MessageRecord>, Later> {
        let mut ids = BTreeSet::new();
        for m in mailboxes {
            if let Mailbox::ReturnPath { message_id } = m {
                ids.insert(message_id.clone());
            }
        }
        if ids.is_empty() {
            let paths = named
                .iter()
                .copied()
                .chain(original.return_paths.iter().map(String::as_str));
            for path in paths {
                if let Some(id) = verp::split(path)
                    .and_then(|(tag, _)| self.inner.key.message_of_return_path_tag(tag))
                {
                    ids.insert(id.to_ascii_lowercase());
                    break;
                }
            }
        }
        if ids.is_empty() {
            return Ok(self
                .message_of_unsubscribe_link(original)?
                .into_iter()
                .collect());
        }
        let mut found = Vec::new();
        for id in ids {
            found.extend(skip_unreadable(self.inner.spool.get(&id), &id)?);
        }
        Ok(found)
    }

    /// The message our signed unsubscribe link in the original names.
    fn message_of_unsubscribe_link(
        &self,
        original: &Original,
    ) -> Result<Option<MessageRecord>, Later> {
        for url in &original.unsubscribe_urls {
            let Some(token) = url
                .rsplit_once("/u/")
                .and_then(|(_, t)| t.split(['?', '#']).next())
            else {
                continue;
            };
            let Some((Link::Unsubscribe, who)) = self.inner.key.verify(token) else {
                continue;
            };
            let spool = &self.inner.spool;
            for id in skip_unreadable(spool.by_queue_id(&who.queue_id), &who.queue_id)? {
                let Some(m) = skip_unreadable(spool.get(&id), &id)? else {
                    continue;
                };
                if m.workspace_id == who.workspace_id && m.to.eq_ignore_ascii_case(&who.address) {
                    return Ok(Some(m));
                }
            }
        }
        Ok(None)
    }

    async fn delivery_report(&self, mailboxes: &[Mailbox], dsn: &Dsn) -> Result<Outcome, Later> {
        let messages = self.messages_of(mailboxes, &[], &dsn.original)?;
        if messages.is_empty() {
            tracing::info!("inbound: dropped a delivery report about no message of ours");
            return Ok(Outcome::Dropped("unknown_message"));
        }
        let now = self.inner.clock.now_ms();
        let mut outcome = Outcome::Dropped("not_about_the_recipient");
        for rec in messages {
            let Some((status, named)) = dsn.about(&rec.to) else {
                tracing::info!(message_id = %rec.id, "inbound: a delivery report names other recipients");
                continue;
            };
            let Some((event, this)) = late_event(status, named, now) else {
                tracing::info!(message_id = %rec.id, action = ?status.action, "inbound: dropped a delivery report that is not a failure");
                outcome = Outcome::Dropped("success");
                continue;
            };
            // Our own settlement may not be written yet (a server that
            // bounces within seconds of accepting): try again later.
            if !rec.status.is_final() {
                return Err(Later(format!("{} is not settled yet", rec.id)));
            }
            let reply = status.reply();
            let mut text = format!(
                "{} {} {}",
                reply.code,
                reply.enhanced.as_deref().unwrap_or(""),
                reply.text
            )
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
            report::clip(&mut text, report::MAX_VALUE);
            let late = LateReport {
                at_ms: now,
                outcome: event,
                reply: text,
            };
            match self.inner.spool.report(&rec.id, late).await {
                Ok(_) => {
                    tracing::info!(message_id = %rec.id, outcome = this.label(), "inbound: delivery report recorded");
                    outcome = this;
                }
                Err(
                    e @ (SpoolError::Invalid(_)
                    | SpoolError::NotFound(_)
                    | SpoolError::Encoding { .. }
                    | SpoolError::Corrupt(_)),
                ) => {
                    tracing::info!(message_id = %rec.id, error = %e, "inbound: dropped a delivery report");
                    outcome = Outcome::Dropped("not_delivered");
                }
                Err(e) => return Err(Later(e.to_string())),
            }
        }
        Ok(outcome)
    }

    async fn feedback_report(&self, mailboxes: &[Mailbox], f: &Feedback) -> Result<Outcome, Later> {
        if !f.is_complaint() {
            tracing::info!(feedback_type = %f.feedback_type, source = %f.source, "inbound: dropped a feedback report that is not a complaint");
            return Ok(Outcome::Dropped("not_a_complaint"));
        }
        let named: Vec<&str> = f.original_mail_from.iter().map(String::as_str).collect();
        let messages = self.messages_of(mailboxes, &named, &f.original)?;
        if messages.is_empty() {
            tracing::info!(source = %f.source, "inbound: dropped a complaint about no message of ours");
            return Ok(Outcome::Dropped("unknown_message"));
        }
        let now = self.inner.clock.now_ms();
        for rec in messages {
            let suppression = Suppression {
                workspace_id: rec.workspace_id.clone(),
                address: Suppression::address_key(&rec.to),
                reason: SuppressionReason::Complaint,
                message_id: Some(rec.id.clone()),
                detail: Some(format!("feedback report from {}", f.source)),
                created_at_ms: now,
            };
            let event = EmailComplained {
                message_id: rec.id.clone(),
                to: rec.to.clone(),
                complained_at: Timestamp(now),
                feedback_source: f.source.clone(),
            };
            match self
                .inner
                .events
                .emit_suppressing(&rec.workspace_id, event, &suppression)
                .await
            {
                Ok(recorded) => {
                    tracing::info!(message_id = %rec.id, source = %f.source, repeated = recorded.is_none(), "inbound: complaint recorded");
                }
                // An address the store cannot key (the feed consumer
                // skips it the same way): nothing to retry.
                Err(EventsError::Store(e @ StoreError::Invalid(_))) => {
                    tracing::warn!(message_id = %rec.id, error = %e, "inbound: dropped a complaint");
                    return Ok(Outcome::Dropped("not_recordable"));
                }
                Err(e) => return Err(Later(e.to_string())),
            }
        }
        Ok(Outcome::Complained)
    }
}

/// The history entry a recipient block makes: a failure is a bounce,
/// typed by the same rules as a reply during delivery (one that reads as
/// temporary means the remote side gave up retrying: expired); a delay is
/// a deferral, its `next_retry_at` the report's `Will-Retry-Until` (until
/// when the remote side keeps trying), else its arrival. Successes make
/// none. A block that does not `name` our recipient (the address it
/// forwards to failed) never says our address is bad: such a bounce is
/// `other`, so it suppresses nothing.
fn late_event(status: &RecipientStatus, named: bool, now_ms: i64) -> Option<(EmailEvent, Outcome)> {
    let reply = status.reply();
    let (verdict, rule) = classify_with_reason(reply.code, reply.enhanced.as_deref(), &reply.text);
    let code = reply
        .enhanced
        .clone()
        .unwrap_or_else(|| reply.code.to_string());
    let reason = if reply.text.is_empty() {
        format!("{} {}", reply.code, code)
    } else {
        reply.text.clone()
    };
    match status.action {
        Action::Failed => {
            let (bounce_type, classified_by) = match verdict {
                Verdict::Bounced(t) if !named && t.suppresses() => (
                    BounceType::Other,
                    "delivery report about another address (forwarded)".to_string(),
                ),
                Verdict::Bounced(t) => (t, format!("delivery report: {rule}")),
                _ => (
                    BounceType::Expired,
                    "delivery report: failed after retrying".to_string(),
                ),
            };
            let detail = BouncedDetail {
                bounce_type,
                bounce_code: code,
                bounce_reason: reason,
                classified_by,
            };
            Some((EmailEvent::Bounced(detail), Outcome::Bounced))
        }
        Action::Delayed => {
            let defer_type = verdict
                .bounce_type()
                .unwrap_or(BounceType::TemporaryFailure);
            let detail = DeferredDetail {
                defer_reason: reason,
                defer_code: code,
                defer_type,
                next_retry_at: Timestamp(status.will_retry_until_ms.unwrap_or(now_ms)),
                classified_by: format!("delivery report: {rule}"),
            };
            Some((EmailEvent::Deferred(detail), Outcome::Deferred))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERP: &str = "bounce-msg_0123456789abcdef-0a1b2c3d4e5f@bounces.rackwave.test";
    const RCPT: &str = "Ada.Lovelace@example.org";
    const UNSUBSCRIBE: &str = "https://t.rackwave.test/u/AbC.dEf";

    /// A fixture of `fixtures/inbound/` with its placeholders filled in.
    pub(crate) fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../../fixtures/inbound/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .replace("{{verp}}", VERP)
            .replace("{{rcpt}}", RCPT)
            .replace("{{sender}}", "news@shop.example")
            .replace("{{message_id}}", "0123456789ABCDEF.1@mx.rackwave.test")
            .replace("{{list_unsubscribe}}", &format!("<{UNSUBSCRIBE}>"))
            .replace("{{date}}", "Tue, 01 Dec 2026 10:00:00 +0000")
            .into_bytes()
    }

    /// What the MX makes of a report about a message to `RCPT`, in the
    /// words of `expected.tsv`.
    fn outcome(report: &Report) -> String {
        match report {
            Report::Delivery(dsn) => match dsn
                .about(RCPT)
                .and_then(|(s, named)| late_event(s, named, 0))
            {
                Some((EmailEvent::Bounced(d), _)) => format!("bounced:{}", d.bounce_type),
                Some((EmailEvent::Deferred(d), _)) => format!("deferred:{}", d.defer_type),
                Some(_) => unreachable!("late_event makes bounces and deferrals"),
                None => "ignored:success".into(),
            },
            Report::Feedback(f) if f.is_complaint() => "complained".into(),
            Report::Feedback(_) => "ignored:not_spam".into(),
            Report::AutoReply => "ignored:auto_reply".into(),
            Report::Unreadable(_) => "ignored:unparseable".into(),
        }
    }

    #[test]
    fn every_fixture_reads_as_expected() {
        let table = std::fs::read_to_string(format!(
            "{}/../../fixtures/inbound/expected.tsv",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let mut seen = 0;
        for line in table.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            let mut cols = line.split('\t');
            let (file, expected) = (cols.next().unwrap(), cols.next().unwrap());
            let report = report::read(&fixture(file));
            assert_eq!(outcome(&report), expected, "{file}: {report:?}");
            // Whatever a report names the message by is found.
            match &report {
                Report::Delivery(dsn) if expected != "ignored:success" => {
                    let (about, _) = dsn.about(RCPT).unwrap();
                    assert!(
                        [&about.final_recipient, &about.original_recipient]
                            .into_iter()
                            .flatten()
                            .any(|a| a.eq_ignore_ascii_case(RCPT)),
                        "{file}: {about:?}"
                    );
                }
                Report::Feedback(f) if f.is_complaint() => {
                    let named = f.original_mail_from.as_deref() == Some(VERP)
                        || f.original.return_paths.iter().any(|p| p == VERP)
                        || f.original.unsubscribe_urls.iter().any(|u| u == UNSUBSCRIBE);
                    assert!(named, "{file}: names no message: {f:?}");
                    assert!(!f.source.is_empty() && f.source != "unknown", "{file}");
                }
                _ => {}
            }
            seen += 1;
        }
        assert!(seen >= 15, "{seen} fixtures");
    }

    #[test]
    fn the_sources_of_complaints() {
        let Report::Feedback(yahoo) = report::read(&fixture("arf-yahoo-complaint.eml")) else {
            panic!("not a feedback report");
        };
        assert_eq!(yahoo.source, "arf.mail.yahoo.com");
        assert_eq!(yahoo.original_mail_from.as_deref(), Some(VERP));
        let Report::Feedback(jmrp) = report::read(&fixture("arf-outlook-jmrp.eml")) else {
            panic!("not a feedback report");
        };
        assert_eq!(jmrp.source, "hotmail.com");
    }

    #[test]
    fn hostile_reports_are_read_in_bounded_time_and_never_crash() {
        // 50,000 recipient blocks, a huge field, binary noise: read (or
        // refused), never a panic.
        let mut status = String::from("Reporting-MTA: dns; x\r\n\r\n");
        for i in 0..50_000 {
            status.push_str(&format!("Final-Recipient: rfc822; a{i}@x.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"));
        }
        let big = format!(
            "From: m@x.example\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n{status}--b\r\nContent-Type: text/rfc822-headers\r\n\r\nReturn-Path: <{}>\r\n--b--\r\n",
            "a".repeat(100_000)
        );
        match report::read(big.as_bytes()) {
            Report::Delivery(dsn) => assert!(dsn.recipients.len() <= 100),
            other => panic!("{other:?}"),
        }
        let noise: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let _ = report::read(&noise);
    }
}
