//! The SMTP sink as seen by raw SMTP clients, lettre and a tokio-rustls
//! client. The delivery tests use it as the remote MX, so if these fail,
//! they cannot be trusted.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use rackwave_bench::sink::{self, Action, Script, Sink, SinkConfig, Step};
use rackwave_smtp_proto::command::Body;
use rackwave_testkit::RawSmtp;
use rustls::pki_types::ServerName;

use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

// ------------------------------------------------------------------- sink

async fn sink_with(script: Script) -> Sink {
    Sink::start(SinkConfig {
        script,
        ..SinkConfig::new("127.0.0.21:0".parse().unwrap())
    })
    .await
    .expect("sink")
}

async fn greeted(sink: &Sink) -> RawSmtp<TcpStream> {
    let mut c = RawSmtp::connect(sink.addr).await;
    c.expect(220).await;
    c
}

#[tokio::test]
async fn sink_accepts_and_records_a_message() {
    let sink = sink_with(Script::default()).await;
    let mut c = greeted(&sink).await;
    let ehlo = c.cmd_expect("EHLO client.test", 250).await;
    for ext in ["PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"] {
        assert!(ehlo.lines.iter().any(|l| l == ext), "{ext} in {ehlo:?}");
    }
    assert!(!ehlo.lines.iter().any(|l| l == "STARTTLS"));
    let data = "Subject: hi\r\n\r\n.leading dot\r\n..two dots\r\nend\r\n";
    let r = c
        .send_mail(
            "alice@client.test",
            &["bob@example.test", "carol@example.test"],
            data,
        )
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    assert!(r.text().starts_with("2.0.0 Ok: queued as "), "{r:?}");
    assert!(sink.wait_for_messages(1, Duration::from_secs(5)).await);
    let got = sink.received();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.mail_from, "alice@client.test");
    assert_eq!(m.rcpt_to, vec!["bob@example.test", "carol@example.test"]);
    assert_eq!(m.data, data.as_bytes());
    assert_eq!(
        (m.connection, m.tls, m.ehlo.as_str()),
        (1, false, "client.test")
    );

    // Pipelined: one write, replies in order; parameters kept; null sender.
    c.send_raw(
        b"MAIL FROM:<> BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<x@example.test>\r\nRCPT TO:<y@example.test>\r\nDATA\r\n",
    )
    .await;
    for code in [250, 250, 250, 354] {
        c.expect(code).await;
    }
    c.send_raw(b"body\r\n.\r\nNOOP\r\n").await;
    c.expect(250).await;
    c.expect(250).await;
    c.cmd_expect("QUIT", 221).await;
    assert!(c.closed().await);
    let m = &sink.received()[1];
    assert_eq!(m.mail_from, "");
    assert_eq!(m.mail_params.body, Body::EightBitMime);
    assert!(m.mail_params.smtputf8);
    assert_eq!(m.mail_params.size, None);
    assert_eq!(m.data, b"body\r\n");
    assert_eq!(sink.messages(), 2);
    assert_eq!(sink.connections(), 1);
    assert_eq!(sink.max_messages_per_connection(), 2);
    assert_eq!(sink.stats().recipients, 4);

    // Out of order and unknown commands.
    let mut c = greeted(&sink).await;
    c.cmd_expect("MAIL FROM:<a@b.test>", 503).await;
    c.cmd_expect("EHLO client.test", 250).await;
    c.cmd_expect("RCPT TO:<a@b.test>", 503).await;
    c.cmd_expect("DATA", 503).await;
    c.cmd_expect("MAIL FROM:<a@b.test>", 250).await;
    c.cmd_expect("DATA", 554).await;
    c.cmd_expect("MAIL FROM:<a@b.test>", 503).await;
    c.cmd_expect("RSET", 250).await;
    // Malformed commands get the server's own parser's replies.
    let r = c.cmd_expect("MAIL FROM:a@b.test", 501).await;
    assert_eq!(r.text(), "5.1.7 Bad sender address syntax");
    c.cmd_expect("MAIL FROM:<a@b.test> RET=FULL", 555).await;
    c.cmd_expect("MAIL FROM:<a@b.test>", 250).await;
    c.cmd_expect("FOO", 500).await;
    c.cmd_expect("STARTTLS", 502).await;
    c.cmd_expect("QUIT", 221).await;
}

#[tokio::test]
async fn sink_greeting_421_on_first_connection_then_normal() {
    let sink = sink_with(
        Script::default()
            .on(Step::Greeting, Action::reply("421 4.7.0 Try again later"))
            .on_connection(1),
    )
    .await;
    let mut c = RawSmtp::connect(sink.addr).await;
    let r = c.expect(421).await;
    assert_eq!(r.text(), "4.7.0 Try again later");
    assert!(c.closed().await, "421 closes the connection");
    let mut c = greeted(&sink).await;
    c.cmd_expect("EHLO client.test", 250).await;
    let r = c
        .send_mail("a@client.test", &["b@example.test"], "hi\r\n")
        .await;
    assert_eq!(r.code, 250);
    assert_eq!(sink.received()[0].connection, 2);
    assert_eq!(sink.connections(), 2);
}

#[tokio::test]
async fn sink_silent_step_makes_the_client_time_out() {
    let sink = sink_with(Script::default().on(Step::EndOfData, Action::Silent)).await;
    let mut c = greeted(&sink).await;
    c.cmd_expect("EHLO client.test", 250).await;
    c.cmd_expect("MAIL FROM:<a@client.test>", 250).await;
    c.cmd_expect("RCPT TO:<b@example.test>", 250).await;
    c.cmd_expect("DATA", 354).await;
    c.send_raw(b"hello\r\n.\r\n").await;
    let waited = tokio::time::timeout(Duration::from_millis(700), c.reply()).await;
    assert!(waited.is_err(), "expected no reply, got {waited:?}");
    // Still open: nothing was accepted and nothing closed.
    assert_eq!(sink.messages(), 0);
    c.send_raw(b"NOOP\r\n").await;
    let waited = tokio::time::timeout(Duration::from_millis(300), c.reply()).await;
    assert!(waited.is_err(), "silent for good");
}

#[tokio::test]
async fn sink_script_conditions() {
    let sink = sink_with(
        Script::default()
            .on_rcpt_containing("bad", Action::reply("550 5.1.1 User unknown"))
            .on(Step::EndOfData, Action::reply("451 4.3.0 Try later"))
            .times(1)
            .on(Step::Mail, Action::reply("452 4.3.1 Busy\r\n"))
            .on_message(4)
            .on(Step::Rcpt, Action::Close)
            .with_rcpt_containing("hangup"),
    )
    .await;
    let mut c = greeted(&sink).await;
    c.cmd_expect("EHLO client.test", 250).await;
    // Message 1: one bad recipient, deferred once at end of data.
    c.cmd_expect("MAIL FROM:<a@client.test>", 250).await;
    let r = c.cmd_expect("RCPT TO:<BAD@example.test>", 550).await;
    assert_eq!(r.text(), "5.1.1 User unknown");
    c.cmd_expect("RCPT TO:<good@example.test>", 250).await;
    c.cmd_expect("DATA", 354).await;
    c.send_raw(b"one\r\n.\r\n").await;
    c.expect(451).await;
    // Messages 2 and 3 go through (times(1) is used up).
    for _ in 0..2 {
        let r = c
            .send_mail("a@client.test", &["good@example.test"], "two\r\n")
            .await;
        assert_eq!(r.code, 250);
    }
    // Message 4: MAIL refused; message 5 fine.
    c.cmd_expect("MAIL FROM:<a@client.test>", 452).await;
    c.cmd_expect("MAIL FROM:<a@client.test>", 250).await;
    c.cmd_expect("RSET", 250).await;
    let got = sink.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].rcpt_to, vec!["good@example.test"]);
    assert_eq!((got[0].number, got[1].number), (2, 3));
    // A recipient that drops the connection.
    c.cmd_expect("MAIL FROM:<a@client.test>", 250).await;
    c.send("RCPT TO:<hangup@example.test>").await;
    assert!(c.reply().await.is_none(), "closed without a reply");

    // fail_share 1.0: always.
    let sink = sink_with(Script::default().fail_share(Step::Rcpt, 1.0, "450 4.2.0 Random")).await;
    let mut c = greeted(&sink).await;
    c.cmd_expect("HELO client.test", 250).await;
    c.cmd_expect("MAIL FROM:<a@client.test>", 250).await;
    c.cmd_expect("RCPT TO:<b@example.test>", 450).await;

    // Delayed reply and a multi-line scripted EHLO.
    let sink = sink_with(
        Script::default()
            .on(Step::Ehlo, Action::reply("250-slow.test\r\n250 SIZE 10"))
            .on(
                Step::Mail,
                Action::Delay(Duration::from_millis(300), "250 2.1.0 Ok".into()),
            ),
    )
    .await;
    let mut c = greeted(&sink).await;
    let r = c.cmd_expect("EHLO client.test", 250).await;
    assert_eq!(r.lines, vec!["slow.test", "SIZE 10"]);
    let started = std::time::Instant::now();
    c.cmd_expect("MAIL FROM:<a@client.test>", 250).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn sink_size_bdat_and_counting_only() {
    let sink = Sink::start(SinkConfig {
        size: Some(100),
        chunking: true,
        eight_bit: false,
        keep_messages: false,
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let mut c = greeted(&sink).await;
    let ehlo = c.cmd_expect("EHLO client.test", 250).await;
    assert!(ehlo.lines.iter().any(|l| l == "SIZE 100"), "{ehlo:?}");
    assert!(ehlo.lines.iter().any(|l| l == "CHUNKING"), "{ehlo:?}");
    c.cmd_expect("MAIL FROM:<a@client.test> SIZE=101", 552)
        .await;
    c.cmd_expect("MAIL FROM:<a@client.test> BODY=8BITMIME", 555)
        .await;
    c.cmd_expect("MAIL FROM:<a@client.test> SIZE=50", 250).await;
    c.cmd_expect("RCPT TO:<b@example.test>", 250).await;
    c.cmd_expect("DATA", 354).await;
    c.send_raw(format!("{}\r\n.\r\n", "x".repeat(150)).as_bytes())
        .await;
    c.expect(552).await;
    // BDAT, pipelined with the next command.
    c.cmd_expect("MAIL FROM:<a@client.test>", 250).await;
    c.cmd_expect("RCPT TO:<b@example.test>", 250).await;
    c.send_raw(b"BDAT 5\r\nhello").await;
    c.expect(250).await;
    c.send_raw(b"BDAT 7 LAST\r\n world\n").await;
    c.expect(250).await;
    assert_eq!(sink.messages(), 1);
    assert!(sink.received().is_empty(), "keep_messages: false");
    assert_eq!(sink.stats().bytes, 12);
}

#[tokio::test]
async fn sink_counts_concurrent_connections() {
    let sink = sink_with(Script::default()).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(greeted(&sink).await);
    }
    assert_eq!(sink.max_concurrent_connections(), 3);
    drop(clients);
    for _ in 0..200 {
        if sink.active_connections() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sink.active_connections(), 0);
    let mut c = greeted(&sink).await;
    c.cmd_expect("EHLO client.test", 250).await;
    assert_eq!(sink.max_concurrent_connections(), 3);
    assert_eq!(sink.connections(), 4);
    sink.shutdown();
    assert!(c.closed().await, "shutdown closes sessions");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        TcpStream::connect(sink.addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn sinks_share_a_port_on_different_addresses() {
    let sinks = sink::start_on_same_port(vec![
        SinkConfig::new("127.0.0.31:0".parse().unwrap()),
        SinkConfig::new("127.0.0.32:0".parse().unwrap()),
    ])
    .await
    .unwrap();
    assert_eq!(sinks[0].addr.port(), sinks[1].addr.port());
    assert_eq!(sinks[1].addr.ip(), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 32)));
    for s in &sinks {
        greeted(s).await.cmd_expect("QUIT", 221).await;
    }
}

#[tokio::test]
async fn sink_starttls_with_tokio_rustls() {
    let sink = Sink::start(SinkConfig {
        starttls: true,
        hostname: "mx1.two-mx.test".into(),
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let mut c = greeted(&sink).await;
    let ehlo = c.cmd_expect("EHLO client.test", 250).await;
    assert!(ehlo.lines.iter().any(|l| l == "STARTTLS"), "{ehlo:?}");
    c.cmd_expect("STARTTLS", 220).await;
    let tcp = c.into_inner();
    let tls = connector()
        .connect(ServerName::try_from("mx1.two-mx.test").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let mut c = RawSmtp::new(tls);
    // The session starts over: EHLO first, no STARTTLS offered again.
    c.cmd_expect("MAIL FROM:<a@client.test>", 503).await;
    let ehlo = c.cmd_expect("EHLO client.test", 250).await;
    assert!(!ehlo.lines.iter().any(|l| l == "STARTTLS"), "{ehlo:?}");
    c.cmd_expect("STARTTLS", 503).await;
    let r = c
        .send_mail("a@client.test", &["b@example.test"], "secret\r\n")
        .await;
    assert_eq!(r.code, 250);
    let m = &sink.received()[0];
    assert!(m.tls);
    assert_eq!(m.data, b"secret\r\n");
}

#[tokio::test]
async fn sink_serves_lettre_over_starttls() {
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
    let sink = Sink::start(SinkConfig {
        starttls: true,
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let tls = TlsParameters::builder("sink.test".into())
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .unwrap();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(sink.addr.port())
        .tls(Tls::Required(tls))
        .timeout(Some(Duration::from_secs(10)))
        .build();
    let email = lettre::Message::builder()
        .from("Alice <alice@client.test>".parse().unwrap())
        .to("Bob <bob@example.test>".parse().unwrap())
        .subject("via lettre")
        .body("Hello.\n.dot\n".to_string())
        .unwrap();
    transport.send(email).await.expect("lettre send");
    let m = &sink.received()[0];
    assert!(m.tls);
    assert_eq!(m.rcpt_to, vec!["bob@example.test"]);
    let text = String::from_utf8_lossy(&m.data);
    assert!(text.contains("Subject: via lettre"), "{text}");
    assert!(text.contains("\r\n.dot\r\n"), "{text}");
}

/// Accepts the self-signed certificate: the delivery engine's own
/// opportunistic-TLS connector.
fn connector() -> TlsConnector {
    rackwave_smtp_proto::tls::connectors().any
}
