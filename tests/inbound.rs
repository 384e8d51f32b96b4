//! The inbound MX end to end: messages are delivered to a sink through the
//! delivery rig (real DNS, real SMTP), then the reports of
//! `fixtures/inbound/`, addressed to the return path the sink saw, are sent
//! to the MX over SMTP and must become events of the right message of the
//! right workspace, or be refused or dropped.

use std::time::Duration;

use rackwave_testkit::delivery::*;
use rackwave_testkit::*;
use serde_json::Value;

const FEEDBACK: &str = "fbl@bounces.rackwave.test";

/// A delivery rig whose server also runs the MX.
async fn mx_rig() -> Rig {
    rig(vec![(71, sink())], [71, DOWN], |c| {
        c.inbound.listen = Some("127.0.0.1:0".parse().unwrap());
        c.inbound.max_message_size = 1024 * 1024;
    })
    .await
}

/// A delivered message: its id, recipient, and the envelope sender (VERP)
/// and data the remote server got.
struct Sent {
    id: String,
    to: String,
    verp: String,
    data: String,
}

impl Sent {
    /// A fixture of `fixtures/inbound/` about this message.
    fn report(&self, name: &str) -> String {
        let path = format!("{}/fixtures/inbound/{name}", env!("CARGO_MANIFEST_DIR"));
        let unsubscribe = self
            .data
            .lines()
            .find_map(|l| l.strip_prefix("List-Unsubscribe: "))
            .unwrap_or("<https://nowhere.test/u/none>")
            .to_string();
        std::fs::read_to_string(&path)
            .unwrap()
            .replace("{{verp}}", &self.verp)
            .replace("{{rcpt}}", &self.to)
            .replace("{{sender}}", "news@sender.test")
            .replace("{{message_id}}", "inbound-test@sender.test")
            .replace("{{list_unsubscribe}}", &unsubscribe)
            .replace("{{date}}", "Tue, 01 Dec 2026 10:00:00 +0000")
    }
}

/// Sends one message from `account` to `to` (with `extra` header lines)
/// and waits until the sink has it.
async fn deliver(r: &Rig, account: &Account, to: &str, extra: &str) -> Sent {
    let mut s = r.ts.authed(account).await;
    let data = format!(
        "From: news@sender.test\r\nTo: {to}\r\nSubject: inbound\r\n{extra}Message-ID: <inbound-test@sender.test>\r\n\r\nHello.\r\n"
    );
    let reply = s.send_mail("news@sender.test", &[to], &data).await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let msgs = r.wait(&queue_id(&reply), &["delivered"]).await;
    let got = r.sinks[0]
        .received()
        .into_iter()
        .find(|m| m.rcpt_to == [to])
        .expect("the sink got it");
    Sent {
        id: msgs[0]["id"].as_str().unwrap().to_string(),
        to: to.to_string(),
        verp: got.mail_from.clone(),
        data: String::from_utf8_lossy(&got.data).into_owned(),
    }
}

/// Sends `report` to the MX from the null sender; the final reply.
async fn send_report(r: &Rig, to: &str, report: &str) -> SmtpReply {
    let mut s = RawSmtp::connect(r.ts.inbound.expect("MX listening")).await;
    s.expect(220).await;
    s.cmd_expect("EHLO mx.provider.test", 250).await;
    s.send_mail("", &[to], report).await
}

/// The message's detail from the admin API.
async fn message(r: &Rig, id: &str) -> Value {
    r.ts.get(&format!("/admin/v1/messages/{id}")).await.1
}

/// Polls the workspace's events of `kind` until `want` of them concern
/// `to` (the feed consumer records them shortly after the spool).
async fn events_for(r: &Rig, key: &str, kind: &str, to: &str, want: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, page) =
            r.ts.call(
                key,
                "GET",
                &format!("/migosmtp/v1/events?type={kind}"),
                None,
            )
            .await;
        let found: Vec<Value> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["data"]["to"] == to)
            .cloned()
            .collect();
        if found.len() >= want {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{kind} for {to}: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn suppression(r: &Rig, key: &str, address: &str) -> (u16, Value) {
    r.ts.call(
        key,
        "GET",
        &format!("/migosmtp/v1/suppressions/{address}"),
        None,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_reports_bounce_or_defer_the_right_message() {
    let r = mx_rig().await;
    let key =
        r.ts.create_api_key(&r.account.workspace_id, "migosmtp")
            .await;
    let ada = deliver(&r, &r.account, "ada@example.test", "").await;
    let bob = deliver(&r, &r.account, "bob@example.test", "").await;
    let cy = deliver(&r, &r.account, "cy@example.test", "").await;

    // Gmail says Ada's mailbox does not exist: her message bounces after
    // all, is classified like a reply during delivery, and her address is
    // suppressed.
    let reply = send_report(&r, &ada.verp, &ada.report("dsn-gmail-no-such-user.eml")).await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let msg = message(&r, &ada.id).await;
    assert_eq!(msg["status"], "bounced", "{msg}");
    assert_eq!(
        events(&msg),
        [
            "email.queued",
            "email.sent",
            "email.delivered",
            "email.bounced"
        ]
    );
    let bounced = events_for(&r, &key, "email.bounced", &ada.to, 1).await;
    let data = &bounced[0]["data"];
    assert_eq!(data["message_id"], ada.id.as_str());
    assert_eq!(data["bounce_type"], "invalid_recipient");
    assert_eq!(data["bounce_code"], "5.1.1");
    assert!(
        data["classified_by"]
            .as_str()
            .unwrap()
            .starts_with("delivery report"),
        "{data}"
    );
    assert!(
        data["smtp_response"]
            .as_str()
            .unwrap()
            .starts_with("550 5.1.1"),
        "{data}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let entry = loop {
        let (s, entry) = suppression(&r, &key, &ada.to).await;
        if s == 200 {
            break entry;
        }
        assert!(tokio::time::Instant::now() < deadline, "never suppressed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(entry["reason"], "hard_bounce");
    assert_eq!(entry["message_id"], ada.id.as_str());

    // The same report again (the sender retried): taken, recorded once.
    let reply = send_report(&r, &ada.verp, &ada.report("dsn-gmail-no-such-user.eml")).await;
    assert_eq!(reply.code, 250);
    assert_eq!(events(&message(&r, &ada.id).await).len(), 4);

    // Postfix reports Bob's mailbox full: a bounce, never a suppression.
    let reply = send_report(&r, &bob.verp, &bob.report("dsn-postfix-mailbox-full.eml")).await;
    assert_eq!(reply.code, 250);
    let bounced = events_for(&r, &key, "email.bounced", &bob.to, 1).await;
    assert_eq!(bounced[0]["data"]["bounce_type"], "mailbox_full");
    assert_eq!(suppression(&r, &key, &bob.to).await.0, 404);

    // A delay further down the line: recorded, still delivered for us.
    let reply = send_report(&r, &cy.verp, &cy.report("dsn-postfix-delayed.eml")).await;
    assert_eq!(reply.code, 250);
    let deferred = events_for(&r, &key, "email.deferred", &cy.to, 1).await;
    assert_eq!(deferred[0]["data"]["defer_type"], "temporary_failure");
    assert_eq!(
        deferred[0]["data"]["next_retry_at"], "2026-12-01T10:00:00Z",
        "Will-Retry-Until"
    );
    let msg = message(&r, &cy.id).await;
    assert_eq!(msg["status"], "delivered");

    // An out-of-office reply, a success report, a plain-text bounce and a
    // malformed report: taken so their senders stop, and dropped.
    for name in [
        "auto-reply-out-of-office.eml",
        "dsn-relay-success.eml",
        "plain-text-qmail-bounce.eml",
        "dsn-malformed.eml",
    ] {
        let reply = send_report(&r, &cy.verp, &cy.report(name)).await;
        assert_eq!(reply.code, 250, "{name}: {reply:?}");
    }
    let msg = message(&r, &cy.id).await;
    assert_eq!(msg["status"], "delivered");
    assert_eq!(
        events(&msg),
        [
            "email.queued",
            "email.sent",
            "email.delivered",
            "email.deferred"
        ]
    );
    let metrics = r.ts.metrics().await;
    for (outcome, n) in [
        ("bounced", 2),
        ("deferred", 1),
        ("auto_reply", 1),
        ("unreadable", 2),
        ("success", 1),
        ("not_delivered", 1),
    ] {
        let series = format!("rackwave_inbound_reports_total{{outcome=\"{outcome}\"}} {n}");
        assert!(metrics.contains(&series), "{series} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complaints_suppress_the_recipient_whichever_way_the_report_names_the_message() {
    let r = mx_rig().await;
    let ws = &r.account.workspace_id;
    let key = r.ts.create_api_key(ws, "migosmtp").await;
    let ada = deliver(&r, &r.account, "ada@example.test", "").await;
    let bob = deliver(&r, &r.account, "bob@example.test", "").await;
    let cy = deliver(
        &r,
        &r.account,
        "cy@example.test",
        "X-Rackwave-Tracking: unsubscribe=on\r\n",
    )
    .await;
    assert!(cy.data.contains("List-Unsubscribe: <"), "{}", cy.data);

    // Yahoo's loop, to the feedback address, names our envelope sender;
    // Microsoft's, to the return path, returns the message; an AOL-style
    // report with the recipient redacted keeps our signed unsubscribe link.
    for (to, sent, name, source) in [
        (
            FEEDBACK,
            &ada,
            "arf-yahoo-complaint.eml",
            "arf.mail.yahoo.com",
        ),
        (
            bob.verp.as_str(),
            &bob,
            "arf-outlook-jmrp.eml",
            "hotmail.com",
        ),
        (FEEDBACK, &cy, "arf-redacted-by-token.eml", ""),
    ] {
        let reply = send_report(&r, to, &sent.report(name)).await;
        assert_eq!(reply.code, 250, "{name}: {reply:?}");
        let complained = events_for(&r, &key, "email.complained", &sent.to, 1).await;
        assert_eq!(complained.len(), 1, "{name}");
        let data = &complained[0]["data"];
        assert_eq!(data["message_id"], sent.id.as_str(), "{name}");
        assert!(data["complained_at"].is_string());
        if !source.is_empty() {
            assert_eq!(data["feedback_source"], source, "{name}");
        }
        let (s, entry) = suppression(&r, &key, &sent.to).await;
        assert_eq!(s, 200, "{name}");
        assert_eq!(entry["reason"], "complaint");
        assert_eq!(entry["message_id"], sent.id.as_str());
    }
    // A repeated complaint makes no second event.
    let reply = send_report(&r, FEEDBACK, &ada.report("arf-yahoo-complaint.eml")).await;
    assert_eq!(reply.code, 250);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        events_for(&r, &key, "email.complained", &ada.to, 1)
            .await
            .len(),
        1
    );

    // The next message to Ada is refused at RCPT.
    let mut s = r.ts.authed(&r.account).await;
    s.cmd_expect("MAIL FROM:<news@sender.test>", 250).await;
    let refused = s.cmd("RCPT TO:<ada@example.test>").await;
    assert_eq!(refused.code, 550, "{refused:?}");
    assert!(refused.text().contains("complaint"), "{refused:?}");

    // "Not spam" is no complaint.
    let dan = deliver(&r, &r.account, "dan@example.test", "").await;
    let reply = send_report(&r, FEEDBACK, &dan.report("arf-not-spam.eml")).await;
    assert_eq!(reply.code, 250);
    assert_eq!(suppression(&r, &key, &dan.to).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mx_takes_only_our_return_paths_and_refuses_forgeries_and_relaying() {
    let r = mx_rig().await;
    let other = r.ts.create_account("other-sender", 1000).await;
    let other_key = r.ts.create_api_key(&other.workspace_id, "migosmtp").await;
    let mine = deliver(&r, &r.account, "ada@example.test", "").await;
    let theirs = deliver(&r, &other, "zed@example.test", "").await;

    let mut s = RawSmtp::connect(r.ts.inbound.unwrap()).await;
    s.expect(220).await;
    let ehlo = s.cmd_expect("EHLO mx.provider.test", 250).await;
    assert!(!ehlo.text().contains("AUTH"), "{ehlo:?}");
    assert!(ehlo.text().contains("SIZE 1048576"), "{ehlo:?}");
    s.cmd_expect("AUTH PLAIN AGFkYQBwYXNz", 502).await;
    // Too large for the MX, announced or not.
    s.cmd_expect("MAIL FROM:<> SIZE=52428800", 552).await;
    s.cmd_expect("MAIL FROM:<>", 250).await;
    // Not ours: another domain (no relaying), an unknown local part, a
    // guessed return path, another message's id under my signature (a
    // forged report about the other workspace's message), my return path
    // at another host.
    let (tag, _) = mine.verp.split_once('@').unwrap();
    let my_sig = tag.rsplit_once('-').unwrap().1;
    let their_id = &theirs.id;
    for rcpt in [
        "someone@gmail.test".to_string(),
        "someone@bounces.rackwave.test".to_string(),
        format!("bounce-{}-000000000000@bounces.rackwave.test", mine.id),
        format!("bounce-{their_id}-{my_sig}@bounces.rackwave.test"),
        format!("{tag}@rw-bounces.elsewhere.test"),
    ] {
        let reply = s.cmd(&format!("RCPT TO:<{rcpt}>")).await;
        assert_eq!(reply.code, 550, "{rcpt}: {reply:?}");
        assert!(reply.text().contains("5.1.1"), "{reply:?}");
    }
    // Ours, in any case; the postmaster.
    s.cmd_expect(&format!("RCPT TO:<{}>", mine.verp.to_uppercase()), 250)
        .await;
    s.cmd_expect("RCPT TO:<postmaster@bounces.rackwave.test>", 250)
        .await;
    s.cmd_expect("RSET", 250).await;

    // A report larger than the MX takes.
    s.cmd_expect("MAIL FROM:<>", 250).await;
    s.cmd_expect(&format!("RCPT TO:<{}>", mine.verp), 250).await;
    s.cmd_expect("DATA", 354).await;
    let line = format!("{}\r\n", "x".repeat(900));
    let mut big = mine.report("dsn-gmail-no-such-user.eml");
    while big.len() < 1_200_000 {
        big.push_str(&line);
    }
    big.push_str(".\r\n");
    s.send_raw(big.as_bytes()).await;
    s.expect(552).await;
    s.cmd_expect("QUIT", 221).await;
    assert_eq!(message(&r, &mine.id).await["status"], "delivered");

    // A complaint to the feedback address naming the other workspace's
    // message under my signature is dropped: nothing happens to either.
    let mut forged = mine.report("arf-yahoo-complaint.eml");
    forged = forged.replace(
        &mine.verp,
        &format!("bounce-{their_id}-{my_sig}@bounces.rackwave.test"),
    );
    let reply = send_report(&r, FEEDBACK, &forged).await;
    assert_eq!(reply.code, 250);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(message(&r, &mine.id).await["status"], "delivered");
    assert_eq!(message(&r, &theirs.id).await["status"], "delivered");
    let (s, _) = suppression(&r, &other_key, "zed@example.test").await;
    assert_eq!(s, 404);
    let (_, events) =
        r.ts.call(
            &other_key,
            "GET",
            "/migosmtp/v1/events?type=email.complained,email.bounced",
            None,
        )
        .await;
    assert_eq!(events["events"].as_array().unwrap().len(), 0, "{events}");
}

/// A delivery report that arrives before our own settlement is asked for
/// again later; reports come over BDAT too; a fourth delay of one message
/// and a huge diagnostic are kept in bounds; a report about the address a
/// recipient forwards to bounces the message but never suppresses our
/// recipient.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_repeated_forwarded_and_chunked_reports() {
    use rackwave_bench::sink::{Action, Script};
    const SECRET: &str = "inbound-test-tracking-secret";
    let script = Script::default().on_rcpt_containing("slow", Action::reply("451 4.3.0 Try later"));
    let r = scripted_rig(72, script, |c| {
        c.inbound.listen = Some("127.0.0.1:0".parse().unwrap());
        c.tracking.secret = Some(SECRET.into());
    })
    .await;
    let key =
        r.ts.create_api_key(&r.account.workspace_id, "migosmtp")
            .await;

    // Deferred by us: its return path is ours (so RCPT takes it), but a
    // report about it is asked for again later.
    let mut s = r.ts.authed(&r.account).await;
    let reply = s
        .send_mail(
            "news@sender.test",
            &["slow@example.test"],
            &rackwave_testkit::message("news@sender.test", "slow@example.test", "slow", "hi"),
        )
        .await;
    let msgs = r.wait(&queue_id(&reply), &["deferred"]).await;
    let slow_id = msgs[0]["id"].as_str().unwrap().to_string();
    let tag = rackwave_tracking::TrackingKey::new(SECRET.as_bytes().to_vec())
        .unwrap()
        .return_path_tag(&slow_id);
    let slow = Sent {
        id: slow_id.clone(),
        to: "slow@example.test".into(),
        verp: format!("bounce-{tag}@bounces.rackwave.test"),
        data: String::new(),
    };
    let reply = send_report(&r, &slow.verp, &slow.report("dsn-gmail-no-such-user.eml")).await;
    assert_eq!(reply.code, 451, "{reply:?}");
    assert_eq!(message(&r, &slow_id).await["status"], "deferred");

    // Over BDAT, in two chunks.
    let ada = deliver(&r, &r.account, "ada@example.test", "").await;
    let dsn = ada.report("dsn-exim-unknown-user.eml");
    let (first, last) = dsn.split_at(dsn.len() / 2);
    let mut s = RawSmtp::connect(r.ts.inbound.unwrap()).await;
    s.expect(220).await;
    s.cmd_expect("EHLO mx.provider.test", 250).await;
    s.cmd_expect("MAIL FROM:<>", 250).await;
    s.cmd_expect("RCPT TO:<nobody@bounces.rackwave.test>", 550)
        .await;
    // Every recipient refused: the chunk is read and refused.
    s.send(&format!("BDAT {} LAST", first.len())).await;
    s.send_raw(first.as_bytes()).await;
    s.expect(554).await;
    s.cmd_expect("RSET", 250).await;
    s.cmd_expect("MAIL FROM:<>", 250).await;
    s.cmd_expect(&format!("RCPT TO:<{}>", ada.verp), 250).await;
    s.send(&format!("BDAT {}", first.len())).await;
    s.send_raw(first.as_bytes()).await;
    s.expect(250).await;
    s.send(&format!("BDAT {} LAST", last.len())).await;
    s.send_raw(last.as_bytes()).await;
    s.expect(250).await;
    assert_eq!(message(&r, &ada.id).await["status"], "bounced");

    // Delays: three recorded, then dropped; a huge diagnostic is cut.
    let bob = deliver(&r, &r.account, "bob@example.test", "").await;
    // 200 KB of diagnostic, folded into lines SMTP carries.
    let huge = format!(
        "Diagnostic-Code: X-Postfix; slow{}",
        "\r\n slow slow slow slow slow slow slow slow slow slow".repeat(4_000)
    );
    let delayed = bob
        .report("dsn-postfix-delayed.eml")
        .lines()
        .map(|l| {
            if l.starts_with("Diagnostic-Code:") {
                huge.clone()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n");
    for _ in 0..4 {
        let reply = send_report(&r, &bob.verp, &delayed).await;
        assert_eq!(reply.code, 250, "{reply:?}");
    }
    let msg = message(&r, &bob.id).await;
    assert_eq!(msg["status"], "delivered");
    assert_eq!(
        events(&msg)
            .iter()
            .filter(|e| *e == "email.deferred")
            .count(),
        3,
        "{msg}"
    );
    let deferred = events_for(&r, &key, "email.deferred", &bob.to, 3).await;
    let reason = deferred[0]["data"]["defer_reason"].as_str().unwrap();
    assert!(
        reason.len() <= 2048 && reason.starts_with("slow slow"),
        "{}",
        reason.len()
    );

    // Cy forwards to an address that does not exist: Cy's message
    // bounced, but Cy's address is not the bad one.
    let cy = deliver(&r, &r.account, "cy@example.test", "").await;
    let forwarded = cy
        .report("dsn-postfix-mailbox-full.eml")
        .replace("cy@example.test", "cy.new@elsewhere.test")
        .replace("Status: 5.2.2", "Status: 5.1.1")
        .replace("552 5.2.2", "550 5.1.1")
        .replace("Mailbox full", "User unknown");
    let reply = send_report(&r, &cy.verp, &forwarded).await;
    assert_eq!(reply.code, 250);
    let bounced = events_for(&r, &key, "email.bounced", &cy.to, 1).await;
    assert_eq!(bounced[0]["data"]["bounce_type"], "other", "{}", bounced[0]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(suppression(&r, &key, &cy.to).await.0, 404);
}
