//! Bounce classification: what a remote server's reply (or a local failure)
//! means for a message, and why.
//!
//! [`classify`] turns one SMTP reply into a [`Verdict`]: the message was
//! [`Delivered`](Verdict::Delivered), must be retried
//! ([`Deferred`](Verdict::Deferred)) or has failed for good
//! ([`Bounced`](Verdict::Bounced)). Deferrals and bounces carry a
//! [`BounceType`] that says *why*, so that users can act on it: a dead
//! address is suppressed forever, a blocklisted IP is a problem of the sender.
//!
//! # The verdict comes from the basic code only
//!
//! - `2xx`: delivered.
//! - `4xx`: deferred, always. A 4xx reply is temporary by definition
//!   (RFC 5321 §4.2.1), even when it says "mailbox full" (Gmail's
//!   `452 4.2.2`) or "permanently deferred" (Yahoo's `421 4.7.0 [TS03]`);
//!   the queue lifetime ends hopeless retries, with [`BounceType::Expired`].
//! - `5xx`: bounced, always. Some providers send 5xx for conditions that
//!   clear up (Gmail's `550 5.7.28` rate block, Zoho's `550 5.4.6` "try after
//!   sometime"), but RFC 5321 §4.2.1 tells clients not to repeat a request
//!   refused with 5xx, and providers read repeated attempts after a
//!   permanent refusal as a bad sign; so the rule is kept strict. The type
//!   ([`BounceType::RateLimited`] there) tells the user it is not the
//!   address's fault.
//! - anything else (`1xx`, `3xx` as a final reply, `6xx`..`9xx`): the server
//!   is broken; deferred as [`BounceType::ProtocolError`], since a retry is
//!   harmless and may reach a better-behaved MX.
//!
//! Only `Bounced(InvalidRecipient)` (and `Bounced(InvalidDomain)`) should
//! lead to suppressing an address. `Deferred(InvalidRecipient)` exists (a
//! Postfix with `soft_bounce` says `450 4.1.1 User unknown`) and means "looks
//! dead, but the server asked us to try again".
//!
//! # The type comes from three sources, most specific first
//!
//! 1. **The text**, matched against `RULES`, the data table in this file:
//!    first matching rule wins. The big providers' enhanced codes lie: Gmail
//!    uses `5.7.1` for spam, low reputation, missing PTR records and header
//!    defects alike; Microsoft uses `5.1.10` (null MX in RFC 7505) for "no
//!    such recipient" and `5.4.1` ("no answer from host" in RFC 3463) for
//!    "recipient not in the tenant"; Yandex says `5.7.1 No such user!`. Only
//!    the text tells these apart.
//! 2. **The enhanced status code** (RFC 3463, RFC 5248, RFC 7372, RFC 7505),
//!    given separately or, for qmail and IronPort, found in the text as
//!    `#5.1.1`. See `from_enhanced` for the mapping.
//! 3. **The basic code**: `552` is mailbox full (RFC 5321: "exceeded storage
//!    allocation"), `521`/`556` a domain that does not accept mail
//!    (RFC 7504), `500`-`504` protocol errors, `4xx` temporary failures. The
//!    overloaded `550`, `551`, `553` and `554` give [`BounceType::Other`]:
//!    they are used for unknown users, blocks and policy alike, and guessing
//!    "invalid recipient" would suppress good addresses.
//!
//! # Why the table is ordered as it is
//!
//! A reply often carries words of several types ("550 5.1.1 User unknown;
//! client host blocked using zen.spamhaus.org"). The rule that matters most
//! for the *sender* wins, and the one invariant that must never break is:
//! **a block is never an invalid recipient** (users suppress invalid
//! recipients forever; a block is not the address's fault). So the groups
//! run:
//!
//! 1. provider-specific rules (their codes and phrases are unambiguous);
//! 2. third-party blocklists (Spamhaus, Spamcop, "blocked using", "listed");
//! 3. greylisting (a 4xx that says greylist is greylisting, whatever else);
//! 4. authentication (SPF, DKIM, DMARC, PTR): Gmail's DMARC rejection says
//!    "blocked" and "policy" too, and the fix is in the sender's DNS;
//! 5. rate limiting: "rate limited due to IP reputation" means "slow down";
//! 6. reputation, then message format, spam and content (what the sender
//!    sent, not where it went);
//! 7. mailbox full and message size (before "recipient rejected", which
//!    Postfix prefixes to every recipient-stage reply, "Over quota" too);
//! 8. relaying and local policy ("blocked", "denied", "policy");
//! 9. invalid domain and invalid recipient, each guarded by
//!    `NOT_THE_ADDRESS`: they never match when the text has a word of blocks,
//!    spam, policy or the sender's own address, even if a new provider phrase
//!    slips past the groups above;
//! 10. routing, then transient and protocol trouble.
//!
//! The enhanced-code and basic-code steps apply the same guard: `5.1.1` with
//! "blocked" in the text is a [`BounceType::PolicyBlock`].
//!
//! [`classify_with_reason`] also returns which rule (its note) or which step
//! decided; the delivery engine records it in each attempt's log as
//! `classified_by`, so an operator can see why a reply got its type.

use std::fmt;
use std::str::FromStr;

pub use rackwave_core::event::BounceType;
use rackwave_core::event::UnknownBounceType;
use rackwave_smtp_proto::Enhanced;

/// What happened to a message for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted by the remote server (`2xx`).
    Delivered,
    /// Not delivered this time; retry later (`4xx`, local transient failures).
    Deferred(BounceType),
    /// Failed for good; send a bounce / record a hard failure (`5xx`).
    Bounced(BounceType),
}

impl Verdict {
    /// The type of a deferral or bounce.
    pub fn bounce_type(self) -> Option<BounceType> {
        match self {
            Verdict::Delivered => None,
            Verdict::Deferred(t) | Verdict::Bounced(t) => Some(t),
        }
    }

    /// Whether the message is finished with (delivered or bounced).
    pub fn is_final(self) -> bool {
        !matches!(self, Verdict::Deferred(_))
    }
}

/// `delivered`, `deferred:<type>` or `bounced:<type>`, the corpus' label form.
impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Delivered => f.write_str("delivered"),
            Verdict::Deferred(t) => write!(f, "deferred:{t}"),
            Verdict::Bounced(t) => write!(f, "bounced:{t}"),
        }
    }
}

impl FromStr for Verdict {
    type Err = UnknownBounceType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "delivered" {
            return Ok(Verdict::Delivered);
        }
        match s.split_once(':') {
            Some(("deferred", t)) => Ok(Verdict::Deferred(t.parse()?)),
            Some(("bounced", t)) => Ok(Verdict::Bounced(t.parse()?)),
            _ => Err(UnknownBounceType(s.to_string())),
        }
    }
}

// ---------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------

/// Classifies one SMTP reply.
///
/// `code`: the 3-digit reply code; `enhanced`: the RFC 3463 code if the
/// reply had one (e.g. `"5.1.1"`); `text`: the reply text without code and
/// enhanced code (all lines joined with a space). See the module
/// documentation for the order of the evidence.
pub fn classify(code: u16, enhanced: Option<&str>, text: &str) -> Verdict {
    classify_with_reason(code, enhanced, text).0
}

/// Whether a remote temporary failure says the receiver is throttling us
/// (rate limits, reputation, or a `421 4.7.x` that drops the connection,
/// e.g. Gmail's `421 4.7.0 Try again later, closing connection`): the
/// delivery engine then pauses the destination instead of trying its other
/// messages at full rate.
pub fn is_throttling(code: u16, enhanced: Option<&str>, verdict: Verdict) -> bool {
    // About the sender, not one mailbox: a 421 (the server drops the
    // connection) or a security/policy status (4.7.x). Gmail's "receiving
    // mail at a rate" for one busy mailbox (4.2.1) or "too many recipients"
    // (4.5.3) must not pause a whole domain for every sender.
    let about_the_sender = code == 421 || enhanced.is_some_and(|e| e.starts_with("4.7."));
    match verdict {
        Verdict::Deferred(BounceType::RateLimited | BounceType::ReputationBlock) => {
            about_the_sender
        }
        Verdict::Deferred(_) => code == 421 && enhanced.is_some_and(|e| e.starts_with("4.7.")),
        _ => false,
    }
}

/// [`classify`], plus which evidence decided the type, for the attempt log
/// and for debugging the table: the matching rule's note, `"enhanced status
/// code"`, `"basic reply code"` or `"reply class"`.
pub fn classify_with_reason(
    code: u16,
    enhanced: Option<&str>,
    text: &str,
) -> (Verdict, &'static str) {
    let class = code / 100;
    if class == 2 {
        return (Verdict::Delivered, "reply class");
    }
    if class != 4 && class != 5 {
        return (Verdict::Deferred(BounceType::ProtocolError), "reply class");
    }
    let lower = text.to_ascii_lowercase();
    let enh = enhanced
        .and_then(Enhanced::parse)
        .or_else(|| Enhanced::find_in_text(&lower));
    let ctx = Ctx {
        permanent: class == 5,
        text: &lower,
        enh,
    };

    let (kind, reason) = if let Some(rule) = RULES.iter().find(|r| r.matches(&ctx)) {
        (rule.kind, rule.note)
    } else if let Some(kind) = enh.and_then(|e| from_enhanced(e, ctx.permanent)) {
        (guard(kind, &ctx), "enhanced status code")
    } else {
        (guard(from_basic(code), &ctx), "basic reply code")
    };

    let verdict = if ctx.permanent {
        // A permanent reply is not a "temporary failure"; say we don't know.
        Verdict::Bounced(if kind == BounceType::TemporaryFailure {
            BounceType::Other
        } else {
            kind
        })
    } else {
        // A remote 4.4.7 is the remote's queue; ours has not expired.
        Verdict::Deferred(if kind == BounceType::Expired {
            BounceType::TemporaryFailure
        } else {
            kind
        })
    };
    (verdict, reason)
}

/// Failures found on our side, before or instead of a remote reply. Each
/// is classified by its own rule ([`LocalFailure::classify`]), never by the
/// remote-reply table: a locally generated `5.1.2` is a missing domain, not
/// some provider's unknown user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalFailure {
    /// The recipient domain does not exist (NXDOMAIN), or has neither MX
    /// nor address records.
    NoSuchDomain,
    /// The domain publishes a null MX (RFC 7505).
    NullMx,
    /// Every MX host name is authoritatively without an address.
    NoAddress,
    /// DNS lookup failed transiently (SERVFAIL, timeout).
    DnsTemporary,
    /// No MX host could be connected to.
    Unreachable,
    /// The remote stopped answering mid-dialogue.
    Timeout,
    /// The connection broke mid-dialogue.
    ConnectionLost,
    /// TLS required by policy but the handshake failed or was not offered.
    TlsFailed,
    /// The remote answered with something that is not an SMTP reply.
    MalformedReply,
    /// The message is larger than the SIZE the remote announced.
    TooLargeForRemote,
    /// The message needs SMTPUTF8 and the remote does not offer it.
    NoSmtputf8,
    /// The message data is missing from the spool or fails its checksum.
    DataLost,
    /// Reading the message data failed (it may work next time).
    SpoolRead,
    /// The queue lifetime ran out.
    Expired,
}

impl LocalFailure {
    /// The verdict, and the rule that gave it (recorded as
    /// `classified_by`).
    pub fn classify(self) -> (Verdict, &'static str) {
        use BounceType::*;
        use LocalFailure as L;
        match self {
            L::NoSuchDomain => (
                Verdict::Bounced(InvalidDomain),
                "local: the domain does not exist or has no mail server",
            ),
            L::NullMx => (
                Verdict::Bounced(InvalidDomain),
                "local: the domain publishes a null MX (RFC 7505)",
            ),
            L::NoAddress => (
                Verdict::Bounced(RoutingError),
                "local: no MX host of the domain has an address",
            ),
            L::DnsTemporary => (Verdict::Deferred(RoutingError), "local: DNS lookup failed"),
            L::Unreachable => (
                Verdict::Deferred(TemporaryFailure),
                "local: no MX host could be reached",
            ),
            L::Timeout => (
                Verdict::Deferred(TemporaryFailure),
                "local: the remote server timed out",
            ),
            L::ConnectionLost => (
                Verdict::Deferred(TemporaryFailure),
                "local: the connection was lost",
            ),
            L::TlsFailed => (Verdict::Deferred(ProtocolError), "local: TLS failed"),
            L::MalformedReply => (
                Verdict::Deferred(ProtocolError),
                "local: the remote reply was malformed",
            ),
            L::TooLargeForRemote => (
                Verdict::Bounced(MessageTooLarge),
                "local: larger than the remote SIZE limit",
            ),
            L::NoSmtputf8 => (
                Verdict::Bounced(ProtocolError),
                "local: the remote server lacks SMTPUTF8",
            ),
            L::DataLost => (
                Verdict::Bounced(Other),
                "local: message data lost in the spool",
            ),
            L::SpoolRead => (
                Verdict::Deferred(TemporaryFailure),
                "local: reading the spool failed",
            ),
            L::Expired => (Verdict::Bounced(Expired), "local: queue lifetime exceeded"),
        }
    }
}

/// What the rules look at.
struct Ctx<'a> {
    permanent: bool,
    /// Lower-cased (ASCII) reply text.
    text: &'a str,
    enh: Option<Enhanced>,
}

/// Invalid-recipient and invalid-domain results are only trusted when the
/// text has no word that points at the sender, the message or a block.
fn guard(kind: BounceType, ctx: &Ctx<'_>) -> BounceType {
    match kind {
        BounceType::InvalidRecipient | BounceType::InvalidDomain
            if NOT_THE_ADDRESS.iter().any(|n| n.matches(ctx)) =>
        {
            BounceType::PolicyBlock
        }
        k => k,
    }
}

/// Type from an RFC 3463 enhanced code (with RFC 5248, 7372 and 7505
/// additions). `None` when the code carries no information (`X.0.0`,
/// `X.1.0`, ...), so the basic code decides.
fn from_enhanced(e: Enhanced, permanent: bool) -> Option<BounceType> {
    use BounceType::*;
    let transient = |perm: BounceType| if permanent { perm } else { TemporaryFailure };
    Some(match (e.subject, e.detail) {
        // X.1.x addressing. X.1.0 can be sender or recipient: no information.
        (1, 1) | (1, 3) | (1, 4) | (1, 6) => InvalidRecipient, // bad / ambiguous / moved mailbox
        (1, 2) | (1, 10) => InvalidDomain, // bad destination system; null MX (RFC 7505)
        (1, 7) | (1, 8) => PolicyBlock, // bad *sender* address or domain: not the recipient's fault
        (1, _) => return None,
        // X.2.x mailbox status.
        (2, 1) => InvalidRecipient, // mailbox disabled
        (2, 2) => MailboxFull,
        (2, 3) => MessageTooLarge, // message length exceeds administrative limit
        (2, _) => return None,
        // X.3.x mail system status.
        (3, 3) => ProtocolError,   // system not capable of selected features
        (3, 4) => MessageTooLarge, // message too big for system
        (3, _) => transient(Other),
        // X.4.x network and routing.
        (4, 7) => Expired, // delivery time expired (turned into TemporaryFailure for 4xx)
        (4, 1) | (4, 2) | (4, 5) => transient(RoutingError), // no answer, bad connection, congestion
        (4, _) => RoutingError, // X.4.0 other, X.4.3 directory (DNS), X.4.4 unable to route, X.4.6 loop
        // X.5.x protocol.
        (5, 3) => RateLimited, // too many recipients: send the rest later
        (5, _) => ProtocolError,
        // X.6.x content / media.
        (6, _) => ContentRejected,
        // X.7.x security and policy. Spam and reputation in a 5.7.1 text were
        // caught by the table already.
        (7, 8) | (7, 9) | (7, 11) | (7, 12) | (7, 13) | (7, 14) => AuthenticationFailure, // SMTP AUTH (RFC 4954, 5248)
        (7, 20..=27) => AuthenticationFailure, // RFC 7372 DKIM/SPF/rDNS/multiple; 7.27 sender null MX
        (7, 29) => AuthenticationFailure,      // ARC (RFC 8617)
        (7, 4) | (7, 10) | (7, 30) => ProtocolError, // security features / encryption / REQUIRETLS
        (7, 5) | (7, 6) | (7, 7) => ContentRejected, // cryptographic failure, integrity failure
        (7, 16) => MessageTooLarge,            // too big for the specified priority
        (7, 17) | (7, 18) => InvalidRecipient, // mailbox / domain owner changed (RFC 7293)
        (7, 19) => transient(Other),           // RRVS test cannot be completed
        (7, _) => PolicyBlock,
        _ => return None,
    })
}

/// Type from the basic reply code alone.
fn from_basic(code: u16) -> BounceType {
    use BounceType::*;
    match code {
        455 => ProtocolError, // server unable to accommodate parameters
        400..=499 => TemporaryFailure,
        500..=504 | 555 => ProtocolError,
        521 | 556 => InvalidDomain, // RFC 7504: host / domain does not accept mail
        530 => PolicyBlock,         // authentication / TLS required by the receiver
        534 | 535 => AuthenticationFailure,
        538 => ProtocolError,
        552 => MailboxFull, // RFC 5321: exceeded storage allocation
        // 550, 551, 553, 554: used for unknown users, blocks and policy alike.
        _ => Other,
    }
}

// ---------------------------------------------------------------------------
// The rule table
// ---------------------------------------------------------------------------

/// One way of recognizing text. All needles are lower-case ASCII; the text
/// is lower-cased before matching.
#[derive(Debug, Clone, Copy)]
enum Needle {
    /// Substring anywhere.
    S(&'static str),
    /// Whole word(s): not preceded or followed by a letter or digit.
    W(&'static str),
    /// Starts at a word boundary ("throttl" matches "throttled").
    P(&'static str),
    /// The enhanced code is `X.subject.detail`.
    E(u16, u16),
    /// The enhanced code is `X.subject.lo` ..= `X.subject.hi`.
    ER(u16, u16, u16),
}

use Needle::{E, ER, P, S, W};

impl Needle {
    fn matches(&self, ctx: &Ctx<'_>) -> bool {
        match *self {
            Needle::S(s) => ctx.text.contains(s),
            Needle::W(s) => find_bounded(ctx.text, s, true),
            Needle::P(s) => find_bounded(ctx.text, s, false),
            Needle::E(subject, detail) => ctx
                .enh
                .is_some_and(|e| e.subject == subject && e.detail == detail),
            Needle::ER(subject, lo, hi) => ctx
                .enh
                .is_some_and(|e| e.subject == subject && (lo..=hi).contains(&e.detail)),
        }
    }

    #[cfg(test)]
    fn text(&self) -> Option<&'static str> {
        match *self {
            Needle::S(s) | Needle::W(s) | Needle::P(s) => Some(s),
            Needle::E(..) | Needle::ER(..) => None,
        }
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// `needle` occurs in `hay` at a word start (and, if `word_end`, ending at a
/// word end). Needles are ASCII, so every match position is a char boundary.
fn find_bounded(hay: &str, needle: &str, word_end: bool) -> bool {
    let bytes = hay.as_bytes();
    let mut from = 0;
    while let Some(pos) = hay[from..].find(needle) {
        let start = from + pos;
        let end = start + needle.len();
        let starts_word = start == 0 || !is_word_byte(bytes[start - 1]);
        let ends_word = !word_end || end == bytes.len() || !is_word_byte(bytes[end]);
        if starts_word && ends_word {
            return true;
        }
        from = start + 1;
    }
    false
}

/// Which replies a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applies {
    Any,
    /// Only `4xx` replies.
    Temp,
    /// Only `5xx` replies.
    Perm,
}

/// A text rule: matches when any needle of `any` matches, every needle of
/// `also` matches and no needle of `unless` does.
#[derive(Debug, Clone, Copy)]
struct Rule {
    applies: Applies,
    any: &'static [Needle],
    also: &'static [Needle],
    unless: &'static [Needle],
    kind: BounceType,
    /// Where the phrases come from and why the rule is where it is.
    note: &'static str,
}

const fn rule(
    applies: Applies,
    kind: BounceType,
    any: &'static [Needle],
    note: &'static str,
) -> Rule {
    Rule {
        applies,
        any,
        also: &[],
        unless: &[],
        kind,
        note,
    }
}

impl Rule {
    const fn also(self, also: &'static [Needle]) -> Rule {
        Rule { also, ..self }
    }

    const fn unless(self, unless: &'static [Needle]) -> Rule {
        Rule { unless, ..self }
    }

    fn matches(&self, ctx: &Ctx<'_>) -> bool {
        let applies = match self.applies {
            Applies::Any => true,
            Applies::Temp => !ctx.permanent,
            Applies::Perm => ctx.permanent,
        };
        applies
            && self.any.iter().any(|n| n.matches(ctx))
            && self.also.iter().all(|n| n.matches(ctx))
            && !self.unless.iter().any(|n| n.matches(ctx))
    }
}

/// Words that mean the reply is about the sender, the message, the
/// connection or a block, not about the address. Invalid-recipient and
/// invalid-domain rules (and the same results from the enhanced or basic
/// code) never apply when one of these is in the text.
const NOT_THE_ADDRESS: &[Needle] = &[
    S("spam"),
    W("junk"),
    W("bulk"),
    P("block"), // blocked, blocklist, block list
    S("blacklist"),
    S("black list"),
    W("listed"),
    W("rbl"),
    S("dnsbl"),
    P("reputation"),
    P("polic"), // policy, policies
    S("access denied"),
    P("prohibit"),
    P("refus"),
    S("sender address"),
    S("domain of sender"),
    S("sender verify"),
    S("sender domain"),
    W("rate"),
    P("throttl"),
    S("too many"),
    P("greylist"),
    P("graylist"),
    S("dmarc"),
    W("spf"),
    S("dkim"),
];

use Applies::{Any, Perm, Temp};
use BounceType as T;

/// The text rules, in order; the first match wins. See the module
/// documentation for why the groups are in this order.
#[rustfmt::skip]
const RULES: &[Rule] = &[
    // ---- 1. Provider-specific: their codes and phrases are unambiguous. ----
    rule(Any, T::InvalidRecipient, &[S("recipient address rejected: access denied")], "Microsoft 365 5.4.1: directory-based edge blocking, the recipient is not in the tenant")
        .also(&[E(4, 1)]),
    rule(Any, T::InvalidRecipient, &[S("recipientnotfound"), S("recipnotfound"), S("not found by smtp address lookup")], "Microsoft/Exchange RESOLVER.ADR.RecipientNotFound, sent as 5.1.10 (which RFC 7505 means null MX) or 5.1.1"),
    rule(Perm, T::ReputationBlock, &[ER(7, 606, 649)], "Microsoft 5.7.606-649: banned sending IP"),
    rule(Any, T::ReputationBlock, &[S("banned sending ip"), S("banned sender"), S("traffic not accepted from this ip")], "Microsoft 5.7.511 / 5.7.606 / 5.7.708: IP or sender banned"),
    rule(Temp, T::RateLimited, &[ER(7, 500, 699)], "Microsoft 4.7.500-699: throttling ('Server busy. Please try again later from [ip]', 4.7.650 'rate limited due to IP reputation')"),
    rule(Any, T::RateLimited, &[S("rp-001"), S("rp-002"), S("rp-003")], "Hotmail/Outlook.com legacy RP-00x: per-hour / per-day limits"),
    rule(Any, T::RateLimited, &[S("[tss04]")], "Yahoo/AOL 421 4.7.0 [TSS04]: deferred for unexpected volume or user complaints; slow down"),
    rule(Any, T::ReputationBlock, &[S("[tss09]"), S("[ts03]"), S("[tss11]"), S("[bl21]"), S("[bl22]"), S("[bl23]")], "Yahoo/AOL: permanently deferred IP (TS03/TSS09), excessive unknown recipients (TSS11), Spamhaus-listed (BL2x)"),
    rule(Any, T::RateLimited, &[S("dyn:t1")], "AOL legacy DYN:T1: dynamic IP throttled"),
    rule(Any, T::ReputationBlock, &[S("rly:b")], "AOL legacy RLY:B1/B2/B3: member complaints / reputation"),
    rule(Any, T::ReputationBlock, &[S("ipcheck.proofpoint"), S("proofpoint.com/dnsbl")], "Proofpoint 'Blocked - see ipcheck.proofpoint.com': Proofpoint's IP reputation"),
    rule(Any, T::RateLimited, &[E(7, 28)], "Gmail 4.7.28 / 5.7.28: unusual rate of unsolicited mail from the IP"),
    rule(Any, T::AuthenticationFailure, &[E(7, 26)], "Gmail 5.7.26: unauthenticated (DMARC, or neither SPF nor DKIM); the text also says 'blocked' and 'policy'"),
    // ---- 2. Third-party blocklists. ----
    rule(Any, T::ReputationBlock, &[S("spamhaus"), S("spamcop"), S("barracudacentral"), S("barracuda reputation"), S("sorbs"), S("blocked using"), S("dnsbl"), W("rbl"), S("uribl"), S("surbl")], "DNS blocklists: Postfix 'blocked using zen.spamhaus.org', Microsoft 'blocked using Spamhaus', Barracuda, SORBS"),
    rule(Any, T::ReputationBlock, &[S("blacklist"), S("black list"), S("black-list"), S("blocklist"), S("block list"), S("block-list")], "'is on our block list' (Outlook.com S3150), 'black listed' (GMX), blacklisted"),
    rule(Any, T::ReputationBlock, &[W("listed")], "'listed at', 'is listed by' (RBL rejections)")
        .unless(&[S("not listed")]),
    // ---- 3. Greylisting. ----
    rule(Temp, T::TemporaryFailure, &[P("greylist"), P("graylist"), P("grey-list"), P("gray-list")], "Postgrey 'Greylisted', Exim/rspamd greylisting; 4xx only"),
    // ---- 4. Sender authentication. ----
    rule(Any, T::AuthenticationFailure, &[S("dmarc"), W("spf"), S("dkim"), S("sender policy framework"), S("domainkeys"), S("arc validation")], "DMARC / SPF / DKIM / ARC failures (Gmail 5.7.26, Microsoft 5.7.509, Yahoo 5.7.9, policyd-spf)"),
    rule(Any, T::AuthenticationFailure, &[S("ptr record"), S("reverse dns"), W("rdns"), S("cannot find your hostname"), S("cannot find your reverse hostname")], "Reverse DNS (RFC 7372 X.7.25): Gmail 5.7.25 and IPv6 guidelines, Comcast, Postfix reject_unknown_client_hostname"),
    rule(Any, T::AuthenticationFailure, &[S("authentication unsuccessful"), S("authentication failed"), S("authentication credentials invalid"), S("not authenticated to send")], "SMTP AUTH at a smarthost (Microsoft 535 5.7.3, 5.7.57)"),
    // ---- 5. Rate limiting. ----
    rule(Any, T::RateLimited, &[W("rate"), P("ratelimit"), P("rate-limit"), P("throttl"), S("sending limit"), S("sending quota"), S("per hour"), S("unexpected volume"), S("unusual sending activity"), S("slow down"), S("connection limit"), S("concurrent connections"), S("concurrent server connections"), S("concurrent smtp connections")], "'rate limited' (Gmail, Microsoft), 'Ratelimit exceeded' (Mail.ru), 'receiving mail at a rate', sending limits (Gmail 5.4.5, Zoho 5.4.6)"),
    rule(Any, T::RateLimited, &[S("too many")], "'too many messages / connections / recipients / sessions / invalid recipients' (IronPort DHAP, Gmail 4.5.3)")
        .unless(&[S("too many hops")]),
    // ---- 6. Reputation, format, spam, content. ----
    rule(Any, T::ReputationBlock, &[P("reputation"), P("complaint"), S("senderscore"), S("sender score"), S("permanently deferred")], "Gmail 'very low reputation', IronPort 'poor reputation', Mimecast 'IP Reputation'"),
    rule(Any, T::ContentRejected, &[S("rfc 5322"), S("rfc5322"), S("rfc 2822"), S("rfc2822"), S("from: header"), S("message-id header"), S("messageid header"), S("duplicate header"), S("malformed"), S("invalid mime")], "Header and MIME defects; Gmail sends these as 5.7.1 with 'to reduce the amount of spam', so before spam"),
    rule(Any, T::SpamBlock, &[S("spam"), W("junk"), W("bulk"), P("unsolicited"), P("phish")], "Content judged spam: Gmail 'likely unsolicited mail', Yandex 'suspicion of SPAM', Mail.ru, SpamAssassin"),
    rule(Any, T::ContentRejected, &[P("virus"), P("malware"), P("infected"), S("security issue"), S("content rejected"), S("content restriction"), S("attachment type"), S("prohibited attachment"), S("banned attachment"), S("executable")], "Virus / malware / attachment / content filter (Gmail 5.7.0 'potential security issue', Postfix header_checks, web.de)"),
    // ---- 7. Mailbox full and message size. ----
    rule(Any, T::MailboxFull, &[S("over quota"), S("overquota"), S("quota exceeded"), S("exceeds quota"), S("quotaexceeded"), S("allowed quota"), S("mailbox quota"), S("disk quota"), S("exceeded storage"), S("mailbox full"), S("mailbox is full"), S("inbox is full"), S("mailbox size"), S("insufficient storage"), S("out of storage"), S("storage space")], "Over quota everywhere; 'Mailbox size limit exceeded' (Yandex) before 'size limit'; 'insufficient system storage' is the server's disk, not this"),
    rule(Any, T::MessageTooLarge, &[S("too large"), S("too big"), S("size limit"), S("message size"), S("maximum size"), S("databytes"), S("message length exceeds"), S("too much mail data"), S("size exceeds")], "Gmail 5.2.3 'message size limits', Postfix 'Message size exceeds fixed limit', qmail databytes"),
    // ---- 8. Relaying and local policy. ----
    rule(Any, T::PolicyBlock, &[S("relay access denied"), S("relaying denied"), S("relay denied"), S("relay not permitted"), S("relaying not permitted"), S("not permitted to relay"), S("unable to relay"), S("relaying disallowed"), S("relay prohibited"), S("not allowed to relay"), S("relaying not allowed"), S("we do not relay"), S("rcpthosts")], "Relay refusals: Postfix, Sendmail, Exim, qmail rcpthosts, Google Workspace 'Mail relay denied'"),
    rule(Any, T::PolicyBlock, &[P("block"), P("polic"), P("prohibit"), S("denied"), P("refus"), S("not authorized"), S("not allowed"), S("dynamically-assigned"), S("dynamic ip"), S("sender verify failed"), P("spoof"), S("not accepted from")], "Local policy: 'blocked' (Mimecast, Barracuda, Zoho), 'policy' (Yahoo 5.7.9, iCloud CS01, web.de), access rules, dynamic IP ranges (Outlook.com S3140)"),
    // ---- 9. Invalid domain and invalid recipient, guarded. ----
    rule(Any, T::InvalidDomain, &[S("null mx"), S("nullmx"), S("does not accept mail"), S("domain not found"), S("host not found"), S("host unknown"), S("no such domain"), S("domain does not exist"), S("unknown domain")], "Null MX (RFC 7505, Postfix 'nullMX'), Postfix 'Domain not found', Sendmail 'Host unknown'")
        .unless(NOT_THE_ADDRESS),
    rule(Any, T::InvalidRecipient, &[S("user unknown"), S("unknown user"), S("unknown recipient"), S("recipient unknown"), S("addressee unknown"), S("no such user"), S("nosuchuser"), S("no such recipient"), S("no such mailbox"), S("no mailbox"), S("mailbox unavailable"), S("mailbox not found"), S("mailbox does not exist"), S("recipient rejected"), S("recipient not found"), S("user not found"), S("does not exist"), S("address rejected"), S("invalid recipient"), S("invalid mailbox"), S("not our customer"), S("account is disabled"), S("mailbox is disabled"), S("mailbox disabled"), S("has been disabled"), S("user doesn't have"), S("unknown or illegal alias")], "Unknown users: Gmail 'does not exist', Outlook.com 'mailbox unavailable', Postfix 'User unknown', Yandex 'No such user!', Comcast 'Not our Customer'")
        .unless(NOT_THE_ADDRESS),
    // ---- 10. Routing, transient, protocol. ----
    rule(Any, T::RoutingError, &[S("mail loop"), S("routing loop"), S("loop detected"), S("too many hops"), S("hop count"), S("unrouteable"), S("unroutable"), S("no route to host")], "Loops and unroutable addresses (Exim 'Unrouteable address', Exchange 5.4.14)"),
    rule(Temp, T::TemporaryFailure, &[P("temporar"), S("try again later"), S("try later"), S("come back later"), S("please retry"), S("local error"), S("local problem"), S("server busy"), S("service unavailable"), S("timeout"), S("timed out")], "Transient trouble; 4xx only"),
    rule(Any, T::ProtocolError, &[S("starttls"), S("tls required"), S("requires tls"), S("must issue"), S("syntax error"), S("unrecognized command"), S("command unrecognized"), S("bad sequence"), S("not implemented"), S("line too long"), S("bare lf"), S("bare <lf>"), S("helo command rejected")], "SMTP dialogue errors and required TLS"),
];

#[cfg(test)]
mod tests {
    #[test]
    fn throttling_replies_are_told_apart_from_other_deferrals() {
        let throttles = [
            (421, Some("4.7.0"), "Try again later, closing connection."),
            (
                451,
                Some("4.7.650"),
                "The mail server [1.2.3.4] has been temporarily rate limited due to IP reputation.",
            ),
            (
                450,
                Some("4.7.1"),
                "Client host rejected: rate limited, slow down",
            ),
            (
                421,
                Some("4.7.28"),
                "Our system has detected an unusual rate of unsolicited mail",
            ),
            (
                451,
                Some("4.7.500"),
                "Server busy. Please try again later from [1.2.3.4].",
            ),
        ];
        for (code, enhanced, text) in throttles {
            let verdict = classify(code, enhanced, text);
            assert!(
                is_throttling(code, enhanced, verdict),
                "{code} {enhanced:?} {text}: {verdict:?}"
            );
        }
        let others = [
            (
                451,
                Some("4.3.0"),
                "Temporary local problem, try again later",
            ),
            (450, Some("4.2.1"), "Mailbox busy"),
            (421, Some("4.3.2"), "Service shutting down"),
            (450, Some("4.2.1"), "The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered."),
            (452, Some("4.5.3"), "Too many recipients, rate limited"),
            (550, Some("5.7.1"), "rate limited"),
        ];
        for (code, enhanced, text) in others {
            let verdict = classify(code, enhanced, text);
            assert!(
                !is_throttling(code, enhanced, verdict),
                "{code} {enhanced:?} {text}: {verdict:?}"
            );
        }
    }

    use super::*;
    use rackwave_smtp_proto::reply::parse_reply_line;
    use rackwave_smtp_proto::RemoteReply;

    const CORPUS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/bounce-corpus.tsv"
    );

    /// (line number, expected label, raw reply line) for every corpus entry.
    fn corpus() -> Vec<(usize, String, String)> {
        let data = std::fs::read_to_string(CORPUS).unwrap_or_else(|e| panic!("{CORPUS}: {e}"));
        data.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|(i, l)| {
                let (expected, reply) = l
                    .split_once('\t')
                    .unwrap_or_else(|| panic!("line {}: no tab: {l:?}", i + 1));
                (i + 1, expected.to_string(), reply.to_string())
            })
            .collect()
    }

    fn classify_line(line: &str) -> Verdict {
        let (code, enh, text) =
            parse_reply_line(line).unwrap_or_else(|| panic!("unparsable: {line:?}"));
        classify(code, enh.as_deref(), &text)
    }

    #[test]
    fn corpus_is_classified_as_labelled() {
        let entries = corpus();
        assert!(
            entries.len() >= 80,
            "corpus has only {} lines",
            entries.len()
        );
        let mut mismatches = Vec::new();
        for (n, expected, reply) in &entries {
            let want: Verdict = expected
                .parse()
                .unwrap_or_else(|e| panic!("line {n}: bad label {expected:?}: {e}"));
            let got = match parse_reply_line(reply) {
                Some((code, enh, text)) => classify(code, enh.as_deref(), &text),
                None => {
                    mismatches.push(format!(
                        "line {n}: expected {want}, got UNPARSABLE: {reply}"
                    ));
                    continue;
                }
            };
            if got != want {
                mismatches.push(format!("line {n}: expected {want}, got {got}: {reply}"));
            }
        }
        assert!(
            mismatches.is_empty(),
            "{} of {} corpus lines misclassified:\n{}",
            mismatches.len(),
            entries.len(),
            mismatches.join("\n")
        );
    }

    #[test]
    fn four_xx_never_bounces() {
        for (n, _, reply) in corpus() {
            let (code, _, _) = parse_reply_line(&reply).unwrap();
            if (400..500).contains(&code) {
                assert!(
                    matches!(classify_line(&reply), Verdict::Deferred(_)),
                    "line {n}: 4xx bounced: {reply}"
                );
            }
        }
        // Including the ones that sound permanent.
        for text in [
            "The email account that you tried to reach does not exist.",
            "Mailbox full",
            "All messages from 203.0.113.5 will be permanently deferred; Retrying will NOT succeed.",
            "Delivery time expired",
            "",
        ] {
            for (code, enh) in [(450, Some("4.1.1")), (452, Some("4.2.2")), (421, Some("5.7.1")), (451, None), (499, Some("4.4.7"))] {
                let v = classify(code, enh, text);
                assert!(matches!(v, Verdict::Deferred(t) if t != BounceType::Expired), "{code} {enh:?} {text:?}: {v}");
            }
        }
    }

    #[test]
    fn five_xx_always_bounces_and_two_xx_delivers() {
        for code in 500..600 {
            assert!(
                matches!(classify(code, None, "try again later, temporarily"), Verdict::Bounced(t) if t != BounceType::TemporaryFailure)
            );
        }
        assert_eq!(classify(250, Some("2.0.0"), "OK"), Verdict::Delivered);
        assert_eq!(
            classify(251, None, "User not local; will forward"),
            Verdict::Delivered
        );
        assert_eq!(
            classify(354, None, "End data with <CR><LF>.<CR><LF>"),
            Verdict::Deferred(BounceType::ProtocolError)
        );
    }

    #[test]
    fn spam_or_block_is_never_invalid_recipient() {
        let words = ["spam", "block", "blacklist", "listed", "reputation"];
        let mut checked = 0;
        for (n, _, reply) in corpus() {
            let lower = reply.to_ascii_lowercase();
            if words.iter().any(|w| lower.contains(w)) {
                checked += 1;
                let v = classify_line(&reply);
                assert_ne!(
                    v.bounce_type(),
                    Some(BounceType::InvalidRecipient),
                    "line {n}: {reply}"
                );
            }
        }
        assert!(checked >= 20, "only {checked} corpus lines mention blocks");
        // And the same with the classic invalid-recipient codes and phrases.
        for enh in ["5.1.1", "5.2.1", "5.1.0", "5.7.1"] {
            for text in [
                "User unknown; client host blocked",
                "Recipient address rejected: user blocked by spam filter",
                "No such user - sender is listed at bl.example.org",
                "Mailbox unavailable due to poor reputation",
                "Recipient rejected by policy",
            ] {
                let v = classify(550, Some(enh), text);
                assert_ne!(
                    v.bounce_type(),
                    Some(BounceType::InvalidRecipient),
                    "{enh} {text}"
                );
            }
        }
    }

    #[test]
    fn parse_reply_joins_lines() {
        let lines = [
            "550-5.1.1 The email account that you tried to reach does not exist. Please try",
            "550-5.1.1 double-checking the recipient's email address for typos or",
            "550 5.1.1 unnecessary spaces.",
        ];
        let r = RemoteReply::from_lines(lines).unwrap();
        assert_eq!((r.code, r.enhanced.as_deref()), (550, Some("5.1.1")));
        assert!(r.text.contains("Please try double-checking"), "{}", r.text);
        assert_eq!(
            classify(r.code, r.enhanced.as_deref(), &r.text),
            Verdict::Bounced(BounceType::InvalidRecipient)
        );
    }

    #[test]
    fn local_failures_are_classified_by_local_rules() {
        use LocalFailure::*;
        let all = [
            NoSuchDomain,
            NullMx,
            NoAddress,
            DnsTemporary,
            Unreachable,
            Timeout,
            ConnectionLost,
            TlsFailed,
            MalformedReply,
            TooLargeForRemote,
            NoSmtputf8,
            DataLost,
            SpoolRead,
            Expired,
        ];
        for f in all {
            let (verdict, rule) = f.classify();
            assert!(rule.starts_with("local: "), "{f:?}: {rule}");
            assert!(!RULES.iter().any(|r| r.note == rule), "{f:?}");
            assert_ne!(verdict, Verdict::Delivered, "{f:?}");
        }
        // The remote table names some provider's rule for the same words;
        // a local outcome never goes through it.
        let (_, remote) = classify_with_reason(
            550,
            Some("5.1.2"),
            "domain nope.test does not exist or has no mail server",
        );
        assert!(!remote.starts_with("local"), "{remote}");
        assert_eq!(
            NoSuchDomain.classify(),
            (
                Verdict::Bounced(BounceType::InvalidDomain),
                "local: the domain does not exist or has no mail server"
            )
        );
    }

    #[test]
    fn null_mx_is_invalid_domain() {
        assert_eq!(
            classify(556, Some("5.1.10"), "Recipient address has null MX"),
            Verdict::Bounced(BounceType::InvalidDomain)
        );
        assert_eq!(
            classify(550, Some("5.1.10"), ""),
            Verdict::Bounced(BounceType::InvalidDomain)
        );
        assert_eq!(
            classify(556, None, "Domain does not accept mail"),
            Verdict::Bounced(BounceType::InvalidDomain)
        );
        // Microsoft's 5.1.10 is a different thing.
        assert_eq!(
            classify(
                550,
                Some("5.1.10"),
                "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"
            ),
            Verdict::Bounced(BounceType::InvalidRecipient)
        );
        assert_eq!(
            LocalFailure::NullMx.classify().0,
            Verdict::Bounced(BounceType::InvalidDomain)
        );
    }

    #[test]
    fn enhanced_code_in_text_is_used() {
        assert_eq!(
            classify(
                553,
                None,
                "sorry, mail from your location is refused (#5.7.1)"
            ),
            Verdict::Bounced(BounceType::PolicyBlock)
        );
        assert_eq!(
            classify(554, None, "sorry, something odd (#5.2.2)"),
            Verdict::Bounced(BounceType::MailboxFull)
        );
    }

    #[test]
    fn basic_code_fallbacks() {
        use BounceType::*;
        assert_eq!(
            classify(550, None, "Requested action not taken"),
            Verdict::Bounced(Other)
        );
        assert_eq!(classify(552, None, ""), Verdict::Bounced(MailboxFull));
        assert_eq!(
            classify(554, None, "Transaction failed"),
            Verdict::Bounced(Other)
        );
        assert_eq!(
            classify(421, None, "closing connection"),
            Verdict::Deferred(TemporaryFailure)
        );
        assert_eq!(classify(451, None, ""), Verdict::Deferred(TemporaryFailure));
        assert_eq!(
            classify(500, None, "What?"),
            Verdict::Bounced(ProtocolError)
        );
        assert_eq!(
            classify(554, Some("5.4.7"), "Delivery time expired"),
            Verdict::Bounced(Expired)
        );
        assert_eq!(
            classify(550, Some("5.3.0"), "Other mail system problem"),
            Verdict::Bounced(Other)
        );
    }

    #[test]
    fn labels_round_trip() {
        for t in BounceType::ALL {
            for v in [Verdict::Deferred(t), Verdict::Bounced(t)] {
                assert_eq!(v.to_string().parse::<Verdict>(), Ok(v));
            }
        }
        assert_eq!("delivered".parse::<Verdict>(), Ok(Verdict::Delivered));
        assert!("bounced:nope".parse::<Verdict>().is_err());
    }

    #[test]
    fn rule_table_is_well_formed() {
        let all = RULES
            .iter()
            .flat_map(|r| r.any.iter().chain(r.also).chain(r.unless))
            .chain(NOT_THE_ADDRESS);
        for n in all {
            if let Some(s) = n.text() {
                assert!(
                    !s.is_empty() && s.is_ascii() && s == s.to_ascii_lowercase(),
                    "needle {s:?} must be lower-case ASCII"
                );
            }
        }
        for r in RULES {
            assert!(!r.any.is_empty() && !r.note.is_empty(), "{r:?}");
        }
    }

    #[test]
    fn word_matching() {
        assert!(find_bounded("rate limited", "rate", true));
        assert!(!find_bounded("generated separately", "rate", true));
        assert!(find_bounded("was throttled", "throttl", false));
        assert!(!find_bounded("unthrottled", "throttl", false));
        assert!(find_bounded("ünlisted listed", "listed", true));
        assert!(!find_bounded("blacklisted", "listed", true));
    }
}
