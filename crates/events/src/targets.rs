//! Where webhooks may go. Endpoint URLs must be `http(s)`; unless
//! `[webhooks] allow_private_targets` is set, a host that is or resolves to
//! a loopback, private, link-local, shared (CGNAT), multicast, reserved or
//! cloud metadata address is refused when the endpoint is saved, and again
//! at every connection: the HTTP client resolves names through
//! [`GuardedResolver`], which checks every address it returns, so a name
//! that changes its answer after the check (DNS rebinding) is caught and
//! the connection goes only to addresses that passed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

pub const MAX_URL_LEN: usize = 2048;
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unresolvable(String),
}

/// Why an address may not receive webhooks, if it may not.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return forbidden_v4(v4);
            }
            let s = v6.segments();
            if v6.is_unspecified() {
                Some("unspecified address")
            } else if v6.is_loopback() {
                Some("loopback address")
            } else if s[0] & 0xfe00 == 0xfc00 {
                // Also AWS's IPv6 metadata address fd00:ec2::254.
                Some("private (unique local) address")
            } else if s[0] & 0xffc0 == 0xfe80 || s[0] & 0xffc0 == 0xfec0 {
                Some("link-local address")
            } else if s[0] & 0xff00 == 0xff00 {
                Some("multicast address")
            } else if s[0] == 0x2001 && s[1] == 0x0db8 {
                Some("documentation address")
            } else if s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0 {
                Some("discard-only address")
            } else {
                None
            }
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if o[0] == 0 {
        Some("unspecified address")
    } else if ip.is_loopback() {
        Some("loopback address")
    } else if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) {
        Some("cloud metadata address")
    } else if ip.is_private() {
        Some("private address")
    } else if ip.is_link_local() {
        Some("link-local address")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("shared (carrier-grade NAT) address")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Some("IETF protocol assignment address")
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        Some("benchmarking address")
    } else if (o[0] == 192 && o[1] == 0 && o[2] == 2)
        || (o[0] == 198 && o[1] == 51 && o[2] == 100)
        || (o[0] == 203 && o[1] == 0 && o[2] == 113)
    {
        Some("documentation address")
    } else if ip.is_multicast() {
        Some("multicast address")
    } else if o[0] >= 240 {
        Some("reserved or broadcast address")
    } else {
        None
    }
}

/// The IPv4 address inside an IPv4-mapped, IPv4-compatible, NAT64 or 6to4
/// IPv6 address: those reach the IPv4 host, so it is what gets checked.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..5] == [0, 0, 0, 0, 0] && (s[5] == 0xffff || (s[5] == 0 && !(s[6] == 0 && s[7] <= 1))) {
        return Some(tail());
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return Some(tail());
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

/// Checks an endpoint URL's form: absolute `http` or `https`, with a host,
/// at most [`MAX_URL_LEN`] characters.
pub fn parse_url(raw: &str) -> Result<Url, TargetError> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > MAX_URL_LEN {
        return Err(TargetError::Invalid(format!(
            "url must be 1 to {MAX_URL_LEN} characters"
        )));
    }
    let url = Url::parse(raw)
        .map_err(|e| TargetError::Invalid(format!("url is not a valid URL: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(TargetError::Invalid("url must be http or https".into()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(TargetError::Invalid("url must name a host".into()));
    }
    Ok(url)
}

/// The host of a URL as an IP address, when it is one.
fn literal_ip(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.parse().ok()
}

/// Resolves `host` and refuses the whole answer if any address is
/// forbidden (a mixed answer is how rebinding attacks hedge).
pub async fn resolve_checked(host: &str, allow_private: bool) -> Result<Vec<IpAddr>, TargetError> {
    let host = host.trim_end_matches('.');
    let lookup = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, 0))).await;
    let addrs: Vec<IpAddr> = match lookup {
        Ok(Ok(it)) => it.map(|a| a.ip()).collect(),
        Ok(Err(e)) => {
            return Err(TargetError::Unresolvable(format!(
                "cannot resolve {host}: {e}"
            )))
        }
        Err(_) => {
            return Err(TargetError::Unresolvable(format!(
                "resolving {host} timed out"
            )))
        }
    };
    if addrs.is_empty() {
        return Err(TargetError::Unresolvable(format!("{host} has no address")));
    }
    if !allow_private {
        for ip in &addrs {
            if let Some(why) = forbidden_reason(*ip) {
                return Err(TargetError::Forbidden(format!(
                    "{host} resolves to {ip}, a {why}; webhooks may not target it"
                )));
            }
        }
    }
    Ok(addrs)
}

/// The full check of an endpoint URL: its form, then every address its
/// host is or resolves to.
pub async fn check_url(raw: &str, allow_private: bool) -> Result<Url, TargetError> {
    let url = parse_url(raw)?;
    check_host(&url, allow_private).await?;
    Ok(url)
}

/// The address check alone, for a URL already parsed: a literal address
/// is checked as it is, a name is resolved and every address checked.
pub async fn check_host(url: &Url, allow_private: bool) -> Result<(), TargetError> {
    if allow_private {
        return Ok(());
    }
    if literal_ip(url).is_some() {
        return check_host_literal(url, false);
    }
    let host = url.host_str().unwrap_or_default();
    resolve_checked(host, false).await.map(|_| ())
}

/// At delivery time: a literal address is checked here (the client's
/// resolver, which checks names at connect time, never sees it).
pub fn check_host_literal(url: &Url, allow_private: bool) -> Result<(), TargetError> {
    if allow_private {
        return Ok(());
    }
    match literal_ip(url).and_then(|ip| forbidden_reason(ip).map(|why| (ip, why))) {
        Some((ip, why)) => Err(TargetError::Forbidden(format!(
            "{ip} is a {why}; webhooks may not target it"
        ))),
        None => Ok(()),
    }
}

/// The resolver of the webhook HTTP client: every connection's addresses
/// are checked when they are looked up, and only checked addresses are
/// connected to.
#[derive(Clone)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_private;
        Box::pin(async move {
            let addrs = resolve_checked(name.as_str(), allow)
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?;
            let out: Addrs = Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(out)
        })
    }
}

impl GuardedResolver {
    pub fn shared(allow_private: bool) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver { allow_private })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_and_special_addresses_are_forbidden() {
        for bad in [
            "127.0.0.1",
            "127.8.9.10",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "100.100.100.200",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "ff02::1",
        ] {
            assert!(forbidden_reason(ip(bad)).is_some(), "{bad} must be refused");
        }
        for good in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(forbidden_reason(ip(good)), None, "{good} must be allowed");
        }
    }

    #[test]
    fn only_http_urls_with_a_host() {
        assert!(parse_url("https://example.com/hook").is_ok());
        assert!(parse_url("http://example.com:8080/x?y=1").is_ok());
        for bad in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "example.com",
            "",
            "http://",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert!(parse_url(&format!("https://e.com/{}", "a".repeat(MAX_URL_LEN))).is_err());
    }

    #[tokio::test]
    async fn literal_and_resolved_private_hosts_are_refused() {
        for bad in [
            "http://127.0.0.1:9/x",
            "http://[::1]/x",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.7/",
            "http://localhost/hook",
            "http://[::ffff:7f00:1]/",
        ] {
            let e = check_url(bad, false).await.unwrap_err();
            assert!(matches!(e, TargetError::Forbidden(_)), "{bad}: {e:?}");
            assert!(
                check_url(bad, true).await.is_ok(),
                "{bad} allowed by config"
            );
        }
        assert!(check_url("http://93.184.216.34/x", false).await.is_ok());
    }

    #[tokio::test]
    async fn the_resolver_refuses_rebinding_at_connect_time() {
        let r = GuardedResolver {
            allow_private: false,
        };
        let name: Name = "localhost".parse().unwrap();
        assert!(r.resolve(name).await.is_err());
        let r = GuardedResolver {
            allow_private: true,
        };
        let name: Name = "localhost".parse().unwrap();
        let addrs: Vec<SocketAddr> = r.resolve(name).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
