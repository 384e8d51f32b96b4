//! `rackwave bench e2e`: end to end through the MTA under test.
//!
//! Starts a [`Sink`], drives the messages into the MTA with the load
//! generator, then waits until every accepted recipient has arrived at the
//! sink (bounded by `--wait`).
//!
//! The MTA reaches the sink one of two ways:
//!
//! - through DNS, with `--dns-listen`: the e2e also serves a zone where each
//!   destination domain (`--to-domain`, `--domains`) has an MX whose
//!   address is the sink's, and the MTA uses that server with its SMTP port
//!   set to the sink's port (Rackwave: `[delivery] nameservers` and
//!   `smtp_port`). The MTA then resolves, queues and shapes per domain as
//!   in production;
//! - through a relay setting (Rackwave's `[delivery.shaping] smarthost`,
//!   Postfix's `relayhost` or transport map), without `--dns-listen`.
//!
//! It reports the acceptance rate (what `rackwave bench smtp` reports), the
//! delivered rate (recipients arrived / time from the first submission to
//! the last arrival), the submission-to-arrival latency of each message,
//! read from the `X-Rackwave-Bench-Sent` header the load generator stamps,
//! and the longest gap between two arrivals (a stall of the MTA that the
//! averaged rate hides).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use super::percentiles::quantile;
use super::progress::{self, Progress};
use super::sink::{Sink, SinkConfig, SinkStats};
use super::smtp::{SmtpBenchArgs, Summary};

#[derive(Args, Debug, Clone)]
pub struct E2eArgs {
    /// Where the sink listens: the MTA under test must relay there.
    #[arg(long, default_value = "127.0.0.1:2600")]
    pub sink_listen: SocketAddr,
    /// After the load, wait at most this many seconds for the deliveries.
    #[arg(long, default_value_t = 300)]
    pub wait: u64,
    /// Serve DNS here (UDP and TCP) for the destination domains, each with
    /// an MX whose address is the sink's listen address; the MTA under test
    /// must use this server and deliver to the sink's port.
    #[arg(long, value_name = "IP:PORT")]
    pub dns_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub smtp: SmtpBenchArgs,
}

#[derive(Debug, Serialize)]
pub struct E2eSummary {
    /// The load generator's view: acceptance by the MTA under test.
    pub acceptance: Summary,
    /// Recipients the sink should get (accepted messages × recipients).
    pub expected: u64,
    /// Recipients the sink got (in as many SMTP transactions as the MTA
    /// chose).
    pub delivered: u64,
    pub sink: SinkStats,
    /// From the first submission to the last arrival.
    pub delivered_secs: f64,
    /// `delivered / delivered_secs`.
    pub delivered_per_sec: f64,
    /// Submission (start of DATA) to arrival at the sink, per message.
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    /// The longest time between two consecutive arrivals, from the first
    /// arrival to the last: the MTA's worst stall.
    pub max_gap_ms: f64,
    /// Destination domains the recipients were spread over.
    pub domains: u32,
    /// Queries the bench's DNS server answered (absent without
    /// `--dns-listen`): zero means the MTA did not resolve through it.
    pub dns_queries: Option<u64>,
    /// Not everything arrived within `--wait`.
    pub timed_out: bool,
}

impl E2eSummary {
    /// The run delivered everything it got accepted.
    pub fn complete(&self) -> bool {
        self.acceptance.messages_ok > 0 && !self.timed_out
    }
}

pub async fn run(args: E2eArgs) -> std::io::Result<E2eSummary> {
    // Read the message file before anything starts.
    super::smtp::load_body(&args.smtp)?;
    let sink = Arc::new(
        Sink::start(SinkConfig {
            hostname: "sink.bench.test".into(),
            keep_messages: false,
            idle_timeout: Duration::from_secs(args.wait.max(60)),
            ..SinkConfig::new(args.sink_listen)
        })
        .await?,
    );
    // Kept until the end: dropping it stops the DNS server.
    let dns = match args.dns_listen {
        Some(listen) => {
            let domains = args.smtp.destination_domains();
            Some(super::dns::serve_mx(listen, &domains, sink.addr).await?)
        }
        None => None,
    };
    let bar = progress::wanted(args.smtp.json);
    if !args.smtp.json {
        eprintln!("rackwave bench e2e: sink listening on {}", sink.addr);
        if let Some(dns) = &dns {
            eprintln!(
                "rackwave bench e2e: DNS on {} for {} domain(s)",
                dns.addr, args.smtp.domains
            );
        }
    }
    let started = Instant::now();
    let acceptance = super::smtp::run_with(args.smtp.clone(), bar).await?;
    let expected = acceptance.messages_ok * args.smtp.recipients.max(1) as u64;

    let progress = {
        let sink = sink.clone();
        Progress::start(bar, expected, "delivered", move || {
            (sink.stats().recipients, String::new())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    let timed_out = loop {
        if sink.stats().recipients >= expected {
            break false;
        }
        if Instant::now() >= deadline {
            break true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    progress.finish();

    let stats = sink.stats();
    let arrivals = sink.arrivals();
    let mut lat = arrivals.latencies_us;
    lat.sort_unstable();
    let delivered_secs = arrivals.last.map_or(0.0, |last| {
        last.saturating_duration_since(started).as_secs_f64()
    });
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(E2eSummary {
        acceptance,
        expected,
        delivered: stats.recipients,
        sink: stats,
        delivered_secs,
        delivered_per_sec: if delivered_secs > 0.0 {
            stats.recipients as f64 / delivered_secs
        } else {
            0.0
        },
        latency_ms_p50: ms(quantile(&lat, 0.50)),
        latency_ms_p99: ms(quantile(&lat, 0.99)),
        latency_ms_max: ms(lat.last().copied().unwrap_or(0)),
        max_gap_ms: arrivals.max_gap.as_secs_f64() * 1000.0,
        domains: args.smtp.domains,
        dns_queries: dns.as_ref().map(|d| d.queries() as u64),
        timed_out,
    })
}

impl std::fmt::Display for E2eSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "acceptance (client to MTA):")?;
        for line in self.acceptance.to_string().lines() {
            writeln!(f, "  {line}")?;
        }
        writeln!(f, "delivery (MTA to sink):")?;
        writeln!(
            f,
            "  delivered: {} of {} recipients in {} messages over {} connections (peak {} at once){}",
            self.delivered,
            self.expected,
            self.sink.messages,
            self.sink.connections,
            self.sink.max_concurrent_connections,
            if self.timed_out { " [timed out]" } else { "" }
        )?;
        writeln!(
            f,
            "  rate:      {:.0} recipients/s (first submission to last arrival, {:.2} s)",
            self.delivered_per_sec, self.delivered_secs
        )?;
        writeln!(
            f,
            "  latency:   p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (submitted to arrived)",
            self.latency_ms_p50, self.latency_ms_p99, self.latency_ms_max
        )?;
        writeln!(
            f,
            "  stall:     {:.2} ms at most between two arrivals",
            self.max_gap_ms
        )?;
        write!(f, "  routing:   {} destination domain(s)", self.domains)?;
        match self.dns_queries {
            Some(n) => writeln!(f, ", {n} DNS queries answered"),
            None => writeln!(f, ", no DNS served"),
        }
    }
}
