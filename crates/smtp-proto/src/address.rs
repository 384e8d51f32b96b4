//! Addresses: the RFC 5321 mailbox syntax, the domain of an address, and
//! VERP return paths. Used by the server (MAIL, RCPT), the delivery engine
//! (routing by domain, the envelope sender), the sink and the accounts
//! (sender domains).

/// RFC 5321 §4.1.2 Mailbox, with RFC 6531's UTF-8 allowed (the session
/// checks that SMTPUTF8 was requested when it is used).
pub fn is_mailbox(s: &str) -> bool {
    if s.len() > 254 {
        return false;
    }
    let Some(at) = s.rfind('@') else {
        return false;
    };
    let (local, domain) = (&s[..at], &s[at + 1..]);
    is_local_part(local) && is_domain(domain)
}

fn is_local_part(local: &str) -> bool {
    if local.is_empty() || local.len() > 64 {
        return false;
    }
    if let Some(q) = local.strip_prefix('"') {
        let Some(body) = q.strip_suffix('"') else {
            return false;
        };
        let mut escaped = false;
        for c in body.chars() {
            match c {
                _ if escaped => {
                    if !(' '..='~').contains(&c) {
                        return false;
                    }
                    escaped = false
                }
                '\\' => escaped = true,
                '"' => return false,
                c if c.is_control() => return false,
                _ => {}
            }
        }
        return !escaped;
    }
    local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && !c.is_control())
}

/// RFC 5321 §4.1.2 Domain or address literal (`[192.0.2.1]`,
/// `[IPv6:::1]`); labels may be UTF-8 (RFC 6531).
pub fn is_domain(domain: &str) -> bool {
    if let Some(lit) = domain.strip_prefix('[') {
        let Some(lit) = lit.strip_suffix(']') else {
            return false;
        };
        return match lit.strip_prefix("IPv6:") {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => lit.parse::<std::net::Ipv4Addr>().is_ok(),
        };
    }
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| {
                    c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && !c.is_control())
                })
        })
}

/// The domain of an address, lowercased and without a trailing dot: the
/// unit of routing and of delivery limits. An address without `@` is taken
/// to be a domain.
pub fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or(address)
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// VERP return paths: the envelope sender of every delivery carries a tag
/// (the message id: `bounce-msg_8f3a2b1c9d4e7f0a@bounces.example`), so an
/// asynchronous bounce arriving later names the message it is about.
pub mod verp {
    const PREFIX: &str = "bounce-";

    /// The return path carrying `tag`.
    pub fn encode(tag: &str, bounce_domain: &str) -> String {
        format!("{PREFIX}{tag}@{bounce_domain}")
    }

    /// The tag of a VERP address of `bounce_domain`, if it is one; the
    /// caller checks that the tag has the shape it expects.
    pub fn decode<'a>(address: &'a str, bounce_domain: &str) -> Option<&'a str> {
        let (local, domain) = address.rsplit_once('@')?;
        if !domain.eq_ignore_ascii_case(bounce_domain) {
            return None;
        }
        local.strip_prefix(PREFIX).filter(|t| !t.is_empty())
    }

    /// The tag and the domain of any VERP address (the prefix in any
    /// case: some servers change the case of the address they return to).
    pub fn split(address: &str) -> Option<(&str, &str)> {
        let (local, domain) = address.rsplit_once('@')?;
        let tag = local
            .get(..PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(PREFIX))
            .map(|_| &local[PREFIX.len()..])?;
        (!tag.is_empty() && !domain.is_empty()).then_some((tag, domain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_literals_and_utf8() {
        assert!(is_mailbox("x@[127.0.0.1]"));
        assert!(is_mailbox("x@[IPv6:::1]"));
        assert!(!is_mailbox("x@[300.0.0.1]"));
        assert!(is_mailbox("josé@exämple.com"));
        assert!(!is_mailbox(&format!("{}@b.c", "a".repeat(65))));
    }

    #[test]
    fn domains_are_lowercased() {
        assert_eq!(domain_of("User@Example.COM"), "example.com");
        assert_eq!(domain_of("x@[127.0.0.1]"), "[127.0.0.1]");
        assert_eq!(domain_of("a@b.example."), "b.example");
    }

    #[test]
    fn verp_round_trip() {
        let a = verp::encode("msg_8f3a2b1c9d4e7f0a", "bounces.example");
        assert_eq!(a, "bounce-msg_8f3a2b1c9d4e7f0a@bounces.example");
        assert_eq!(
            verp::decode(&a, "BOUNCES.example"),
            Some("msg_8f3a2b1c9d4e7f0a")
        );
        assert_eq!(verp::decode(&a, "other.example"), None);
        assert_eq!(
            verp::decode("bounce-@bounces.example", "bounces.example"),
            None
        );
        assert_eq!(
            verp::decode("someone@bounces.example", "bounces.example"),
            None
        );
        assert_eq!(
            verp::split("BOUNCE-Msg_1-ab@Rw-Bounces.Example"),
            Some(("Msg_1-ab", "Rw-Bounces.Example"))
        );
        for not_verp in [
            "bounce-@x.example",
            "bounce-a@",
            "bounce-a",
            "fbl@x.example",
            "é@x",
        ] {
            assert_eq!(verp::split(not_verp), None, "{not_verp}");
        }
    }
}
