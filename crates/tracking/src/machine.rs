//! Whether a machine, not a person, fetched a pixel or followed a link.
//! Such hits are recorded and delivered all the same, marked `machine:
//! true`, because integrators differ on what to count: dropping them would
//! hide what happened.
//!
//! The signals, all from the request itself or the message's delivery:
//! - image proxies of mail providers, which fetch images for their users
//!   (Gmail's `GoogleImageProxy`, Yahoo's `YahooMailProxy`) or ahead of
//!   them (Apple Mail Privacy Protection, whose proxy sends a bare
//!   `Mozilla/5.0`);
//! - security scanners and link previewers, named in their user agent;
//! - no user agent at all;
//! - a click within [`SCANNER_WINDOW_MS`] of delivery: a filter that
//!   follows every link of a message as it arrives, before anyone could
//!   have read it.

/// Clicks this soon after delivery are a scanner's.
pub const SCANNER_WINDOW_MS: i64 = 10_000;

/// User-agent fragments (lowercase) of proxies, scanners and previewers.
const MACHINE_AGENTS: &[&str] = &[
    "googleimageproxy",
    "yahoomailproxy",
    "bot",
    "crawler",
    "spider",
    "preview",
    "scanner",
    "barracuda",
    "mimecast",
    "proofpoint",
    "symantec",
    "trendmicro",
    "zscaler",
    "forcepoint",
    "python-requests",
    "curl/",
    "wget/",
    "go-http-client",
    "headlesschrome",
];

fn machine_agent(user_agent: &str) -> bool {
    let ua = user_agent.trim();
    if ua.is_empty() || ua == "Mozilla/5.0" {
        return true;
    }
    let lower = ua.to_ascii_lowercase();
    MACHINE_AGENTS.iter().any(|m| lower.contains(m))
}

/// Whether a pixel fetch looks like a machine's.
pub fn machine_open(user_agent: &str) -> bool {
    machine_agent(user_agent)
}

/// Whether a click looks like a machine's; `since_delivery_ms` is how long
/// after the message's delivery it came, when known.
pub fn machine_click(user_agent: &str, since_delivery_ms: Option<i64>) -> bool {
    machine_agent(user_agent) || since_delivery_ms.is_some_and(|ms| ms < SCANNER_WINDOW_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

    #[test]
    fn people_and_machines() {
        assert!(!machine_open(FIREFOX));
        assert!(machine_open(
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
        ));
        assert!(machine_open("Mozilla/5.0"));
        assert!(machine_open(""));
        assert!(machine_open("Barracuda Sentinel (EE)"));
        assert!(!machine_click(FIREFOX, Some(3_600_000)));
        assert!(!machine_click(FIREFOX, None));
        assert!(machine_click(FIREFOX, Some(2_000)));
        assert!(machine_click("Mimecast URL protect", Some(3_600_000)));
    }
}
