//! The intake pipeline with each source, on a real spool, store and DKIM
//! keys in a temporary directory: what it stamps, what the policy hooks may
//! do, what it signs, what it refuses, what it counts and what quota it
//! commits. The SMTP session's own tests (`tests/smtp_protocol.rs`) cover
//! the replies a refusal becomes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::resolver::ToFqdn;
use mail_auth::common::verify::DomainKey;
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, Txt};
use prometheus_client::registry::Registry;
use rackwave_accounts::{dkim_record, Accounts, Domains};
use rackwave_core::{Clock, MS_PER_DAY};
use rackwave_intake::{
    Accepted, Draft, Intake, IntakeConfig, Limits, Parts, Policy, PolicyFuture, QuotaError, Quotas,
    Refusal, RefusalKind, Rejected, Reservation, Source, Submission,
};
use rackwave_queue::{Spool, SpoolConfig};
use rackwave_store::{Database, DkimAlgorithm};
use tokio::sync::Notify;

/// 2026-06-07T09:39:00Z.
const T0: i64 = 1_780_825_140_000;
const HOST: &str = "mx.rackwave.test";

struct Rig {
    _dir: tempfile::TempDir,
    intake: Intake,
    spool: Spool,
    domains: Domains,
    clock: Clock,
    registry: Registry,
    workspace: String,
    new_mail: Arc<Notify>,
}

async fn rig(max_header_bytes: usize, policies: Vec<Arc<dyn Policy>>) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let database = Database::open(&dir.path().join("db"), 16).unwrap();
    let store = database.store().unwrap();
    let spool = Spool::open_in(
        &database,
        &dir.path().join("bodies"),
        SpoolConfig::default(),
    )
    .unwrap();
    let clock = Clock::manual(T0);
    let accounts = Accounts::new(store.clone(), clock.clone());
    let domains = Domains::new(store.clone(), accounts.clone(), clock.clone());
    let workspace = accounts
        .create_workspace("Acme", Some(1_000))
        .await
        .unwrap()
        .id;
    let mut registry = Registry::with_prefix("rackwave");
    let new_mail = Arc::new(Notify::new());
    let intake = Intake::new(
        IntakeConfig {
            hostname: HOST.into(),
            node_id: "n1".into(),
            max_header_bytes,
        },
        Parts {
            spool: spool.clone(),
            domains: domains.clone(),
            suppressions: rackwave_accounts::Suppressions::new(store.clone(), clock.clone()),
            quotas: Quotas::new(spool.clone(), store, clock.clone()),
            clock: clock.clone(),
            new_mail: new_mail.clone(),
            policies,
            tracking: None,
        },
        &mut registry,
    );
    Rig {
        _dir: dir,
        intake,
        spool,
        domains,
        clock,
        registry,
        workspace,
        new_mail,
    }
}

impl Rig {
    fn submission(&self, source: Source, recipients: &[&str], message: &str) -> Submission {
        Submission {
            source,
            workspace_id: self.workspace.clone(),
            submitter: "alice".into(),
            mail_from: "news@acme.test".into(),
            recipients: recipients.iter().map(|r| r.to_string()).collect(),
            message: message.as_bytes().to_vec(),
            reservation: None,
            tags: Vec::new(),
            tracking: Default::default(),
            metadata: Default::default(),
            sender_rules: None,
        }
    }

    /// The stored message of a queue id, as delivery will send it.
    fn body(&self, queue_id: &str) -> String {
        let raw = self.spool.body(queue_id).unwrap().expect("body stored");
        String::from_utf8(raw).unwrap()
    }

    fn queued(&self) -> u64 {
        self.spool.counts().queued
    }

    /// The exposition line of `name` with exactly `labels`, parsed.
    fn metric(&self, name: &str, labels: &str) -> u64 {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).unwrap();
        let key = format!("{name}{{{labels}}} ");
        out.lines()
            .find_map(|l| l.strip_prefix(&key))
            .map(|v| v.parse().unwrap())
            .unwrap_or(0)
    }

    fn refused(&self, source: &str, reason: &str) -> u64 {
        self.metric(
            "rackwave_intake_refused_total",
            &format!("source=\"{source}\",reason=\"{reason}\""),
        )
    }

    /// `n` units reserved for alice against a daily quota of `quota`.
    async fn reserve(&self, n: usize, quota: u64) -> Result<Reservation, QuotaError> {
        let quotas = self.intake.quotas();
        let limits = Limits {
            account: "alice",
            account_quota: quota,
            workspace: &self.workspace,
            workspace_quota: None,
        };
        let mut reservation = quotas.begin("alice", &self.workspace);
        for _ in 0..n {
            quotas.reserve_one(&mut reservation, &limits).await?;
        }
        Ok(reservation)
    }
}

fn smtp(esmtp: bool, tls: bool) -> Source {
    Source::Smtp {
        helo: "client.example".into(),
        peer: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        esmtp,
        tls,
    }
}

fn http(api_key_id: &str) -> Source {
    Source::Http {
        api_key_id: api_key_id.into(),
    }
}

const PLAIN: &str =
    "From: News <news@acme.test>\r\nTo: bob@example.test\r\nSubject: Hello\r\n\r\nBody line\r\n";

/// The header fields of a stored message, in order, unfolded to one line.
fn header_names(body: &str) -> Vec<String> {
    let head = body.split("\r\n\r\n").next().unwrap();
    head.split("\r\n")
        .filter(|l| !l.starts_with([' ', '\t']))
        .map(|l| l.split(':').next().unwrap().to_ascii_lowercase())
        .collect()
}

#[tokio::test]
async fn each_source_stamps_its_own_trace_and_is_counted_by_source() {
    let r = rig(1 << 20, Vec::new()).await;
    let cases = [
        (
            smtp(true, true),
            "Received: from client.example ([192.0.2.7])\r\n\tby mx.rackwave.test (Rackwave node n1) with ESMTPSA\r\n\tid ",
        ),
        (
            smtp(true, false),
            "Received: from client.example ([192.0.2.7])\r\n\tby mx.rackwave.test (Rackwave node n1) with ESMTPA\r\n\tid ",
        ),
        (
            smtp(false, false),
            "Received: from client.example ([192.0.2.7])\r\n\tby mx.rackwave.test (Rackwave node n1) with SMTP\r\n\tid ",
        ),
        (
            http("key_1234"),
            "Received: from api key key_1234\r\n\tby mx.rackwave.test (Rackwave node n1) with HTTPS\r\n\tid ",
        ),
        (
            Source::Notification,
            "Received: by mx.rackwave.test (Rackwave node n1, notifications)\r\n\tid ",
        ),
    ];
    for (source, received) in cases {
        let woken = r.new_mail.notified();
        let accepted = r
            .intake
            .submit(r.submission(source.clone(), &["bob@example.test"], PLAIN))
            .await
            .unwrap_or_else(|e| panic!("{source:?}: {e:?}"));
        // Delivery is woken for every accepted submission.
        tokio::time::timeout(std::time::Duration::from_secs(5), woken)
            .await
            .expect("delivery woken");
        assert_eq!(accepted.message_ids.len(), 1);
        let body = r.body(&accepted.queue_id);
        assert!(body.starts_with(received), "{source:?}:\n{body}");
        // The queue id and the date close the Received field.
        let first_field = body.split("\r\nMessage-ID:").next().unwrap();
        assert!(
            first_field.contains(&format!(
                "id {}; Sun, 7 Jun 2026 09:39:00 +0000",
                accepted.queue_id
            )),
            "{first_field}"
        );
        // The client left out Message-ID and Date: both added once, ours.
        assert_eq!(
            header_names(&body),
            ["received", "message-id", "date", "from", "to", "subject"],
            "{body}"
        );
        assert!(
            body.contains(&format!(".{}@{HOST}>\r\n", accepted.queue_id)),
            "{body}"
        );
        assert!(body.ends_with("\r\n\r\nBody line\r\n"));
    }
    assert_eq!(r.queued(), 5);
    for (source, n) in [("smtp", 3), ("http", 1), ("notification", 1)] {
        let labels = format!("source=\"{source}\"");
        assert_eq!(r.metric("rackwave_messages_accepted_total", &labels), n);
        assert_eq!(r.metric("rackwave_recipients_accepted_total", &labels), n);
    }
}

#[tokio::test]
async fn a_clients_message_id_and_date_are_kept_and_each_recipient_is_one_message() {
    let r = rig(1 << 20, Vec::new()).await;
    let message = "Date: Fri, 05 Jun 2026 10:00:00 +0000\r\nmessage-id: <own@client>\r\nFrom: news@acme.test\r\n\r\nHi\r\n";
    let accepted = r
        .intake
        .submit(r.submission(
            http("key_1"),
            &["a@example.test", "b@example.test", "c@example.test"],
            message,
        ))
        .await
        .unwrap();
    assert_eq!(accepted.message_ids.len(), 3);
    assert!(accepted.rejected.is_empty());
    let body = r.body(&accepted.queue_id);
    assert_eq!(
        header_names(&body),
        ["received", "date", "message-id", "from"]
    );
    let records: Vec<_> = accepted
        .message_ids
        .iter()
        .map(|id| r.spool.get(id).unwrap().unwrap())
        .collect();
    let to: Vec<_> = records.iter().map(|m| m.to.as_str()).collect();
    assert_eq!(to, ["a@example.test", "b@example.test", "c@example.test"]);
    assert!(records.iter().all(|m| m.workspace_id == r.workspace));
    assert_eq!(
        r.metric("rackwave_recipients_accepted_total", "source=\"http\""),
        3
    );
    assert_eq!(
        r.metric("rackwave_messages_accepted_total", "source=\"http\""),
        1
    );
}

#[tokio::test]
async fn a_bad_header_section_is_refused_and_nothing_is_queued() {
    let r = rig(4096, Vec::new()).await;
    let long = format!(
        "From: news@acme.test\r\n{}\r\nbody\r\n",
        "X-Filler: 0123456789012345678901234567890123456789\r\n".repeat(100)
    );
    let cases: [(&str, RefusalKind, &str); 5] = [
        ("no header at all", RefusalKind::Malformed, "header"),
        ("\r\nonly a body\r\n", RefusalKind::Malformed, "header"),
        (
            "Subject: no sender\r\n\r\nbody\r\n",
            RefusalKind::Malformed,
            "header",
        ),
        (
            "From: news@acme.test\r\nBad Header Name: x\r\n\r\nbody\r\n",
            RefusalKind::Malformed,
            "header",
        ),
        (&long, RefusalKind::TooLarge, "header_size"),
    ];
    for (message, kind, reason) in cases {
        let refusal = r
            .intake
            .submit(r.submission(smtp(true, false), &["bob@example.test"], message))
            .await
            .unwrap_err();
        assert_eq!(
            (refusal.kind, refusal.reason),
            (kind, reason),
            "{message:.40}"
        );
    }
    // The size refusal names the cap; the structure refusal the line.
    let refusal = r
        .intake
        .submit(r.submission(
            Source::Notification,
            &["bob@example.test"],
            "From: a@acme.test\r\nok: 1\r\n no colon on a continuation is fine\r\nbroken line\r\n\r\n",
        ))
        .await
        .unwrap_err();
    assert!(refusal.text.contains("line 4"), "{}", refusal.text);
    let refusal = r
        .intake
        .submit(r.submission(smtp(true, true), &["bob@example.test"], &long))
        .await
        .unwrap_err();
    assert!(refusal.text.contains("4096 octets"), "{}", refusal.text);

    assert_eq!(r.queued(), 0);
    assert_eq!(r.refused("smtp", "header"), 4);
    assert_eq!(r.refused("smtp", "header_size"), 2);
    assert_eq!(r.refused("notification", "header"), 1);
    assert_eq!(
        r.metric("rackwave_messages_accepted_total", "source=\"smtp\""),
        0
    );
}

/// Drops recipients at a domain, refuses a sender and rewrites the body;
/// records what it saw.
#[derive(Default)]
struct TestPolicy {
    seen: Mutex<Vec<(String, String)>>,
}

impl Policy for TestPolicy {
    fn apply<'a>(&'a self, draft: &'a mut Draft<'_>) -> PolicyFuture<'a> {
        Box::pin(async move {
            self.seen.lock().unwrap().push((
                draft.workspace_id.to_string(),
                draft.source.label().to_string(),
            ));
            if draft.mail_from.starts_with("blocked@") {
                return Err(Refusal::new(
                    RefusalKind::Policy,
                    "sender",
                    "Sender blocked by policy",
                ));
            }
            let (keep, drop): (Vec<String>, Vec<String>) = draft
                .recipients
                .drain(..)
                .partition(|to| !to.ends_with("@suppressed.test"));
            *draft.recipients = keep;
            draft.rejected.extend(drop.into_iter().map(|to| Rejected {
                to,
                code: "suppressed",
                reason: "Address is on the suppression list".into(),
            }));
            // A rewrite after the trace headers and before signing, as link
            // tracking will do.
            let text = String::from_utf8(std::mem::take(draft.message)).unwrap();
            *draft.message = text
                .replace("https://acme.test/", "https://t.rackwave.test/c/acme.test/")
                .into_bytes();
            Ok(())
        })
    }
}

/// A TXT cache for mail-auth's verifier, so it checks our signature
/// against the key we publish without a DNS server.
#[derive(Default)]
struct TxtRecords(Mutex<HashMap<Box<str>, Txt>>);

impl mail_auth::ResolverCache<Box<str>, Txt> for TxtRecords {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().get(name).cloned()
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().remove(name)
    }

    fn insert(&self, key: Box<str>, value: Txt, _: std::time::Instant) {
        self.0.lock().unwrap().insert(key, value);
    }
}

async fn dkim_results(records: &TxtRecords, message: &[u8]) -> Vec<DkimResult> {
    let verifier = MessageAuthenticator::new(
        hickory_resolver::config::ResolverConfig::from_name_servers(Vec::new()),
        hickory_resolver::config::ResolverOpts::default(),
    )
    .unwrap();
    let parsed = AuthenticatedMessage::parse(message).unwrap();
    let params = Parameters::new(&parsed).with_txt_cache(records);
    verifier
        .verify_dkim(params)
        .await
        .iter()
        .map(|o| o.result().clone())
        .collect()
}

#[tokio::test]
async fn policies_drop_recipients_refuse_and_rewrite_and_the_signature_covers_the_rewrite() {
    let policy = Arc::new(TestPolicy::default());
    let r = rig(1 << 20, vec![policy.clone()]).await;
    let domain = r
        .domains
        .add(
            &r.workspace,
            "acme.test",
            DkimAlgorithm::Ed25519,
            Some("s1"),
        )
        .await
        .unwrap();
    let (name, value) = dkim_record(&domain);
    let records = TxtRecords::default();
    records.0.lock().unwrap().insert(
        name.to_fqdn().into_owned().into_boxed_str(),
        Txt::from(DomainKey::parse(value.as_bytes()).unwrap()),
    );

    let message =
        "From: news@acme.test\r\nSubject: Links\r\n\r\nSee https://acme.test/offer today\r\n";
    let accepted: Accepted = r
        .intake
        .submit(r.submission(
            http("key_1"),
            &["a@example.test", "x@suppressed.test", "b@example.test"],
            message,
        ))
        .await
        .unwrap();
    assert_eq!(accepted.message_ids.len(), 2);
    assert_eq!(
        accepted.rejected,
        [Rejected {
            to: "x@suppressed.test".into(),
            code: "suppressed",
            reason: "Address is on the suppression list".into(),
        }]
    );
    let to: Vec<_> = accepted
        .message_ids
        .iter()
        .map(|id| r.spool.get(id).unwrap().unwrap().to)
        .collect();
    assert_eq!(to, ["a@example.test", "b@example.test"]);

    let body = r.body(&accepted.queue_id);
    assert!(body.starts_with("DKIM-Signature:"), "{body}");
    assert!(body.contains("See https://t.rackwave.test/c/acme.test/offer today"));
    assert_eq!(
        dkim_results(&records, body.as_bytes()).await,
        [DkimResult::Pass]
    );
    // The check is real: the original body no longer matches the signature.
    let tampered = body.replace("t.rackwave.test/c/acme.test/", "acme.test/");
    assert!(matches!(
        dkim_results(&records, tampered.as_bytes()).await[..],
        [DkimResult::Fail(_) | DkimResult::Neutral(_)]
    ));

    // Every recipient dropped: nothing to queue.
    let refusal = r
        .intake
        .submit(r.submission(smtp(true, true), &["y@suppressed.test"], message))
        .await
        .unwrap_err();
    assert_eq!(
        (refusal.kind, refusal.reason),
        (RefusalKind::Policy, "no_recipients")
    );
    // A refusing policy stops the submission.
    let mut blocked = r.submission(Source::Notification, &["a@example.test"], message);
    blocked.mail_from = "blocked@acme.test".into();
    let refusal = r.intake.submit(blocked).await.unwrap_err();
    assert_eq!(
        refusal,
        Refusal::new(RefusalKind::Policy, "sender", "Sender blocked by policy")
    );
    assert_eq!(r.queued(), 2);
    assert_eq!(r.refused("smtp", "no_recipients"), 1);
    assert_eq!(r.refused("notification", "sender"), 1);
    // The policy saw the workspace and the source of each submission; a
    // header refusal never reaches it.
    let _ = r
        .intake
        .submit(r.submission(smtp(true, true), &["a@example.test"], "no header"))
        .await
        .unwrap_err();
    let seen = policy.seen.lock().unwrap().clone();
    let ws = r.workspace.clone();
    assert_eq!(
        seen,
        [
            (ws.clone(), "http".to_string()),
            (ws.clone(), "smtp".to_string()),
            (ws, "notification".to_string()),
        ]
    );
}

#[tokio::test]
async fn a_message_from_a_domain_without_a_key_goes_unsigned() {
    let r = rig(1 << 20, Vec::new()).await;
    r.domains
        .add(
            &r.workspace,
            "acme.test",
            DkimAlgorithm::Ed25519,
            Some("s1"),
        )
        .await
        .unwrap();
    let message = "From: someone@other.test\r\n\r\nHi\r\n";
    let accepted = r
        .intake
        .submit(r.submission(smtp(true, true), &["a@example.test"], message))
        .await
        .unwrap();
    let body = r.body(&accepted.queue_id);
    assert!(!body.contains("DKIM-Signature"), "{body}");
    // A key of another workspace is not used either.
    let mut other = r.submission(smtp(true, true), &["a@example.test"], PLAIN);
    other.workspace_id = "ws_someoneelse".into();
    let accepted = r.intake.submit(other).await.unwrap();
    assert!(!r.body(&accepted.queue_id).contains("DKIM-Signature"));
}

#[tokio::test]
async fn the_quota_is_committed_when_durable_and_given_back_on_refusal() {
    let policy = Arc::new(TestPolicy::default());
    let r = rig(1 << 20, vec![policy]).await;
    let day = T0.div_euclid(MS_PER_DAY);

    // Three reserved, three queued: the spool counts them for the
    // submitter, and the quota of 4 has one left.
    let mut sub = r.submission(
        smtp(true, true),
        &["a@example.test", "b@example.test", "c@example.test"],
        PLAIN,
    );
    sub.reservation = Some(r.reserve(3, 4).await.unwrap());
    r.intake.submit(sub).await.unwrap();
    assert_eq!(r.spool.accepted_on_day("alice", day).unwrap(), 3);

    // A refused submission gives its reservation back: at the header
    // check, and at a policy.
    let mut sub = r.submission(smtp(true, true), &["a@example.test"], "no header");
    sub.reservation = Some(r.reserve(1, 4).await.unwrap());
    r.intake.submit(sub).await.unwrap_err();
    let mut sub = r.submission(smtp(true, true), &["a@example.test"], PLAIN);
    sub.mail_from = "blocked@acme.test".into();
    sub.reservation = Some(r.reserve(1, 4).await.unwrap());
    r.intake.submit(sub).await.unwrap_err();
    assert_eq!(r.spool.accepted_on_day("alice", day).unwrap(), 3);

    // So one unit is still free, and only one.
    assert!(matches!(r.reserve(2, 4).await, Err(QuotaError::Exceeded)));
    drop(r.reserve(1, 4).await.unwrap());

    // A new UTC day starts from zero.
    r.clock.advance_ms(MS_PER_DAY);
    r.reserve(4, 4).await.unwrap();
}
