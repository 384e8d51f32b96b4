//! Self-tests of the bench's DNS server (which the delivery tests use too,
//! through `rackwave_testkit::dns`) as seen by hickory-resolver and on the
//! wire. If these fail, the delivery tests cannot be trusted.

mod common;
use common::resolver;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use rackwave_testkit::dns::{self, loopback, DnsServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The public key of a 2048-bit RSA key (SubjectPublicKeyInfo, base64).
const DKIM_P: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEArlByQli71DSCLGd9bcdrcqwXQ6xnHfiEIcvFdU8BPs3mgLfefAmtuv8Gx5JKmlX9I6K92Id3CFiz2izDZjz5d+G+wyf6vR3Wy2/itlTkB+XnkWUY7hmHU5gvM409pmTNhIlbh6dLcAqyPOrQNV1C2lPMczZ3MWgRjvj813oMC7qtZKivGqTZZHLEJVXAMN5FwmWJuUQDYkvVgYaFGyNHFOCFS4ht/9JdFOogX7N5EGEKebdc34HRbDrgU9hhPTCUyhTur3rPlOp48Z7UqzanPGqWOpZ1hrDerOsWrBL+8s2kJRcorPKSF7SZ2XwZnvJWHkBPmrdXP9TmkaZmLttfVwIDAQAB";

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
