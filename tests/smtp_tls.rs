// TLS: submission with lettre over STARTTLS and implicit TLS, the clear-text
// AUTH policy, and the STARTTLS command injection (CVE-2011-0411) check over
// raw TCP with tokio-rustls.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::response::Response;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rackwave_testkit::{plain, start, start_with, Account, RawSmtp, SmtpReply, TestServer};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const HOST: &str = "mx.rackwave.test";

fn assert_reply(r: &SmtpReply, code: u16, status: &str) {
    assert_eq!(r.code, code, "expected {code} {status}, got {r:?}");
    let prefix = format!("{status} ");
    assert!(
        r.lines.iter().all(|l| l.starts_with(&prefix)),
        "expected {code} {status}, got {r:?}"
    );
}

fn tls_params() -> TlsParameters {
    TlsParameters::builder(HOST.to_string())
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .expect("TLS parameters")
}

fn transport(port: u16, tls: Tls, account: &Account) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(tls)
        .credentials(Credentials::new(
            account.username.clone(),
            account.password.clone(),
        ))
        .authentication(vec![Mechanism::Plain])
        .timeout(Some(Duration::from_secs(20)))
        .build()
}

fn email(to: &str, subject: &str) -> Message {
    Message::builder()
        .from(
            "Alice Sender <alice@client.test>"
                .parse::<Mailbox>()
                .unwrap(),
        )
        .to(to.parse::<Mailbox>().unwrap())
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(String::from("Hello over TLS.\r\n"))
        .unwrap()
}

/// The queue id from lettre's view of `250 2.0.0 OK queued as <id>`.
fn queue_id_of(response: &Response) -> String {
    assert_eq!(response.code().to_string(), "250", "{response:?}");
    let line = response.first_line().expect("reply text");
    assert!(line.starts_with("2.0.0 OK queued as "), "{line}");
    let id = line.rsplit(' ').next().unwrap().to_string();
    assert!(
        id.len() == 16
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
        "{id}"
    );
    id
}

/// Checks the one message of a submission through the admin API and that
/// the trace header records an authenticated TLS session.
async fn assert_submitted(ts: &TestServer, qid: &str, account: &Account, to: &str, subject: &str) {
    let (status, list) = ts.get(&format!("/admin/v1/messages?queue_id={qid}")).await;
    assert_eq!(status, 200, "{list}");
    let msgs = list["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1, "{list}");
    let m = &msgs[0];
    assert_eq!(m["to"], to, "{m}");
    assert_eq!(m["from"], "alice@client.test", "{m}");
    assert_eq!(m["subject"], subject, "{m}");
    assert_eq!(m["status"], "queued", "{m}");
    assert_eq!(m["workspace_id"], account.workspace_id.as_str(), "{m}");
    let body = ts
        .server
        .as_ref()
        .unwrap()
        .spool
        .body(qid)
        .unwrap()
        .expect("body stored");
    let body = String::from_utf8(body).unwrap();
    assert!(body.starts_with("Received: from "), "{body}");
    assert!(body.contains("with ESMTPSA"), "{body}");
    assert!(body.contains(&format!("id {qid}")), "{body}");
}

#[tokio::test]
async fn starttls_auth_plain_submission() {
    let ts = start().await;
    let acct = ts.create_account("tls-user", 10).await;
    let mailer = transport(ts.smtp.port(), Tls::Required(tls_params()), &acct);
    let response = mailer
        .send(email("Bob <bob@dest.test>", "Over STARTTLS"))
        .await
        .expect("submission over STARTTLS");
    let qid = queue_id_of(&response);
    assert_submitted(&ts, &qid, &acct, "bob@dest.test", "Over STARTTLS").await;
}

#[tokio::test]
async fn implicit_tls_submission() {
    let ts = start().await;
    let acct = ts.create_account("tls-wrapper", 10).await;
    let mailer = transport(ts.smtp_tls.port(), Tls::Wrapper(tls_params()), &acct);
    let response = mailer
        .send(email("carol@dest.test", "Over implicit TLS"))
        .await
        .expect("submission over implicit TLS");
    let qid = queue_id_of(&response);
    assert_submitted(&ts, &qid, &acct, "carol@dest.test", "Over implicit TLS").await;
}

#[tokio::test]
async fn clear_text_auth_refused_but_starttls_then_auth_works() {
    let ts = start_with(|c| c.smtp.plaintext_auth_networks = vec![]).await;
    let acct = ts.create_account("tls-only", 10).await;

    // Raw: AUTH in clear text is refused and not advertised.
    let mut s = ts.raw().await;
    s.expect(220).await;
    let ehlo = s.cmd_expect("EHLO client.test", 250).await;
    assert!(
        !ehlo.lines.iter().any(|l| l.starts_with("AUTH")),
        "{ehlo:?}"
    );
    let r = s
        .cmd(&format!(
            "AUTH PLAIN {}",
            plain(&acct.username, &acct.password)
        ))
        .await;
    assert_reply(&r, 538, "5.7.11");

    // lettre without TLS finds no mechanism to use and sends nothing.
    let clear = transport(ts.smtp.port(), Tls::None, &acct);
    let err = clear
        .send(email("dave@dest.test", "Clear"))
        .await
        .expect_err("clear-text submission must fail");
    assert!(
        err.to_string().contains("authentication mechanism"),
        "{err}"
    );
    assert!(ts.messages(&acct.workspace_id).await.is_empty());

    // With STARTTLS the same account submits.
    let mailer = transport(ts.smtp.port(), Tls::Required(tls_params()), &acct);
    let response = mailer
        .send(email("dave@dest.test", "After STARTTLS"))
        .await
        .expect("submission after STARTTLS");
    let qid = queue_id_of(&response);
    assert_submitted(&ts, &qid, &acct, "dave@dest.test", "After STARTTLS").await;
    assert_eq!(ts.messages(&acct.workspace_id).await.len(), 1);
}

/// Accepts the self-signed certificate: the delivery engine's own
/// opportunistic-TLS connector.
fn connector() -> TlsConnector {
    rackwave_smtp_proto::tls::connectors().any
}

/// Reads one CRLF-terminated line byte by byte, so nothing after it is
/// taken from the socket.
async fn read_line_exact(tcp: &mut TcpStream) -> String {
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(20), tcp.read(&mut b))
            .await
            .expect("line within 20 s")
            .expect("read");
        assert_eq!(n, 1, "connection closed after {line:?}");
        line.push(b[0]);
    }
    String::from_utf8(line).unwrap()
}

#[tokio::test]
async fn commands_pipelined_after_starttls_are_discarded() {
    let ts = start().await;
    let acct = ts.create_account("injection", 10).await;
    let mut tcp = TcpStream::connect(ts.smtp).await.unwrap();
    assert!(read_line_exact(&mut tcp).await.starts_with("220 "));
    tcp.write_all(b"EHLO client.test\r\n").await.unwrap();
    loop {
        let line = read_line_exact(&mut tcp).await;
        assert!(line.starts_with("250"), "{line}");
        if line.starts_with("250 ") {
            break;
        }
    }
    // The NOOP arrives in clear text with STARTTLS: it must not be run.
    tcp.write_all(b"STARTTLS\r\nNOOP\r\n").await.unwrap();
    assert_eq!(
        read_line_exact(&mut tcp).await,
        "220 2.0.0 Ready to start TLS\r\n"
    );
    let tls = connector()
        .connect(ServerName::try_from(HOST).unwrap(), tcp)
        .await
        .expect("TLS handshake after STARTTLS");
    let mut s = RawSmtp::new(tls);
    s.send("EHLO client.test").await;
    let ehlo = s.reply().await.expect("EHLO reply over TLS");
    assert_eq!(ehlo.code, 250, "{ehlo:?}");
    assert!(
        ehlo.lines[0].starts_with("mx.rackwave.test greets client.test"),
        "first reply over TLS is not the EHLO reply: {ehlo:?}"
    );
    assert!(!ehlo.lines.iter().any(|l| l == "STARTTLS"), "{ehlo:?}");
    assert!(
        ehlo.lines.iter().any(|l| l == "AUTH PLAIN LOGIN"),
        "{ehlo:?}"
    );
    // Exactly one reply per command from here on.
    let r = s.cmd("NOOP").await;
    assert_reply(&r, 250, "2.0.0");
    let r = s.cmd("STARTTLS").await;
    assert_reply(&r, 503, "5.5.1");
    let r = s
        .cmd(&format!(
            "AUTH PLAIN {}",
            plain(&acct.username, &acct.password)
        ))
        .await;
    assert_reply(&r, 235, "2.7.0");
    let r = s.cmd("QUIT").await;
    assert_reply(&r, 221, "2.0.0");
    assert!(s.closed().await);
}

#[tokio::test]
async fn starttls_forgets_the_clear_text_session() {
    let ts = start().await;
    let acct = ts.create_account("forgetful", 10).await;
    let mut s = ts.authed(&acct).await;
    // Not during a transaction.
    assert_reply(&s.cmd("MAIL FROM:<a@client.test>").await, 250, "2.1.0");
    assert_reply(&s.cmd("STARTTLS").await, 503, "5.5.1");
    assert_reply(&s.cmd("RSET").await, 250, "2.0.0");
    let r = s.cmd("STARTTLS").await;
    assert_reply(&r, 220, "2.0.0");
    let tls = connector()
        .connect(ServerName::try_from(HOST).unwrap(), s.into_inner())
        .await
        .expect("TLS handshake");
    let mut s = RawSmtp::new(tls);
    // RFC 3207 §4.2: EHLO and AUTH must be given again.
    assert_reply(&s.cmd("MAIL FROM:<a@client.test>").await, 503, "5.5.1");
    s.cmd_expect("EHLO client.test", 250).await;
    assert_reply(&s.cmd("MAIL FROM:<a@client.test>").await, 530, "5.7.0");
}
