mod common;

// Self-tests of the delivery test rig: the test DNS server
// (tests/common/dns.rs) as seen by hickory-resolver, and the SMTP sink
// (rackwave::bench::sink) as seen by raw SMTP clients, lettre and a
// tokio-rustls client. If these fail, the delivery tests cannot be trusted.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::dns::{self, loopback, DnsServer};
use common::RawSmtp;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use rackwave::bench::sink::{self, Action, Script, Sink, SinkConfig, Step};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;

/// The public key of a 2048-bit RSA key (SubjectPublicKeyInfo, base64).
const DKIM_P: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEArlByQli71DSCLGd9bcdrcqwXQ6xnHfiEIcvFdU8BPs3mgLfefAmtuv8Gx5JKmlX9I6K92Id3CFiz2izDZjz5d+G+wyf6vR3Wy2/itlTkB+XnkWUY7hmHU5gvM409pmTNhIlbh6dLcAqyPOrQNV1C2lPMczZ3MWgRjvj813oMC7qtZKivGqTZZHLEJVXAMN5FwmWJuUQDYkvVgYaFGyNHFOCFS4ht/9JdFOogX7N5EGEKebdc34HRbDrgU9hhPTCUyhTur3rPlOp48Z7UqzanPGqWOpZ1hrDerOsWrBL+8s2kJRcorPKSF7SZ2XwZnvJWHkBPmrdXP9TmkaZmLttfVwIDAQAB";

fn resolver(addr: SocketAddr) -> TokioResolver {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    let ns = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
    let config = ResolverConfig::from_parts(None, vec![], vec![ns]);
    let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
    let opts = builder.options_mut();
    opts.use_hosts_file = ResolveHosts::Never;
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 1;
    builder.build().expect("resolver")
}

async fn delivery_dns() -> (DnsServer, String) {
    let record = format!("v=DKIM1; k=rsa; p={DKIM_P}");
    let dns = dns::start(
        loopback(53),
        &dns::fixture("delivery.zone"),
        &[
            ("{SINK1}", "127.0.0.21"),
            ("{SINK2}", "127.0.0.22"),
            ("{DKIM_SELECTOR}", "rig2048"),
            ("{DKIM_RECORD}", &record),
        ],
    )
    .await;
    (dns, record)
}

/// One query over UDP with EDNS (payload 1232), the raw response.
async fn raw_udp_query(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let mut query = Message::new(4242, MessageType::Query, OpCode::Query);
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    query.set_edns(edns);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(&query.to_vec().unwrap(), server)
        .await
        .unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .expect("UDP answer within 5 s")
        .unwrap();
    let response = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(response.metadata.id, 4242);
    response
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

#[tokio::test]
async fn dns_answers_mx_a_txt_and_nxdomain() {
    let (dns, record) = delivery_dns().await;
    assert_eq!(dns.addr.ip(), IpAddr::V4(loopback(53)));
    let r = resolver(dns.addr);

    // Two MX hosts with their preferences.
    let mx = r.mx_lookup("two-mx.test.").await.expect("MX two-mx.test");
    let mut hosts: Vec<(u16, Name)> = mx
        .answers()
        .iter()
        .filter_map(|rec| match &rec.data {
            RData::MX(m) => Some((m.preference, m.exchange.clone())),
            _ => None,
        })
        .collect();
    hosts.sort();
    assert_eq!(
        hosts,
        vec![
            (10, name("mx1.two-mx.test.")),
            (20, name("mx2.two-mx.test."))
        ]
    );
    let a = r.ipv4_lookup("mx2.two-mx.test.").await.expect("A mx2");
    let ips: Vec<_> = a
        .answers()
        .iter()
        .filter_map(|rec| rec.data.ip_addr())
        .collect();
    assert_eq!(ips, vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 22))]);

    // A only: no MX (NOERROR, no data) but an address.
    let err = r
        .mx_lookup("a-only.test.")
        .await
        .expect_err("no MX at a-only");
    assert!(err.is_no_records_found() && !err.is_nx_domain(), "{err:?}");
    let ips: Vec<IpAddr> = r.lookup_ip("a-only.test.").await.unwrap().iter().collect();
    assert_eq!(ips, vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 21))]);

    // Null MX.
    let mx = r.mx_lookup("null-mx.test.").await.expect("MX null-mx.test");
    match &mx.answers()[0].data {
        RData::MX(m) => {
            assert_eq!(m.preference, 0);
            assert!(m.exchange.is_root(), "{:?}", m.exchange);
        }
        other => panic!("not an MX: {other:?}"),
    }

    // The MX host without address: NXDOMAIN, and no address at the other.
    let mx = r
        .mx_lookup("no-addr-mx.test.")
        .await
        .expect("MX no-addr-mx");
    assert_eq!(mx.answers().len(), 1);
    let err = r
        .lookup_ip("mx.no-addr-mx.test.")
        .await
        .expect_err("no address");
    assert!(err.is_nx_domain(), "{err:?}");
    let err = r
        .ipv4_lookup("mx.no-addr-mx2.test.")
        .await
        .expect_err("no address");
    assert!(err.is_no_records_found() && !err.is_nx_domain(), "{err:?}");

    // NXDOMAIN, also below an existing name and outside the zone.
    for missing in ["nowhere.test.", "x.example.test.", "example.org."] {
        let err = r.mx_lookup(missing).await.expect_err(missing);
        assert!(err.is_nx_domain(), "{missing}: {err:?}");
    }
    // An empty non-terminal exists.
    let err = r
        .txt_lookup("_domainkey.dkim.test.")
        .await
        .expect_err("ENT");
    assert!(err.is_no_records_found() && !err.is_nx_domain(), "{err:?}");

    // The 2048-bit DKIM key comes back whole, in 255-octet strings.
    let txt = r
        .txt_lookup("rig2048._domainkey.dkim.test.")
        .await
        .expect("DKIM TXT");
    let RData::TXT(t) = &txt.answers()[0].data else {
        panic!("not a TXT");
    };
    assert!(t.txt_data.len() >= 2, "split into character-strings");
    assert!(t.txt_data.iter().all(|s| s.len() <= 255));
    assert_eq!(t.txt_data.concat(), record.as_bytes());

    // Names are case-insensitive.
    r.mx_lookup("EXAMPLE.Test.")
        .await
        .expect("MX with capitals");
    assert!(dns.queries() >= 10, "{}", dns.queries());
    assert!(dns
        .query_log()
        .contains(&("two-mx.test.".to_string(), RecordType::MX)));
}

#[tokio::test]
async fn dns_wire_details() {
    let (dns, _) = delivery_dns().await;

    // MX answers are authoritative and carry the exchange addresses.
    let m = raw_udp_query(dns.addr, "two-mx.test.", RecordType::MX).await;
    assert!(m.metadata.authoritative);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 2);
    let mut extra: Vec<(String, Option<IpAddr>)> = m
        .additionals
        .iter()
        .map(|r| (r.name.to_ascii(), r.data.ip_addr()))
        .collect();
    extra.sort();
    assert_eq!(
        extra,
        vec![
            (
                "mx1.two-mx.test.".to_string(),
                Some("127.0.0.21".parse().unwrap())
            ),
            (
                "mx2.two-mx.test.".to_string(),
                Some("127.0.0.22".parse().unwrap())
            ),
        ]
    );

    // Negative answers: NXDOMAIN / NODATA with a SOA.
    let m = raw_udp_query(dns.addr, "nowhere.test.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    let m = raw_udp_query(dns.addr, "example.test.", RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());

    // A set too large for UDP is truncated; the resolver gets it by TCP.
    for i in 0..12 {
        dns.add_record(&format!("big TXT \"{i:02} {}\"", "x".repeat(200)));
    }
    let m = raw_udp_query(dns.addr, "big.test.", RecordType::TXT).await;
    assert!(m.metadata.truncation, "expected TC over UDP");
    assert!(m.answers.is_empty());
    let txt = resolver(dns.addr)
        .txt_lookup("big.test.")
        .await
        .expect("TXT over TCP");
    assert_eq!(txt.answers().len(), 12);
    assert_eq!(dns.remove_records("big", RecordType::TXT), 12);

    // Zones change at run time.
    dns.add_record("late A 127.0.0.99");
    let ips: Vec<IpAddr> = resolver(dns.addr)
        .lookup_ip("late.test.")
        .await
        .unwrap()
        .iter()
        .collect();
    assert_eq!(ips, vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 99))]);
    dns.set_zone("$ORIGIN other.test.\n@ MX 5 mx\nmx A {SINK1}\n");
    let m = raw_udp_query(dns.addr, "other.test.", RecordType::MX).await;
    assert_eq!(m.answers.len(), 1);
    assert_eq!(
        m.additionals[0].data.ip_addr(),
        Some("127.0.0.21".parse().unwrap())
    );
    let m = raw_udp_query(dns.addr, "example.test.", RecordType::MX).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn dns_over_tcp_and_zone_syntax() {
    let dns = dns::start(
        loopback(54),
        r#"
$ORIGIN zone.test.
@          3600 IN MX 10 mail   ; comment "with quotes"
mail       IN 60 A 127.0.0.5
           AAAA ::1
alias      CNAME mail
long       TXT ( "part one; "
                 "part two" )
esc        TXT "a \"quoted\" \059 word"
abs.other.test. A 127.0.0.6
"#,
        &[],
    )
    .await;
    // A raw TCP query (length-prefixed), twice on one connection.
    let mut tcp = TcpStream::connect(dns.addr).await.unwrap();
    for rtype in [RecordType::AAAA, RecordType::A] {
        let mut q = Message::new(7, MessageType::Query, OpCode::Query);
        q.add_query(Query::query(name("alias.zone.test."), rtype));
        let bytes = q.to_vec().unwrap();
        tcp.write_all(&(bytes.len() as u16).to_be_bytes())
            .await
            .unwrap();
        tcp.write_all(&bytes).await.unwrap();
        let mut len = [0u8; 2];
        tcp.read_exact(&mut len).await.unwrap();
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        tcp.read_exact(&mut buf).await.unwrap();
        let m = Message::from_vec(&buf).unwrap();
        // The CNAME and the record it points to.
        assert_eq!(m.answers.len(), 2, "{m:?}");
        assert_eq!(m.answers[0].record_type(), RecordType::CNAME);
        assert_eq!(m.answers[1].name, name("mail.zone.test."));
        assert_eq!(m.answers[1].record_type(), rtype);
    }
    let m = raw_udp_query(dns.addr, "zone.test.", RecordType::MX).await;
    assert_eq!(m.answers[0].ttl, 3600);
    assert_eq!(m.additionals.len(), 2, "A and AAAA of the exchange");
    let m = raw_udp_query(dns.addr, "mail.zone.test.", RecordType::A).await;
    assert_eq!(m.answers[0].ttl, 60);
    let m = raw_udp_query(dns.addr, "long.zone.test.", RecordType::TXT).await;
    let RData::TXT(t) = &m.answers[0].data else {
        panic!()
    };
    assert_eq!(t.txt_data.concat(), b"part one; part two");
    let m = raw_udp_query(dns.addr, "esc.zone.test.", RecordType::TXT).await;
    let RData::TXT(t) = &m.answers[0].data else {
        panic!()
    };
    assert_eq!(t.txt_data.concat(), b"a \"quoted\" ; word");
    let m = raw_udp_query(dns.addr, "abs.other.test.", RecordType::A).await;
    assert_eq!(m.answers.len(), 1);
}

#[tokio::test]
async fn dns_zone_placeholders_left_unfilled_are_skipped() {
    let dns = dns::start(
        loopback(55),
        &dns::fixture("delivery.zone"),
        &[("{SINK1}", "127.0.0.21")],
    )
    .await;
    // mx2 only had the {SINK2} address: the name is gone.
    let m = raw_udp_query(dns.addr, "mx2.two-mx.test.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = raw_udp_query(dns.addr, "two-mx.test.", RecordType::MX).await;
    assert_eq!(m.answers.len(), 2);
    assert_eq!(m.additionals.len(), 1);
    let m = raw_udp_query(dns.addr, "mx1.two-mx.test.", RecordType::A).await;
    assert_eq!(m.answers.len(), 1);
    // Published later, e.g. a DKIM key generated by the test.
    dns.add_record("sel._domainkey.dkim TXT \"v=DKIM1; p=abc\"");
    let m = raw_udp_query(dns.addr, "sel._domainkey.dkim.test.", RecordType::TXT).await;
    assert_eq!(m.answers.len(), 1);
}

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
    assert_eq!(m.mail_params, vec!["BODY=8BITMIME", "SMTPUTF8"]);
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
    c.cmd_expect("MAIL FROM:a@b.test", 250).await;
    c.cmd_expect("FOO", 502).await;
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
    rackwave::delivery::client::tls_connectors().1
}
