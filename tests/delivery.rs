//! The delivery engine end to end: mail accepted over SMTP is resolved
//! through a real DNS server (`rackwave_testkit::dns`, zones in
//! fixtures/zones/) and delivered to real SMTP sinks on 127.0.0.x that play
//! the remote MX hosts with scripted replies. Retries run on the manual
//! clock: the test moves time forward instead of waiting.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rackwave::config::Config;
use rackwave_bench::sink::{Action, Script, Sink, SinkConfig, Step};
use rackwave_delivery::{ShapingOverride, TlsPolicy};
use rackwave_testkit::delivery::*;
use rackwave_testkit::dns::loopback;
use rackwave_testkit::receiver::Receiver;
use rackwave_testkit::*;
use serde_json::{json, Value};

/// Shaping and routing for the domain most tests send to.
fn for_example_test(c: &mut Config, shaping: ShapingOverride) {
    c.delivery.domains.insert("example.test".into(), shaping);
}

/// example.test takes `per_second` messages a second over one connection:
/// a slow destination that a backlog builds up behind.
fn one_paced_connection(c: &mut Config, per_second: f64) {
    for_example_test(
        c,
        ShapingOverride {
            messages_per_second: Some(per_second),
            max_connections: Some(1),
            ..Default::default()
        },
    );
}

/// `prefix0@domain`, `prefix1@domain`, … (`n` of them).
fn numbered(prefix: &str, n: usize, domain: &str) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}@{domain}")).collect()
}

/// A message's last delivery attempt and its detail (a JSON object).
fn last_attempt(msg: &Value) -> (Value, Value) {
    let attempt = msg["delivery_attempts"]
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .unwrap_or_else(|| panic!("no delivery attempt in {msg}"));
    let detail = attempt["detail"].clone();
    (attempt, detail)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_mx_down_second_delivers_with_verp_sender() {
    let r = rig(vec![(22, sink())], [DOWN, 22], |_| {}).await;
    let qid = r
        .send("app@sender.test", &["alice@two-mx.test"], "two mx")
        .await;
    let msgs = r.wait(&qid, &["delivered"]).await;
    let (attempt, detail) = last_attempt(&msgs[0]);
    assert_eq!(attempt["remote_host"], "mx2.two-mx.test");
    assert_eq!(attempt["remote_ip"], "127.0.0.22");
    assert!(
        attempt["reply"].as_str().unwrap().starts_with("250"),
        "{attempt}"
    );
    assert!(attempt["at"].as_str().is_some());
    assert_eq!(attempt["event"], "email.delivered");
    assert!(detail.is_null(), "a delivery has no detail: {detail}");
    assert_eq!(
        events(&msgs[0]),
        ["email.queued", "email.sent", "email.delivered"]
    );

    let got = r.sinks[0].received();
    assert_eq!(got.len(), 1);
    let id = msgs[0]["id"].as_str().unwrap();
    // Signed: `bounce-<id>-<12 hex>@<bounce domain>`.
    let tag = got[0]
        .mail_from
        .strip_prefix(&format!("bounce-{id}-"))
        .and_then(|t| t.strip_suffix("@bounces.rackwave.test"))
        .unwrap_or_else(|| panic!("not a signed VERP sender: {}", got[0].mail_from));
    assert!(
        tag.len() == 12 && tag.bytes().all(|b| b.is_ascii_hexdigit()),
        "{tag}"
    );
    assert_eq!(got[0].rcpt_to, ["alice@two-mx.test"]);
    assert_eq!(got[0].ehlo, "out.rackwave.test");
    let data = String::from_utf8_lossy(&got[0].data);
    assert!(data.contains("Subject: two mx"), "{data}");
    assert!(data.starts_with("Received: from client.test"), "{data}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_mx_falls_back_to_the_address() {
    let r = rig(vec![(23, sink())], [23, DOWN], |_| {}).await;
    let qid = r
        .send("app@sender.test", &["bob@a-only.test"], "implicit mx")
        .await;
    let msgs = r.wait(&qid, &["delivered"]).await;
    assert_eq!(last_attempt(&msgs[0]).0["remote_ip"], "127.0.0.23");
    assert_eq!(r.sinks[0].messages(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_mx_and_missing_domains_bounce_without_connecting() {
    let r = rig(vec![(24, sink())], [24, DOWN], |_| {}).await;
    let qid = r
        .send("app@sender.test", &["carol@null-mx.test"], "null mx")
        .await;
    let msgs = r.wait(&qid, &["bounced"]).await;
    let (_, detail) = last_attempt(&msgs[0]);
    assert_eq!(detail["bounce_type"], "invalid_domain");
    assert_eq!(detail["bounce_code"], "5.1.10");
    assert_eq!(
        detail["classified_by"],
        "local: the domain publishes a null MX (RFC 7505)"
    );
    assert_eq!(events(&msgs[0]), ["email.queued", "email.bounced"]);

    let qid = r
        .send("app@sender.test", &["dave@no-such-domain.test"], "nxdomain")
        .await;
    let msgs = r.wait(&qid, &["bounced"]).await;
    let (_, detail) = last_attempt(&msgs[0]);
    assert_eq!(detail["bounce_type"], "invalid_domain");
    assert_eq!(detail["bounce_code"], "5.1.2");
    // Decided by the local rule, not by a provider's rule for the words.
    assert_eq!(
        detail["classified_by"],
        "local: the domain does not exist or has no mail server"
    );
    assert_eq!(
        r.sinks[0].connections(),
        0,
        "no connection for undeliverable domains"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_failure_is_retried_on_schedule() {
    let script = Script::default()
        .on(
            Step::Rcpt,
            Action::reply("421 4.7.0 Try again later, closing connection"),
        )
        .times(1);
    let r = scripted_rig(25, script, |c| {
        c.delivery.retry_schedule_secs = vec![300, 900];
    })
    .await;
    let queued_at = r.ts.clock.now_ms();
    let qid = r
        .send("app@sender.test", &["erin@example.test"], "retry me")
        .await;
    let msgs = r.wait(&qid, &["deferred"]).await;
    let (attempt, detail) = last_attempt(&msgs[0]);
    assert_eq!(attempt["attempt_number"], 1);
    assert_eq!(
        detail["next_retry_at"],
        rackwave_core::rfc3339(queued_at + 300_000)
    );
    assert!(detail["defer_reason"]
        .as_str()
        .unwrap()
        .contains("Try again later"));
    assert!(attempt["reply"].as_str().unwrap().starts_with("421 4.7.0"));
    assert_eq!(msgs[0]["attempts"], 1);

    // Not due yet: nothing happens.
    r.ts.clock.advance_ms(299_000);
    r.kick();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(r.sinks[0].messages(), 0);
    // Due: delivered on the second attempt.
    r.ts.clock.advance_ms(1_000);
    let msgs = r.wait(&qid, &["delivered"]).await;
    assert_eq!(msgs[0]["attempts"], 2);
    assert_eq!(
        events(&msgs[0]),
        [
            "email.queued",
            "email.deferred",
            "email.sent",
            "email.delivered"
        ]
    );
    assert_eq!(r.sinks[0].messages(), 1);
}

/// A body whose bytes no longer match their checksum (disk damage) is
/// bounced at its next attempt with the reason, not sent and not retried
/// for days.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_damaged_on_disk_bounces_instead_of_being_sent() {
    let script = Script::default()
        .on(Step::Rcpt, Action::reply("421 4.7.0 Try again later"))
        .times(1);
    let r = scripted_rig(41, script, |c| c.delivery.retry_schedule_secs = vec![300]).await;
    let qid = r
        .send("app@sender.test", &["fay@example.test"], "to be damaged")
        .await;
    r.wait(&qid, &["deferred"]).await;
    // Flip one byte of every stored body (the segment files; the spool's
    // index is a directory beside them).
    let bodies = r.ts.dir.path().join("data").join("bodies");
    for entry in std::fs::read_dir(&bodies).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        if let Some(b) = bytes.last_mut() {
            *b ^= 0x20;
            std::fs::write(&path, bytes).unwrap();
        }
    }
    r.ts.clock.advance_ms(300_000);
    let msgs = r.wait(&qid, &["bounced"]).await;
    let (attempt, detail) = last_attempt(&msgs[0]);
    assert!(
        attempt["reply"].as_str().unwrap().starts_with("554 5.3.0"),
        "{attempt}"
    );
    assert!(
        detail["bounce_reason"]
            .as_str()
            .unwrap()
            .contains("damaged"),
        "{detail}"
    );
    assert_eq!(r.sinks[0].messages(), 0, "damaged data is never sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_bounces_as_invalid_recipient() {
    let script = Script::default().on_rcpt_containing(
        "nobody",
        Action::reply("550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown in virtual mailbox table"),
    );
    let r = scripted_rig(26, script, |_| {}).await;
    let qid = r
        .send(
            "app@sender.test",
            &["nobody@example.test", "somebody@example.test"],
            "mixed",
        )
        .await;
    let msgs = r.wait(&qid, &["bounced", "delivered"]).await;
    for m in &msgs {
        let (_, detail) = last_attempt(m);
        if m["to"] == "nobody@example.test" {
            assert_eq!(m["status"], "bounced");
            assert_eq!(detail["bounce_type"], "invalid_recipient");
            assert_eq!(detail["bounce_code"], "5.1.1");
            assert!(detail["bounce_reason"]
                .as_str()
                .unwrap()
                .contains("User unknown"));
        } else {
            assert_eq!(m["status"], "delivered");
        }
    }
    assert_eq!(r.sinks[0].messages(), 1);
}

/// A bounce that says the mailbox does not exist puts the address on the
/// workspace's suppression list, with the message that caused it, and the
/// next message to it is refused at RCPT; a full mailbox bounces without
/// suppressing anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_bounce_suppresses_the_address_and_a_full_mailbox_does_not() {
    let script = Script::default()
        .on_rcpt_containing(
            "nobody",
            Action::reply(
                "550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown",
            ),
        )
        .on_rcpt_containing("full", Action::reply("552 5.2.2 Mailbox full"));
    let r = scripted_rig(54, script, |_| {}).await;
    let key =
        r.ts.create_api_key(&r.account.workspace_id, "migosmtp")
            .await;
    let qid = r
        .send(
            "app@sender.test",
            &["Nobody@Example.test", "full@example.test"],
            "hard and soft",
        )
        .await;
    let msgs = r.wait(&qid, &["bounced"]).await;
    let nobody = msgs
        .iter()
        .find(|m| {
            m["to"]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case("nobody@example.test")
        })
        .unwrap();
    // The events consumer adds the entry with the bounce's event.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let entry = loop {
        let (s, entry) =
            r.ts.call(
                &key,
                "GET",
                "/migosmtp/v1/suppressions/nobody@example.test",
                None,
            )
            .await;
        if s == 200 {
            break entry;
        }
        assert_eq!(s, 404, "{entry}");
        assert!(tokio::time::Instant::now() < deadline, "never suppressed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(entry["address"], "nobody@example.test");
    assert_eq!(entry["reason"], "hard_bounce");
    assert_eq!(entry["message_id"], nobody["id"]);
    assert!(
        entry["detail"].as_str().unwrap().contains("5.1.1"),
        "{entry}"
    );
    let (_, list) =
        r.ts.call(&key, "GET", "/migosmtp/v1/suppressions", None)
            .await;
    assert_eq!(list["suppressions"].as_array().unwrap().len(), 1, "{list}");

    let mut s = r.ts.authed(&r.account).await;
    s.cmd_expect("MAIL FROM:<app@sender.test>", 250).await;
    let refused = s.cmd("RCPT TO:<NOBODY@example.test>").await;
    assert_eq!(refused.code, 550, "{refused:?}");
    assert!(refused.text().contains("5.7.1") && refused.text().contains("hard_bounce"));
    s.cmd_expect("RCPT TO:<full@example.test>", 250).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_times_out_and_defers() {
    let script = Script::default().on(Step::Greeting, Action::Silent);
    let r = scripted_rig(27, script, |c| {
        c.delivery.command_timeout_secs = 1;
    })
    .await;
    let qid = r
        .send("app@sender.test", &["frank@example.test"], "silence")
        .await;
    let msgs = r.wait(&qid, &["deferred"]).await;
    let (attempt, detail) = last_attempt(&msgs[0]);
    let reason = detail["defer_reason"].as_str().unwrap();
    assert!(reason.contains("timed out"), "{reason}");
    assert_eq!(attempt["attempt_number"], 1);
    assert_eq!(
        detail["classified_by"],
        "local: no MX host could be reached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_is_used_when_offered() {
    let r = rig(
        vec![(
            28,
            SinkConfig {
                starttls: true,
                ..sink()
            },
        )],
        [28, DOWN],
        |_| {},
    )
    .await;
    let qid = r
        .send("app@sender.test", &["grace@example.test"], "encrypted")
        .await;
    let msgs = r.wait(&qid, &["delivered"]).await;
    assert_eq!(last_attempt(&msgs[0]).0["tls"], true);
    assert!(r.sinks[0].received()[0].tls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_tls_without_starttls_defers() {
    let r = rig(vec![(29, sink())], [29, DOWN], |c| {
        for_example_test(
            c,
            ShapingOverride {
                tls: Some(TlsPolicy::Required),
                ..Default::default()
            },
        );
    })
    .await;
    let qid = r
        .send(
            "app@sender.test",
            &["heidi@example.test"],
            "must be encrypted",
        )
        .await;
    let msgs = r.wait(&qid, &["deferred"]).await;
    let reason = last_attempt(&msgs[0]).1["defer_reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("STARTTLS"), "{reason}");
    assert_eq!(r.sinks[0].messages(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_to_one_domain_share_connections_within_limits() {
    let r = rig(vec![(30, sink())], [30, DOWN], |c| {
        for_example_test(
            c,
            ShapingOverride {
                max_connections: Some(2),
                messages_per_connection: Some(25),
                ..Default::default()
            },
        );
    })
    .await;
    let qid = r
        .send(
            "app@sender.test",
            &numbered("user", 50, "example.test"),
            "fifty",
        )
        .await;
    let msgs = r.wait(&qid, &["delivered"]).await;
    assert_eq!(msgs.len(), 50);
    let sink = &r.sinks[0];
    assert_eq!(sink.messages(), 50, "each message delivered exactly once");
    assert!(sink.max_concurrent_connections() <= 2, "{:?}", sink.stats());
    assert!(
        sink.max_messages_per_connection() <= 25,
        "{:?}",
        sink.stats()
    );
    assert!(
        sink.max_messages_per_connection() >= 10,
        "connections were reused: {:?}",
        sink.stats()
    );
    assert!(sink.connections() <= 6, "{:?}", sink.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_mail_expires_at_its_lifetime() {
    let script = Script::default().on(
        Step::Rcpt,
        Action::reply("451 4.3.0 Mailbox temporarily unavailable"),
    );
    let r = scripted_rig(31, script, |c| {
        c.delivery.retry_schedule_secs = vec![300];
        c.delivery.max_queue_lifetime_secs = 600;
    })
    .await;
    let qid = r
        .send("app@sender.test", &["ivan@example.test"], "doomed")
        .await;
    r.wait(&qid, &["deferred"]).await;
    r.ts.clock.advance_ms(300_000);
    let msgs = r
        .wait_until(&qid, &["deferred"], |m| m["attempts"] == 2)
        .await;
    // The second retry is capped at the end of the lifetime.
    assert_eq!(
        last_attempt(&msgs[0]).1["next_retry_at"],
        rackwave_core::rfc3339(START_MS + 600_000)
    );
    r.ts.clock.advance_ms(300_000);
    let msgs = r.wait(&qid, &["bounced"]).await;
    let (_, detail) = last_attempt(&msgs[0]);
    assert_eq!(detail["bounce_type"], "expired");
    assert_eq!(detail["bounce_code"], "4.4.7");
    assert!(detail["bounce_reason"]
        .as_str()
        .unwrap()
        .contains("Mailbox temporarily unavailable"));
}

async fn dkim_round_trip(algorithm: &str, ip: u8) {
    let r = rig(vec![(ip, sink())], [ip, DOWN], |_| {}).await;
    let domain = r.signing_domain(Some(algorithm)).await;
    assert_eq!(domain["dkim_record"]["name"], "s1._domainkey.dkim.test");

    let qid = r
        .send("news@dkim.test", &["judy@example.test"], "signed")
        .await;
    r.wait(&qid, &["delivered"]).await;
    let data = r.sinks[0].received()[0].data.clone();
    assert!(String::from_utf8_lossy(&data).starts_with("DKIM-Signature:"));

    r.assert_dkim_passes(&data).await;
    // A message from a domain without a key goes out unsigned.
    let qid = r
        .send("news@sender.test", &["judy@example.test"], "unsigned")
        .await;
    r.wait(&qid, &["delivered"]).await;
    assert!(!String::from_utf8_lossy(&r.sinks[0].received()[1].data).contains("DKIM-Signature"));
}

/// The `List-Unsubscribe` URL of a delivered message (RFC 8058), if any.
fn list_unsubscribe(data: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::default()
        .parse_headers(data)
        .unwrap();
    let raw = parsed.header_raw("List-Unsubscribe")?;
    Some(
        raw.trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string(),
    )
}

fn unsubscribe_url(data: &[u8]) -> String {
    list_unsubscribe(data).expect("List-Unsubscribe")
}

/// One-click unsubscribe end to end: messages of a workspace that turns it
/// on (and one that asks over SMTP) arrive with RFC 8058 headers for their
/// own recipient, covered by the DKIM signature; a GET of the link only
/// shows a page; the one-click POST answers 200 without a redirect,
/// records `email.unsubscribed` for that message and suppresses the
/// address (once, however often it is posted), and the next message to it
/// is refused. A forged link records nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_click_unsubscribe_from_the_delivered_headers() {
    let r = rig(vec![(55, sink())], [55, DOWN], |_| {}).await;
    let ws = r.account.workspace_id.clone();
    let key = r.ts.create_api_key(&ws, "migosmtp").await;
    r.signing_domain(None).await;

    // Off by default: no header.
    let qid = r
        .send("news@dkim.test", &["plain@example.test"], "no list")
        .await;
    r.wait(&qid, &["delivered"]).await;
    assert_eq!(list_unsubscribe(&r.sinks[0].received()[0].data), None);

    // Asked for over SMTP, two recipients: each gets its own link.
    let mut s = r.ts.authed(&r.account).await;
    let data = "From: <news@dkim.test>\r\nTo: <ada@example.test>\r\nSubject: weekly\r\n\
                List-Id: Weekly news <weekly.dkim.test>\r\n\
                X-Rackwave-Tracking: unsubscribe=on\r\n\r\nhello\r\n";
    let reply = s
        .send_mail(
            "news@dkim.test",
            &["ada@example.test", "bob@example.test"],
            data,
        )
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let msgs = r.ts.messages(&ws).await;
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while r.sinks[0].received().len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "not delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let received = r.sinks[0].received();
    let copy_for = |to: &str| {
        received
            .iter()
            .find(|m| m.rcpt_to.iter().any(|r| r == to))
            .unwrap_or_else(|| panic!("no copy for {to}"))
            .data
            .clone()
    };
    let ada = copy_for("ada@example.test");
    let bob = copy_for("bob@example.test");
    let text = String::from_utf8_lossy(&ada).to_string();
    assert!(
        text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"),
        "{text}"
    );
    assert!(
        !text.contains("X-Rackwave-Tracking"),
        "the control field is removed"
    );
    let ada_url = unsubscribe_url(&ada);
    let bob_url = unsubscribe_url(&bob);
    assert!(
        ada_url.starts_with(&format!("{}/u/", r.ts.http)),
        "{ada_url}"
    );
    assert_ne!(ada_url, bob_url);

    // The signature covers the new fields and verifies.
    r.assert_dkim_passes(&ada).await;
    let signature = mail_parser::MessageParser::default()
        .parse_headers(&ada)
        .unwrap()
        .header_raw("DKIM-Signature")
        .unwrap()
        .replace(['\r', '\n', ' ', '\t'], "");
    let signed: Vec<String> = signature
        .split(';')
        .find_map(|tag| tag.strip_prefix("h="))
        .expect("h= tag")
        .split(':')
        .map(str::to_ascii_lowercase)
        .collect();
    for field in ["list-unsubscribe", "list-unsubscribe-post", "list-id"] {
        assert!(
            signed.iter().any(|h| h == field),
            "{field} not in {signed:?}"
        );
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let suppressed = |address: &'static str| {
        let ts = &r.ts;
        let key = key.clone();
        async move {
            let (s, _) = ts
                .call(
                    &key,
                    "GET",
                    &format!("/migosmtp/v1/suppressions/{address}"),
                    None,
                )
                .await;
            s == 200
        }
    };
    // Bob was on the list for another reason: his unsubscribe is still
    // recorded, and becomes the entry's reason.
    let (s, _) =
        r.ts.call(
            &key,
            "POST",
            "/migosmtp/v1/suppressions",
            Some(json!({"address": "bob@example.test", "reason": "manual"})),
        )
        .await;
    assert_eq!(s, 201);
    let resp = one_click(&bob_url).await;
    assert_eq!(resp.status(), 200);
    let (_, entry) =
        r.ts.call(
            &key,
            "GET",
            "/migosmtp/v1/suppressions/bob@example.test",
            None,
        )
        .await;
    assert_eq!(entry["reason"], "unsubscribe", "{entry}");
    let (s, _) =
        r.ts.call(
            &key,
            "DELETE",
            "/migosmtp/v1/suppressions/bob@example.test",
            None,
        )
        .await;
    assert_eq!(s, 204);

    // A GET (a link scanner, a person's first click) changes nothing.
    let page = http.get(&ada_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<form method=\"post\"") && html.contains("ada@example.test"),
        "{html}"
    );
    assert!(!suppressed("ada@example.test").await);

    // A forged or altered link: 404, nothing recorded.
    // A character of the payload (the part before the dot) changed.
    let dot = ada_url.rfind('.').unwrap();
    let mut forged: Vec<char> = ada_url.chars().collect();
    let at = ada_url[..dot].chars().count() - 3;
    forged[at] = if forged[at] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    for url in [forged.as_str(), &format!("{}/u/garbage", r.ts.http)] {
        let resp = one_click(url).await;
        assert_eq!(resp.status(), 404, "{url}");
    }
    // Not a one-click body: 400.
    let resp = http
        .post(&ada_url)
        .body("unsubscribe")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(!suppressed("ada@example.test").await);

    // The one-click POST, twice (providers retry).
    for _ in 0..2 {
        let resp = one_click(&ada_url).await;
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().get("location").is_none());
    }
    let ada_id = msgs.iter().find(|m| m["to"] == "ada@example.test").unwrap()["id"].clone();
    let (_, entry) =
        r.ts.call(
            &key,
            "GET",
            "/migosmtp/v1/suppressions/ada@example.test",
            None,
        )
        .await;
    assert_eq!(entry["reason"], "unsubscribe", "{entry}");
    assert_eq!(entry["message_id"], ada_id);
    assert!(!suppressed("bob@example.test").await);
    let (_, events) =
        r.ts.call(
            &key,
            "GET",
            "/migosmtp/v1/events?type=email.unsubscribed",
            None,
        )
        .await;
    let events: Vec<Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["to"] == "ada@example.test")
        .cloned()
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["message_id"], ada_id);
    assert_eq!(events[0]["data"]["to"], "ada@example.test");
    assert_eq!(
        events[0]["data"]["list_id"],
        "Weekly news <weekly.dkim.test>"
    );

    // The next message to Ada is refused; to Bob it goes.
    let mut s = r.ts.authed(&r.account).await;
    s.cmd_expect("MAIL FROM:<news@dkim.test>", 250).await;
    let refused = s.cmd("RCPT TO:<ada@example.test>").await;
    assert_eq!(refused.code, 550, "{refused:?}");
    s.cmd_expect("RCPT TO:<bob@example.test>", 250).await;

    // The workspace's default, and over HTTP.
    let (status, _) =
        r.ts.admin(
            "PATCH",
            &format!("/admin/v1/workspaces/{ws}"),
            Some(json!({"tracking": {"unsubscribe": true}})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, sent) = r
        .ts
        .call(
            &key,
            "POST",
            "/migosmtp/v1/messages",
            Some(json!({"from": "news@dkim.test", "to": ["cy@example.test"], "subject": "s", "text": "t"})),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    let (status, sent) = r
        .ts
        .call(
            &key,
            "POST",
            "/migosmtp/v1/messages",
            Some(json!({"from": "news@dkim.test", "to": ["dee@example.test"], "subject": "s", "text": "t",
                        "tracking": {"unsubscribe": false}})),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while r.sinks[0].received().len() < 5 {
        assert!(tokio::time::Instant::now() < deadline, "not delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let received = r.sinks[0].received();
    let has_link = |to: &str| {
        let m = received
            .iter()
            .find(|m| m.rcpt_to.iter().any(|r| r == to))
            .unwrap();
        list_unsubscribe(&m.data).is_some()
    };
    assert!(has_link("cy@example.test"));
    assert!(!has_link("dee@example.test"));
}

/// Opens and clicks end to end: an HTTP send with tracking arrives with its
/// links wrapped and a pixel, still DKIM-valid; fetching the pixel and
/// following a link record `email.opened` and `email.clicked` (first or
/// not, person or machine) that reach a webhook receiver signed; the link
/// redirects to where it pointed; forged tokens and a pixel token used as
/// a link record nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opens_and_clicks_are_tracked_from_the_delivered_html() {
    let r = rig(vec![(56, sink())], [56, DOWN], |_| {}).await;
    let ws = r.account.workspace_id.clone();
    let key = r.ts.create_api_key(&ws, "migosmtp").await;
    r.signing_domain(None).await;
    let rx = Receiver::start().await;
    let (s, ep) =
        r.ts.call(
            &key,
            "POST",
            "/migosmtp/v1/webhooks",
            Some(json!({"url": rx.url("hooks"), "event_types": ["email.opened", "email.clicked"]})),
        )
        .await;
    assert_eq!(s, 201, "{ep}");
    rx.set_secrets("hooks", &[ep["secret"].as_str().unwrap()]);

    let html =
        "<html><body><p>Hallo <a href=\"https://shop.example.test/sale?a=1&amp;b=2\">Sale</a> \
                <a href=\"mailto:help@dkim.test\">Help</a></p></body></html>";
    let (status, sent) =
        r.ts.call(
            &key,
            "POST",
            "/migosmtp/v1/messages",
            Some(
                json!({"from": "news@dkim.test", "to": ["ada@example.test"], "subject": "Sale",
                        "text": "Sale: https://shop.example.test/sale", "html": html,
                        "tracking": {"opens": true, "clicks": true}}),
            ),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    let id = sent["messages"][0]["id"].as_str().unwrap().to_string();
    r.wait(sent["queue_id"].as_str().unwrap(), &["delivered"])
        .await;
    let data = r.sinks[0].received()[0].data.clone();
    r.assert_dkim_passes(&data).await;
    let parsed = mail_parser::MessageParser::default().parse(&data).unwrap();
    let delivered_html = parsed.body_html(0).unwrap().into_owned();
    let base = r.ts.http.clone();
    let pixels = tracked_urls(&delivered_html, &base, "o");
    let links = tracked_urls(&delivered_html, &base, "c");
    assert_eq!((pixels.len(), links.len()), (1, 1), "{delivered_html}");
    assert!(delivered_html.contains("mailto:help@dkim.test"));
    assert!(
        !delivered_html.contains("shop.example.test"),
        "{delivered_html}"
    );
    assert!(parsed
        .body_text(0)
        .unwrap()
        .contains("https://shop.example.test/sale"));

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
    // A person opens it, then Gmail's image proxy fetches it again.
    for ua in [firefox, "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"] {
        let resp = http
            .get(&pixels[0])
            .header("user-agent", ua)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "image/gif");
        assert!(resp.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("no-store"));
        assert!(resp.bytes().await.unwrap().starts_with(b"GIF89a"));
    }
    // A minute after delivery, a person clicks.
    r.ts.clock.advance_ms(60_000);
    let resp = http
        .get(&links[0])
        .header("user-agent", firefox)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(
        resp.headers()["location"],
        "https://shop.example.test/sale?a=1&b=2"
    );
    // Forged, truncated, or a pixel's token at the click endpoint: 404.
    let pixel_token = pixels[0].rsplit('/').next().unwrap();
    for url in [
        format!("{base}/c/{pixel_token}"),
        format!("{}x", &links[0][..links[0].len() - 1]),
        format!("{base}/c/garbage"),
        format!("{base}/o/{}", &pixel_token[..pixel_token.len() / 2]),
    ] {
        let resp = http.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{url}");
    }

    let (_, events) =
        r.ts.call(
            &key,
            "GET",
            "/migosmtp/v1/events?type=email.opened,email.clicked&order=asc",
            None,
        )
        .await;
    let events = events["events"].as_array().unwrap().clone();
    let summary: Vec<(String, bool, bool)> = events
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["data"]["first"].as_bool().unwrap(),
                e["data"]["machine"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("email.opened".to_string(), true, false),
            ("email.opened".to_string(), false, true),
            ("email.clicked".to_string(), true, false),
        ],
        "{events:?}"
    );
    for e in &events {
        assert_eq!(e["data"]["message_id"], id.as_str());
        assert_eq!(e["data"]["to"], "ada@example.test");
        assert_eq!(e["data"]["ip_address"], "127.0.0.1");
    }
    assert_eq!(events[0]["data"]["user_agent"], firefox);
    assert_eq!(
        events[2]["data"]["link_url"],
        "https://shop.example.test/sale?a=1&b=2"
    );
    assert!(events[0]["data"]["opened_at"].is_string());
    assert!(events[2]["data"]["clicked_at"].is_string());

    // The receiver gets all three, signed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while rx.count("hooks") < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "webhooks not delivered"
        );
        r.ts.server.as_ref().unwrap().events.kick();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = rx.received("hooks");
    assert!(got.iter().all(|g| g.verified()), "signed");
    let mut types: Vec<&str> = got
        .iter()
        .map(|g| g.body["event"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(types, ["email.clicked", "email.opened", "email.opened"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_rsa_signature_verifies() {
    dkim_round_trip("rsa-2048", 32).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_ed25519_signature_verifies() {
    dkim_round_trip("ed25519", 33).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_domains_are_one_workspace_each() {
    let r = rig(vec![(34, sink())], [34, DOWN], |_| {}).await;
    let path = format!("/admin/v1/workspaces/{}/domains", r.account.workspace_id);
    let (s, _) =
        r.ts.admin(
            "POST",
            &path,
            Some(json!({"domain": "Shared.Test", "algorithm": "ed25519"})),
        )
        .await;
    assert_eq!(s, 201);
    let other = r.ts.create_workspace("other", None).await;
    let (s, body) =
        r.ts.admin(
            "POST",
            &format!("/admin/v1/workspaces/{other}/domains"),
            Some(json!({"domain": "shared.test"})),
        )
        .await;
    assert_eq!(s, 409, "{body}");
    let (s, body) =
        r.ts.admin("POST", &path, Some(json!({"domain": "not a domain"})))
            .await;
    assert_eq!(s, 400, "{body}");
    let (s, body) =
        r.ts.admin(
            "POST",
            "/admin/v1/workspaces/ws_0000000000000000/domains",
            Some(json!({"domain": "x.test"})),
        )
        .await;
    assert_eq!(s, 404, "{body}");
    let (s, list) = r.ts.get(&path).await;
    assert_eq!(s, 200);
    assert_eq!(list["domains"].as_array().unwrap().len(), 1);
    assert!(
        list.to_string().find("private").is_none(),
        "private key leaked: {list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smarthost_route_replaces_mx_lookup() {
    // The relay listens on its own address and port; DNS knows nothing of it.
    let relay_sink = Sink::start(SinkConfig::new(SocketAddr::new(
        IpAddr::V4(loopback(35)),
        0,
    )))
    .await
    .unwrap();
    let relay = relay_sink.addr;
    let r2 = rig(vec![(36, sink())], [36, DOWN], |c| {
        for_example_test(
            c,
            ShapingOverride {
                smarthost: Some(relay.to_string()),
                ..Default::default()
            },
        );
    })
    .await;
    let qid = r2
        .send("app@sender.test", &["kim@example.test"], "via relay")
        .await;
    let msgs = r2.wait(&qid, &["delivered"]).await;
    assert_eq!(
        last_attempt(&msgs[0]).0["remote_ip"],
        relay.ip().to_string()
    );
    assert_eq!(relay_sink.messages(), 1);
    assert_eq!(r2.sinks[0].messages(), 0, "the MX was not used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_tls_refuses_a_self_signed_certificate() {
    let r = rig(
        vec![(
            37,
            SinkConfig {
                starttls: true,
                ..sink()
            },
        )],
        [37, DOWN],
        |c| {
            for_example_test(
                c,
                ShapingOverride {
                    tls: Some(TlsPolicy::RequiredVerified),
                    ..Default::default()
                },
            );
        },
    )
    .await;
    let qid = r
        .send("app@sender.test", &["lee@example.test"], "verified only")
        .await;
    let msgs = r.wait(&qid, &["deferred"]).await;
    let reason = last_attempt(&msgs[0]).1["defer_reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("TLS"), "{reason}");
    assert_eq!(
        r.sinks[0].messages(),
        0,
        "nothing sent over an unverified channel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_spaces_messages_out() {
    let r = rig(vec![(38, sink())], [38, DOWN], |c| {
        for_example_test(
            c,
            ShapingOverride {
                messages_per_second: Some(20.0),
                ..Default::default()
            },
        );
    })
    .await;
    let qid = r
        .send(
            "app@sender.test",
            &numbered("rate", 6, "example.test"),
            "paced",
        )
        .await;
    r.wait(&qid, &["delivered"]).await;
    let mut at: Vec<_> = r.sinks[0].received().iter().map(|m| m.at).collect();
    at.sort();
    // 20 per second: consecutive messages start at least 50 ms apart, so
    // six take at least 250 ms (a lower bound only; never flaky).
    let span = at[5].duration_since(at[0]);
    assert!(
        span >= Duration::from_millis(240),
        "six messages in {span:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utf8_recipient_needs_smtputf8_at_the_remote() {
    let r = rig(
        vec![(
            39,
            SinkConfig {
                smtputf8: false,
                ..sink()
            },
        )],
        [39, DOWN],
        |_| {},
    )
    .await;
    let mut s = r.ts.authed(&r.account).await;
    s.cmd_expect("MAIL FROM:<app@sender.test> SMTPUTF8", 250)
        .await;
    s.cmd_expect("RCPT TO:<josé@example.test>", 250).await;
    s.cmd_expect("DATA", 354).await;
    let data = message("app@sender.test", "x@example.test", "utf8", "hi");
    s.send_raw(format!("{data}.\r\n").as_bytes()).await;
    let reply = s.reply().await.unwrap();
    assert_eq!(reply.code, 250);
    let msgs = r.wait(&queue_id(&reply), &["bounced"]).await;
    let (_, detail) = last_attempt(&msgs[0]);
    assert_eq!(detail["bounce_code"], "5.6.7");
    assert_eq!(r.sinks[0].messages(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_workspace_bulk_send_does_not_hold_back_another() {
    // A destination that takes 20 messages a second: a bulk send of 40 from
    // one workspace takes two seconds to drain.
    let r = rig(vec![(40, sink())], [40, DOWN], |c| {
        one_paced_connection(c, 20.0);
    })
    .await;
    let bulk = r
        .send(
            "news@bulk.test",
            &numbered("bulk", 40, "example.test"),
            "bulk",
        )
        .await;
    assert!(
        r.sinks[0]
            .wait_for_messages(2, Duration::from_secs(10))
            .await
    );
    // Another workspace sends one message while the backlog drains.
    let other = r.ts.create_account("transactional", 100).await;
    let mut s = r.ts.authed(&other).await;
    let reply = s
        .send_mail(
            "app@other.test",
            &["vip@example.test"],
            &message("app@other.test", "vip@example.test", "receipt", "hi"),
        )
        .await;
    assert_eq!(reply.code, 250);
    r.wait(&queue_id(&reply), &["delivered"]).await;
    let order: Vec<String> = r.sinks[0]
        .received()
        .iter()
        .map(|m| m.rcpt_to[0].clone())
        .collect();
    let position = order.iter().position(|t| t == "vip@example.test").unwrap();
    let before = order.len();
    r.wait(&bulk, &["delivered"]).await;
    assert!(
        position < before && r.sinks[0].messages() == 41,
        "the other workspace's message waited for the bulk backlog: {order:?}"
    );
    // It went out next to where it was submitted, not after all 40.
    assert!(position < 12, "delivered as number {position}: {order:?}");
}

/// Spool retention on the injectable clock: a finished message (delivered,
/// or bounced once its queue lifetime ran out) is kept `[spool]
/// retention_days` after it finished, then its record, its place in the
/// listings and its count are gone; a younger one stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_messages_are_forgotten_after_the_retention() {
    const DAY: i64 = 86_400_000;
    let script =
        Script::default().on_rcpt_containing("busy", Action::reply("450 4.2.1 Mailbox busy"));
    let r = scripted_rig(46, script, |c| c.spool.retention_days = 30.0).await;
    let server = r.ts.server.as_ref().unwrap();
    let keep_ms = 30 * DAY;
    let ws = &r.account.workspace_id;
    let qid = r
        .send(
            "app@sender.test",
            &["ok@a-only.test", "busy@a-only.test"],
            "kept for a while",
        )
        .await;
    let msgs = r.wait(&qid, &["delivered", "deferred"]).await;
    let id = |to: &str| {
        msgs.iter()
            .find(|m| m["to"] == to)
            .map(|m| m["id"].as_str().unwrap().to_string())
            .unwrap()
    };
    let (delivered, busy) = (id("ok@a-only.test"), id("busy@a-only.test"));
    assert_eq!(
        r.ts.get(&format!("/admin/v1/messages/{delivered}")).await.1["status"],
        "delivered"
    );

    // Four days on, the busy one has outlived its 3-day queue lifetime.
    r.ts.clock.set_ms(START_MS + 4 * DAY);
    r.kick();
    r.wait(&qid, &["delivered", "bounced"]).await;
    let counts = |v: Value| (v["delivered"].as_u64(), v["bounced"].as_u64());
    assert_eq!(
        counts(r.ts.get("/admin/v1/queue").await.1),
        (Some(1), Some(1))
    );

    // Just inside the retention of the delivered one: nothing goes.
    r.ts.clock.set_ms(START_MS + keep_ms);
    let pass = rackwave_queue::retention::pass(&server.spool, &r.ts.clock, keep_ms)
        .await
        .unwrap();
    assert_eq!(pass.pruned, 0);
    assert_eq!(
        r.ts.get(&format!("/admin/v1/messages/{delivered}")).await.0,
        200
    );

    // Past it: the delivered one is gone everywhere, the bounced one (it
    // finished four days later) stays.
    r.ts.clock.set_ms(START_MS + keep_ms + 1_000);
    let pass = rackwave_queue::retention::pass(&server.spool, &r.ts.clock, keep_ms)
        .await
        .unwrap();
    assert_eq!(pass.pruned, 1);
    let (status, body) = r.ts.get(&format!("/admin/v1/messages/{delivered}")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    let (_, page) =
        r.ts.get(&format!("/admin/v1/messages?queue_id={qid}"))
            .await;
    let ids: Vec<_> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, [json!(busy)]);
    let (_, page) =
        r.ts.get(&format!("/admin/v1/messages?workspace={ws}"))
            .await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1, "{page}");
    let (_, page) =
        r.ts.get(&format!(
            "/admin/v1/messages?workspace={ws}&status=delivered"
        ))
        .await;
    assert_eq!(page["messages"], json!([]));
    assert_eq!(
        counts(r.ts.get("/admin/v1/queue").await.1),
        (Some(0), Some(1))
    );
    let metrics = reqwest::get(format!("{}/metrics", r.ts.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("\nrackwave_spool_pruned_total 1\n"),
        "{metrics}"
    );

    // And four days later the bounced one follows; the body goes with the
    // last message of its submission.
    r.ts.clock.set_ms(START_MS + 4 * DAY + keep_ms + 60_000);
    let pass = rackwave_queue::retention::pass(&server.spool, &r.ts.clock, keep_ms)
        .await
        .unwrap();
    assert_eq!(pass.pruned, 1);
    assert_eq!(r.ts.get(&format!("/admin/v1/messages/{busy}")).await.0, 404);
    assert_eq!(
        counts(r.ts.get("/admin/v1/queue").await.1),
        (Some(0), Some(0))
    );
    assert!(server.spool.body(&qid).unwrap().is_none());
    let (_, page) =
        r.ts.get(&format!("/admin/v1/messages?workspace={ws}"))
            .await;
    assert_eq!(page["messages"], json!([]));
}

/// The value of one metric series in `/metrics` text (0 when absent).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// A bulk of 2,000 messages to one destination with the shipped shaping
/// and a small ready queue (200, so the queue fills and drains ten times):
/// the messages waiting for a connection wait in memory. Each is leased
/// exactly once and tried exactly once: nothing is handed back to the spool
/// for capacity and leased again later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_to_one_destination_waits_in_memory_not_in_the_spool() {
    let r = rig(vec![(47, sink())], [47, DOWN], |c| {
        c.delivery.ready_queue_limit = 200;
    })
    .await;
    const N: usize = 2_000;
    let mut queue_ids = Vec::new();
    for batch in 0..N / 100 {
        let rcpts: Vec<String> = (0..100)
            .map(|i| format!("bulk{}@example.test", batch * 100 + i))
            .collect();
        let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
        queue_ids.push(r.send("news@sender.test", &refs, "bulk").await);
    }
    let sink = &r.sinks[0];
    assert!(
        sink.wait_for_messages(N as u64, Duration::from_secs(60))
            .await,
        "delivered {} of {N}: {:?}",
        sink.messages(),
        sink.stats()
    );
    for qid in &queue_ids {
        for m in r.wait(qid, &["delivered"]).await {
            assert_eq!(m["attempts"], 1, "{m}");
        }
    }
    let text = r.ts.metrics().await;
    assert_eq!(metric(&text, "rackwave_delivery_leases_total"), N as f64);
    assert_eq!(metric(&text, "rackwave_delivery_releases_total"), 0.0);
    assert_eq!(
        metric(&text, "rackwave_delivery_ready_wait_seconds_count"),
        N as f64
    );
    // The shipped shaping: up to 20 connections, each carrying many.
    let stats = sink.stats();
    assert!(sink.max_concurrent_connections() <= 20, "{stats:?}");
    assert!(sink.max_messages_per_connection() > 100, "{stats:?}");
    assert_eq!(sink.messages(), N as u64, "each delivered exactly once");
}

/// A throttling reply pauses the destination on the injectable clock: no
/// connection and no attempt until the pause ends (even for the throttled
/// message, due again earlier), the pause is shown by the admin API and the
/// metrics, the next throttling reply in a row pauses longer, and an
/// operator can lift the pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_reply_pauses_the_destination() {
    let script = Script::default()
        .on(
            Step::Rcpt,
            Action::reply("421 4.7.0 Try again later, closing connection"),
        )
        .times(2);
    let r = scripted_rig(48, script, |c| {
        c.delivery.retry_schedule_secs = vec![60];
        c.delivery.throttle_pause_secs = vec![600, 1200];
    })
    .await;
    let t0 = r.ts.clock.now_ms();
    let qid = r
        .send(
            "app@sender.test",
            &numbered("user", 5, "example.test"),
            "throttled",
        )
        .await;

    let d = paused_destination(&r, "example.test", 1).await;
    assert_eq!(d["paused_until"], rackwave_core::rfc3339(t0 + 600_000));
    assert!(d["pause_reason"].as_str().unwrap().contains("4.7.0"), "{d}");
    assert_eq!(d["throttles"], 1);
    assert_eq!(d["waiting"], 4, "{d}");
    let text = r.ts.metrics().await;
    let series = "rackwave_delivery_destination_paused{destination=\"example.test\"}";
    assert_eq!(metric(&text, series), 1.0, "{text}");

    // The throttled message is due again after 60 s, the pause lasts 600 s:
    // nothing is tried before the pause ends.
    let connections = r.sinks[0].connections();
    r.ts.clock.advance_ms(120_000);
    r.kick();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        r.sinks[0].connections(),
        connections,
        "connected while paused"
    );
    let (_, page) =
        r.ts.get(&format!("/admin/v1/messages?queue_id={qid}"))
            .await;
    let tried: usize = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["status"] != "queued")
        .count();
    assert_eq!(tried, 1, "{page}");

    // The pause ends; the next message is throttled again: a longer pause.
    r.ts.clock.advance_ms(480_000);
    let t1 = r.ts.clock.now_ms();
    r.kick();
    let d = paused_destination(&r, "example.test", 2).await;
    assert_eq!(d["paused_until"], rackwave_core::rfc3339(t1 + 1_200_000));

    // An operator lifts it: the waiting messages go at once, without the
    // clock moving.
    let (status, body) =
        r.ts.admin("POST", "/admin/v1/destinations/example.test/resume", None)
            .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["paused"], false);
    let (status, body) =
        r.ts.admin("POST", "/admin/v1/destinations/example.test/resume", None)
            .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    let (status, _) =
        r.ts.admin("POST", "/admin/v1/destinations/nowhere.test/resume", None)
            .await;
    assert_eq!(status, 404);
    assert!(
        r.sinks[0]
            .wait_for_messages(3, Duration::from_secs(20))
            .await
    );
    // The two throttled messages come back on their retry schedule.
    r.ts.clock.advance_ms(60_000);
    let msgs = r.wait(&qid, &["delivered"]).await;
    let mut attempts: Vec<i64> = msgs
        .iter()
        .map(|m| m["attempts"].as_i64().unwrap())
        .collect();
    attempts.sort();
    assert_eq!(attempts, [1, 1, 1, 2, 2]);
    let text = r.ts.metrics().await;
    let series = "rackwave_delivery_throttle_pauses_total{destination=\"example.test\"}";
    assert_eq!(metric(&text, series), 2.0);
}

/// Waits until `GET /admin/v1/queue` shows `domain` paused after at least
/// `throttles` throttling replies; returns its entry.
async fn paused_destination(r: &Rig, domain: &str, throttles: u64) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, q) = r.ts.get("/admin/v1/queue").await;
        assert_eq!(status, 200);
        let d = q["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["domain"] == domain)
            .cloned()
            .unwrap_or(Value::Null);
        if d["paused"] == true && d["throttles"].as_u64() >= Some(throttles) {
            return d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{domain} never paused: {q}"
        );
        r.kick();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A receiver that drops a reused connection between messages (as servers
/// do after their own count or idle time): the message that was about to
/// start goes to the next connection untried, with no deferral recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_connection_dropped_between_messages_costs_no_attempt() {
    let script = Script::default()
        .on(Step::Mail, Action::Close)
        .on_message_in_connection(3)
        .times(1);
    let r = scripted_rig(49, script, |_| {}).await;
    let qid = r
        .send(
            "app@sender.test",
            &numbered("user", 6, "example.test"),
            "six",
        )
        .await;
    let msgs = r.wait(&qid, &["delivered"]).await;
    for m in &msgs {
        assert_eq!(m["attempts"], 1, "{m}");
    }
    assert_eq!(r.sinks[0].messages(), 6);
    assert!(r.sinks[0].connections() >= 2, "{:?}", r.sinks[0].stats());
}

/// A slow destination holds at most its ready queue's share of the lease
/// budget: with room for 30 leases and a ready queue of 10, a backlog of
/// 40 to a destination taking 10 messages a second does not hold back mail
/// of the same workspace to another destination, submitted after it (with
/// the whole budget leased to the slow one, that mail would wait for the
/// ten messages behind the budget to be leased first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_destination_does_not_hold_the_lease_budget() {
    let r = rig(vec![(50, sink())], [50, DOWN], |c| {
        c.delivery.max_in_flight = 30;
        c.delivery.ready_queue_limit = 10;
        one_paced_connection(c, 10.0);
    })
    .await;
    let slow = r
        .send(
            "news@sender.test",
            &numbered("slow", 40, "example.test"),
            "slow",
        )
        .await;
    assert!(
        r.sinks[0]
            .wait_for_messages(1, Duration::from_secs(10))
            .await
    );
    let fast = r
        .send(
            "news@sender.test",
            &["a@two-mx.test", "b@two-mx.test", "c@two-mx.test"],
            "fast",
        )
        .await;
    r.wait(&fast, &["delivered"]).await;
    let delivered_slow = r.sinks[0]
        .received()
        .iter()
        .filter(|m| m.rcpt_to[0].ends_with("@example.test"))
        .count();
    assert!(
        delivered_slow < 8,
        "the other destination waited for {delivered_slow} of the slow one's messages"
    );
    r.wait(&slow, &["delivered"]).await;
    assert_eq!(r.sinks[0].messages(), 43);
}

/// A destination that throttles at the greeting is paused with its mail
/// untried (no attempt is recorded for a connection that carried nothing),
/// and one that never stops throttling does not keep mail forever: once a
/// waiting message is past its queue lifetime, the next throttling reply
/// bounces it as expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_at_the_greeting_mail_waits_untried_until_it_expires() {
    let script = Script::default().on(
        Step::Greeting,
        Action::reply("421 4.7.0 Try again later, closing connection"),
    );
    let r = scripted_rig(51, script, |c| {
        c.delivery.throttle_pause_secs = vec![300];
        c.delivery.max_queue_lifetime_secs = 600;
    })
    .await;
    let qid = r
        .send(
            "app@sender.test",
            &numbered("user", 3, "example.test"),
            "door",
        )
        .await;
    let d = paused_destination(&r, "example.test", 1).await;
    assert_eq!(d["waiting"], 3, "{d}");
    let (_, page) =
        r.ts.get(&format!("/admin/v1/messages?queue_id={qid}"))
            .await;
    for m in page["messages"].as_array().unwrap() {
        assert_eq!(m["status"], "queued", "{m}");
    }
    // Throttled again when the pause ends; not yet expired.
    r.ts.clock.advance_ms(300_000);
    paused_destination(&r, "example.test", 2).await;
    // At the end of the lifetime the next throttling reply bounces them.
    r.ts.clock.advance_ms(300_000);
    let msgs = r.wait(&qid, &["bounced"]).await;
    for m in &msgs {
        let (attempt, detail) = last_attempt(m);
        assert_eq!(detail["bounce_type"], "expired", "{m}");
        assert!(attempt["reply"]
            .as_str()
            .unwrap()
            .contains("Try again later"));
        assert_eq!(m["attempts"], 1, "{m}");
    }
    assert_eq!(r.sinks[0].messages(), 0);
}

/// The HTTP send API end to end: text, HTML, a UTF-8 subject and display
/// name, cc, bcc, reply-to, a custom header and an attachment arrive intact
/// at the MX (parsed back with mail-parser), DKIM-signed for the workspace's
/// domain; bcc is delivered but never shown; tags and metadata ride on the
/// message's events; and the same message sent over SMTP produces the same
/// events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_send_arrives_intact_signed_and_tagged() {
    use base64::Engine;
    use mail_parser::MimeHeaders;
    let r = rig(vec![(52, sink())], [52, DOWN], |_| {}).await;
    let ws = &r.account.workspace_id;
    r.signing_domain(None).await;
    let key = r.ts.create_api_key(ws, "migosmtp").await;

    let pdf: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 256) as u8).collect();
    let body = json!({
        "from": "Zoë Müller <news@dkim.test>",
        "to": ["Ada <ada@example.test>"],
        "cc": ["cy@example.test"],
        "bcc": ["hidden@example.test", "not an address"],
        "reply_to": ["Support <help@dkim.test>"],
        "subject": "Grüße aus Köln ✓",
        "text": "Hallo Ada,\nschöne Grüße.\n",
        "html": "<p>Hallo <b>Ada</b>, schöne Grüße.</p>",
        "headers": {"X-Campaign": "frühling"},
        "attachments": [{"filename": "Bericht März.pdf", "content_type": "application/pdf",
                         "content": base64::engine::general_purpose::STANDARD.encode(&pdf)}],
        "tags": ["spring", "de"],
        "metadata": {"order": "A-17"}
    });
    let (status, sent) =
        r.ts.call(&key, "POST", "/migosmtp/v1/messages", Some(body))
            .await;
    assert_eq!(status, 202, "{sent}");
    let to: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        to,
        ["ada@example.test", "cy@example.test", "hidden@example.test"]
    );
    assert_eq!(sent["rejected"][0]["to"], "not an address");
    assert_eq!(sent["rejected"][0]["code"], "invalid_address");
    let qid = sent["queue_id"].as_str().unwrap().to_string();
    let msgs = r.wait(&qid, &["delivered"]).await;
    assert_eq!(msgs.len(), 3);

    let received = r.sinks[0].received();
    let ada = received
        .iter()
        .find(|m| m.rcpt_to == ["ada@example.test"])
        .unwrap();
    let data = ada.data.clone();
    assert!(String::from_utf8_lossy(&data).starts_with("DKIM-Signature:"));
    assert!(!String::from_utf8_lossy(&data)
        .to_lowercase()
        .contains("hidden@"));
    let parsed = mail_parser::MessageParser::default().parse(&data).unwrap();
    assert_eq!(parsed.subject(), Some("Grüße aus Köln ✓"));
    let from = parsed.from().unwrap().first().unwrap();
    assert_eq!(from.name(), Some("Zoë Müller"));
    assert_eq!(from.address(), Some("news@dkim.test"));
    assert_eq!(
        parsed.reply_to().unwrap().first().unwrap().address(),
        Some("help@dkim.test")
    );
    // An RFC 2047 word: read back as a Subject would be.
    let campaign = parsed.header_raw("X-Campaign").unwrap().trim();
    let word = format!("Subject: {campaign}\r\n\r\n");
    let word = mail_parser::MessageParser::default()
        .parse(word.as_bytes())
        .unwrap();
    assert_eq!(word.subject(), Some("frühling"), "{campaign}");
    assert_eq!(
        parsed.body_text(0).as_deref().map(str::trim_end),
        Some("Hallo Ada,\nschöne Grüße.")
    );
    assert!(parsed.body_html(0).unwrap().contains("<b>Ada</b>"));
    let attachment = parsed.attachment(0).unwrap();
    assert_eq!(attachment.attachment_name(), Some("Bericht März.pdf"));
    assert_eq!(attachment.contents(), pdf.as_slice());

    r.assert_dkim_passes(&data).await;

    // Tags and metadata ride on every event of the message.
    let (status, feed) =
        r.ts.call(&key, "GET", "/migosmtp/v1/events?limit=100", None)
            .await;
    assert_eq!(status, 200, "{feed}");
    let http_events: Vec<&Value> = feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["to"] == "ada@example.test")
        .collect();
    assert!(!http_events.is_empty(), "{feed}");
    for e in &http_events {
        assert_eq!(e["data"]["tags"], json!(["spring", "de"]), "{e}");
        assert_eq!(e["data"]["metadata"], json!({"order": "A-17"}), "{e}");
    }

    // The same message over SMTP: the same events.
    let smtp_qid = r
        .send("news@dkim.test", &["bo@example.test"], "over smtp")
        .await;
    let smtp = r.wait(&smtp_qid, &["delivered"]).await;
    assert_eq!(events(&smtp[0]), events(&msgs[0]));

    // Stats per day, all messages and by tag (the event log is written
    // behind the spool: wait for it).
    let today = &rackwave_core::rfc3339(r.ts.clock.now_ms())[..10];
    let counts = |tag: &'static str| {
        let (ts, key) = (&r.ts, key.clone());
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let path = format!("/migosmtp/v1/stats?since={today}&until={today}{tag}");
                let (s, stats) = ts.call(&key, "GET", &path, None).await;
                assert_eq!(s, 200, "{stats}");
                let day = stats["days"][0]["counts"].clone();
                if day["email.delivered"] == json!(if tag.is_empty() { 4 } else { 3 }) {
                    assert_eq!(stats["days"].as_array().unwrap().len(), 1);
                    assert_eq!(stats["days"][0]["date"], today);
                    return day;
                }
                assert!(tokio::time::Instant::now() < deadline, "{stats}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let all = counts("").await;
    assert_eq!(all["email.queued"], 4);
    assert_eq!(all["email.sent"], 4);
    assert_eq!(all["email.bounced"], 0, "every email.* type is listed");
    let spring = counts("&tag=spring").await;
    assert_eq!(spring["email.queued"], 3);
    let (s, _) =
        r.ts.call(&key, "GET", "/migosmtp/v1/stats?since=2026-13-01", None)
            .await;
    assert_eq!(s, 400);
}

/// Sending domains with the workspace's key, verified through a real DNS
/// server: every record to publish is listed with its purpose; the status
/// follows what the zone publishes (verified with DKIM, SPF and the return
/// path; unverified again when SPF is removed), with what was found; other
/// workspaces see nothing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_domains_are_verified_through_dns() {
    use hickory_proto::rr::RecordType;
    let r = rig(vec![(53, sink())], [53, DOWN], |_| {}).await;
    let key =
        r.ts.create_api_key(&r.account.workspace_id, "migosmtp")
            .await;
    let other_ws = r.ts.create_workspace("other", None).await;
    let other = r.ts.create_api_key(&other_ws, "migosmtp").await;

    let (s, d) =
        r.ts.call(
            &key,
            "POST",
            "/migosmtp/v1/domains",
            Some(json!({"domain": "dkim.test", "selector": "s1"})),
        )
        .await;
    assert_eq!(s, 201, "{d}");
    assert_eq!(d["status"], "unverified");
    let records = d["records"].as_array().unwrap();
    let purposes: Vec<&str> = records
        .iter()
        .map(|x| x["purpose"].as_str().unwrap())
        .collect();
    assert_eq!(purposes, ["dkim", "spf", "return_path", "dmarc"]);
    let record = |purpose: &str| {
        records
            .iter()
            .find(|x| x["purpose"] == purpose)
            .unwrap()
            .clone()
    };
    assert_eq!(record("dkim")["name"], "s1._domainkey.dkim.test");
    assert_eq!(record("spf")["value"], "v=spf1 a:out.rackwave.test ~all");
    assert_eq!(record("return_path")["type"], "CNAME");
    assert_eq!(record("return_path")["name"], "rw-bounces.dkim.test");
    assert_eq!(record("return_path")["value"], "bounces.rackwave.test");

    let verify = |key: String| {
        let ts = &r.ts;
        async move {
            ts.call(&key, "POST", "/migosmtp/v1/domains/dkim.test/verify", None)
                .await
        }
    };
    let (s, v) = verify(key.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "unverified");
    assert!(v["records"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["verified"] == false));

    let dkim_value = record("dkim")["value"].as_str().unwrap().to_string();
    r.dns
        .add_record(&format!("s1._domainkey.dkim TXT \"{dkim_value}\""));
    r.dns
        .add_record("dkim 0 TXT \"v=spf1 ip4:192.0.2.1 a:out.rackwave.test -all\"");
    r.dns
        .add_record("rw-bounces.dkim CNAME bounces.rackwave.test.");
    let (_, v) = verify(key.clone()).await;
    assert_eq!(v["status"], "verified", "{v}");
    assert!(v["verified_at"].is_string());
    let checked: Vec<(String, bool)> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["purpose"].as_str().unwrap().to_string(),
                x["verified"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        checked,
        [
            ("dkim".to_string(), true),
            ("spf".to_string(), true),
            ("return_path".to_string(), true),
            ("dmarc".to_string(), false)
        ]
    );

    // Verified: mail from any other domain is refused, over SMTP at MAIL
    // (the envelope) and after DATA (the header From), and over HTTP.
    let mut smtp = r.ts.authed(&r.account).await;
    let reply = smtp.cmd("MAIL FROM:<app@sender.test>").await;
    assert_eq!(reply.code, 553, "{reply:?}");
    assert!(reply.text().contains("5.7.1"), "{reply:?}");
    let forged = "From: app@sender.test\r\nTo: x@example.test\r\nSubject: s\r\n\r\nhi\r\n";
    let reply = smtp
        .send_mail("news@dkim.test", &["x@example.test"], forged)
        .await;
    assert_eq!(reply.code, 553, "{reply:?}");
    // A second author of another domain, or a second From field, does not
    // slip past.
    for (forged, code) in [
        (
            "From: news@dkim.test, ceo@bank.test\r\nSubject: s\r\n\r\nhi\r\n",
            553,
        ),
        (
            "From: news@dkim.test\r\nFrom: ceo@bank.test\r\nSubject: s\r\n\r\nhi\r\n",
            554,
        ),
    ] {
        let reply = smtp
            .send_mail("news@dkim.test", &["x@example.test"], forged)
            .await;
        assert_eq!(reply.code, code, "{forged:?}: {reply:?}");
    }
    let send =
        |from: &str| json!({"from": from, "to": ["x@example.test"], "subject": "s", "text": "hi"});
    let (s, refused) =
        r.ts.call(
            &key,
            "POST",
            "/migosmtp/v1/messages",
            Some(send("app@sender.test")),
        )
        .await;
    assert_eq!(s, 422, "{refused}");
    let (s, sent) =
        r.ts.call(
            &key,
            "POST",
            "/migosmtp/v1/messages",
            Some(send("news@dkim.test")),
        )
        .await;
    assert_eq!(s, 202);
    // Mail from the verified domain bounces to its own return-path host
    // (VERP), so the envelope aligns with it for DMARC.
    r.wait(sent["queue_id"].as_str().unwrap(), &["delivered"])
        .await;
    let mail_from = r.sinks[0].received().last().unwrap().mail_from.clone();
    assert!(mail_from.starts_with("bounce-msg_"), "{mail_from}");
    assert!(mail_from.ends_with("@rw-bounces.dkim.test"), "{mail_from}");
    // Unless the operator allows the workspace other domains.
    let (s, ws) =
        r.ts.admin(
            "PATCH",
            &format!("/admin/v1/workspaces/{}", r.account.workspace_id),
            Some(json!({"allow_unverified_senders": true})),
        )
        .await;
    assert_eq!(s, 200, "{ws}");
    assert_eq!(ws["allow_unverified_senders"], true);
    let (s, sent) =
        r.ts.call(
            &key,
            "POST",
            "/migosmtp/v1/messages",
            Some(send("app@sender.test")),
        )
        .await;
    assert_eq!(s, 202);
    r.wait(sent["queue_id"].as_str().unwrap(), &["delivered"])
        .await;
    let mail_from = r.sinks[0].received().last().unwrap().mail_from.clone();
    assert!(mail_from.ends_with("@bounces.rackwave.test"), "{mail_from}");
    r.ts.admin(
        "PATCH",
        &format!("/admin/v1/workspaces/{}", r.account.workspace_id),
        Some(json!({"allow_unverified_senders": false})),
    )
    .await;

    // SPF changed (published with TTL 0, so no resolver keeps the old
    // one): unverified again, and the answer says what was found.
    assert_eq!(r.dns.remove_records("dkim", RecordType::TXT), 1);
    r.dns.add_record("dkim 0 TXT \"v=spf1 -all\"");
    let (_, v) = verify(key.clone()).await;
    assert_eq!(v["status"], "unverified", "{v}");
    let spf = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["purpose"] == "spf")
        .unwrap()
        .clone();
    assert_eq!(spf["verified"], false);
    assert_eq!(spf["found"], json!(["v=spf1 -all"]));
    let (_, listed) = r.ts.call(&key, "GET", "/migosmtp/v1/domains", None).await;
    assert_eq!(listed["domains"][0]["status"], "unverified");

    // Another workspace sees nothing of it.
    for (method, path) in [
        ("GET", "/migosmtp/v1/domains/dkim.test"),
        ("POST", "/migosmtp/v1/domains/dkim.test/verify"),
        ("DELETE", "/migosmtp/v1/domains/dkim.test"),
    ] {
        let (s, _) = r.ts.call(&other, method, path, None).await;
        assert_eq!(s, 404, "{method} {path}");
    }
    let (_, listed) = r.ts.call(&other, "GET", "/migosmtp/v1/domains", None).await;
    assert!(listed["domains"].as_array().unwrap().is_empty());
    let (s, _) =
        r.ts.call(&key, "DELETE", "/migosmtp/v1/domains/dkim.test", None)
            .await;
    assert_eq!(s, 204);
    let (s, _) =
        r.ts.call(&key, "GET", "/migosmtp/v1/domains/dkim.test", None)
            .await;
    assert_eq!(s, 404);
}
