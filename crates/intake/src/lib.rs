//! The one path from a submission to the spool.
//!
//! Whatever hands a message in, an SMTP session, the HTTP send API or an
//! internal notification, builds a [`Submission`] and calls
//! [`Intake::submit`], which, in this order:
//!
//! 1. checks the header section (structure, a `From:` field, at most
//!    `max_header_bytes`);
//! 2. stamps the trace: a `Received:` field naming the source, and the
//!    `Message-ID:` and `Date:` a client left out (RFC 6409 §8);
//! 3. applies the per-workspace [`Policy`] hooks (they may refuse the
//!    submission, drop recipients with a reason, or rewrite the message);
//! 4. signs with the workspace's DKIM key for the `From:` domain, if it has
//!    one (over the final message, so the signature covers every rewrite);
//! 5. enqueues durably (the spool fsyncs before it returns);
//! 6. turns the quota reservation into accepted recipients;
//! 7. counts it and wakes the delivery engine.
//!
//! A refusal at any step leaves nothing queued; the reservation is given
//! back when the submission is dropped. The caller answers in its own
//! protocol: the SMTP session maps a [`Refusal`] to a reply, the HTTP API to
//! a status.

pub mod compose;
mod headers;
mod metrics;
pub mod quota;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use mail_parser::MessageParser;
use prometheus_client::registry::Registry;
pub use rackwave_accounts::SenderRules;
use rackwave_accounts::{Domains, Suppressions};
use rackwave_core::{random_hex, rfc5322, Clock, MS_PER_DAY};
use rackwave_queue::Spool;
use tokio::sync::Notify;

use headers::{check_header_section, field_value, take_field, HeaderError};
use metrics::IntakeMetrics;
pub use quota::{Limits, QuotaError, Quotas, Reservation};
use rackwave_tracking::{Prepared, Switches, TrackingKey};

/// Where a submission came from; named in its `Received:` field and in the
/// metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An SMTP session: the client's EHLO name and address, whether it
    /// spoke ESMTP and whether the session was encrypted.
    Smtp {
        helo: String,
        peer: IpAddr,
        esmtp: bool,
        tls: bool,
    },
    /// The HTTP send API, with the id of the key that was used.
    Http { api_key_id: String },
    /// A message the platform sends itself (portal notifications).
    Notification,
}

impl Source {
    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Source::Smtp { .. } => "smtp",
            Source::Http { .. } => "http",
            Source::Notification => "notification",
        }
    }

    fn received(&self, host: &str, node: &str, queue_id: &str, date: &str) -> String {
        match self {
            Source::Smtp {
                helo,
                peer,
                esmtp,
                tls,
            } => {
                let protocol = match (esmtp, tls) {
                    (true, true) => "ESMTPSA",
                    (true, false) => "ESMTPA",
                    (false, _) => "SMTP",
                };
                format!(
                    "Received: from {} ([{peer}])\r\n\tby {host} (Rackwave node {node}) with {protocol}\r\n\tid {queue_id}; {date}\r\n",
                    helo.replace(['\r', '\n'], "")
                )
            }
            Source::Http { api_key_id } => format!(
                "Received: from api key {api_key_id}\r\n\tby {host} (Rackwave node {node}) with HTTPS\r\n\tid {queue_id}; {date}\r\n"
            ),
            Source::Notification => {
                format!("Received: by {host} (Rackwave node {node}, notifications)\r\n\tid {queue_id}; {date}\r\n")
            }
        }
    }
}

/// A message handed in for delivery.
pub struct Submission {
    pub source: Source,
    pub workspace_id: String,
    /// Whose quota the recipients count against (an SMTP username, an API
    /// key id); the spool keeps its accepted count per UTC day.
    pub submitter: String,
    /// Envelope sender (empty for the null sender).
    pub mail_from: String,
    /// Envelope recipients; each becomes one message.
    pub recipients: Vec<String>,
    /// The complete message as received (headers and body, CRLF).
    pub message: Vec<u8>,
    /// The quota units reserved for the recipients; committed when the
    /// message is durable, given back if the submission is refused.
    pub reservation: Option<Reservation>,
    /// Labels and key/value pairs stored with each message and carried by
    /// its events (the HTTP API's `tags` and `metadata`).
    pub tags: Vec<String>,
    pub metadata: std::collections::BTreeMap<String, String>,
    /// What this message carries per recipient; a switch left `None`
    /// follows the message's `X-Rackwave-Tracking` field, else the
    /// workspace's default.
    pub tracking: TrackingChoice,
    /// The workspace's sender rules when the caller read them already for
    /// this request ([`Intake::sender_rules`]): a batch of messages reads
    /// them once, not once a message. `None`: read here.
    pub sender_rules: Option<std::sync::Arc<SenderRules>>,
}

/// Per-recipient switches of one message (`None`: not said).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackingChoice {
    pub opens: Option<bool>,
    pub clicks: Option<bool>,
    pub unsubscribe: Option<bool>,
}

impl TrackingChoice {
    /// The switches of an `X-Rackwave-Tracking` value:
    /// `opens=on; clicks=off; unsubscribe=on` (also yes/no, true/false);
    /// anything else is ignored.
    pub fn parse(value: &str) -> TrackingChoice {
        let mut choice = TrackingChoice::default();
        for (k, v) in value.split([';', ',']).filter_map(|p| p.split_once('=')) {
            let on = match v.trim().to_ascii_lowercase().as_str() {
                "on" | "yes" | "true" => true,
                "off" | "no" | "false" => false,
                _ => continue,
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "opens" => choice.opens = Some(on),
                "clicks" => choice.clicks = Some(on),
                "unsubscribe" => choice.unsubscribe = Some(on),
                _ => {}
            }
        }
        choice
    }

    /// Each switch of `self`, else of `other`.
    pub fn or(self, other: TrackingChoice) -> TrackingChoice {
        TrackingChoice {
            opens: self.opens.or(other.opens),
            clicks: self.clicks.or(other.clicks),
            unsubscribe: self.unsubscribe.or(other.unsubscribe),
        }
    }
}

/// The header field an SMTP client sets to switch what its message carries
/// per recipient (see [`TrackingChoice::parse`]); removed before the
/// message is queued.
pub const TRACKING_FIELD: &str = "X-Rackwave-Tracking";

/// KiB of per-recipient copies one submission may make (a 64 KiB message
/// to 1,000 recipients, a 10 MiB one to 6).
const PERSONAL_KIB_PER_SUBMISSION: usize = 64 * 1024;
/// KiB of per-recipient copies all submissions may hold at once.
const PERSONAL_KIB_TOTAL: usize = 256 * 1024;

/// Where per-recipient links point and the key that signs them.
#[derive(Clone)]
pub struct Tracking {
    pub key: TrackingKey,
    /// The public URL of the tracking endpoints (`[tracking] base_url`).
    pub base_url: String,
}

/// A recipient a policy would not deliver to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub to: String,
    /// A stable code, e.g. `suppressed`.
    pub code: &'static str,
    pub reason: String,
}

/// What a policy may see and change of a submission.
pub struct Draft<'a> {
    pub workspace_id: &'a str,
    pub source: &'a Source,
    pub mail_from: &'a str,
    pub recipients: &'a mut Vec<String>,
    pub rejected: &'a mut Vec<Rejected>,
    pub message: &'a mut Vec<u8>,
}

/// The future a [`Policy`] returns.
pub type PolicyFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Refusal>> + Send + 'a>>;

/// A per-workspace rule every submission passes through after its header
/// section is checked and stamped and before it is signed: suppression,
/// tracking and sender-domain checks hook in here. A policy may refuse the
/// whole submission, move recipients from `recipients` to `rejected`, or
/// rewrite the message.
pub trait Policy: Send + Sync {
    fn apply<'a>(&'a self, draft: &'a mut Draft<'_>) -> PolicyFuture<'a>;
}

/// A durably queued submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// `250 OK queued as …`; finds all its messages.
    pub queue_id: String,
    /// One per accepted recipient, in recipient order.
    pub message_ids: Vec<String>,
    /// Recipients a policy dropped.
    pub rejected: Vec<Rejected>,
}

/// How a refusal is to be told to the submitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The message is malformed (SMTP 554 5.6.0).
    Malformed,
    /// Too large (SMTP 552 5.3.4).
    TooLarge,
    /// A policy refused it (SMTP 550 5.7.1).
    Policy,
    /// The sender's domain is not one the workspace may send from (SMTP
    /// 553 5.7.1).
    Sender,
    /// We could not take it now; try again (SMTP 451 4.3.0).
    Temporary,
}

/// The refusal of a `From:` domain the rules do not allow.
fn check(rules: &SenderRules, domain: &str) -> Result<(), Refusal> {
    if rules.allows(domain) {
        return Ok(());
    }
    Err(Refusal::new(
        RefusalKind::Sender,
        "sender_domain",
        if domain.is_empty() {
            "The From field names no address; this workspace sends from verified domains only"
                .to_string()
        } else {
            format!("{domain} is not a verified sending domain of this workspace")
        },
    ))
}

/// Why a submission was not queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    /// The metric label.
    pub reason: &'static str,
    /// What to tell the submitter.
    pub text: String,
}

impl Refusal {
    /// The SMTP reply code and enhanced status code that tell it.
    pub fn smtp_codes(&self) -> (u16, &'static str) {
        match self.kind {
            RefusalKind::Malformed => (554, "5.6.0"),
            RefusalKind::TooLarge => (552, "5.3.4"),
            RefusalKind::Policy => (550, "5.7.1"),
            RefusalKind::Sender => (553, "5.7.1"),
            RefusalKind::Temporary => (451, "4.3.0"),
        }
    }

    pub fn new(kind: RefusalKind, reason: &'static str, text: impl Into<String>) -> Refusal {
        Refusal {
            kind,
            reason,
            text: text.into(),
        }
    }

    fn header(e: HeaderError) -> Refusal {
        match e {
            HeaderError::Missing => Refusal::new(
                RefusalKind::Malformed,
                "header",
                "Message has no header section",
            ),
            HeaderError::Malformed(n) => Refusal::new(
                RefusalKind::Malformed,
                "header",
                format!("Message header line {n} is not a valid header field (RFC 5322 §2.2)"),
            ),
            HeaderError::NoFrom => Refusal::new(
                RefusalKind::Malformed,
                "header",
                "Message has no From header field (RFC 5322 §3.6)",
            ),
            HeaderError::TooLarge(max) => Refusal::new(
                RefusalKind::TooLarge,
                "header_size",
                format!("Message header section exceeds {max} octets"),
            ),
        }
    }
}

/// Settings of the pipeline.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// The name in `Received:` and generated `Message-ID:`s.
    pub hostname: String,
    /// This node's id (`[node] id`), in `Received:` beside the host name:
    /// of several nodes behind one name, which one took the message.
    pub node_id: String,
    /// Largest header section accepted, in octets.
    pub max_header_bytes: usize,
}

/// The pipeline (cheap to clone).
#[derive(Clone)]
pub struct Intake {
    inner: Arc<Inner>,
}

struct Inner {
    config: IntakeConfig,
    spool: Spool,
    domains: Domains,
    suppressions: Suppressions,
    quotas: Quotas,
    clock: Clock,
    policies: Vec<Arc<dyn Policy>>,
    tracking: Option<Tracking>,
    /// KiB of per-recipient copies all submissions may hold at once.
    personal_budget: Arc<tokio::sync::Semaphore>,
    metrics: IntakeMetrics,
    /// Poked after each accepted submission so delivery starts at once.
    new_mail: Arc<Notify>,
}

/// What the intake works with.
pub struct Parts {
    pub spool: Spool,
    pub domains: Domains,
    pub suppressions: Suppressions,
    pub quotas: Quotas,
    pub clock: Clock,
    /// Poked after each accepted submission.
    pub new_mail: Arc<Notify>,
    pub policies: Vec<Arc<dyn Policy>>,
    /// Per-recipient links; `None` turns them off.
    pub tracking: Option<Tracking>,
}

impl Intake {
    pub fn new(config: IntakeConfig, parts: Parts, registry: &mut Registry) -> Intake {
        Intake {
            inner: Arc::new(Inner {
                config,
                spool: parts.spool,
                domains: parts.domains,
                suppressions: parts.suppressions,
                quotas: parts.quotas,
                clock: parts.clock,
                policies: parts.policies,
                tracking: parts.tracking,
                personal_budget: Arc::new(tokio::sync::Semaphore::new(PERSONAL_KIB_TOTAL)),
                metrics: IntakeMetrics::register(registry),
                new_mail: parts.new_mail,
            }),
        }
    }

    /// The quotas, for reserving recipients as they arrive (SMTP RCPT).
    pub fn quotas(&self) -> &Quotas {
        &self.inner.quotas
    }

    /// Takes a submission through the pipeline (see the crate docs).
    pub async fn submit(&self, submission: Submission) -> Result<Accepted, Refusal> {
        let source = submission.source.label();
        let result = self.pipeline(submission).await;
        match &result {
            Ok(accepted) => {
                self.inner
                    .metrics
                    .accepted(source, accepted.message_ids.len() as u64);
                self.inner.new_mail.notify_one();
            }
            Err(refusal) => self.inner.metrics.refused(source, refusal.reason),
        }
        result
    }

    async fn pipeline(&self, mut sub: Submission) -> Result<Accepted, Refusal> {
        let inner = &*self.inner;
        let fields = check_header_section(&sub.message, inner.config.max_header_bytes)
            .map_err(Refusal::header)?;
        if fields.from > 1 {
            return Err(Refusal::new(
                RefusalKind::Malformed,
                "header",
                "Message has more than one From header field (RFC 5322 §3.6)",
            ));
        }
        let control = take_field(&mut sub.message, TRACKING_FIELD);
        let (subject, from_domains) = {
            let Some(parsed) = MessageParser::default().parse_headers(&sub.message) else {
                return Err(Refusal::header(HeaderError::Missing));
            };
            let from_domains: Vec<String> = parsed
                .from()
                .map(|a| {
                    a.iter()
                        .filter_map(|a| a.address())
                        .filter_map(|a| a.rsplit_once('@'))
                        .map(|(_, d)| d.trim_end_matches('>').to_ascii_lowercase())
                        .collect()
                })
                .unwrap_or_default();
            (parsed.subject().map(str::to_string), from_domains)
        };
        // Every author's domain must be one the workspace may send from (a
        // From without a readable address only while nothing is verified).
        let rules = match sub.sender_rules.take() {
            Some(rules) => rules,
            None => std::sync::Arc::new(self.sender_rules(&sub.workspace_id).await?),
        };
        let authors = if from_domains.is_empty() {
            vec![String::new()]
        } else {
            from_domains.clone()
        };
        for domain in &authors {
            check(&rules, domain)?;
        }
        let from_domain = from_domains.first().cloned();
        let return_path = from_domain.as_deref().and_then(|d| rules.return_path(d));
        // A sender's own List-Unsubscribe stays the only one (RFC 2369).
        let choice = sub.tracking.or(control
            .as_deref()
            .map(TrackingChoice::parse)
            .unwrap_or_default());
        let defaults = rules.tracking(from_domain.as_deref());
        // Links point at the sending domain's own tracking host once its
        // CNAME checked out, else at `[tracking] base_url`.
        let base_url = inner.tracking.as_ref().map(|t| {
            match from_domain.as_deref().and_then(|d| rules.tracking_host(d)) {
                Some(host) => {
                    let scheme = t.base_url.split_once("://").map_or("https", |(s, _)| s);
                    format!("{scheme}://{host}")
                }
                None => t.base_url.clone(),
            }
        });
        let unsubscribe =
            choice.unsubscribe.unwrap_or(defaults.unsubscribe) && !fields.list_unsubscribe;
        let switches = Switches {
            opens: choice.opens.unwrap_or(defaults.opens),
            clicks: choice.clicks.unwrap_or(defaults.clicks),
        };

        let now = inner.clock.now_ms();
        let queue_id = rackwave_queue::new_queue_id();
        let host = &inner.config.hostname;
        let date = rfc5322(now);
        let mut message = Vec::with_capacity(sub.message.len() + 256);
        message.extend_from_slice(
            sub.source
                .received(host, &inner.config.node_id, &queue_id, &date)
                .as_bytes(),
        );
        if !fields.message_id {
            message.extend_from_slice(
                format!("Message-ID: <{}.{queue_id}@{host}>\r\n", random_hex(8)).as_bytes(),
            );
        }
        if !fields.date {
            message.extend_from_slice(format!("Date: {date}\r\n").as_bytes());
        }
        message.extend_from_slice(&sub.message);
        drop(std::mem::take(&mut sub.message));

        let mut rejected = Vec::new();
        for policy in &inner.policies {
            let mut draft = Draft {
                workspace_id: &sub.workspace_id,
                source: &sub.source,
                mail_from: &sub.mail_from,
                recipients: &mut sub.recipients,
                rejected: &mut rejected,
                message: &mut message,
            };
            policy.apply(&mut draft).await?;
        }
        if sub.recipients.is_empty() {
            return Err(Refusal::new(
                RefusalKind::Policy,
                "no_recipients",
                "No recipient left to deliver to",
            ));
        }

        // Each part: a queue id, its recipients and its message. Links
        // for a recipient make one submission per recipient (its queue id
        // names it in the links), queued together, all or none.
        let recipients = std::mem::take(&mut sub.recipients);
        // Per-recipient copies are held in memory until they are queued: a
        // message whose copies would take more than the share one
        // submission may have goes out without them, and the copies of all
        // submissions at once wait for room in the budget.
        let personal_kib = recipients.len() * (message.len() + 2048) / 1024 + 1;
        let wants_copies = inner.tracking.is_some()
            && (unsubscribe || switches.opens || switches.clicks)
            && !recipients.is_empty();
        let over_budget = wants_copies && personal_kib > PERSONAL_KIB_PER_SUBMISSION;
        if over_budget {
            tracing::warn!(
                queue_id = %queue_id,
                recipients = recipients.len(),
                size = message.len(),
                "too large to copy per recipient: sent without tracking and unsubscribe links"
            );
        }
        let _budget = if wants_copies && !over_budget {
            Some(
                inner
                    .personal_budget
                    .clone()
                    .acquire_many_owned(personal_kib as u32)
                    .await
                    .expect("the budget is never closed"),
            )
        } else {
            None
        };
        let unsubscribe = unsubscribe && !over_budget;
        // The HTML is read once for all recipients; a message that cannot
        // be rewritten goes out as it came.
        let prepared = match &inner.tracking {
            Some(_) if !over_budget && (switches.opens || switches.clicks) => {
                match Prepared::new(&message) {
                    Ok(p) if p.has_html() => Some(p),
                    Ok(_) => None,
                    Err(e) => {
                        tracing::warn!(error = %e, queue_id = %queue_id, "not tracking opens and clicks of this message");
                        None
                    }
                }
            }
            _ => None,
        };
        let mut parts = match &inner.tracking {
            Some(tracking) if unsubscribe || prepared.is_some() => {
                let base_url = base_url.as_deref().unwrap_or(&tracking.base_url);
                // The message's List-Id, else its first tag (what the
                // unsubscribe is from). Carried in every token: a list id
                // that would make them long, or that holds control
                // characters, is left out.
                let list_id = field_value(&message, "List-Id")
                    .or_else(|| sub.tags.first().cloned())
                    .filter(|l| l.len() <= 256 && !l.contains(char::is_control));
                recipients
                    .into_iter()
                    .enumerate()
                    .map(|(i, to)| {
                        let qid = if i == 0 {
                            queue_id.clone()
                        } else {
                            rackwave_queue::new_queue_id()
                        };
                        let who = rackwave_tracking::Recipient {
                            workspace_id: sub.workspace_id.clone(),
                            queue_id: qid.clone(),
                            address: to.clone(),
                            list_id: list_id.clone(),
                        };
                        let mut m = if unsubscribe {
                            rackwave_tracking::unsubscribe_headers(&tracking.key, base_url, &who)
                            .into_bytes()
                        } else {
                            Vec::new()
                        };
                        let rendered = prepared.as_ref().map(|p| {
                            p.render(&message, switches, &tracking.key, base_url, &who)
                        });
                        match rendered {
                            Some(Ok(body)) => m.extend_from_slice(&body),
                            Some(Err(e)) => {
                                tracing::warn!(error = %e, queue_id = %qid, "not tracking opens and clicks of this message");
                                m.extend_from_slice(&message);
                            }
                            None => m.extend_from_slice(&message),
                        }
                        (qid, vec![to], m)
                    })
                    .collect::<Vec<_>>()
            }
            _ => vec![(queue_id, recipients, message)],
        };
        // Only the workspace's own domains have its DKIM keys: no lookup of
        // a key for any other From domain.
        if let Some(domain) = from_domain.as_ref().filter(|d| rules.owns(d)) {
            for part in &mut parts {
                let m = std::mem::take(&mut part.2);
                part.2 = self.sign(&sub.workspace_id, domain, m).await;
            }
        }

        let recipients: usize = parts.iter().map(|p| p.1.len()).sum();
        let submissions = parts
            .into_iter()
            .map(|(qid, to, body)| rackwave_queue::Submission {
                queue_id: Some(qid),
                workspace_id: sub.workspace_id.clone(),
                submitter: sub.submitter.clone(),
                mail_from: sub.mail_from.clone(),
                recipients: to,
                subject: subject.clone(),
                body,
                received_at_ms: now,
                tags: sub.tags.clone(),
                metadata: sub.metadata.clone(),
                return_path: return_path.clone(),
            })
            .collect();
        let enqueued = inner.spool.enqueue_all(submissions).await.map_err(|e| {
            tracing::error!(error = %e, "enqueue failed");
            Refusal::new(
                RefusalKind::Temporary,
                "tempfail",
                "Temporary local problem, please try again later",
            )
        })?;
        let queue_id = enqueued[0].queue_id.clone();
        let enqueued = rackwave_queue::Enqueued {
            queue_id,
            message_ids: enqueued.into_iter().flat_map(|e| e.message_ids).collect(),
        };
        debug_assert_eq!(enqueued.message_ids.len(), recipients);
        if let Some(reservation) = sub.reservation.take() {
            inner.quotas.commit(reservation, now.div_euclid(MS_PER_DAY));
        }
        Ok(Accepted {
            queue_id: enqueued.queue_id,
            message_ids: enqueued.message_ids,
            rejected,
        })
    }

    /// What `workspace_id` may put in `From:` and what its mail carries
    /// (its sending domains, its tracking defaults).
    pub async fn sender_rules(&self, workspace_id: &str) -> Result<SenderRules, Refusal> {
        self.inner
            .domains
            .sender_rules(workspace_id)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "reading the sender rules failed");
                Refusal::new(
                    RefusalKind::Temporary,
                    "tempfail",
                    "Temporary local problem, please try again later",
                )
            })
    }

    /// Refuses mail from a domain the workspace may not send from (once it
    /// has verified sending domains, only those): the SMTP session asks at
    /// MAIL FROM.
    pub async fn check_sender(&self, workspace_id: &str, domain: &str) -> Result<(), Refusal> {
        check(&self.sender_rules(workspace_id).await?, domain)
    }

    /// Refuses a recipient on the workspace's suppression list (one read):
    /// the SMTP session asks at RCPT, the HTTP send for each recipient,
    /// both before any quota is reserved for it.
    pub async fn check_recipient(&self, workspace_id: &str, to: &str) -> Result<(), Refusal> {
        match self.inner.suppressions.find(workspace_id, to).await {
            Ok(None) => Ok(()),
            Ok(Some(s)) => Err(Refusal::new(
                RefusalKind::Policy,
                "suppressed",
                format!(
                    "Recipient is on this workspace's suppression list ({})",
                    s.reason.as_str()
                ),
            )),
            Err(e) => {
                tracing::error!(error = %e, "reading the suppression list failed");
                Err(Refusal::new(
                    RefusalKind::Temporary,
                    "tempfail",
                    "Temporary local problem, please try again later",
                ))
            }
        }
    }

    /// Prepends a DKIM signature when the workspace has a key for the
    /// `From:` domain. A signing failure is logged and the message goes out
    /// unsigned rather than being refused.
    async fn sign(&self, workspace_id: &str, domain: &str, message: Vec<u8>) -> Vec<u8> {
        let message = Arc::new(message);
        let signed = self
            .inner
            .domains
            .sign(workspace_id, domain, message.clone())
            .await;
        let message = Arc::try_unwrap(message).unwrap_or_else(|shared| (*shared).clone());
        match signed {
            Ok(Some(header)) => {
                let mut out = Vec::with_capacity(header.len() + message.len() + 2);
                out.extend_from_slice(header.as_bytes());
                if !header.ends_with("\r\n") {
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(&message);
                out
            }
            Ok(None) => message,
            Err(e) => {
                tracing::warn!(error = %e, domain, "DKIM signing failed; sending unsigned");
                message
            }
        }
    }
}
