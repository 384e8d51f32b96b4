//! What `rackwave bench e2e` relies on to race MTAs fairly: the bench DNS
//! sends every destination domain to the sink as seen by a real resolver,
//! the load generator spreads recipients over the domains, and the sink
//! measures the longest stall between arrivals.

mod common;
use common::resolver;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use hickory_resolver::proto::rr::RData;
use rackwave_bench::dns::{self, DnsServer};
use rackwave_bench::e2e::{self, E2eArgs};
use rackwave_bench::sink::{Sink, SinkConfig};
use rackwave_bench::smtp::{self, SmtpBenchArgs};

#[derive(Parser)]
struct SmtpCli {
    #[command(flatten)]
    args: SmtpBenchArgs,
}

#[derive(Parser)]
struct E2eCli {
    #[command(flatten)]
    args: E2eArgs,
}

/// A port free on `ip` right now (for options that need one up front).
fn free_port(ip: Ipv4Addr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test]
async fn bench_dns_sends_every_domain_to_the_sink() {
    let sink_ip = Ipv4Addr::new(127, 0, 0, 41);
    let sink = Sink::start(SinkConfig::new(SocketAddr::from((sink_ip, 0))))
        .await
        .expect("sink");
    let domains = smtp::destination_domains("sink.test", 3);
    let server: DnsServer = dns::serve_mx("127.0.0.41:0".parse().unwrap(), &domains, sink.addr)
        .await
        .expect("DNS");
    let resolver = resolver(server.addr);
    for domain in &domains {
        let mx = resolver
            .mx_lookup(format!("{domain}."))
            .await
            .unwrap_or_else(|e| panic!("MX of {domain}: {e}"));
        let exchanges: Vec<(u16, String)> = mx
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                _ => None,
            })
            .collect();
        assert_eq!(exchanges, [(10, format!("mx.{domain}."))]);
        let ips: Vec<IpAddr> = resolver
            .lookup_ip(exchanges[0].1.as_str())
            .await
            .unwrap_or_else(|e| panic!("A of mx.{domain}: {e}"))
            .iter()
            .collect();
        assert_eq!(ips, [IpAddr::V4(sink_ip)]);
    }
    // The answers carry the bench TTL, so a resolver asks once per name.
    let asked = server.queries();
    for domain in &domains {
        resolver.mx_lookup(format!("{domain}.")).await.unwrap();
        resolver.lookup_ip(format!("mx.{domain}.")).await.unwrap();
    }
    assert_eq!(server.queries(), asked, "{:?}", server.query_log());
    // A domain the bench does not send to does not exist.
    let err = resolver.mx_lookup("d3.sink.test.").await.unwrap_err();
    assert!(err.is_nx_domain(), "{err}");
    assert!(server.queries() >= 7, "{} queries", server.queries());
}

#[tokio::test]
async fn bench_dns_on_a_fixed_address_and_a_taken_one() {
    let ip = Ipv4Addr::new(127, 0, 0, 42);
    let listen = SocketAddr::from((ip, free_port(ip)));
    let zone = dns::mx_zone(&["one.test"], IpAddr::V4(ip));
    let server = DnsServer::bind(listen, &zone, &[]).await.expect("DNS");
    assert_eq!(server.addr, listen);
    // The port is the bench's to announce: a second server must not start
    // silently somewhere else.
    assert!(DnsServer::bind(listen, &zone, &[]).await.is_err());
    assert!(
        DnsServer::bind("127.0.0.42:0".parse().unwrap(), "x IN MX ten", &[])
            .await
            .is_err()
    );
}

#[tokio::test]
async fn load_spreads_recipients_round_robin_over_the_domains() {
    let sink = Sink::start(SinkConfig::new("127.0.0.43:0".parse().unwrap()))
        .await
        .expect("sink");
    let target = sink.addr.to_string();
    let args = SmtpCli::parse_from([
        "bench",
        "--target",
        &target,
        "--messages",
        "3",
        "--concurrency",
        "1",
        "--recipients",
        "2",
        "--domains",
        "3",
    ])
    .args;
    let summary = smtp::run_with(args, false).await.expect("load");
    assert_eq!(summary.messages_ok, 3, "{summary}");
    let domains: Vec<String> = sink
        .received()
        .iter()
        .flat_map(|m| m.rcpt_to.clone())
        .map(|r| r.rsplit_once('@').unwrap().1.to_string())
        .collect();
    assert_eq!(
        domains,
        ["d0", "d1", "d2", "d0", "d1", "d2"].map(|d| format!("{d}.sink.test"))
    );
}

#[tokio::test]
async fn sink_measures_the_longest_gap_between_arrivals() {
    let sink = Sink::start(SinkConfig::new("127.0.0.44:0".parse().unwrap()))
        .await
        .expect("sink");
    let target = sink.addr.to_string();
    let load = |n: &str| {
        SmtpCli::parse_from([
            "bench",
            "--target",
            &target,
            "--messages",
            n,
            "--concurrency",
            "1",
        ])
        .args
    };
    smtp::run_with(load("3"), false).await.expect("load");
    assert!(sink.arrivals().max_gap < Duration::from_millis(300));
    tokio::time::sleep(Duration::from_millis(400)).await;
    smtp::run_with(load("1"), false).await.expect("load");
    let arrivals = sink.arrivals();
    assert_eq!(arrivals.latencies_us.len(), 4);
    assert!(
        arrivals.max_gap >= Duration::from_millis(400),
        "{arrivals:?}"
    );
    assert!(arrivals.max_gap < Duration::from_secs(10), "{arrivals:?}");
}

/// The whole command with the load sent straight to its own sink (no MTA
/// in between): everything arrives, the DNS is up for the run, and the
/// summary carries the stall and the routing.
#[tokio::test]
async fn e2e_with_dns_and_domains_reports_the_longest_stall() {
    let ip = Ipv4Addr::new(127, 0, 0, 45);
    let sink = SocketAddr::from((ip, free_port(ip)));
    let dns_listen = SocketAddr::from((ip, free_port(ip)));
    let (sink_s, dns_s) = (sink.to_string(), dns_listen.to_string());
    let args = E2eCli::parse_from([
        "e2e",
        "--sink-listen",
        &sink_s,
        "--dns-listen",
        &dns_s,
        "--target",
        &sink_s,
        "--messages",
        "200",
        "--concurrency",
        "4",
        "--domains",
        "10",
        "--wait",
        "20",
        "--json",
    ])
    .args;
    let summary = e2e::run(args).await.expect("e2e");
    assert!(summary.complete(), "{summary}");
    assert_eq!(summary.delivered, 200);
    assert_eq!(summary.domains, 10);
    assert_eq!(summary.dns_queries, Some(0), "nothing resolved here");
    assert!(summary.max_gap_ms > 0.0, "{summary}");
    assert!(
        summary.max_gap_ms <= summary.delivered_secs * 1000.0,
        "{summary}"
    );
    let json = serde_json::to_value(&summary).unwrap();
    for field in ["max_gap_ms", "domains", "dns_queries", "delivered_per_sec"] {
        assert!(json.get(field).is_some(), "{field} in {json}");
    }
}
