//! A delivery rig: the server with its delivery engine on, resolving
//! through a real DNS server (zones in fixtures/zones/) and delivering to
//! real SMTP sinks on 127.0.0.x that play the remote MX hosts with
//! scripted replies. Retries run on the manual clock.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rackwave::config::Config;
use rackwave_bench::sink::{start_on_same_port, Script, Sink, SinkConfig};
use serde_json::{json, Value};

use crate::dns::{self, loopback, DnsServer};
use crate::{message, queue_id, start_with, Account, TestServer};

/// An address nothing listens on: a mail server that is down.
pub const DOWN: u8 = 99;

/// The server with its delivery engine on, a DNS server and SMTP sinks
/// playing the remote MX hosts, and an SMTP account to send with.
pub struct Rig {
    pub ts: TestServer,
    pub dns: DnsServer,
    pub sinks: Vec<Sink>,
    pub account: Account,
}

/// Starts sinks on 127.0.0.`ip` (all on one port), a DNS server serving
/// fixtures/zones/delivery.zone with `{SINK1}`/`{SINK2}` pointing at `hosts`, and the
/// server with delivery on.
pub async fn rig(
    sinks: Vec<(u8, SinkConfig)>,
    hosts: [u8; 2],
    tweak: impl FnOnce(&mut Config),
) -> Rig {
    let configs: Vec<SinkConfig> = sinks
        .into_iter()
        .map(|(ip, mut c)| {
            c.listen = SocketAddr::new(IpAddr::V4(loopback(ip)), 0);
            c
        })
        .collect();
    let sinks = start_on_same_port(configs).await.expect("sinks start");
    let port = sinks.first().map(|s| s.addr.port()).unwrap_or(2);
    let s1 = loopback(hosts[0]).to_string();
    let s2 = loopback(hosts[1]).to_string();
    let dns = dns::start(
        loopback(53),
        &dns::fixture("delivery.zone"),
        &[("{SINK1}", &s1), ("{SINK2}", &s2)],
    )
    .await;
    let ns = dns.addr;
    let ts = start_with(|c| {
        c.delivery.enabled = true;
        c.delivery.nameservers = vec![ns];
        c.delivery.smtp_port = port;
        c.delivery.hostname = "out.rackwave.test".into();
        c.delivery.bounce_domain = "bounces.rackwave.test".into();
        c.delivery.poll_interval_ms = 50;
        c.delivery.connect_timeout_secs = 2;
        c.delivery.command_timeout_secs = 5;
        tweak(c);
    })
    .await;
    let account = ts.create_account("sender", 10_000).await;
    Rig {
        ts,
        dns,
        sinks,
        account,
    }
}

/// One sink on 127.0.0.`ip` playing example.test's MX with `script` (the
/// second MX host is down).
pub async fn scripted_rig(ip: u8, script: Script, tweak: impl FnOnce(&mut Config)) -> Rig {
    rig(
        vec![(ip, SinkConfig { script, ..sink() })],
        [ip, DOWN],
        tweak,
    )
    .await
}

pub fn sink() -> SinkConfig {
    SinkConfig::default()
}

impl Rig {
    /// Adds dkim.test (selector s1, with `algorithm` or the default key) to
    /// the rig's workspace and publishes its DKIM record; the API's answer.
    pub async fn signing_domain(&self, algorithm: Option<&str>) -> Value {
        let ws = &self.account.workspace_id;
        let (status, domain) = self
            .ts
            .admin(
                "POST",
                &format!("/admin/v1/workspaces/{ws}/domains"),
                Some(json!({"domain": "dkim.test", "algorithm": algorithm, "selector": "s1"})),
            )
            .await;
        assert_eq!(status, 201, "{domain}");
        let value = domain["dkim_record"]["value"].as_str().unwrap();
        self.dns
            .add_record(&format!("s1._domainkey.dkim TXT \"{value}\""));
        domain
    }

    /// Verifies a delivered message's DKIM signatures as a receiver
    /// would: mail-auth's verifier, asking the test DNS server.
    pub async fn assert_dkim_passes(&self, data: &[u8]) {
        use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
        let mut ns = NameServerConfig::udp_and_tcp(self.dns.addr.ip());
        for c in &mut ns.connections {
            c.port = self.dns.addr.port();
        }
        let verifier = mail_auth::MessageAuthenticator::new(
            ResolverConfig::from_name_servers(vec![ns]),
            ResolverOpts::default(),
        )
        .unwrap();
        let parsed = mail_auth::AuthenticatedMessage::parse(data).unwrap();
        let results = verifier.verify_dkim(&parsed).await;
        assert!(
            !results.is_empty()
                && results
                    .iter()
                    .all(|r| r.result() == &mail_auth::DkimResult::Pass),
            "{results:?}"
        );
    }

    /// Submits one message per recipient; returns the queue id.
    pub async fn send(&self, from: &str, to: &[impl AsRef<str>], subject: &str) -> String {
        let to: Vec<&str> = to.iter().map(AsRef::as_ref).collect();
        let mut s = self.ts.authed(&self.account).await;
        let r = s
            .send_mail(
                from,
                &to,
                &message(from, to[0], subject, "Hello from the delivery tests."),
            )
            .await;
        assert_eq!(r.code, 250, "{r:?}");
        queue_id(&r)
    }

    pub fn kick(&self) {
        self.ts
            .server
            .as_ref()
            .unwrap()
            .delivery
            .as_ref()
            .expect("delivery engine on")
            .kick();
    }

    /// Waits until every message of the submission has one of `statuses`.
    pub async fn wait(&self, queue_id: &str, statuses: &[&str]) -> Vec<Value> {
        self.wait_until(queue_id, statuses, |_| true).await
    }

    /// Waits until every message of the submission has one of `statuses`
    /// and its detail satisfies `ready`; returns the details.
    pub async fn wait_until(
        &self,
        queue_id: &str,
        statuses: &[&str],
        ready: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (_, page) = self
                .ts
                .get(&format!("/admin/v1/messages?queue_id={queue_id}"))
                .await;
            let msgs = page["messages"].as_array().cloned().unwrap_or_default();
            if !msgs.is_empty()
                && msgs
                    .iter()
                    .all(|m| statuses.contains(&m["status"].as_str().unwrap_or("")))
            {
                let mut full = Vec::new();
                for m in msgs {
                    let (_, detail) = self
                        .ts
                        .get(&format!("/admin/v1/messages/{}", m["id"].as_str().unwrap()))
                        .await;
                    full.push(detail);
                }
                if full.iter().all(&ready) {
                    return full;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "messages of {queue_id} never reached {statuses:?} (or were not ready): {page}"
            );
            self.kick();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The event names of a message's history (from its admin API detail).
pub fn events(msg: &Value) -> Vec<String> {
    msg["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap().to_string())
        .collect()
}

/// The tracked URLs (`kind`: `o`, `c` or `u` after `base`) in delivered
/// mail, each up to the end of its token.
pub fn tracked_urls(html: &str, base: &str, kind: &str) -> Vec<String> {
    let prefix = format!("{base}/{kind}/");
    html.split(&prefix)
        .skip(1)
        .map(|rest| {
            let token: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                .collect();
            format!("{prefix}{token}")
        })
        .collect()
}
