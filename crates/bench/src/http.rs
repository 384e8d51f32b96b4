//! `rackwave bench http`: a load generator for the MigoSMTP send API,
//! `POST /migosmtp/v1/messages` one message a request, or
//! `POST /migosmtp/v1/messages/batch` with `--batch` messages a request.
//!
//! Each worker holds one keep-alive HTTP/1.1 connection with one request in
//! flight, as a `bench smtp` worker holds one SMTP session, so that
//! `--concurrency` means the same load in both and their rates compare.
//!
//! A message counts as sent only when the answer (`202`, or `200` for a
//! batch) lists it as `queued`; anything else (an error status, an error
//! item of a batch, a rejected recipient, no answer) counts it as failed.
//! Latency is per request: from sending it to the end of the answer.
//!
//! Every run is bounded: by a message count and by a duration.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::percentiles::latency_ms;
use super::progress::{self, Progress};

#[derive(Args, Debug, Clone)]
pub struct HttpBenchArgs {
    /// Base URL of the server's HTTP listener.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// A MigoSMTP API key of the workspace to send from.
    #[arg(long, env = "RACKWAVE_API_KEY", hide_env_values = true)]
    pub key: String,
    /// Messages to send in all.
    #[arg(long, default_value_t = 1000)]
    pub messages: u64,
    /// Concurrent keep-alive connections, one request in flight on each.
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    /// Size of each message's text in octets.
    #[arg(long, default_value_t = 2048)]
    pub size: usize,
    /// Messages per request: 0 or 1 send each on its own
    /// (`…/messages`), more go through `…/messages/batch` (the server
    /// takes at most 500).
    #[arg(long, default_value_t = 0)]
    pub batch: u32,
    /// Stop after this many seconds even if messages remain.
    #[arg(long, default_value_t = 300)]
    pub duration: u64,
    /// Domain of the generated recipients.
    #[arg(long, default_value = "sink.test")]
    pub to_domain: String,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub messages_ok: u64,
    pub messages_failed: u64,
    /// Requests made, answered or not.
    pub requests: u64,
    pub elapsed_secs: f64,
    pub messages_per_sec: f64,
    pub requests_per_sec: f64,
    /// Of the requests answered `200` or `202`.
    pub latency_ms_p50: f64,
    pub latency_ms_p90: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    /// Requests answered otherwise, by status (0: no answer).
    pub errors_by_status: BTreeMap<u16, u64>,
    /// What went wrong first, whether a whole request or one message.
    pub first_error: Option<String>,
}

#[derive(Default)]
struct Shared {
    ok: AtomicU64,
    failed: AtomicU64,
    requests: AtomicU64,
    errors: Mutex<BTreeMap<u16, u64>>,
    first_error: Mutex<Option<String>>,
}

impl Shared {
    fn fail(&self, messages: u64, error: impl FnOnce() -> String) {
        self.failed.fetch_add(messages, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap();
        if first.is_none() {
            *first = Some(error());
        }
    }
}

/// What the request bodies are made of; the text is escaped once, not per
/// message, so that the client spends its CPU on requests, not on JSON.
struct Payload {
    text: Box<RawValue>,
    to_domain: String,
}

#[derive(Serialize)]
struct Message<'a> {
    from: &'a str,
    to: [&'a str; 1],
    subject: &'a str,
    text: &'a RawValue,
}

#[derive(Serialize)]
struct Batch<'a> {
    messages: Vec<Message<'a>>,
}

impl Payload {
    fn new(size: usize, to_domain: &str) -> Payload {
        let line = super::smtp::FILLER_LINE;
        let mut text = line.repeat(size / line.len() + 1);
        text.truncate(size);
        Payload {
            text: serde_json::value::to_raw_value(&text).expect("a string serializes"),
            to_domain: to_domain.to_string(),
        }
    }

    /// The body of one request from `worker`: messages `first..first +
    /// count`, a batch if `batch`, to `u{worker}-{n}@{to_domain}` (the
    /// recipients of `bench smtp`, one per message).
    fn body(&self, worker: usize, first: u64, count: u64, batch: bool) -> Vec<u8> {
        let to: Vec<String> = (first..first + count)
            .map(|n| format!("u{worker}-{n}@{}", self.to_domain))
            .collect();
        let mut messages = to.iter().map(|to| Message {
            from: "Bench <bench@rackwave.test>",
            to: [to.as_str()],
            subject: "rackwave bench",
            text: &self.text,
        });
        let json = if batch {
            serde_json::to_vec(&Batch {
                messages: messages.collect(),
            })
        } else {
            serde_json::to_vec(&messages.next().expect("one message"))
        };
        json.expect("a message serializes")
    }
}

/// The parts of the answers the bench reads.
#[derive(Deserialize)]
struct Sent {
    messages: Vec<Queued>,
    #[serde(default)]
    rejected: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Queued {
    status: String,
}

#[derive(Deserialize)]
struct BatchSent {
    results: Vec<BatchItem>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum BatchItem {
    Sent(Sent),
    Failed { error: serde_json::Value },
}

impl Sent {
    /// Whether the one recipient was queued; why not if it was not.
    fn outcome(self) -> Result<(), String> {
        if self.messages.iter().any(|m| m.status == "queued") {
            return Ok(());
        }
        Err(match self.rejected.first() {
            Some(r) => format!("rejected: {r}"),
            None => "answered without a queued message".into(),
        })
    }
}

/// Runs the load as `args` say, with a progress bar on stderr when it is a
/// terminal (and not `--json`).
pub async fn run(args: HttpBenchArgs) -> Result<Summary, String> {
    let bar = progress::wanted(args.json);
    run_with(args, bar).await
}

/// [`run`], with the progress bar on or off. Fails only when the target is
/// not a usable URL or no HTTP client can be built.
pub async fn run_with(args: HttpBenchArgs, bar: bool) -> Result<Summary, String> {
    let base = reqwest::Url::parse(&args.target).map_err(|e| format!("--target: {e}"))?;
    let batch = args.batch > 1;
    let path = if batch {
        "migosmtp/v1/messages/batch"
    } else {
        "migosmtp/v1/messages"
    };
    // `join` would drop the last segment of a base without a trailing
    // slash (a server behind a path prefix).
    let url = if base.path().ends_with('/') {
        base.join(path)
    } else {
        reqwest::Url::parse(&format!("{base}/{path}"))
    }
    .map_err(|e| format!("--target: {e}"))?;
    let per_request = u64::from(args.batch.max(1));
    let payload = Arc::new(Payload::new(args.size, &args.to_domain));
    let authorization = format!("Bearer {}", args.key);
    let next = Arc::new(AtomicU64::new(0));
    let shared = Arc::new(Shared::default());
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    // A request started before the deadline may finish after it.
    let grace = deadline + Duration::from_secs(30);
    let started = Instant::now();
    let progress = {
        let shared = shared.clone();
        Progress::start(bar, args.messages, "queued", move || {
            let failed = shared.failed.load(Ordering::Relaxed);
            (
                shared.ok.load(Ordering::Relaxed),
                progress::failures(failed),
            )
        })
    };
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency.max(1) {
        // A client per worker: its pool then holds the worker's one
        // connection, kept alive from request to request. No proxy: the
        // load must reach the target itself.
        let client = reqwest::Client::builder()
            .http1_only()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1)
            .no_proxy()
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let url = url.clone();
        let authorization = authorization.clone();
        let payload = payload.clone();
        let next = next.clone();
        let shared = shared.clone();
        let total = args.messages;
        tasks.push(tokio::spawn(async move {
            let mut latencies_us = Vec::new();
            while Instant::now() < deadline {
                let first = next.fetch_add(per_request, Ordering::Relaxed);
                if first >= total {
                    break;
                }
                let count = per_request.min(total - first);
                let body = payload.body(worker, first, count, batch);
                shared.requests.fetch_add(1, Ordering::Relaxed);
                let t0 = Instant::now();
                let answer = async {
                    let response = client
                        .post(url.clone())
                        .header(reqwest::header::AUTHORIZATION, &authorization)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body)
                        .timeout(grace.saturating_duration_since(Instant::now()))
                        .send()
                        .await?;
                    let status = response.status().as_u16();
                    Ok::<_, reqwest::Error>((status, response.bytes().await?))
                }
                .await;
                let (status, bytes) = match answer {
                    Ok(a) => a,
                    Err(e) => {
                        *shared.errors.lock().unwrap().entry(0).or_default() += 1;
                        shared.fail(count, || error_chain(&e));
                        // Do not spin on a server that refuses connections.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let expected = if batch { 200 } else { 202 };
                if status != expected {
                    *shared.errors.lock().unwrap().entry(status).or_default() += 1;
                    shared.fail(count, || {
                        format!("{status}: {}", String::from_utf8_lossy(&bytes).trim())
                    });
                    continue;
                }
                latencies_us.push(t0.elapsed().as_micros() as u64);
                let outcomes = outcomes(&bytes, batch, count);
                let ok = outcomes.iter().filter(|o| o.is_ok()).count() as u64;
                shared.ok.fetch_add(ok, Ordering::Relaxed);
                if ok < count {
                    let why = outcomes.into_iter().find_map(Result::err);
                    shared.fail(count - ok, || why.unwrap_or_default());
                }
            }
            latencies_us
        }));
    }
    let mut latencies_us = Vec::new();
    for t in tasks {
        if let Ok(l) = t.await {
            latencies_us.extend(l);
        }
    }
    progress.finish();
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let lat = latency_ms(latencies_us);
    let ok = shared.ok.load(Ordering::Relaxed);
    let requests = shared.requests.load(Ordering::Relaxed);
    let errors_by_status = std::mem::take(&mut *shared.errors.lock().unwrap());
    let first_error = shared.first_error.lock().unwrap().take();
    Ok(Summary {
        messages_ok: ok,
        messages_failed: shared.failed.load(Ordering::Relaxed),
        requests,
        elapsed_secs: elapsed,
        messages_per_sec: ok as f64 / elapsed,
        requests_per_sec: requests as f64 / elapsed,
        latency_ms_p50: lat.p50,
        latency_ms_p90: lat.p90,
        latency_ms_p99: lat.p99,
        latency_ms_max: lat.max,
        errors_by_status,
        first_error,
    })
}

/// The outcome of each of the `count` messages of a successful answer; a
/// message the answer does not account for failed.
fn outcomes(bytes: &[u8], batch: bool, count: u64) -> Vec<Result<(), String>> {
    let unreadable =
        |e: serde_json::Error| vec![Err(format!("unreadable answer: {e}")); count as usize];
    let mut out: Vec<Result<(), String>> = if batch {
        match serde_json::from_slice::<BatchSent>(bytes) {
            Ok(b) => b
                .results
                .into_iter()
                .map(|item| match item {
                    BatchItem::Sent(sent) => sent.outcome(),
                    BatchItem::Failed { error } => Err(format!("batch item: {error}")),
                })
                .collect(),
            Err(e) => return unreadable(e),
        }
    } else {
        match serde_json::from_slice::<Sent>(bytes) {
            Ok(sent) => vec![sent.outcome()],
            Err(e) => return unreadable(e),
        }
    };
    out.resize_with(count as usize, || Err("missing from the answer".into()));
    out
}

/// An error and its causes, `: `-separated (reqwest's own message alone
/// rarely says what failed).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "messages: {} ok, {} failed in {:.2} s ({} requests)",
            self.messages_ok, self.messages_failed, self.elapsed_secs, self.requests
        )?;
        writeln!(
            f,
            "rate:     {:.0} messages/s, {:.0} requests/s",
            self.messages_per_sec, self.requests_per_sec
        )?;
        writeln!(
            f,
            "latency:  p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (request to answer)",
            self.latency_ms_p50, self.latency_ms_p90, self.latency_ms_p99, self.latency_ms_max
        )?;
        if !self.errors_by_status.is_empty() {
            let e: Vec<String> = self
                .errors_by_status
                .iter()
                .map(|(status, n)| format!("{status}: {n}"))
                .collect();
            writeln!(f, "errors:   {} (0 = no answer)", e.join(", "))?;
        }
        if let Some(e) = &self.first_error {
            writeln!(f, "first:    {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    #[test]
    fn single_body_is_one_message_with_the_text_of_the_size() {
        let p = super::Payload::new(2048, "sink.test");
        let v: Value = serde_json::from_slice(&p.body(3, 7, 1, false)).unwrap();
        assert_eq!(v["to"], json!(["u3-7@sink.test"]));
        assert_eq!(v["from"], "Bench <bench@rackwave.test>");
        assert_eq!(v["text"].as_str().unwrap().len(), 2048);
        assert_eq!(v.as_object().unwrap().len(), 4);
    }

    #[test]
    fn batch_body_numbers_the_recipients_from_the_first() {
        let p = super::Payload::new(10, "d.test");
        let v: Value = serde_json::from_slice(&p.body(0, 100, 3, true)).unwrap();
        let to: Vec<&Value> = v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| &m["to"][0])
            .collect();
        assert_eq!(
            to,
            [
                &json!("u0-100@d.test"),
                &json!("u0-101@d.test"),
                &json!("u0-102@d.test")
            ]
        );
    }

    #[test]
    fn only_queued_messages_count() {
        let sent = json!({"queue_id": "q", "messages": [{"id": "m", "to": "a@b", "status": "queued"}], "rejected": []});
        let rejected = json!({"queue_id": "q", "messages": [], "rejected": [{"to": "a@b", "code": "suppressed", "reason": "r"}]});
        let failed = json!({"error": {"code": "refused", "message": "no"}});
        let single = serde_json::to_vec(&sent).unwrap();
        assert_eq!(super::outcomes(&single, false, 1), [Ok(())]);
        let batch = serde_json::to_vec(&json!({"results": [sent, rejected, failed]})).unwrap();
        let out = super::outcomes(&batch, true, 4);
        assert!(out[0].is_ok());
        assert!(out[1].as_ref().unwrap_err().contains("suppressed"));
        assert!(out[2].as_ref().unwrap_err().contains("refused"));
        assert_eq!(out[3], Err("missing from the answer".into()));
        assert!(super::outcomes(b"<html>", false, 1)[0].is_err());
    }
}
