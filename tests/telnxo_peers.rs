//! Telnxo's WhatsApp Cloud API and FreeSWITCH connectors against the test
//! kit's fake Graph API and fake event socket, over real loopback sockets.

use std::time::Duration;

use rackwave_telnxo::connectors::freeswitch::{FreeswitchConfig, FreeswitchConnector};
use rackwave_telnxo::connectors::whatsapp_cloud::{
    parse_callback, verify_signature, CloudApiConfig, CloudApiConnector,
};
use rackwave_telnxo::connectors::{
    CallEvent, CallReport, OutboundCall, OutboundWhatsapp, Report, SendError, WaStatus,
    WhatsappContent,
};
use rackwave_testkit::esl::{EslServer, Outcome};
use rackwave_testkit::graph::{self, GraphServer};
use serde_json::json;
use tokio::sync::{mpsc, watch};

const PHONE_ID: &str = "106540352242922";
const TOKEN: &str = "EAAG-test-token";

async fn whatsapp() -> (GraphServer, CloudApiConnector) {
    rackwave_testkit::watchdog::arm();
    let graph = GraphServer::start(PHONE_ID, TOKEN).await;
    let connector = CloudApiConnector::new(CloudApiConfig {
        api_base: graph.api_base(),
        phone_number_id: PHONE_ID.into(),
        access_token: TOKEN.into(),
        app_secret: "app-secret".into(),
        verify_token: "verify".into(),
        timeout_secs: 2,
    })
    .unwrap();
    (graph, connector)
}

fn wa(content: WhatsappContent) -> OutboundWhatsapp {
    OutboundWhatsapp {
        message_id: "msg_1".into(),
        to: "+919812345678".into(),
        content,
    }
}

#[tokio::test]
async fn whatsapp_sends_text_template_and_interactive() {
    let (graph, connector) = whatsapp().await;
    let text = connector
        .send(&wa(WhatsappContent::Text {
            body: "Your code is 1234".into(),
        }))
        .await
        .unwrap();
    let components = json!([{"type": "body", "parameters": [{"type": "text", "text": "1234"}]}]);
    let template = connector
        .send(&wa(WhatsappContent::Template {
            name: "otp".into(),
            language: "en_US".into(),
            components: components.clone(),
        }))
        .await
        .unwrap();
    let interactive_body = json!({"type": "button", "body": {"text": "Confirm?"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}}]}});
    let interactive = connector
        .send(&wa(WhatsappContent::Interactive(interactive_body.clone())))
        .await
        .unwrap();
    assert!(text.starts_with("wamid.") && template.starts_with("wamid."));
    assert!(text != template && template != interactive);

    let sent = graph.sent();
    assert_eq!(sent.len(), 3);
    for s in &sent {
        assert_eq!(s.authorization, format!("Bearer {TOKEN}"));
        assert_eq!(
            (s.version.as_str(), s.phone_number_id.as_str()),
            ("v21.0", PHONE_ID)
        );
    }
    assert_eq!(
        sent[0].body,
        json!({"messaging_product": "whatsapp", "recipient_type": "individual",
               "to": "919812345678", "type": "text", "text": {"body": "Your code is 1234"}})
    );
    assert_eq!(
        sent[1].body,
        json!({"messaging_product": "whatsapp", "recipient_type": "individual",
               "to": "919812345678", "type": "template",
               "template": {"name": "otp", "language": {"code": "en_US"}, "components": components}})
    );
    assert_eq!(sent[2].body["type"], "interactive");
    assert_eq!(sent[2].body["interactive"], interactive_body);
    assert_eq!(sent[2].wamid.as_deref(), Some(interactive.as_str()));
}

#[tokio::test]
async fn whatsapp_errors_are_classified() {
    let (graph, connector) = whatsapp().await;
    let msg = wa(WhatsappContent::Text { body: "hi".into() });

    graph.fail_next(400, 131047, "Re-engagement message");
    match connector.send(&msg).await {
        Err(SendError::Permanent { code, description }) => {
            assert_eq!(code, "131047");
            assert!(
                description.starts_with("Re-engagement message"),
                "{description}"
            );
        }
        other => panic!("{other:?}"),
    }
    graph.answer_next_raw(429, "");
    assert_eq!(connector.send(&msg).await, Err(SendError::Throttled));
    graph.fail_next(400, 130429, "Rate limit hit");
    assert_eq!(connector.send(&msg).await, Err(SendError::Throttled));
    graph.fail_next(500, 131000, "Something went wrong");
    assert!(matches!(
        connector.send(&msg).await,
        Err(SendError::Temporary(_))
    ));
    graph.answer_next_raw(502, "<html>bad gateway</html>");
    assert!(matches!(
        connector.send(&msg).await,
        Err(SendError::Temporary(_))
    ));
    graph.answer_next_raw(200, r#"{"messaging_product":"whatsapp"}"#);
    assert!(matches!(
        connector.send(&msg).await,
        Err(SendError::Temporary(_))
    ));
    // And it works again afterwards.
    assert!(connector.send(&msg).await.is_ok());

    // A wrong token is Graph's 190, for good.
    let wrong = CloudApiConnector::new(CloudApiConfig {
        api_base: graph.api_base(),
        phone_number_id: PHONE_ID.into(),
        access_token: "expired".into(),
        app_secret: "s".into(),
        ..Default::default()
    })
    .unwrap();
    assert!(matches!(
        wrong.send(&msg).await,
        Err(SendError::Permanent { code, .. }) if code == "190"
    ));

    // Nobody listening: temporary.
    let addr = graph.addr;
    drop(graph);
    let gone = CloudApiConnector::new(CloudApiConfig {
        api_base: format!("http://{addr}/v21.0"),
        phone_number_id: PHONE_ID.into(),
        access_token: TOKEN.into(),
        app_secret: "s".into(),
        timeout_secs: 1,
        ..Default::default()
    })
    .unwrap();
    assert!(matches!(
        gone.send(&msg).await,
        Err(SendError::Temporary(_))
    ));
}

#[tokio::test]
async fn whatsapp_callbacks_from_the_kit_parse() {
    let body = graph::status_callback(
        "wamid.X",
        "failed",
        "+919812345678",
        1_700_000_000,
        Some((131026, "Message undeliverable")),
    );
    assert!(verify_signature(
        "app-secret",
        Some(&graph::sign("app-secret", body.as_bytes())),
        body.as_bytes()
    ));
    assert!(!verify_signature(
        "other",
        Some(&graph::sign("app-secret", body.as_bytes())),
        body.as_bytes()
    ));
    match parse_callback(body.as_bytes()).unwrap().as_slice() {
        [Report::WhatsappStatus(s)] => {
            assert_eq!((s.wamid.as_str(), s.status), ("wamid.X", WaStatus::Failed));
            assert_eq!(s.recipient, "+919812345678");
            assert_eq!(s.at_ms, 1_700_000_000_000);
            assert_eq!(
                s.error,
                Some(("131026".into(), "Message undeliverable".into()))
            );
        }
        other => panic!("{other:?}"),
    }
    let inbound = |body: String| match parse_callback(body.as_bytes()).unwrap().as_slice() {
        [Report::WhatsappInbound(i)] => i.clone(),
        other => panic!("{other:?}"),
    };
    let t = inbound(graph::text_callback(
        "+919812345678",
        "+15550001111",
        "hello",
    ));
    assert_eq!(
        (
            t.from.as_str(),
            t.to.as_str(),
            t.kind.as_str(),
            t.body.as_str()
        ),
        ("+919812345678", "+15550001111", "text", "hello")
    );
    let b = inbound(graph::button_callback(
        "+919812345678",
        "+15550001111",
        "yes",
        "Yes",
    ));
    assert_eq!(b.button, Some(("yes".into(), "Yes".into())));
    let l = inbound(graph::list_reply_callback(
        "+919812345678",
        "+15550001111",
        "row2",
        "Row 2",
    ));
    assert_eq!(l.button, Some(("row2".into(), "Row 2".into())));
    let q = inbound(graph::template_reply_callback(
        "+919812345678",
        "+15550001111",
        "STOP",
        "Stop promotions",
    ));
    assert_eq!(
        (q.kind.as_str(), q.body.as_str()),
        ("button", "Stop promotions")
    );
    assert_eq!(q.button, Some(("STOP".into(), "Stop promotions".into())));
}

struct Voice {
    fs: EslServer,
    connector: FreeswitchConnector,
    reports: mpsc::Receiver<Report>,
    _stop: watch::Sender<bool>,
}

async fn voice_with(password: &str) -> Voice {
    rackwave_testkit::watchdog::arm();
    let fs = EslServer::start("ClueCon").await;
    fs.set_step_ms(20);
    let (tx, reports) = rackwave_testkit::carrier_reports(64);
    let (stop, shutdown) = watch::channel(false);
    let config = FreeswitchConfig {
        host: "127.0.0.1".into(),
        port: fs.addr.port(),
        password: password.into(),
        recordings_dir: "/var/rec".into(),
        recording_url_base: "https://rec.example/r/".into(),
        reconnect_min_ms: 20,
        reconnect_max_ms: 100,
        command_timeout_secs: 2,
        ..Default::default()
    };
    config.check().unwrap();
    let connector = FreeswitchConnector::start(config, tx, shutdown);
    Voice {
        fs,
        connector,
        reports,
        _stop: stop,
    }
}

async fn voice() -> Voice {
    let v = voice_with("ClueCon").await;
    v.fs.wait_subscriptions(1).await;
    v
}

fn call(id: &str, to: &str, record: bool) -> OutboundCall {
    OutboundCall {
        call_id: id.into(),
        from: "+15550001111".into(),
        to: to.into(),
        tts: Some("Your code is 1, 2, 3 (again: 123)".into()),
        audio_url: None,
        record,
    }
}

async fn next(reports: &mut mpsc::Receiver<Report>) -> CallReport {
    match tokio::time::timeout(Duration::from_secs(3), reports.recv()).await {
        Ok(Some(Report::Call(c))) => c,
        other => panic!("expected a call report, got {other:?}"),
    }
}

async fn nothing_more(reports: &mut mpsc::Receiver<Report>) {
    if let Ok(r) = tokio::time::timeout(Duration::from_millis(200), reports.recv()).await {
        panic!("unexpected report {r:?}");
    }
}

#[tokio::test]
async fn call_answered_and_completed_with_recording() {
    let mut v = voice().await;
    v.fs.rule(
        "919800000001",
        Outcome::Answer {
            ring_secs: 4,
            billsec: 30,
        },
    );
    v.connector
        .dial(&call("call_a1", "+919800000001", true))
        .await
        .unwrap();

    let o = &v.fs.originates()[0];
    assert_eq!(o.vars["rackwave_call_id"], "call_a1");
    assert_eq!(o.vars["origination_caller_id_number"], "15550001111");
    assert_eq!(
        o.vars["execute_on_answer"],
        "record_session /var/rec/call_a1.wav"
    );
    assert_eq!(o.dial_string, "sofia/gateway/carrier/919800000001");
    assert_eq!(o.app, "&speak(flite|kal|Your code is 1, 2, 3 ,again: 123,)");

    let answered = next(&mut v.reports).await;
    assert_eq!(answered.call_id, "call_a1");
    let CallEvent::Answered { at_ms: answered_at } = answered.event else {
        panic!("{answered:?}")
    };
    let hangup = next(&mut v.reports).await;
    assert_eq!(hangup.call_id, "call_a1");
    match hangup.event {
        CallEvent::Hangup {
            at_ms,
            cause,
            answered,
            billsec,
            ring_secs,
            recording_url,
        } => {
            assert_eq!(cause, "NORMAL_CLEARING");
            assert!(answered);
            assert_eq!((billsec, ring_secs), (30, 4));
            assert_eq!(at_ms - answered_at, 30_000);
            assert_eq!(
                recording_url.as_deref(),
                Some("https://rec.example/r/call_a1.wav")
            );
        }
        other => panic!("{other:?}"),
    }
    nothing_more(&mut v.reports).await;
}

#[tokio::test]
async fn busy_fails_and_no_answer_hangs_up_once() {
    let mut v = voice().await;
    v.fs.rule("919800000002", Outcome::Busy);
    v.fs.rule("919800000003", Outcome::NoAnswer { ring_secs: 25 });
    v.connector
        .dial(&call("call_busy", "+919800000002", false))
        .await
        .unwrap();
    assert_eq!(
        next(&mut v.reports).await,
        CallReport {
            call_id: "call_busy".into(),
            event: CallEvent::Failed {
                cause: "USER_BUSY".into()
            }
        }
    );
    v.connector
        .dial(&call("call_na", "+919800000003", true))
        .await
        .unwrap();
    let r = next(&mut v.reports).await;
    assert_eq!(r.call_id, "call_na");
    match r.event {
        CallEvent::Hangup {
            cause,
            answered,
            billsec,
            ring_secs,
            ..
        } => {
            assert_eq!(cause, "NO_ANSWER");
            assert!(!answered);
            assert_eq!((billsec, ring_secs), (0, 25));
        }
        other => panic!("{other:?}"),
    }
    // The job's own -ERR NO_ANSWER that follows is not a second end.
    nothing_more(&mut v.reports).await;
}

#[tokio::test]
async fn refused_originate_is_permanent_and_failure_after_answer_is_reported() {
    let mut v = voice().await;
    v.fs.rule("919800000004", Outcome::Refuse("INVALID_GATEWAY".into()));
    v.fs.rule(
        "919800000005",
        Outcome::FailAfterAnswer {
            ring_secs: 2,
            after_secs: 3,
            cause: "NORMAL_TEMPORARY_FAILURE".into(),
        },
    );
    assert!(matches!(
        v.connector.dial(&call("call_r", "919800000004", false)).await,
        Err(SendError::Permanent { description, .. }) if description.contains("INVALID_GATEWAY")
    ));
    v.connector
        .dial(&call("call_f", "919800000005", false))
        .await
        .unwrap();
    assert!(matches!(
        next(&mut v.reports).await.event,
        CallEvent::Answered { .. }
    ));
    match next(&mut v.reports).await.event {
        CallEvent::Hangup {
            cause,
            answered,
            billsec,
            recording_url,
            ..
        } => {
            assert_eq!(cause, "NORMAL_TEMPORARY_FAILURE");
            assert!(answered);
            assert_eq!(billsec, 3);
            assert_eq!(recording_url, None);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn dropped_socket_reconnects_and_later_dials_work() {
    let mut v = voice().await;
    v.fs.rule("919800000006", Outcome::Silent);
    v.connector
        .dial(&call("call_1", "919800000006", false))
        .await
        .unwrap();
    v.fs.drop_connections();
    v.fs.wait_subscriptions(2).await;
    v.connector
        .dial(&call("call_2", "919800000007", false))
        .await
        .unwrap();
    let r = next(&mut v.reports).await;
    assert_eq!(
        (
            r.call_id.as_str(),
            matches!(r.event, CallEvent::Answered { .. })
        ),
        ("call_2", true)
    );
    assert_eq!(next(&mut v.reports).await.call_id, "call_2");
    assert_eq!(v.fs.connections(), 2);
}

#[tokio::test]
async fn wrong_password_is_retried_until_it_is_right() {
    let mut v = voice_with("wrong").await;
    v.fs.wait_auth_failures(3).await;
    assert!(matches!(
        v.connector
            .dial(&call("call_pw", "919800000008", false))
            .await,
        Err(SendError::Temporary(_))
    ));
    assert_eq!(v.fs.subscriptions(), 0);
    assert!(v.fs.originates().is_empty());
    // FreeSWITCH's password is changed to what we have: the next try works.
    v.fs.set_password("wrong");
    v.fs.wait_subscriptions(1).await;
    v.connector
        .dial(&call("call_pw", "919800000008", false))
        .await
        .unwrap();
    assert_eq!(next(&mut v.reports).await.call_id, "call_pw");
}

#[tokio::test]
async fn malformed_events_are_survived() {
    let mut v = voice().await;
    // Framed but meaningless: no Event-Name, bad encodings, not UTF-8, a
    // hangup of ours with nonsense numbers, an unknown content type.
    let garbage = [
        &b"Content-Length: 10\nContent-Type: text/event-plain\n\nno colon\n\n"[..],
        b"Content-Length: 5\nContent-Type: text/event-plain\n\n\xff\xfe\xfd\n\n",
        b"Content-Type: text/whatever\n\n",
        b"junk line\n\n",
    ];
    for g in garbage {
        v.fs.send_raw(g);
    }
    let nonsense = rackwave_testkit::esl::event_frame(
        &[
            ("Event-Name".into(), "CHANNEL_HANGUP_COMPLETE".into()),
            ("variable_rackwave_call_id".into(), "call_x".into()),
            ("Event-Date-Timestamp".into(), "%zz".into()),
            ("variable_billsec".into(), "-3".into()),
        ],
        "",
    );
    v.fs.send_raw(&nonsense);
    v.connector
        .dial(&call("call_ok", "919800000009", false))
        .await
        .unwrap();
    assert_eq!(next(&mut v.reports).await.call_id, "call_ok");
    assert_eq!(next(&mut v.reports).await.call_id, "call_ok");
    assert_eq!(
        v.fs.connections(),
        1,
        "framed garbage does not cost the connection"
    );

    // A stream that cannot be framed any more costs the connection, and
    // only that.
    v.fs.send_raw(b"Content-Length: lots\nContent-Type: text/event-plain\n\n");
    v.fs.wait_subscriptions(2).await;
    v.connector
        .dial(&call("call_ok2", "919800000009", false))
        .await
        .unwrap();
    assert_eq!(next(&mut v.reports).await.call_id, "call_ok2");
}
