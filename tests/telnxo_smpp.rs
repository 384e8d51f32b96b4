//! The SMPP connector against the test SMSC, over real sockets: submits
//! and their answers, receipts and inbound messages as reports, and the
//! link's troubles (throttling, full queues, refused binds, dropped
//! connections, a silent peer, garbage on the wire).

use std::future::Future;
use std::time::{Duration, Instant};

use rackwave_telnxo::connectors::smpp::{SmppConfig, SmppConnector};
use rackwave_telnxo::connectors::{OutboundSms, Report, SendError, SmsInbound, SmsReceipt};
use rackwave_testkit::smsc::{Smsc, SmscOptions};
use tokio::sync::{mpsc, watch};

/// No test here may take longer.
const LIMIT: Duration = Duration::from_secs(5);

struct Client {
    smpp: SmppConnector,
    reports: mpsc::Receiver<Report>,
    _shutdown: watch::Sender<bool>,
}

fn config(smsc: &Smsc) -> SmppConfig {
    SmppConfig {
        host: "127.0.0.1".into(),
        port: smsc.addr().port(),
        system_id: "rackwave".into(),
        password: "secret".into(),
        window: 10,
        enquire_link_secs: 1,
        response_timeout_secs: 1,
        reconnect_min_ms: 50,
        reconnect_max_ms: 200,
        throttle_pause_ms: 300,
        ..SmppConfig::default()
    }
}

fn connect(config: SmppConfig) -> Client {
    config.check().expect("a valid test config");
    let (tx, reports) = rackwave_testkit::carrier_reports(1000);
    let (shutdown, stop) = watch::channel(false);
    Client {
        smpp: SmppConnector::start(config, tx, stop),
        reports,
        _shutdown: shutdown,
    }
}

fn sms(from: &str, to: &str, text: &str) -> OutboundSms {
    OutboundSms {
        message_id: "msg_test".into(),
        from: from.into(),
        to: to.into(),
        encoded: rackwave_sms::encode(text, 7),
    }
}

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("within the test's time limit")
}

async fn until(what: impl Fn() -> bool) {
    within(async {
        while !what() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

async fn next_report(client: &mut Client) -> Report {
    within(client.reports.recv()).await.expect("a report")
}

fn decimal(hex: &str) -> String {
    u64::from_str_radix(hex, 16).expect("a hex id").to_string()
}

#[tokio::test]
async fn single_and_multipart_messages_are_submitted_and_receipted() {
    let smsc = Smsc::start(SmscOptions::default()).await;
    let mut client = connect(config(&smsc));

    // Submitted before the bind is up: it waits for it.
    let one = within(client.smpp.submit(&sms("RACKWV", "+447700900123", "Hello"))).await;
    assert_eq!(one, Ok(vec!["1A2B3C".to_string()]));
    let text = "नमस्ते ".repeat(20); // 140 UCS-2 units: 3 parts
    let three = within(
        client
            .smpp
            .submit(&sms("+15550001111", "+447700900123", &text)),
    )
    .await
    .unwrap();
    assert_eq!(three, vec!["1A2B3D", "1A2B3E", "1A2B3F"]);

    let submits = smsc.submits();
    assert_eq!(submits.len(), 4);
    let first = &submits[0];
    assert_eq!(
        (first.source.as_str(), first.source_ton, first.source_npi),
        ("RACKWV", 5, 0)
    );
    assert_eq!(
        (first.destination.as_str(), first.dest_ton, first.dest_npi),
        ("447700900123", 1, 1)
    );
    assert_eq!(
        (
            first.data_coding,
            first.esm_class,
            first.registered_delivery
        ),
        (0, 0, 1)
    );
    assert_eq!(first.short_message, b"Hello");
    for (i, part) in submits[1..].iter().enumerate() {
        assert_eq!(
            (part.source.as_str(), part.source_ton, part.source_npi),
            ("15550001111", 1, 1)
        );
        assert_eq!((part.data_coding, part.esm_class), (8, 0x40));
        assert_eq!(&part.short_message[..6], &[5, 0, 3, 7, 3, i as u8 + 1]);
    }

    // Receipts name the parts in decimal.
    let mut receipts = Vec::new();
    for _ in 0..4 {
        match next_report(&mut client).await {
            Report::SmsReceipt(r) => receipts.push(r),
            other => panic!("{other:?}"),
        }
    }
    let want: Vec<SmsReceipt> = ["1A2B3C", "1A2B3D", "1A2B3E", "1A2B3F"]
        .iter()
        .map(|id| SmsReceipt {
            carrier_id: decimal(id),
            stat: "DELIVRD".into(),
            error: Some("000".into()),
        })
        .collect();
    assert_eq!(receipts, want);
    // Acknowledged once handed over.
    until(|| smsc.deliver_acks() == 4).await;
    assert_eq!(client.smpp.stats().receipts, 4);
}

#[tokio::test]
async fn receipts_in_tlvs_and_failed_deliveries() {
    let smsc = Smsc::start(SmscOptions {
        receipt_tlvs: true,
        receipt_delay: Duration::from_millis(50),
        ..SmscOptions::default()
    })
    .await;
    let mut client = connect(config(&smsc));
    let ids = within(client.smpp.submit(&sms("RACKWV", "+447700900120", "x")))
        .await
        .unwrap();
    assert_eq!(
        next_report(&mut client).await,
        Report::SmsReceipt(SmsReceipt {
            carrier_id: decimal(&ids[0]),
            stat: "UNDELIV".into(),
            error: Some("001".into()),
        })
    );
}

#[tokio::test]
async fn throttling_fails_the_submit_and_pauses_the_bind() {
    let smsc = Smsc::start(SmscOptions::default()).await;
    let client = connect(config(&smsc));
    let hello = sms("RACKWV", "+447700900123", "Hello");
    within(client.smpp.submit(&hello)).await.unwrap();

    smsc.throttle_next(1);
    assert_eq!(
        within(client.smpp.submit(&hello)).await,
        Err(SendError::Throttled)
    );
    let t = Instant::now();
    within(client.smpp.submit(&hello)).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(client.smpp.stats().throttled, 1);
}

#[tokio::test]
async fn a_full_queue_is_temporary() {
    let smsc = Smsc::start(SmscOptions::default()).await;
    let client = connect(config(&smsc));
    smsc.queue_full_next(1);
    let hello = sms("RACKWV", "+447700900123", "Hello");
    match within(client.smpp.submit(&hello)).await {
        Err(SendError::Temporary(why)) => assert!(why.contains("ESME_RMSGQFUL"), "{why}"),
        other => panic!("{other:?}"),
    }
    within(client.smpp.submit(&hello)).await.unwrap();
}

#[tokio::test]
async fn a_refused_bind_is_retried_until_it_succeeds() {
    let smsc = Smsc::start(SmscOptions {
        password: "other".into(),
        ..SmscOptions::default()
    })
    .await;
    let client = connect(config(&smsc));
    until(|| smsc.refused_binds() >= 2).await;
    assert!(!client.smpp.is_bound());
    let hello = sms("RACKWV", "+447700900123", "Hello");
    let t = Instant::now();
    assert_eq!(
        within(client.smpp.submit(&hello)).await,
        Err(SendError::Temporary("not bound".into()))
    );
    assert!(t.elapsed() < Duration::from_millis(1500));

    smsc.set_password("secret");
    until(|| client.smpp.is_bound()).await;
    within(client.smpp.submit(&hello)).await.unwrap();
    assert_eq!(smsc.binds(), 1);
}

#[tokio::test]
async fn a_dropped_connection_is_reestablished() {
    let smsc = Smsc::start(SmscOptions::default()).await;
    let client = connect(config(&smsc));
    let hello = sms("RACKWV", "+447700900123", "Hello");
    within(client.smpp.submit(&hello)).await.unwrap();
    smsc.drop_connections();
    until(|| smsc.binds() == 2 && client.smpp.is_bound()).await;
    within(client.smpp.submit(&hello)).await.unwrap();
    assert_eq!(client.smpp.stats().binds, 2);
}

#[tokio::test]
async fn a_silent_peer_fails_the_window_in_time() {
    let smsc = Smsc::start(SmscOptions::default()).await;
    let client = connect(SmppConfig {
        window: 5,
        ..config(&smsc)
    });
    let hello = sms("RACKWV", "+447700900123", "Hello");
    within(client.smpp.submit(&hello)).await.unwrap();

    smsc.stop_answering(true);
    let t = Instant::now();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let smpp = client.smpp.clone();
            let hello = hello.clone();
            tokio::spawn(async move { smpp.submit(&hello).await })
        })
        .collect();
    for call in calls {
        let result = within(call).await.unwrap();
        assert!(matches!(result, Err(SendError::Temporary(_))), "{result:?}");
    }
    // A second each: the window's and the reconnect's "not bound" waits.
    assert!(
        t.elapsed() < Duration::from_millis(3500),
        "{:?}",
        t.elapsed()
    );

    smsc.stop_answering(false);
    until(|| client.smpp.is_bound()).await;
    within(client.smpp.submit(&hello)).await.unwrap();
}

#[tokio::test]
async fn mobile_originated_messages_become_inbound_reports() {
    let smsc = Smsc::start(SmscOptions::default()).await;
    let mut client = connect(config(&smsc));
    until(|| smsc.sessions() == 1).await;
    assert_eq!(
        smsc.send_mo("+919812345678", "+15550001111", "STOP @ £5"),
        1
    );
    assert_eq!(
        next_report(&mut client).await,
        Report::SmsInbound(SmsInbound {
            from: "+919812345678".into(),
            to: "+15550001111".into(),
            body: "STOP @ £5".into(),
            segment: None,
        })
    );
    smsc.send_mo("+919812345678", "+15550001111", "नमस्ते");
    match next_report(&mut client).await {
        Report::SmsInbound(m) => assert_eq!(m.body, "नमस्ते"),
        other => panic!("{other:?}"),
    }
    until(|| smsc.deliver_acks() == 2).await;
}

/// A PDU as bytes: header and body.
fn pdu(id: u32, sequence: u32, body: &[u8]) -> Vec<u8> {
    let mut v = ((16 + body.len()) as u32).to_be_bytes().to_vec();
    for word in [id, 0, sequence] {
        v.extend_from_slice(&word.to_be_bytes());
    }
    v.extend_from_slice(body);
    v
}

#[tokio::test]
async fn malformed_input_is_survived() {
    let smsc = Smsc::start(SmscOptions::default()).await;
    let mut client = connect(config(&smsc));
    let hello = sms("RACKWV", "+447700900123", "Hello");
    within(client.smpp.submit(&hello)).await.unwrap();
    let _receipt = next_report(&mut client).await;

    // A deliver_sm whose source address never ends, and a request nobody
    // defined: each is nacked, and the link stays up.
    smsc.send_raw(&pdu(0x0000_0005, 900, &[0, 1, 1, b'4', b'4']));
    smsc.send_raw(&pdu(0x0000_0099, 901, b""));
    until(|| smsc.nacks() == 2).await;
    within(client.smpp.submit(&hello)).await.unwrap();
    assert_eq!(smsc.binds(), 1);

    // Bytes that are no PDU at all: the connection goes, and comes back.
    smsc.send_raw(b"GET / HTTP/1.1\r\nHost: smsc\r\n\r\n");
    until(|| smsc.binds() == 2 && client.smpp.is_bound()).await;
    within(client.smpp.submit(&hello)).await.unwrap();
}

#[tokio::test]
async fn shutdown_unbinds() {
    let smsc = Smsc::start(SmscOptions::default()).await;
    let client = connect(config(&smsc));
    let hello = sms("RACKWV", "+447700900123", "Hello");
    within(client.smpp.submit(&hello)).await.unwrap();
    client._shutdown.send_replace(true);
    until(|| smsc.sessions() == 0).await;
    assert!(matches!(
        within(client.smpp.submit(&hello)).await,
        Err(SendError::Temporary(_))
    ));
}

/// Receipts pouring in while the window is full and the service reads
/// slowly: every submit is still answered and every receipt answered,
/// handed over or refused for a later redelivery (a regression: the
/// session and its report task once waited on each other).
#[tokio::test]
async fn a_busy_bind_keeps_up_with_its_receipts() {
    let smsc = Smsc::start(SmscOptions::default()).await;
    let client = connect(SmppConfig {
        window: 100,
        ..config(&smsc)
    });
    let reports = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = reports.clone();
    let mut incoming = client.reports;
    tokio::spawn(async move {
        while let Some(report) = incoming.recv().await {
            if counted
                .load(std::sync::atomic::Ordering::SeqCst)
                .is_multiple_of(100)
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if let Report::SmsReceipt(_) = report {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    let calls: Vec<_> = (0..100)
        .map(|c| {
            let smpp = client.smpp.clone();
            tokio::spawn(async move {
                for i in 0..30 {
                    let to = format!("+4477009{c:03}{i:02}");
                    smpp.submit(&sms("RACKWV", &to, "hi")).await.unwrap();
                }
            })
        })
        .collect();
    for call in calls {
        within(call).await.unwrap();
    }
    until(|| smsc.deliver_acks() == 3000).await;
    until(|| reports.load(std::sync::atomic::Ordering::SeqCst) + smsc.deliver_refusals() == 3000)
        .await;
}
