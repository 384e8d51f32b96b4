//! One delivery connection: resolve the domain, connect to the first MX
//! host that answers (every host and address is tried before giving up),
//! negotiate TLS per policy, then carry messages from the destination's
//! ready queue until it is empty, the connection's message count or reuse
//! time is spent, or the destination is paused. Each message is settled in
//! the spool as delivered, deferred or bounced; a throttling reply pauses
//! the destination.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rackwave_core::event::{BouncedDetail, DeferredDetail, EmailEvent};
use rackwave_core::Timestamp;
use rackwave_queue::{DeliveryAttempt, MessageRecord};
use rackwave_smtp_proto::address::verp;
use rackwave_smtp_proto::RemoteReply;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::classify::{classify_with_reason, is_throttling, BounceType, LocalFailure, Verdict};
use super::client::{ClientError, Connection, Envelope, Step, Timeouts};
use super::config::TlsPolicy;
use super::destination::Destination;
use super::lookup::{MxHost, RouteError};
use super::EngineContext;

/// Where an attempt went, for the attempt log.
#[derive(Debug, Clone, Default)]
struct Remote {
    host: Option<String>,
    ip: Option<String>,
    tls: bool,
}

/// The outcome of one attempt at one message.
#[derive(Clone)]
enum Outcome {
    Delivered(RemoteReply),
    /// Refused or failed, with the reply (the server's, or one made up for
    /// a local failure, which then decides the verdict itself).
    Failed {
        reply: RemoteReply,
        local: Option<LocalFailure>,
    },
}

impl Outcome {
    fn local(failure: LocalFailure, code: u16, enhanced: &str, text: &str) -> Outcome {
        Outcome::Failed {
            reply: RemoteReply::synthetic(code, enhanced, text),
            local: Some(failure),
        }
    }
}

pub(crate) async fn run(
    ctx: Arc<EngineContext>,
    queue: Arc<Destination>,
    in_flight: Arc<AtomicUsize>,
) {
    let mut settler = Settler {
        tasks: JoinSet::new(),
        ctx: ctx.clone(),
        in_flight,
    };

    let route = ctx
        .router
        .route(&queue.domain, queue.shaping.smarthost.as_deref())
        .await;
    let connected = match route {
        Ok(hosts) => connect_any(&ctx, &queue, &hosts).await,
        Err(e) => Err(route_failure(&e)),
    };
    let (mut conn, remote) = match connected {
        Ok(c) => c,
        Err(outcome) => {
            // Throttled at the door (a 421 greeting, say): pause, and let
            // the waiting messages wait untried.
            if let Outcome::Failed { reply, local: None } = &outcome {
                let verdict =
                    classify_with_reason(reply.code, reply.enhanced.as_deref(), &reply.text).0;
                if is_throttling(reply.code, reply.enhanced.as_deref(), verdict)
                    && settler.throttled(&queue, reply)
                {
                    settler.finish().await;
                    return;
                }
            }
            // The whole domain is unreachable now: every message waiting
            // for it gets the same verdict.
            while let Some(msg) = queue.take() {
                settler.later(&queue, msg, outcome.clone(), &Remote::default(), None);
            }
            settler.finish().await;
            return;
        }
    };

    let opened = Instant::now();
    let reuse = Duration::from_secs(queue.shaping.connection_reuse_secs);
    let mut sent = 0;
    // The last body read: (queue id, data, has 8-bit octets).
    let mut body: Option<(String, Vec<u8>, bool)> = None;
    while sent < queue.shaping.messages_per_connection
        && (reuse.is_zero() || opened.elapsed() < reuse)
        && !queue.paused(ctx.clock.now_ms())
    {
        // An idle connection is kept a moment for the next message, unless
        // every connection slot is taken: then another destination may be
        // waiting for one, and this one yields it.
        let idle = if ctx.slots.available_permits() > 0 {
            CONNECTION_IDLE
        } else {
            Duration::ZERO
        };
        let Some(msg) = queue.take_or_wait(idle).await else {
            break;
        };
        queue.rate_slot().await;
        sent += 1;
        let mut sent_at = None;
        let clock = ctx.clock.clone();
        // Recipients of one submission usually follow each other on a
        // connection (same domain): their shared body is read once.
        let cached = body
            .as_ref()
            .is_some_and(|(qid, _, _)| *qid == msg.queue_id);
        if !cached {
            body = match ctx.spool.body(&msg.queue_id) {
                Ok(Some(data)) => {
                    let eight_bit = data.iter().any(|b| *b >= 0x80);
                    Some((msg.queue_id.clone(), data, eight_bit))
                }
                Ok(None) => {
                    let outcome = Outcome::local(
                        LocalFailure::DataLost,
                        554,
                        "5.3.0",
                        "message data missing from the spool",
                    );
                    settler.later(&queue, msg, outcome, &remote, None);
                    continue;
                }
                // Bytes that fail their checksum will not get better with
                // time: bounce now rather than retry for days. Anything
                // else (an I/O error) may pass, so it is retried.
                Err(e @ rackwave_queue::SpoolError::Corrupt(_)) => {
                    let outcome = Outcome::local(
                        LocalFailure::DataLost,
                        554,
                        "5.3.0",
                        &format!("message data damaged in the spool: {e}"),
                    );
                    settler.later(&queue, msg, outcome, &remote, None);
                    continue;
                }
                Err(e) => {
                    let outcome = Outcome::local(
                        LocalFailure::SpoolRead,
                        451,
                        "4.3.0",
                        &format!("spool read failed: {e}"),
                    );
                    settler.later(&queue, msg, outcome, &remote, None);
                    continue;
                }
            };
        }
        let (_, data, eight_bit) = body.as_ref().expect("read or cached above");
        let mail_from = if msg.from.is_empty() {
            String::new()
        } else {
            let host = msg.return_path.as_deref();
            let tag = ctx.return_paths.return_path_tag(&msg.id);
            verp::encode(&tag, host.unwrap_or(&ctx.config.bounce_domain))
        };
        let envelope = Envelope {
            mail_from: &mail_from,
            rcpt_to: &msg.to,
            smtputf8: !msg.to.is_ascii() || !msg.from.is_ascii(),
            eight_bit: *eight_bit,
        };
        // The previous message's settlement may still be written while this
        // one is sent, but no older one: after a crash at most two delivered
        // messages per connection are delivered again.
        settler.bound(1).await;
        let result = conn
            .send(&envelope, data, || sent_at = Some(clock.now_ms()))
            .await;
        match result {
            Ok(reply) => {
                settler.later(&queue, msg, Outcome::Delivered(reply), &remote, sent_at);
            }
            // A reused connection the server dropped while idle (it may
            // close after its own count or time): the message was not
            // tried, so it waits for the next connection, uncounted.
            Err(
                ClientError::Io {
                    step: Step::Mail, ..
                }
                | ClientError::Timeout { step: Step::Mail },
            ) if sent > 1 => {
                queue.put_back(msg);
                settler.finish().await;
                return;
            }
            Err(e) => {
                let usable = e.connection_usable();
                let throttled = settler.later(&queue, msg, failure(&e), &remote, sent_at);
                if throttled || !usable || conn.rset().await.is_err() {
                    if usable {
                        conn.quit().await;
                    }
                    settler.finish().await;
                    return;
                }
            }
        }
    }
    conn.quit().await;
    settler.finish().await;
}

/// How long an open connection waits for another message before QUIT.
const CONNECTION_IDLE: std::time::Duration = std::time::Duration::from_millis(500);

/// Settlements are written while the connection carries on with the next
/// message: the spool's group commit then shares one fsync among many of
/// them instead of the connection waiting for each.
struct Settler {
    tasks: JoinSet<()>,
    ctx: Arc<EngineContext>,
    in_flight: Arc<AtomicUsize>,
}

impl Settler {
    /// Decides the attempt's verdict now (a delivery ends a throttling
    /// streak, a throttling reply pauses the destination) and writes it in
    /// the background. Returns whether the destination is now paused.
    fn later(
        &mut self,
        queue: &Destination,
        msg: MessageRecord,
        outcome: Outcome,
        remote: &Remote,
        sent_at: Option<i64>,
    ) -> bool {
        let judged = judge(&self.ctx, &msg, outcome);
        let paused = match &judged.event {
            EmailEvent::Delivered => {
                queue.delivered();
                false
            }
            EmailEvent::Deferred(_) if judged.throttling => self.throttled(queue, &judged.reply),
            _ => false,
        };
        let (ctx, in_flight, remote) = (self.ctx.clone(), self.in_flight.clone(), remote.clone());
        self.tasks.spawn(async move {
            record(&ctx, &msg, judged, &remote, sent_at).await;
            in_flight.fetch_sub(1, Ordering::Relaxed);
        });
        paused
    }

    /// Pauses the destination after a throttling reply, for the configured
    /// growing interval; false when pauses are off. Waiting messages past
    /// their queue lifetime do not wait out the pause: they bounce as
    /// expired now, with the throttling reply as the last error (otherwise
    /// a destination that never stops throttling would keep them forever).
    fn throttled(&mut self, queue: &Destination, reply: &RemoteReply) -> bool {
        let now = self.ctx.clock.now_ms();
        let paused = queue
            .throttled(now, reply.raw.trim_end(), |n| {
                self.ctx.config.throttle_pause_ms(n)
            })
            .is_some();
        if paused {
            let retry = &self.ctx.retry;
            for msg in queue.take_where(|m| retry.expired(m.created_at_ms, now)) {
                let outcome = Outcome::Failed {
                    reply: reply.clone(),
                    local: None,
                };
                self.later(queue, msg, outcome, &Remote::default(), None);
            }
        }
        paused
    }

    /// Waits until at most `n` settlements are still being written, so a
    /// crash can only repeat a bounded number of delivered messages.
    async fn bound(&mut self, n: usize) {
        while self.tasks.len() > n && self.tasks.join_next().await.is_some() {}
    }

    /// Waits for every settlement of this connection to be recorded.
    async fn finish(&mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Tries every host and address in order; for opportunistic TLS a failed
/// handshake is retried once in clear text (RFC 7435 §3).
async fn connect_any(
    ctx: &EngineContext,
    queue: &Destination,
    hosts: &[MxHost],
) -> Result<(Connection, Remote), Outcome> {
    let timeouts = Timeouts {
        connect: ctx.config.connect_timeout(),
        command: ctx.config.command_timeout(),
        data: ctx.config.data_timeout(),
    };
    let policy = queue.shaping.tls;
    let mut failures = Vec::new();
    let mut tls_refused = false;
    // A host that turned us away with a reply of its own (a 421 greeting):
    // that reply, not "unreachable", is the verdict.
    let mut refusal: Option<RemoteReply> = None;
    for host in hosts {
        for ip in &host.addrs {
            let peer = SocketAddr::new(*ip, host.port);
            let attempt = async {
                let mut conn =
                    Connection::open(peer, &host.name, &ctx.config.hostname, timeouts).await?;
                let wants_tls = match policy {
                    TlsPolicy::Disabled => false,
                    TlsPolicy::Opportunistic => conn.capabilities.starttls,
                    TlsPolicy::Required | TlsPolicy::RequiredVerified => true,
                };
                if wants_tls {
                    if !conn.capabilities.starttls {
                        return Err(ClientError::Tls(
                            "STARTTLS required by policy but not offered".into(),
                        ));
                    }
                    let connector = if policy == TlsPolicy::RequiredVerified {
                        &ctx.tls.verified
                    } else {
                        &ctx.tls.any
                    };
                    conn.starttls(connector).await?;
                }
                Ok(conn)
            };
            match attempt.await {
                Ok(conn) => {
                    let remote = Remote {
                        host: Some(host.name.clone()),
                        ip: Some(ip.to_string()),
                        tls: conn.tls.is_some(),
                    };
                    return Ok((conn, remote));
                }
                Err(ClientError::Tls(why)) if policy == TlsPolicy::Opportunistic => {
                    tracing::info!(host = %host.name, %ip, why, "TLS failed, retrying in clear text");
                    match Connection::open(peer, &host.name, &ctx.config.hostname, timeouts).await {
                        Ok(conn) => {
                            let remote = Remote {
                                host: Some(host.name.clone()),
                                ip: Some(ip.to_string()),
                                tls: false,
                            };
                            return Ok((conn, remote));
                        }
                        Err(e) => failures.push(format!("{} [{ip}]: {e}", host.name)),
                    }
                }
                Err(e) => {
                    tls_refused |= matches!(e, ClientError::Tls(_));
                    // A temporary refusal at the door (a 421 throttle) is the
                    // verdict; a permanent one (a 554 greeting) is not taken
                    // as a bounce of every waiting message: like Postfix,
                    // the host is skipped and the mail deferred.
                    if let ClientError::Rejected { reply, .. } = &e {
                        if reply.code / 100 == 4 {
                            refusal.get_or_insert_with(|| reply.clone());
                        }
                    }
                    failures.push(format!("{} [{ip}]: {e}", host.name));
                }
            }
        }
    }
    // A host that refused by policy (TLS required, say) counts as a TLS
    // failure when it is all we saw.
    if let Some(reply) = refusal.filter(|_| failures.len() == 1) {
        return Err(Outcome::Failed { reply, local: None });
    }
    let local = if tls_refused && failures.len() == 1 {
        LocalFailure::TlsFailed
    } else {
        LocalFailure::Unreachable
    };
    Err(Outcome::local(
        local,
        451,
        "4.4.1",
        &format!("no MX host could be reached: {}", failures.join("; ")),
    ))
}

/// The outcome of a failed send: the server's own reply when it refused
/// (classified by the remote-reply rules), otherwise a reply made up with
/// the RFC 3463 code that fits and the local rule that decides.
fn failure(e: &ClientError) -> Outcome {
    match e {
        // Our own refusals before sending (size, SMTPUTF8) carry a local
        // rule; the server's carry its reply.
        ClientError::Rejected {
            step: Step::Mail,
            reply,
        } if reply.code == 552 && reply.raw.contains("remote limit") => Outcome::Failed {
            reply: reply.clone(),
            local: Some(LocalFailure::TooLargeForRemote),
        },
        ClientError::Rejected {
            step: Step::Mail,
            reply,
        } if reply.code == 553 && reply.raw.contains("SMTPUTF8, required") => Outcome::Failed {
            reply: reply.clone(),
            local: Some(LocalFailure::NoSmtputf8),
        },
        ClientError::Rejected { reply, .. } => Outcome::Failed {
            reply: reply.clone(),
            local: None,
        },
        ClientError::Timeout { step } => Outcome::local(
            LocalFailure::Timeout,
            451,
            "4.4.2",
            &format!("timeout waiting for the reply to {}", step.as_str()),
        ),
        ClientError::Io { step, message } => Outcome::local(
            LocalFailure::ConnectionLost,
            451,
            "4.4.2",
            &format!("connection lost during {}: {message}", step.as_str()),
        ),
        ClientError::Tls(why) => Outcome::local(
            LocalFailure::TlsFailed,
            454,
            "4.7.5",
            &format!("TLS failure: {why}"),
        ),
        ClientError::Protocol { step, line } => Outcome::local(
            LocalFailure::MalformedReply,
            451,
            "4.5.0",
            &format!("malformed reply to {}: {line}", step.as_str()),
        ),
    }
}

fn route_failure(e: &RouteError) -> Outcome {
    let text = e.to_string();
    match e {
        RouteError::NullMx(_) => Outcome::local(LocalFailure::NullMx, 556, "5.1.10", &text),
        RouteError::NoSuchDomain(_) => {
            Outcome::local(LocalFailure::NoSuchDomain, 550, "5.1.2", &text)
        }
        RouteError::NoAddress(_) => Outcome::local(LocalFailure::NoAddress, 550, "5.4.4", &text),
        RouteError::Temporary { .. } => {
            Outcome::local(LocalFailure::DnsTemporary, 451, "4.4.3", &text)
        }
    }
}

/// An attempt's verdict, decided before it is written.
struct Judged {
    at_ms: i64,
    reply: RemoteReply,
    event: EmailEvent,
    /// The receiver throttles us (a remote reply only).
    throttling: bool,
}

/// The verdict of one attempt: delivered, deferred (with the next retry),
/// bounced, or expired, as a typed event.
fn judge(ctx: &EngineContext, msg: &MessageRecord, outcome: Outcome) -> Judged {
    let now = ctx.clock.now_ms();
    let attempt_number = msg.attempts + 1;
    let mut throttling = false;
    let (reply, event) = match outcome {
        Outcome::Delivered(reply) => (reply, EmailEvent::Delivered),
        Outcome::Failed { reply, local } => {
            let (verdict, rule) = match local {
                Some(failure) => failure.classify(),
                None => {
                    let (verdict, rule) =
                        classify_with_reason(reply.code, reply.enhanced.as_deref(), &reply.text);
                    throttling = is_throttling(reply.code, reply.enhanced.as_deref(), verdict);
                    (verdict, rule)
                }
            };
            let code = reply
                .enhanced
                .clone()
                .unwrap_or_else(|| reply.code.to_string());
            let event = match verdict {
                Verdict::Bounced(bounce_type) => EmailEvent::Bounced(BouncedDetail {
                    bounce_type,
                    bounce_code: code,
                    bounce_reason: reply.text.clone(),
                    classified_by: rule.to_string(),
                }),
                // A temporary failure past the message's lifetime is final.
                _ if ctx.retry.expired(msg.created_at_ms, now) => {
                    EmailEvent::Bounced(BouncedDetail {
                        bounce_type: BounceType::Expired,
                        bounce_code: "4.4.7".into(),
                        bounce_reason: format!(
                            "message expired after {attempt_number} attempts; last error: {}",
                            reply.text
                        ),
                        classified_by: LocalFailure::Expired.classify().1.to_string(),
                    })
                }
                // Deferred, or (never expected) a 2xx reported as a
                // failure: retried rather than lost.
                verdict => EmailEvent::Deferred(DeferredDetail {
                    defer_reason: reply.text.clone(),
                    defer_code: code,
                    defer_type: verdict
                        .bounce_type()
                        .unwrap_or(BounceType::TemporaryFailure),
                    next_retry_at: Timestamp(ctx.retry.next_attempt(
                        msg.created_at_ms,
                        attempt_number,
                        now,
                    )),
                    classified_by: rule.to_string(),
                }),
            };
            (reply, event)
        }
    };
    Judged {
        at_ms: now,
        reply,
        event,
        throttling,
    }
}

/// Records a judged attempt in the spool.
async fn record(
    ctx: &EngineContext,
    msg: &MessageRecord,
    judged: Judged,
    remote: &Remote,
    sent_at: Option<i64>,
) {
    ctx.metrics.outcome(&judged.event);
    let attempt = DeliveryAttempt {
        at_ms: judged.at_ms,
        remote_host: remote.host.clone(),
        remote_ip: remote.ip.clone(),
        tls: remote.tls,
        reply: judged.reply.raw,
        sent_at_ms: sent_at,
        outcome: judged.event,
    };
    if let Err(e) = ctx.spool.settle(&msg.id, attempt).await {
        // The lease stays in memory only: the message returns after a
        // restart and is tried again, never lost.
        tracing::error!(error = %e, id = %msg.id, "recording a delivery attempt failed");
    }
}
