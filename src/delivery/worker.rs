//! One delivery connection: resolve the domain, connect to the first MX
//! host that answers (every host and address is tried before giving up),
//! negotiate TLS per policy, then carry messages from the domain queue
//! until the queue is empty or the connection's message budget is spent.
//! Each message is settled in the spool as delivered, deferred or bounced.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::task::JoinSet;

use rackwave_queue::{DeliveryAttempt, MessageRecord};
use serde_json::json;

use super::classify::{classify_with_reason, BounceType, Verdict};
use super::client::{synthetic, ClientError, Connection, Envelope, RemoteReply, Timeouts};
use super::lookup::{MxHost, RouteError};
use super::scheduler::DomainQueue;
use super::{verp, EngineContext};
use crate::clock::rfc3339;
use crate::config::TlsPolicy;

/// Where an attempt went, for the attempt log.
#[derive(Debug, Clone, Default)]
struct Remote {
    host: Option<String>,
    ip: Option<String>,
    tls: bool,
}

/// The outcome of one attempt at one message.
enum Outcome {
    Delivered(RemoteReply),
    /// Refused or failed, with the reply (real or made up for local errors).
    Failed {
        reply: RemoteReply,
        permanent_hint: Option<BounceType>,
    },
}

pub async fn run(ctx: Arc<EngineContext>, queue: Arc<DomainQueue>, in_flight: Arc<AtomicUsize>) {
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
        Ok(hosts) => connect_any(&ctx, &queue, &hosts)
            .await
            .map_err(|reply| (reply, None)),
        Err(e) => Err(route_failure(&e)),
    };
    let (mut conn, remote) = match connected {
        Ok(c) => c,
        Err((reply, hint)) => {
            // The whole domain is unreachable now: every message waiting
            // for it gets the same verdict.
            while let Some(msg) = queue.take() {
                let outcome = Outcome::Failed {
                    reply: reply.clone(),
                    permanent_hint: hint,
                };
                settler.later(msg, outcome, &Remote::default(), None);
            }
            settler.finish().await;
            return;
        }
    };

    let mut sent = 0;
    // The last body read: (queue id, data, has 8-bit octets).
    let mut body: Option<(String, Vec<u8>, bool)> = None;
    while sent < queue.shaping.messages_per_connection {
        let Some(msg) = queue.take_or_wait(CONNECTION_IDLE).await else {
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
                    let outcome = Outcome::Failed {
                        reply: synthetic(554, "5.3.0", "message data missing from the spool"),
                        permanent_hint: Some(BounceType::Other),
                    };
                    settler.later(msg, outcome, &remote, None);
                    continue;
                }
                // Bytes that fail their checksum will not get better with
                // time: bounce now rather than retry for days. Anything
                // else (an I/O error) may pass, so it is retried.
                Err(e @ rackwave_queue::SpoolError::Corrupt(_)) => {
                    let outcome = Outcome::Failed {
                        reply: synthetic(
                            554,
                            "5.3.0",
                            &format!("message data damaged in the spool: {e}"),
                        ),
                        permanent_hint: Some(BounceType::Other),
                    };
                    settler.later(msg, outcome, &remote, None);
                    continue;
                }
                Err(e) => {
                    let outcome = Outcome::Failed {
                        reply: synthetic(451, "4.3.0", &format!("spool read failed: {e}")),
                        permanent_hint: None,
                    };
                    settler.later(msg, outcome, &remote, None);
                    continue;
                }
            };
        }
        let (_, data, eight_bit) = body.as_ref().expect("read or cached above");
        let mail_from = if msg.from.is_empty() {
            String::new()
        } else {
            verp::encode(&msg.id, &ctx.config.bounce_domain)
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
            Ok(reply) => settler.later(msg, Outcome::Delivered(reply), &remote, sent_at),
            Err(e) => {
                let usable = e.connection_usable();
                let outcome = Outcome::Failed {
                    reply: error_reply(&e),
                    permanent_hint: None,
                };
                settler.later(msg, outcome, &remote, sent_at);
                if !usable || conn.rset().await.is_err() {
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
    fn later(
        &mut self,
        msg: MessageRecord,
        outcome: Outcome,
        remote: &Remote,
        sent_at: Option<i64>,
    ) {
        let (ctx, in_flight, remote) = (self.ctx.clone(), self.in_flight.clone(), remote.clone());
        self.tasks.spawn(async move {
            settle(&ctx, &msg, outcome, &remote, sent_at).await;
            in_flight.fetch_sub(1, Ordering::Relaxed);
        });
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
    queue: &DomainQueue,
    hosts: &[MxHost],
) -> Result<(Connection, Remote), RemoteReply> {
    let timeouts = Timeouts {
        connect: ctx.config.connect_timeout(),
        command: ctx.config.command_timeout(),
        data: ctx.config.data_timeout(),
    };
    let policy = queue.shaping.tls;
    let mut failures = Vec::new();
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
                        &ctx.tls_verified
                    } else {
                        &ctx.tls_any
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
                Err(e) => failures.push(format!("{} [{ip}]: {e}", host.name)),
            }
        }
    }
    Err(synthetic(
        451,
        "4.4.1",
        &format!("no MX host could be reached: {}", failures.join("; ")),
    ))
}

/// The reply recorded for a failure: the server's own when it refused,
/// otherwise one made up with the RFC 3463 code that fits.
fn error_reply(e: &ClientError) -> RemoteReply {
    match e {
        ClientError::Rejected { reply, .. } => reply.clone(),
        ClientError::Timeout { step } => synthetic(
            451,
            "4.4.2",
            &format!("timeout waiting for the reply to {}", step.as_str()),
        ),
        ClientError::Io { step, message } => synthetic(
            451,
            "4.4.2",
            &format!("connection lost during {}: {message}", step.as_str()),
        ),
        ClientError::Tls(why) => synthetic(454, "4.7.5", &format!("TLS failure: {why}")),
        ClientError::Protocol { step, line } => synthetic(
            451,
            "4.5.0",
            &format!("malformed reply to {}: {line}", step.as_str()),
        ),
    }
}

fn route_failure(e: &RouteError) -> (RemoteReply, Option<BounceType>) {
    match e {
        RouteError::NullMx(_) => (
            synthetic(556, "5.1.10", &e.to_string()),
            Some(BounceType::InvalidDomain),
        ),
        RouteError::NoSuchDomain(_) => (
            synthetic(550, "5.1.2", &e.to_string()),
            Some(BounceType::InvalidDomain),
        ),
        RouteError::NoAddress(_) => (
            synthetic(550, "5.4.4", &e.to_string()),
            Some(BounceType::RoutingError),
        ),
        RouteError::Temporary { .. } => (synthetic(451, "4.4.3", &e.to_string()), None),
    }
}

/// Records the outcome of one attempt in the spool: delivered, deferred
/// (with the next retry), bounced, or expired.
async fn settle(
    ctx: &EngineContext,
    msg: &MessageRecord,
    outcome: Outcome,
    remote: &Remote,
    sent_at: Option<i64>,
) {
    let now = ctx.clock.now_ms();
    let attempt_number = msg.attempts + 1;
    let attempt = |reply: &RemoteReply, event: &str, detail: serde_json::Value| DeliveryAttempt {
        at_ms: now,
        remote_host: remote.host.clone(),
        remote_ip: remote.ip.clone(),
        tls: remote.tls,
        reply: reply.raw.clone(),
        event: event.to_string(),
        detail: Some(detail.to_string()),
        sent_at_ms: sent_at,
    };
    let result = match outcome {
        Outcome::Delivered(reply) => {
            ctx.metrics.delivered();
            let detail = json!({"delivered_at": rfc3339(now)});
            ctx.spool
                .delivered(&msg.id, attempt(&reply, "email.delivered", detail))
                .await
        }
        Outcome::Failed {
            reply,
            permanent_hint,
        } => {
            let (verdict, rule) =
                classify_with_reason(reply.code, reply.enhanced.as_deref(), &reply.text);
            let code = reply
                .enhanced
                .clone()
                .unwrap_or_else(|| reply.code.to_string());
            // A temporary failure past the message's lifetime is final too.
            let bounce = match verdict {
                Verdict::Bounced(t) => Some((
                    permanent_hint.unwrap_or(t),
                    code.clone(),
                    reply.text.clone(),
                )),
                _ if ctx.retry.expired(msg.created_at_ms, now) => Some((
                    BounceType::Expired,
                    "4.4.7".to_string(),
                    format!(
                        "message expired after {attempt_number} attempts; last error: {}",
                        reply.text
                    ),
                )),
                _ => None,
            };
            match bounce {
                Some((bounce_type, bounce_code, bounce_reason)) => {
                    ctx.metrics.bounced();
                    let detail = json!({
                        "bounce_type": bounce_type.as_str(),
                        "bounce_code": bounce_code,
                        "bounce_reason": bounce_reason,
                        "classified_by": rule,
                    });
                    ctx.spool
                        .bounce(&msg.id, attempt(&reply, "email.bounced", detail))
                        .await
                }
                None => {
                    // Deferred, or (never expected) a 2xx reported as a
                    // failure: retried rather than lost.
                    let defer_type = match verdict {
                        Verdict::Deferred(t) => t,
                        _ => BounceType::TemporaryFailure,
                    };
                    let next = ctx
                        .retry
                        .next_attempt(msg.created_at_ms, attempt_number, now);
                    ctx.metrics.deferred();
                    let detail = json!({
                        "defer_reason": reply.text,
                        "defer_code": code,
                        "defer_type": defer_type.as_str(),
                        "next_retry_at": rfc3339(next),
                        "attempt_number": attempt_number,
                        "classified_by": rule,
                    });
                    ctx.spool
                        .defer(&msg.id, next, attempt(&reply, "email.deferred", detail))
                        .await
                }
            }
        }
    };
    match result {
        Ok(_) => {
            if let Some(hook) = &ctx.on_settled {
                hook(&msg.id);
            }
        }
        Err(e) => {
            // The lease stays in memory only: the message returns after a
            // restart and is tried again, never lost.
            tracing::error!(error = %e, id = %msg.id, "recording a delivery attempt failed");
        }
    }
}
