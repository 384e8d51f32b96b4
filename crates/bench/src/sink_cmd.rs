//! `rackwave bench sink`: the [`Sink`](super::sink::Sink) as a command, to
//! stand in for the remote MX in load tests (like Postfix's smtp-sink).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use super::percentiles::quantile;
use super::sink::{Script, Sink, SinkConfig, SinkStats, Step};

#[derive(Args, Debug, Clone)]
pub struct SinkArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:2600")]
    pub listen: SocketAddr,
    /// Exit once this many messages have arrived and report the time from
    /// the first to the last.
    #[arg(long)]
    pub expect: Option<u64>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Share of messages (0 to 1) answered with a 4xx at end of data.
    #[arg(long, default_value_t = 0.0)]
    pub defer_share: f64,
    /// Share of messages (0 to 1) answered with a 5xx at end of data.
    #[arg(long, default_value_t = 0.0)]
    pub bounce_share: f64,
    /// Offer STARTTLS (self-signed certificate).
    #[arg(long)]
    pub starttls: bool,
    /// Also serve DNS here (UDP and TCP): every destination domain gets an
    /// MX whose address is the sink's, so an MTA finds the sink through DNS
    /// as it finds a remote MX (its SMTP port set to the sink's port).
    #[arg(long, value_name = "IP:PORT")]
    pub dns_listen: Option<SocketAddr>,
    /// With --dns-listen: the domains `rackwave bench smtp --domains N`
    /// sends to (see there).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub domains: u32,
    /// With --dns-listen: the `--to-domain` the load was sent with.
    #[arg(long, default_value = "sink.test")]
    pub to_domain: String,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct SinkSummary {
    #[serde(flatten)]
    pub stats: SinkStats,
    /// Messages per second between the first and the last stamped arrival.
    pub arrival_rate: f64,
    /// Submission (by `rackwave bench smtp`) to arrival, for stamped messages.
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    /// The longest time between two consecutive stamped arrivals, from the
    /// first to the last: the MTA's worst stall.
    pub max_gap_ms: f64,
    pub timed_out: bool,
}

pub async fn run(args: SinkArgs) -> std::io::Result<SinkSummary> {
    let mut script = Script::default();
    if args.bounce_share > 0.0 {
        script = script.fail_share(
            Step::EndOfData,
            args.bounce_share,
            "550 5.7.1 bench: scripted rejection",
        );
    }
    if args.defer_share > 0.0 {
        script = script.fail_share(
            Step::EndOfData,
            args.defer_share,
            "451 4.3.0 bench: scripted deferral",
        );
    }
    let sink = Sink::start(SinkConfig {
        listen: args.listen,
        starttls: args.starttls,
        keep_messages: false,
        script,
        ..SinkConfig::default()
    })
    .await?;
    eprintln!("rackwave bench sink listening on {}", sink.addr);
    // Kept until the end: dropping it stops the DNS server.
    let _dns = match args.dns_listen {
        Some(listen) => {
            let domains = super::smtp::destination_domains(&args.to_domain, args.domains);
            let dns = super::dns::serve_mx(listen, &domains, sink.addr).await?;
            eprintln!(
                "rackwave bench sink: DNS on {} for {} domain(s)",
                dns.addr,
                domains.len()
            );
            Some(dns)
        }
        None => None,
    };
    let timed_out = match args.expect {
        Some(n) => {
            !sink
                .wait_for_messages(n, Duration::from_secs(args.timeout))
                .await
        }
        None => {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break false,
                    _ = tokio::time::sleep_until(deadline) => break true,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {
                        eprintln!("{} messages", sink.messages());
                    }
                }
            }
        }
    };
    let arrivals = sink.arrivals();
    let mut lat = arrivals.latencies_us.clone();
    lat.sort_unstable();
    let span = match (arrivals.first, arrivals.last) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(SinkSummary {
        stats: sink.stats(),
        arrival_rate: if span > 0.0 {
            (lat.len().saturating_sub(1)) as f64 / span
        } else {
            0.0
        },
        latency_ms_p50: ms(quantile(&lat, 0.5)),
        latency_ms_p99: ms(quantile(&lat, 0.99)),
        latency_ms_max: ms(lat.last().copied().unwrap_or(0)),
        max_gap_ms: arrivals.max_gap.as_secs_f64() * 1000.0,
        timed_out,
    })
}

impl std::fmt::Display for SinkSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "received: {} messages, {} recipients, {} bytes over {} connections (peak {} at once, up to {} per connection){}",
            self.stats.messages,
            self.stats.recipients,
            self.stats.bytes,
            self.stats.connections,
            self.stats.max_concurrent_connections,
            self.stats.max_messages_per_connection,
            if self.timed_out { " [timed out]" } else { "" }
        )?;
        writeln!(
            f,
            "arrivals: {:.0} messages/s (first to last)",
            self.arrival_rate
        )?;
        writeln!(
            f,
            "latency:  p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (submitted to arrived)",
            self.latency_ms_p50, self.latency_ms_p99, self.latency_ms_max
        )?;
        writeln!(
            f,
            "stall:    {:.2} ms at most between two arrivals",
            self.max_gap_ms
        )
    }
}
