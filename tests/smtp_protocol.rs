// SMTP protocol behaviour over raw TCP: greeting and EHLO, command
// sequencing, AUTH (clear-text policy, failures, lockout, LOGIN), PIPELINING,
// trace headers, dot-stuffing, BDAT, refusals, malformed input, error caps,
// timeouts, connection caps, quota reservations and graceful shutdown.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rackwave_testkit::{
    message, plain, queue_id, start, start_with, RawSmtp, SmtpReply, TestServer,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;

/// Asserts the reply code and that every line carries the enhanced status.
fn assert_reply(r: &SmtpReply, code: u16, status: &str) {
    assert_eq!(r.code, code, "expected {code} {status}, got {r:?}");
    let prefix = format!("{status} ");
    assert!(
        r.lines.iter().all(|l| l.starts_with(&prefix)),
        "expected {code} {status}, got {r:?}"
    );
}

async fn cmd_status<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut RawSmtp<S>,
    line: &str,
    code: u16,
    status: &str,
) -> SmtpReply {
    let r = s.cmd(line).await;
    assert_reply(&r, code, status);
    r
}

async fn next_status<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut RawSmtp<S>,
    code: u16,
    status: &str,
) -> SmtpReply {
    let r = s.reply().await.expect("a reply, not a closed connection");
    assert_reply(&r, code, status);
    r
}

fn is_queue_id(id: &str) -> bool {
    id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

fn is_message_id(id: &str) -> bool {
    id.strip_prefix("msg_").is_some_and(|hex| {
        hex.len() == 16
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Checks an `OK queued as <id>` reply and returns the id.
fn queued(r: &SmtpReply) -> String {
    assert_reply(r, 250, "2.0.0");
    assert!(r.text().contains("OK queued as "), "{r:?}");
    let id = queue_id(r);
    assert!(is_queue_id(&id), "queue id {id:?}");
    id
}

fn stored_body(ts: &TestServer, queue_id: &str) -> Vec<u8> {
    ts.server
        .as_ref()
        .unwrap()
        .spool
        .body(queue_id)
        .expect("spool read")
        .expect("body stored under the queue id")
}

/// Sends message data already dot-stuffed and terminated by the caller.
async fn data_raw<S: AsyncRead + AsyncWrite + Unpin>(s: &mut RawSmtp<S>, raw: &str) -> SmtpReply {
    s.cmd_expect("DATA", 354).await;
    s.send_raw(raw.as_bytes()).await;
    s.reply().await.expect("reply to end of data")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------- greeting

#[tokio::test]
async fn greeting_and_ehlo_capabilities() {
    let ts = start().await;
    let mut s = ts.raw().await;
    let greeting = s.expect(220).await;
    assert!(
        greeting.text().starts_with("mx.rackwave.test ESMTP"),
        "{greeting:?}"
    );
    let ehlo = s.cmd_expect("EHLO client.test", 250).await;
    assert!(
        ehlo.lines[0].starts_with("mx.rackwave.test greets client.test"),
        "{ehlo:?}"
    );
    let size = format!("SIZE {}", 25 * 1024 * 1024);
    for cap in [
        "PIPELINING",
        size.as_str(),
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
        "STARTTLS",
        "AUTH PLAIN LOGIN",
    ] {
        assert!(
            ehlo.lines.iter().any(|l| l == cap),
            "{cap} missing: {ehlo:?}"
        );
    }
    cmd_status(&mut s, "QUIT", 221, "2.0.0").await;
    assert!(s.closed().await);
}

#[tokio::test]
async fn helo_gets_a_one_line_reply() {
    let ts = start().await;
    let mut s = ts.raw().await;
    s.expect(220).await;
    let r = s.cmd_expect("HELO client.test", 250).await;
    assert_eq!(r.lines, vec!["mx.rackwave.test greets client.test"]);
    // AUTH needs EHLO.
    let acct = ts.create_account("helo-user", 10).await;
    cmd_status(
        &mut s,
        &format!("AUTH PLAIN {}", plain(&acct.username, &acct.password)),
        503,
        "5.5.1",
    )
    .await;
}

// ---------------------------------------------------------------- sequencing

#[tokio::test]
async fn mail_without_auth_is_refused() {
    let ts = start().await;
    let mut s = ts.raw().await;
    s.expect(220).await;
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 503, "5.5.1").await;
    s.cmd_expect("EHLO client.test", 250).await;
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 530, "5.7.0").await;
    cmd_status(&mut s, "RCPT TO:<b@dest.test>", 503, "5.5.1").await;
}

#[tokio::test]
async fn commands_out_of_sequence() {
    let ts = start().await;
    let acct = ts.create_account("sequence", 10).await;
    let mut s = ts.authed(&acct).await;
    cmd_status(&mut s, "RCPT TO:<b@dest.test>", 503, "5.5.1").await;
    cmd_status(&mut s, "DATA", 503, "5.5.1").await;
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "DATA", 554, "5.5.1").await;
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 503, "5.5.1").await;
    // The transaction survived the refusals.
    cmd_status(&mut s, "RCPT TO:<b@dest.test>", 250, "2.1.5").await;
    let r = data_raw(
        &mut s,
        &format!(
            "{}.\r\n",
            message("a@client.test", "b@dest.test", "seq", "hi")
        ),
    )
    .await;
    queued(&r);
}

// ---------------------------------------------------------------- AUTH

#[tokio::test]
async fn clear_text_auth_refused_outside_plaintext_networks() {
    let ts = start_with(|c| c.smtp.plaintext_auth_networks = vec![]).await;
    let acct = ts.create_account("cleartext", 10).await;
    let mut s = ts.raw().await;
    s.expect(220).await;
    let ehlo = s.cmd_expect("EHLO client.test", 250).await;
    assert!(
        !ehlo.lines.iter().any(|l| l.starts_with("AUTH")),
        "AUTH advertised in clear text: {ehlo:?}"
    );
    assert!(ehlo.lines.iter().any(|l| l == "STARTTLS"), "{ehlo:?}");
    cmd_status(
        &mut s,
        &format!("AUTH PLAIN {}", plain(&acct.username, &acct.password)),
        538,
        "5.7.11",
    )
    .await;
    cmd_status(&mut s, "AUTH LOGIN", 538, "5.7.11").await;
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 530, "5.7.0").await;
}

#[tokio::test]
async fn bad_credentials_lockout_and_its_end() {
    let ts = start_with(|c| {
        c.smtp.auth_max_failures = 3;
        c.smtp.auth_lockout_secs = 60;
    })
    .await;
    let acct = ts.create_account("locked", 10).await;
    let good = format!("AUTH PLAIN {}", plain(&acct.username, &acct.password));
    let bad = format!("AUTH PLAIN {}", plain(&acct.username, "wrong-password"));
    let mut s = ts.raw().await;
    s.expect(220).await;
    s.cmd_expect("EHLO client.test", 250).await;
    for _ in 0..3 {
        cmd_status(&mut s, &bad, 535, "5.7.8").await;
    }
    // Locked out: even the right password is refused, in any session.
    cmd_status(&mut s, &good, 454, "4.7.0").await;
    let mut s2 = ts.raw().await;
    s2.expect(220).await;
    s2.cmd_expect("EHLO client.test", 250).await;
    cmd_status(&mut s2, &good, 454, "4.7.0").await;

    ts.clock.advance_ms(59_000);
    cmd_status(&mut s2, &good, 454, "4.7.0").await;
    ts.clock.advance_ms(1_001);
    cmd_status(&mut s2, &good, 235, "2.7.0").await;
    cmd_status(&mut s2, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
}

#[tokio::test]
async fn auth_login_and_cancel() {
    let ts = start().await;
    let acct = ts.create_account("login-user", 10).await;

    let mut s = ts.raw().await;
    s.expect(220).await;
    s.cmd_expect("EHLO client.test", 250).await;
    // Cancelled at the user name.
    let r = s.cmd_expect("AUTH LOGIN", 334).await;
    assert_eq!(r.lines, vec!["VXNlcm5hbWU6"]);
    cmd_status(&mut s, "*", 501, "5.7.0").await;
    // Cancelled at the password.
    s.cmd_expect("AUTH LOGIN", 334).await;
    let r = s.cmd_expect(&B64.encode(&acct.username), 334).await;
    assert_eq!(r.lines, vec!["UGFzc3dvcmQ6"]);
    cmd_status(&mut s, "*", 501, "5.7.0").await;
    // PLAIN without an initial response, cancelled.
    let r = s.cmd_expect("AUTH PLAIN", 334).await;
    assert_eq!(r.lines, vec![""]);
    cmd_status(&mut s, "*", 501, "5.7.0").await;
    // Not authenticated after any of them.
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 530, "5.7.0").await;
    // A full LOGIN exchange.
    let r = s.cmd_expect("AUTH LOGIN", 334).await;
    assert_eq!(r.lines, vec!["VXNlcm5hbWU6"]);
    let r = s.cmd_expect(&B64.encode(&acct.username), 334).await;
    assert_eq!(r.lines, vec!["UGFzc3dvcmQ6"]);
    cmd_status(&mut s, &B64.encode(&acct.password), 235, "2.7.0").await;
    cmd_status(&mut s, "AUTH LOGIN", 503, "5.5.1").await;
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
}

// ---------------------------------------------------------------- acceptance

#[tokio::test]
async fn pipelined_transaction_with_two_recipients() {
    let ts = start().await;
    let acct = ts.create_account("pipeliner", 10).await;
    let mut s = ts.authed(&acct).await;
    s.send_raw(
        b"MAIL FROM:<sender@client.test>\r\nRCPT TO:<one@dest.test>\r\nRCPT TO:<two@dest.test>\r\nDATA\r\n",
    )
    .await;
    next_status(&mut s, 250, "2.1.0").await;
    next_status(&mut s, 250, "2.1.5").await;
    next_status(&mut s, 250, "2.1.5").await;
    let r = s.expect(354).await;
    assert!(r.text().contains("<CRLF>.<CRLF>"), "{r:?}");
    let body = message(
        "sender@client.test",
        "one@dest.test",
        "Pipelined",
        "Hello both.",
    );
    s.send_raw(format!("{body}.\r\n").as_bytes()).await;
    let qid = queued(&s.reply().await.unwrap());

    let (status, list) = ts.get(&format!("/admin/v1/messages?queue_id={qid}")).await;
    assert_eq!(status, 200, "{list}");
    let msgs = list["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "{list}");
    let mut to: Vec<&str> = msgs.iter().map(|m| m["to"].as_str().unwrap()).collect();
    to.sort();
    assert_eq!(to, vec!["one@dest.test", "two@dest.test"]);
    let ids: Vec<&str> = msgs.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_ne!(ids[0], ids[1]);
    for m in msgs {
        assert_eq!(m["status"], "queued", "{m}");
        assert_eq!(m["queue_id"], qid.as_str(), "{m}");
        assert_eq!(m["from"], "sender@client.test", "{m}");
        assert_eq!(m["subject"], "Pipelined", "{m}");
        assert_eq!(m["workspace_id"], acct.workspace_id.as_str(), "{m}");
        let id = m["id"].as_str().unwrap();
        assert!(is_message_id(id), "{id}");
        let (status, detail) = ts.get(&format!("/admin/v1/messages/{id}")).await;
        assert_eq!(status, 200, "{detail}");
        assert_eq!(detail["id"], id);
        let history = detail["history"].as_array().unwrap();
        assert!(
            history
                .iter()
                .any(|h| h["event"] == "email.queued" && h["status"] == "queued"),
            "{detail}"
        );
    }
}

#[tokio::test]
async fn received_and_message_id_headers_are_added() {
    let ts = start().await;
    let acct = ts.create_account("stamper", 10).await;
    let mut s = ts.authed(&acct).await;
    let r = s
        .send_mail(
            "a@client.test",
            &["b@dest.test"],
            &message("a@client.test", "b@dest.test", "Stamped", "body"),
        )
        .await;
    let qid = queued(&r);
    let stored = String::from_utf8(stored_body(&ts, &qid)).unwrap();
    assert!(stored.starts_with("Received: from client.test"), "{stored}");
    assert!(stored.contains(&format!("id {qid}")), "{stored}");
    assert!(stored.contains("by mx.rackwave.test"), "{stored}");
    assert!(stored.contains("with ESMTPA"), "{stored}");
    let mid: Vec<&str> = stored
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("message-id:"))
        .collect();
    assert_eq!(mid.len(), 1, "{stored}");
    assert!(mid[0].ends_with("@mx.rackwave.test>"), "{}", mid[0]);
    assert!(mid[0].contains(&qid), "{}", mid[0]);
    // The client's Date is kept and not doubled.
    assert_eq!(stored.matches("\r\nDate: ").count(), 1, "{stored}");
    assert!(stored.ends_with("\r\n\r\nbody\r\n"), "{stored}");

    // A client Message-ID is kept, none is added.
    let with_id = format!(
        "Message-ID: <own@client.test>\r\n{}",
        message("a@client.test", "b@dest.test", "Own id", "body")
    );
    let qid = queued(
        &s.send_mail("a@client.test", &["b@dest.test"], &with_id)
            .await,
    );
    let stored = String::from_utf8(stored_body(&ts, &qid)).unwrap();
    assert_eq!(stored.matches("Message-ID:").count(), 1, "{stored}");
    assert!(
        stored.contains("Message-ID: <own@client.test>\r\n"),
        "{stored}"
    );
}

#[tokio::test]
async fn dot_stuffing_is_undone() {
    let ts = start().await;
    let acct = ts.create_account("dots", 10).await;
    let mut s = ts.authed(&acct).await;
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<b@dest.test>", 250, "2.1.5").await;
    let raw = "From: <a@client.test>\r\nSubject: dots\r\n\r\n..leading dot\r\n..\r\nplain\r\n.\r\n";
    let qid = queued(&data_raw(&mut s, raw).await);
    let stored = stored_body(&ts, &qid);
    assert!(
        stored.ends_with(b"\r\n\r\n.leading dot\r\n.\r\nplain\r\n"),
        "{}",
        String::from_utf8_lossy(&stored)
    );
    assert!(!contains(&stored, b"..leading"));
}

// ---------------------------------------------------------------- BDAT

#[tokio::test]
async fn bdat_chunks_are_queued_exactly() {
    let ts = start().await;
    let acct = ts.create_account("chunker", 10).await;
    let mut s = ts.authed(&acct).await;
    // BDAT is binary: dots and a lone "." line are not special.
    let msg = "From: <a@client.test>\r\nTo: <b@dest.test>\r\nSubject: chunked\r\nMessage-ID: <chunk@client.test>\r\nDate: Sun, 7 Jun 2026 09:39:00 +0000\r\n\r\n..not unstuffed\r\n.\r\nend\r\n";
    let (first, second) = msg.split_at(40);
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<b@dest.test>", 250, "2.1.5").await;
    s.send_raw(format!("BDAT {}\r\n{first}", first.len()).as_bytes())
        .await;
    let r = next_status(&mut s, 250, "2.0.0").await;
    assert!(r.text().contains("40 octets received"), "{r:?}");
    s.send_raw(format!("BDAT {} LAST\r\n{second}", second.len()).as_bytes())
        .await;
    let qid = queued(&s.reply().await.unwrap());
    let stored = stored_body(&ts, &qid);
    assert!(
        stored.ends_with(msg.as_bytes()),
        "{}",
        String::from_utf8_lossy(&stored)
    );
    let prefix = String::from_utf8(stored[..stored.len() - msg.len()].to_vec()).unwrap();
    // Only the trace header was added (the client sent Message-ID and Date).
    assert!(prefix.starts_with("Received: from client.test"), "{prefix}");
    assert_eq!(prefix.matches("\r\n").count(), 3, "{prefix}");
    let (status, list) = ts.get(&format!("/admin/v1/messages?queue_id={qid}")).await;
    assert_eq!(status, 200);
    assert_eq!(list["messages"][0]["subject"], "chunked", "{list}");
    cmd_status(&mut s, "NOOP", 250, "2.0.0").await;
}

#[tokio::test]
async fn bdat_without_mail_consumes_its_chunk() {
    let ts = start().await;
    let acct = ts.create_account("bdat-seq", 10).await;
    let mut s = ts.authed(&acct).await;
    // If the chunk were taken for a command the session would QUIT.
    s.send_raw(b"BDAT 6\r\nQUIT\r\n").await;
    next_status(&mut s, 503, "5.5.1").await;
    cmd_status(&mut s, "NOOP", 250, "2.0.0").await;
    // MAIL without RCPT: the chunk is consumed as well.
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    s.send_raw(b"BDAT 6 LAST\r\nQUIT\r\n").await;
    next_status(&mut s, 554, "5.5.1").await;
    cmd_status(&mut s, "RCPT TO:<b@dest.test>", 250, "2.1.5").await;
    let msg = message("a@client.test", "b@dest.test", "after", "ok");
    s.send_raw(format!("BDAT {} LAST\r\n{msg}", msg.len()).as_bytes())
        .await;
    queued(&s.reply().await.unwrap());
}

#[tokio::test]
async fn data_after_bdat_is_refused() {
    let ts = start().await;
    let acct = ts.create_account("bdat-data", 10).await;
    let mut s = ts.authed(&acct).await;
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<b@dest.test>", 250, "2.1.5").await;
    let msg = message("a@client.test", "b@dest.test", "mixed", "body");
    let (first, second) = msg.split_at(6);
    s.send_raw(format!("BDAT 6\r\n{first}").as_bytes()).await;
    next_status(&mut s, 250, "2.0.0").await;
    cmd_status(&mut s, "DATA", 503, "5.5.1").await;
    cmd_status(&mut s, "RCPT TO:<c@dest.test>", 503, "5.5.1").await;
    s.send_raw(format!("BDAT {} LAST\r\n{second}", second.len()).as_bytes())
        .await;
    let qid = queued(&s.reply().await.unwrap());
    assert!(stored_body(&ts, &qid).ends_with(msg.as_bytes()));
    let msgs = ts.messages(&acct.workspace_id).await;
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0]["to"], "b@dest.test");
}

// ---------------------------------------------------------------- refusals

#[tokio::test]
async fn oversize_messages_are_refused() {
    let ts = start_with(|c| c.smtp.max_message_size = 4096).await;
    let acct = ts.create_account("big", 10).await;
    let mut s = ts.raw().await;
    s.expect(220).await;
    let ehlo = s.cmd_expect("EHLO client.test", 250).await;
    assert!(ehlo.lines.iter().any(|l| l == "SIZE 4096"), "{ehlo:?}");
    cmd_status(
        &mut s,
        &format!("AUTH PLAIN {}", plain(&acct.username, &acct.password)),
        235,
        "2.7.0",
    )
    .await;
    let r = cmd_status(&mut s, "MAIL FROM:<a@b.c> SIZE=999999", 552, "5.3.4").await;
    assert!(r.text().contains("4096"), "{r:?}");

    // Declared small, sent large.
    cmd_status(&mut s, "MAIL FROM:<a@b.c> SIZE=1000", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<b@dest.test>", 250, "2.1.5").await;
    let line = "x".repeat(70);
    let big_body = vec![line.as_str(); 80].join("\r\n");
    let big = message("a@b.c", "b@dest.test", "big", &big_body);
    assert!(big.len() > 4096);
    s.cmd_expect("DATA", 354).await;
    s.send_raw(format!("{big}.\r\n").as_bytes()).await;
    next_status(&mut s, 552, "5.3.4").await;
    assert!(ts.messages(&acct.workspace_id).await.is_empty());

    // The same over BDAT.
    cmd_status(&mut s, "MAIL FROM:<a@b.c>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<b@dest.test>", 250, "2.1.5").await;
    s.send_raw(format!("BDAT {} LAST\r\n{big}", big.len()).as_bytes())
        .await;
    next_status(&mut s, 552, "5.3.4").await;
    assert!(ts.messages(&acct.workspace_id).await.is_empty());

    // The session still works, and a small message passes.
    let r = s
        .send_mail(
            "a@b.c",
            &["b@dest.test"],
            &message("a@b.c", "b@dest.test", "small", "ok"),
        )
        .await;
    queued(&r);
    assert_eq!(ts.messages(&acct.workspace_id).await.len(), 1);
}

#[tokio::test]
async fn too_many_recipients() {
    let ts = start_with(|c| c.smtp.max_recipients = 2).await;
    let acct = ts.create_account("many", 10).await;
    let mut s = ts.authed(&acct).await;
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<r1@dest.test>", 250, "2.1.5").await;
    cmd_status(&mut s, "RCPT TO:<r2@dest.test>", 250, "2.1.5").await;
    cmd_status(&mut s, "RCPT TO:<r3@dest.test>", 452, "4.5.3").await;
    let r = data_raw(
        &mut s,
        &format!(
            "{}.\r\n",
            message("a@client.test", "r1@dest.test", "two", "x")
        ),
    )
    .await;
    let qid = queued(&r);
    let (_, list) = ts.get(&format!("/admin/v1/messages?queue_id={qid}")).await;
    assert_eq!(list["messages"].as_array().unwrap().len(), 2, "{list}");
}

#[tokio::test]
async fn daily_quota_refuses_the_extra_recipient() {
    let ts = start().await;
    let acct = ts.create_account("quota-one", 1).await;
    let mut s = ts.authed(&acct).await;
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<r1@dest.test>", 250, "2.1.5").await;
    cmd_status(&mut s, "RCPT TO:<r2@dest.test>", 550, "5.4.5").await;
    let r = data_raw(
        &mut s,
        &format!(
            "{}.\r\n",
            message("a@client.test", "r1@dest.test", "q", "x")
        ),
    )
    .await;
    queued(&r);
    // Used up for today, in a new transaction too.
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<r3@dest.test>", 550, "5.4.5").await;
    assert_eq!(ts.messages(&acct.workspace_id).await.len(), 1);
}

#[tokio::test]
async fn unparseable_header_sections_are_refused() {
    let ts = start().await;
    let acct = ts.create_account("headers", 10).await;
    let mut s = ts.authed(&acct).await;
    for (raw, what) in [
        (
            "From: <a@client.test>\r\nthis line has no colon\r\n\r\nbody\r\n.\r\n",
            "line 2",
        ),
        ("Subject: no sender\r\n\r\nbody\r\n.\r\n", "no From"),
        ("\r\nbody without headers\r\n.\r\n", "no header section"),
    ] {
        cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
        cmd_status(&mut s, "RCPT TO:<b@dest.test>", 250, "2.1.5").await;
        let r = data_raw(&mut s, raw).await;
        assert_reply(&r, 554, "5.6.0");
        assert!(r.text().contains(what), "{what}: {r:?}");
    }
    assert!(ts.messages(&acct.workspace_id).await.is_empty());
}

/// A header section over `[smtp] max_header_bytes` (1 MiB by default) is
/// refused with 552 5.3.4, its quota given back, nothing queued; one just
/// under the cap is accepted.
#[tokio::test]
async fn a_header_section_over_the_cap_is_refused() {
    let ts = start().await;
    let acct = ts.create_account("bigheader", 10).await;
    let mut s = ts.authed(&acct).await;
    // 100,000 header lines, about 5 MB: under max_message_size (25 MB).
    let mut raw = String::from("From: <a@client.test>\r\n");
    for i in 0..100_000 {
        raw.push_str(&format!("X-Padding-{i:06}: {}\r\n", "p".repeat(30)));
    }
    raw.push_str("\r\nbody\r\n.\r\n");
    assert!(raw.len() > 5_000_000);
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<b@dest.test>", 250, "2.1.5").await;
    let r = data_raw(&mut s, &raw).await;
    assert_reply(&r, 552, "5.3.4");
    assert!(r.text().contains("header section"), "{r:?}");
    assert!(ts.messages(&acct.workspace_id).await.is_empty());
    // The session goes on, and a header just under the cap passes.
    let mut raw = String::from("From: <a@client.test>\r\nSubject: fits\r\n");
    while raw.len() < 1024 * 1024 - 100 {
        raw.push_str(&format!("X-Padding: {}\r\n", "p".repeat(60)));
    }
    raw.push_str("\r\nbody\r\n.\r\n");
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<b@dest.test>", 250, "2.1.5").await;
    let r = data_raw(&mut s, &raw).await;
    queued(&r);
    assert_eq!(ts.messages(&acct.workspace_id).await.len(), 1);
    let metrics = ts.metrics().await;
    assert!(
        metrics.contains("rackwave_intake_refused_total{source=\"smtp\",reason=\"header_size\"} 1"),
        "{metrics}"
    );
}

/// The cap is a setting.
#[tokio::test]
async fn the_header_cap_follows_the_config() {
    let ts = start_with(|c| c.smtp.max_header_bytes = 200).await;
    let acct = ts.create_account("smallcap", 10).await;
    let mut s = ts.authed(&acct).await;
    let raw = format!(
        "From: <a@client.test>\r\nSubject: {}\r\n\r\nbody\r\n.\r\n",
        "s".repeat(300)
    );
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<b@dest.test>", 250, "2.1.5").await;
    assert_reply(&data_raw(&mut s, &raw).await, 552, "5.3.4");
}

#[tokio::test]
async fn bare_lf_in_data_is_refused_and_does_not_end_it() {
    let ts = start().await;
    let acct = ts.create_account("barelf", 10).await;
    let mut s = ts.authed(&acct).await;
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<b@dest.test>", 250, "2.1.5").await;
    // "\n.\n" must not end the data (SMTP smuggling); only the final one does.
    let raw = "From: <a@client.test>\r\nSubject: lf\r\n\r\nline one\nline two\n.\nMAIL FROM:<x@client.test>\r\n.\r\n";
    let r = data_raw(&mut s, raw).await;
    assert_reply(&r, 554, "5.6.0");
    // The next reply is NOOP's: the smuggled MAIL was never a command.
    cmd_status(&mut s, "NOOP", 250, "2.0.0").await;
    cmd_status(&mut s, "RCPT TO:<b@dest.test>", 503, "5.5.1").await;
    assert!(ts.messages(&acct.workspace_id).await.is_empty());
}

#[tokio::test]
async fn non_ascii_addresses_need_smtputf8() {
    let ts = start().await;
    let acct = ts.create_account("utf8", 10).await;
    let mut s = ts.authed(&acct).await;
    cmd_status(&mut s, "MAIL FROM:<josé@exämple.com>", 553, "5.6.7").await;
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<ñandú@exämple.com>", 553, "5.6.7").await;
    cmd_status(&mut s, "RSET", 250, "2.0.0").await;
    cmd_status(
        &mut s,
        "MAIL FROM:<josé@exämple.com> SMTPUTF8",
        250,
        "2.1.0",
    )
    .await;
    cmd_status(&mut s, "RCPT TO:<ñandú@exämple.com>", 250, "2.1.5").await;
    let r = data_raw(
        &mut s,
        &format!(
            "{}.\r\n",
            message("josé@exämple.com", "ñandú@exämple.com", "utf8", "hola")
        ),
    )
    .await;
    let qid = queued(&r);
    let (_, list) = ts.get(&format!("/admin/v1/messages?queue_id={qid}")).await;
    assert_eq!(list["messages"][0]["to"], "ñandú@exämple.com", "{list}");
    assert_eq!(list["messages"][0]["from"], "josé@exämple.com", "{list}");
}

// ---------------------------------------------------------------- malformed input

#[tokio::test]
async fn malformed_commands() {
    let ts = start().await;
    let acct = ts.create_account("malformed", 10).await;
    let mut s = ts.authed(&acct).await;
    cmd_status(&mut s, "FROBNICATE now", 500, "5.5.1").await;
    cmd_status(&mut s, "MAIL FROM:bad", 501, "5.1.7").await;
    cmd_status(&mut s, "RCPT TO:<>", 501, "5.1.3").await;
    cmd_status(&mut s, "MAIL FROM:<a@client.test> RET=FULL", 555, "5.5.4").await;
    let long = format!("NOOP {}", "x".repeat(1995));
    assert_eq!(long.len() + 2, 2002);
    cmd_status(&mut s, &long, 500, "5.5.2").await;
    cmd_status(&mut s, "NOOP", 250, "2.0.0").await;
    // VRFY says the same whether or not the mailbox exists.
    let known = cmd_status(&mut s, &format!("VRFY {}", acct.username), 252, "2.5.0").await;
    let unknown = cmd_status(&mut s, "VRFY nobody-here", 252, "2.5.0").await;
    assert_eq!(known.lines, unknown.lines);
    assert!(!known.text().contains(&acct.username), "{known:?}");
    cmd_status(&mut s, "EXPN staff", 502, "5.5.1").await;
    // Still a working session.
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
}

#[tokio::test]
async fn too_many_errors_close_the_connection() {
    let ts = start_with(|c| c.smtp.max_errors = 3).await;
    let mut s = ts.raw().await;
    s.expect(220).await;
    s.cmd_expect("EHLO client.test", 250).await;
    cmd_status(&mut s, "BOGUS1", 500, "5.5.1").await;
    cmd_status(&mut s, "BOGUS2", 500, "5.5.1").await;
    cmd_status(&mut s, "BOGUS3", 500, "5.5.1").await;
    next_status(&mut s, 421, "4.7.0").await;
    assert!(s.closed().await);
}

// ---------------------------------------------------------------- connections

#[tokio::test]
async fn dropped_connection_mid_data_queues_nothing_and_releases_quota() {
    let ts = start().await;
    let acct = ts.create_account("dropper", 1).await;
    let mut s = ts.authed(&acct).await;
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<b@dest.test>", 250, "2.1.5").await;
    s.cmd_expect("DATA", 354).await;
    s.send_raw(b"From: <a@client.test>\r\nSubject: half\r\n\r\nonly the first ha")
        .await;
    drop(s);

    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(ts.messages(&acct.workspace_id).await.is_empty());
    }
    // The reservation is given back once the server sees the connection go.
    let mut last = None;
    for _ in 0..50 {
        let mut s = ts.authed(&acct).await;
        cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
        let r = s.cmd("RCPT TO:<b@dest.test>").await;
        if r.code == 250 {
            assert_reply(&r, 250, "2.1.5");
            let r = data_raw(
                &mut s,
                &format!(
                    "{}.\r\n",
                    message("a@client.test", "b@dest.test", "whole", "x")
                ),
            )
            .await;
            queued(&r);
            last = None;
            break;
        }
        assert_reply(&r, 550, "5.4.5");
        last = Some(r);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(last.is_none(), "quota never released: {last:?}");
    let msgs = ts.messages(&acct.workspace_id).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["subject"], "whole");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_time_out() {
    let ts = start_with(|c| {
        c.smtp.command_timeout_secs = 1;
        c.smtp.data_timeout_secs = 1;
    })
    .await;
    let acct = ts.create_account("sleepy", 10).await;
    // Three silent clients at once: after the greeting, in an AUTH
    // exchange, and in the middle of DATA.
    let idle = async {
        let mut s = ts.raw().await;
        s.expect(220).await;
        let t0 = Instant::now();
        let r = next_status(&mut s, 421, "4.4.2").await;
        assert!(r.text().contains("mx.rackwave.test"), "{r:?}");
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
        assert!(s.closed().await);
    };
    let in_auth = async {
        let mut s = ts.raw().await;
        s.expect(220).await;
        s.cmd_expect("EHLO client.test", 250).await;
        s.cmd_expect("AUTH LOGIN", 334).await;
        next_status(&mut s, 421, "4.4.2").await;
        assert!(s.closed().await);
    };
    let in_data = async {
        let mut s = ts.authed(&acct).await;
        cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
        cmd_status(&mut s, "RCPT TO:<b@dest.test>", 250, "2.1.5").await;
        s.cmd_expect("DATA", 354).await;
        s.send_raw(b"From: <a@client.test>\r\nSubject: slow\r\n\r\npart")
            .await;
        next_status(&mut s, 421, "4.4.2").await;
        assert!(s.closed().await);
    };
    tokio::join!(idle, in_auth, in_data);
    assert!(ts.messages(&acct.workspace_id).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_connection_cap() {
    let ts = start_with(|c| c.smtp.max_connections_per_ip = 2).await;
    let mut a = ts.raw().await;
    a.expect(220).await;
    let mut b = ts.raw().await;
    b.expect(220).await;
    let mut c = ts.raw().await;
    next_status(&mut c, 421, "4.7.0").await;
    assert!(c.closed().await);
    // The two admitted sessions are unaffected.
    cmd_status(&mut b, "NOOP", 250, "2.0.0").await;
    cmd_status(&mut a, "QUIT", 221, "2.0.0").await;
    assert!(a.closed().await);
    // The slot is given back once the session has ended.
    let mut admitted = false;
    for _ in 0..50 {
        let mut d = ts.raw().await;
        let r = d.reply().await.expect("greeting or refusal");
        if r.code == 220 {
            cmd_status(&mut d, "NOOP", 250, "2.0.0").await;
            admitted = true;
            break;
        }
        assert_reply(&r, 421, "4.7.0");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted, "no connection admitted after one closed");
    cmd_status(&mut b, "NOOP", 250, "2.0.0").await;
}

#[tokio::test]
async fn rset_releases_the_quota_reservation() {
    let ts = start().await;
    let acct = ts.create_account("rsetter", 1).await;
    let mut s = ts.authed(&acct).await;
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<b@dest.test>", 250, "2.1.5").await;
    cmd_status(&mut s, "RSET", 250, "2.0.0").await;
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<b@dest.test>", 250, "2.1.5").await;
    cmd_status(&mut s, "RCPT TO:<c@dest.test>", 550, "5.4.5").await;
    // A new EHLO resets the transaction as well.
    s.cmd_expect("EHLO client.test", 250).await;
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<c@dest.test>", 250, "2.1.5").await;
}

/// True when the listener no longer gives a greeting.
async fn refused(addr: std::net::SocketAddr) -> bool {
    let Ok(Ok(mut tcp)) =
        tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await
    else {
        return true;
    };
    let mut buf = [0u8; 3];
    match tokio::time::timeout(Duration::from_secs(2), tcp.read_exact(&mut buf)).await {
        Ok(Ok(_)) => &buf != b"220",
        _ => true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_data_in_flight_finish() {
    let mut ts = start().await;
    let acct = ts.create_account("graceful", 10).await;
    let mut s = ts.authed(&acct).await;
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<b@dest.test>", 250, "2.1.5").await;
    s.cmd_expect("DATA", 354).await;
    let msg = message("a@client.test", "b@dest.test", "in flight", "finishing");
    let (first, second) = msg.split_at(30);
    s.send_raw(first.as_bytes()).await;
    let mut idle = ts.raw().await;
    idle.expect(220).await;
    idle.cmd_expect("EHLO client.test", 250).await;

    let server = ts.server.take().unwrap();
    let spool = server.spool.clone();
    let stopping = tokio::spawn(server.shutdown());
    // Wait until the listener has stopped accepting.
    let mut closed = false;
    for _ in 0..100 {
        if refused(ts.smtp).await {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(closed, "listener still accepting during shutdown");
    // A session between transactions is told and closed at once.
    next_status(&mut idle, 421, "4.3.2").await;
    assert!(idle.closed().await);
    assert!(
        !stopping.is_finished(),
        "shutdown did not wait for the session"
    );

    s.send_raw(format!("{second}.\r\n").as_bytes()).await;
    let qid = queued(&s.reply().await.expect("reply to end of data"));
    // Then the now idle session is closed.
    next_status(&mut s, 421, "4.3.2").await;
    assert!(s.closed().await);
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown finishes")
        .unwrap();
    assert!(
        refused(ts.smtp).await,
        "new connection accepted after shutdown"
    );
    let stored = spool.body(&qid).unwrap().expect("message stored");
    assert!(stored.ends_with(msg.as_bytes()));
}

#[tokio::test]
async fn client_date_and_message_id_are_never_duplicated() {
    let ts = start().await;
    let acct = ts.create_account("dup-headers", 10).await;
    let mut s = ts.authed(&acct).await;
    for raw in [
        "From: <a@client.test>\r\nDate: yesterday at noon\r\nMessage-ID: <m1@client.test>\r\nSubject: d\r\n\r\nx\r\n.\r\n",
        "From: <a@client.test>\r\nDate: Sun, 7 Jun 2026 09:39:00 +0000\r\nMessage-ID:\r\nSubject: m\r\n\r\nx\r\n.\r\n",
    ] {
        cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
        cmd_status(&mut s, "RCPT TO:<b@dest.test>", 250, "2.1.5").await;
        let qid = queued(&data_raw(&mut s, raw).await);
        let stored = String::from_utf8(stored_body(&ts, &qid)).unwrap();
        let count = |name: &str| {
            stored
                .split("\r\n\r\n")
                .next()
                .unwrap()
                .split("\r\n")
                .filter(|l| l.to_ascii_lowercase().starts_with(name))
                .count()
        };
        // RFC 5322 §3.6: exactly one Date, at most one Message-ID.
        assert_eq!(count("date:"), 1, "{stored}");
        assert_eq!(count("message-id:"), 1, "{stored}");
    }
}

#[tokio::test]
async fn auth_syntax_errors() {
    let ts = start().await;
    let acct = ts.create_account("auth-syntax", 10).await;
    let mut s = ts.raw().await;
    s.expect(220).await;
    s.cmd_expect("EHLO client.test", 250).await;
    cmd_status(&mut s, "AUTH CRAM-MD5", 504, "5.5.4").await;
    cmd_status(&mut s, "AUTH PLAIN !!!notbase64", 501, "5.5.2").await;
    // Acting for another identity is not allowed.
    let other = B64.encode(format!("admin\0{}\0{}", acct.username, acct.password));
    cmd_status(&mut s, &format!("AUTH PLAIN {other}"), 501, "5.5.2").await;
    cmd_status(&mut s, "AUTH PLAIN =", 501, "5.5.2").await;
    // None of those counted as a failed password, nor authenticated.
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 530, "5.7.0").await;
    let own = B64.encode(format!("{0}\0{0}\0{1}", acct.username, acct.password));
    cmd_status(&mut s, &format!("AUTH PLAIN {own}"), 235, "2.7.0").await;
}

#[tokio::test]
async fn overlong_data_line_is_refused() {
    let ts = start().await;
    let acct = ts.create_account("longline", 10).await;
    let mut s = ts.authed(&acct).await;
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<b@dest.test>", 250, "2.1.5").await;
    let raw = format!(
        "From: <a@client.test>\r\nSubject: long\r\n\r\n{}\r\nshort\r\n.\r\n",
        "y".repeat(1200)
    );
    let r = data_raw(&mut s, &raw).await;
    assert_reply(&r, 554, "5.6.0");
    cmd_status(&mut s, "NOOP", 250, "2.0.0").await;
    assert!(ts.messages(&acct.workspace_id).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sessions_cannot_pass_the_quota_together() {
    let ts = start().await;
    let acct = ts.create_account("racer", 1).await;
    let mut a = ts.authed(&acct).await;
    let mut b = ts.authed(&acct).await;
    cmd_status(&mut a, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut b, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    a.send("RCPT TO:<x@dest.test>").await;
    b.send("RCPT TO:<y@dest.test>").await;
    let (ra, rb) = (a.reply().await.unwrap(), b.reply().await.unwrap());
    let mut codes = [ra.code, rb.code];
    codes.sort();
    assert_eq!(codes, [250, 550], "{ra:?} {rb:?}");
    let loser = if ra.code == 550 { &ra } else { &rb };
    assert_reply(loser, 550, "5.4.5");
}

#[tokio::test]
async fn workspace_quota_spans_its_accounts() {
    let ts = start().await;
    let ws = ts.create_workspace("capped", Some(1)).await;
    let one = ts.create_account_in(&ws, "ws-one", 10).await;
    let two = ts.create_account_in(&ws, "ws-two", 10).await;
    let mut s = ts.authed(&one).await;
    let r = s
        .send_mail(
            "a@client.test",
            &["b@dest.test"],
            &message("a@client.test", "b@dest.test", "first", "x"),
        )
        .await;
    queued(&r);
    let mut s = ts.authed(&two).await;
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<b@dest.test>", 550, "5.4.5").await;
}

#[tokio::test]
async fn quota_counts_unique_recipients_and_resets_the_next_day() {
    let ts = start().await;
    let acct = ts.create_account("daily", 1).await;
    let mut s = ts.authed(&acct).await;
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<b@dest.test>", 250, "2.1.5").await;
    // The same recipient again costs nothing and is delivered once.
    let r = cmd_status(&mut s, "RCPT TO:<B@dest.test>", 250, "2.1.5").await;
    assert!(r.text().contains("duplicate"), "{r:?}");
    let r = data_raw(
        &mut s,
        &format!(
            "{}.\r\n",
            message("a@client.test", "b@dest.test", "d1", "x")
        ),
    )
    .await;
    let qid = queued(&r);
    let (_, list) = ts.get(&format!("/admin/v1/messages?queue_id={qid}")).await;
    assert_eq!(list["messages"].as_array().unwrap().len(), 1, "{list}");
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<c@dest.test>", 550, "5.4.5").await;
    cmd_status(&mut s, "RSET", 250, "2.0.0").await;
    // START_MS is 09:39 UTC; 15 hours later is the next UTC day.
    ts.clock.advance_ms(15 * 3_600_000);
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<c@dest.test>", 250, "2.1.5").await;
}

#[tokio::test]
async fn used_quota_survives_a_restart() {
    let mut first = start().await;
    let acct = first.create_account("persisted", 1).await;
    let mut s = first.authed(&acct).await;
    let r = s
        .send_mail(
            "a@client.test",
            &["b@dest.test"],
            &message("a@client.test", "b@dest.test", "before", "x"),
        )
        .await;
    queued(&r);
    cmd_status(&mut s, "QUIT", 221, "2.0.0").await;
    first.stop().await;
    let data = first.dir.path().join("data");
    let second = start_with(|c| c.storage.path = data.clone()).await;
    let mut s = second.authed(&acct).await;
    cmd_status(&mut s, "MAIL FROM:<a@client.test>", 250, "2.1.0").await;
    cmd_status(&mut s, "RCPT TO:<c@dest.test>", 550, "5.4.5").await;
    assert_eq!(second.messages(&acct.workspace_id).await.len(), 1);
}
