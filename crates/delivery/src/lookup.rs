//! Where to deliver: MX resolution (RFC 5321 §5.1) with hickory-resolver.
//!
//! MX hosts in preference order, equal preferences shuffled so load spreads
//! as the domain intends; no MX falls back to the domain's own A/AAAA (the
//! implicit MX); a Null MX (RFC 7505) means the domain accepts no mail; a
//! smarthost route replaces all of it.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use rand::seq::SliceRandom;

/// One host to try, with its addresses, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MxHost {
    pub name: String,
    pub addrs: Vec<IpAddr>,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RouteError {
    /// RFC 7505: the domain declares it accepts no mail. Permanent.
    #[error("domain {0} publishes a null MX and accepts no mail")]
    NullMx(String),
    /// NXDOMAIN, or a domain with neither MX nor address. Permanent.
    #[error("domain {0} does not exist or has no mail server")]
    NoSuchDomain(String),
    /// Every MX host name is authoritatively without an address. Permanent.
    #[error("no MX host of {0} has an address")]
    NoAddress(String),
    /// DNS failed (timeout, SERVFAIL): try again later.
    #[error("DNS lookup failed for {name}: {reason}")]
    Temporary { name: String, reason: String },
}

pub(crate) struct Router {
    resolver: TokioResolver,
    port: u16,
}

/// A resolver using `nameservers` (`ip:port`, UDP with TCP fallback), or
/// the system configuration when the list is empty: the engine's, and the
/// sending-domain checks' (`[delivery] nameservers`).
fn resolver(nameservers: &[SocketAddr]) -> Result<TokioResolver, String> {
    let mut opts = ResolverOpts::default();
    opts.timeout = std::time::Duration::from_secs(5);
    opts.attempts = 2;
    let builder = if nameservers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| format!("system DNS configuration: {e}"))?
    } else {
        let servers = nameservers
            .iter()
            .map(|addr| {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                ns
            })
            .collect();
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
    };
    builder
        .with_options(opts)
        .build()
        .map_err(|e| format!("building the DNS resolver: {e}"))
}

impl Router {
    pub(crate) fn new(nameservers: &[SocketAddr], smtp_port: u16) -> Result<Router, String> {
        Ok(Router {
            resolver: resolver(nameservers)?,
            port: smtp_port,
        })
    }

    /// The hosts to try for `domain`, best first.
    pub(crate) async fn route(
        &self,
        domain: &str,
        smarthost: Option<&str>,
    ) -> Result<Vec<MxHost>, RouteError> {
        if let Some(relay) = smarthost {
            return self.smarthost(relay).await;
        }
        if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
            let ip = literal
                .trim_start_matches("IPv6:")
                .parse::<IpAddr>()
                .map_err(|_| RouteError::NoSuchDomain(domain.to_string()))?;
            return Ok(vec![MxHost {
                name: domain.to_string(),
                addrs: vec![ip],
                port: self.port,
            }]);
        }
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        let mut exchanges: Vec<(u16, String)> = match self.resolver.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                    _ => None,
                })
                .collect(),
            Err(e) if e.is_nx_domain() => return Err(RouteError::NoSuchDomain(domain.to_string())),
            Err(e) if e.is_no_records_found() => Vec::new(),
            Err(e) => return Err(temporary(domain, e)),
        };
        if exchanges
            .iter()
            .any(|(_, host)| host == "." || host.is_empty())
        {
            // RFC 7505 §3: a single MX with the root as exchange.
            return Err(RouteError::NullMx(domain.to_string()));
        }
        if exchanges.is_empty() {
            // RFC 5321 §5.1: no MX, the domain itself is the implicit MX.
            return match self.addresses(&fqdn).await {
                Ok(addrs) if !addrs.is_empty() => Ok(vec![MxHost {
                    name: domain.to_string(),
                    addrs,
                    port: self.port,
                }]),
                Ok(_) => Err(RouteError::NoSuchDomain(domain.to_string())),
                Err(e) if e.is_nx_domain() || e.is_no_records_found() => {
                    Err(RouteError::NoSuchDomain(domain.to_string()))
                }
                Err(e) => Err(temporary(domain, e)),
            };
        }
        order_by_preference(&mut exchanges, &mut rand::thread_rng());
        let mut hosts = Vec::with_capacity(exchanges.len());
        let mut temporary_failure = None;
        for (_, name) in exchanges {
            match self.addresses(&name).await {
                Ok(addrs) if !addrs.is_empty() => hosts.push(MxHost {
                    name: name.trim_end_matches('.').to_string(),
                    addrs,
                    port: self.port,
                }),
                Ok(_) => {}
                Err(e) if e.is_nx_domain() || e.is_no_records_found() => {}
                Err(e) => temporary_failure = Some(temporary(&name, e)),
            }
        }
        if hosts.is_empty() {
            return Err(temporary_failure.unwrap_or(RouteError::NoAddress(domain.to_string())));
        }
        Ok(hosts)
    }

    async fn smarthost(&self, relay: &str) -> Result<Vec<MxHost>, RouteError> {
        let (host, port) = relay
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
            .ok_or_else(|| RouteError::NoSuchDomain(relay.to_string()))?;
        let addrs = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => self
                .addresses(&format!("{}.", host.trim_end_matches('.')))
                .await
                .map_err(|e| temporary(host, e))?,
        };
        if addrs.is_empty() {
            return Err(RouteError::NoAddress(host.to_string()));
        }
        Ok(vec![MxHost {
            name: host.to_string(),
            addrs,
            port,
        }])
    }

    async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, NetError> {
        let lookup = self.resolver.lookup_ip(name).await?;
        Ok(lookup.iter().collect())
    }
}

fn temporary(name: &str, e: NetError) -> RouteError {
    RouteError::Temporary {
        name: name.to_string(),
        reason: e.to_string(),
    }
}

/// Sorts by preference, shuffling hosts of equal preference (RFC 5321 §5.1).
fn order_by_preference(exchanges: &mut [(u16, String)], rng: &mut impl rand::Rng) {
    exchanges.shuffle(rng);
    // A stable sort keeps the shuffled order within each preference.
    exchanges.sort_by_key(|(pref, _)| *pref);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn preference_order_with_shuffled_ties() {
        let base = vec![
            (20, "c".to_string()),
            (10, "a".to_string()),
            (10, "b".to_string()),
            (30, "d".to_string()),
        ];
        let mut firsts = std::collections::HashSet::new();
        for seed in 0..64 {
            let mut v = base.clone();
            order_by_preference(&mut v, &mut rand::rngs::StdRng::seed_from_u64(seed));
            let prefs: Vec<u16> = v.iter().map(|(p, _)| *p).collect();
            assert_eq!(prefs, vec![10, 10, 20, 30]);
            assert_eq!(v[2].1, "c");
            firsts.insert(v[0].1.clone());
        }
        assert_eq!(firsts.len(), 2, "equal preferences are shuffled");
    }
}

/// TXT and CNAME lookups through the engine's resolver, for checking what
/// a sending domain publishes.
#[derive(Clone)]
pub struct DnsLookup {
    resolver: TokioResolver,
}

impl DnsLookup {
    pub fn new(nameservers: &[SocketAddr]) -> Result<DnsLookup, String> {
        Ok(DnsLookup {
            resolver: resolver(nameservers)?,
        })
    }

    /// The TXT records of `name`, each as one string (its character-strings
    /// joined); none when the name or the type does not exist.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        match self.resolver.txt_lookup(name).await {
            Ok(found) => Ok(found
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|part| String::from_utf8_lossy(part))
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect()),
            Err(e) if is_absent(&e) => Ok(Vec::new()),
            Err(e) => Err(format!("DNS lookup of {name} TXT failed: {e}")),
        }
    }

    /// The CNAME target of `name` (lowercase, without the final dot), if it
    /// has one.
    pub async fn cname(&self, name: &str) -> Result<Option<String>, String> {
        use hickory_resolver::proto::rr::RecordType;
        match self.resolver.lookup(name, RecordType::CNAME).await {
            Ok(found) => Ok(found.answers().iter().find_map(|r| match &r.data {
                RData::CNAME(c) => Some(c.0.to_ascii().trim_end_matches('.').to_ascii_lowercase()),
                _ => None,
            })),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(format!("DNS lookup of {name} CNAME failed: {e}")),
        }
    }
}

/// The name or the record type does not exist: an answer, not a failure.
fn is_absent(e: &NetError) -> bool {
    e.is_nx_domain() || e.is_no_records_found()
}
