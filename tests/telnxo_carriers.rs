//! Telnxo end to end through the real connectors, against the carriers'
//! peers of the test kit on loopback: an SMSC (SMPP 3.4: hex ids in
//! `submit_sm_resp`, decimal ids in receipts, throttling), a Graph API
//! with signed callbacks, and a FreeSWITCH event socket. Each event
//! arrives signed at a real webhook receiver with the seed's fields.

use std::time::Duration;

use rackwave_telnxo::ConnectorKind;
use rackwave_testkit::esl::{EslServer, Outcome};
use rackwave_testkit::graph::{self, GraphServer};
use rackwave_testkit::receiver::{seed_event, Receiver};
use rackwave_testkit::smsc::{Smsc, SmscOptions};
use rackwave_testkit::TestServer;
use serde_json::{json, Value};

const NUMBER: &str = "+15550001111";
const APP_SECRET: &str = "app-secret-for-tests";

async fn tenant(ts: &TestServer, rx: &Receiver, path: &str) -> String {
    let ws = ts.create_workspace(path, None).await;
    let key = ts.create_api_key(&ws, "telnxo").await;
    let (s, n) = ts
        .admin(
            "POST",
            "/telnxo/v1/numbers",
            Some(json!({"workspace_id": ws, "number": NUMBER, "channels": ["sms", "whatsapp", "voice"]})),
        )
        .await;
    assert_eq!(s, 201, "{n}");
    let (s, ep) = ts
        .call(
            &key,
            "POST",
            "/telnxo/v1/webhooks",
            Some(json!({"url": rx.url(path), "event_types": ["*"]})),
        )
        .await;
    assert_eq!(s, 201, "{ep}");
    rx.set_secrets(path, &[ep["secret"].as_str().unwrap()]);
    key
}

/// The first signed event `event` whose data has `field` = `value`,
/// checked for the seed's fields.
async fn event(
    ts: &TestServer,
    rx: &Receiver,
    path: &str,
    event: &str,
    field: &str,
    value: &str,
) -> Value {
    seed_event(ts, rx, path, event, |d| d[field] == value).await["data"].clone()
}

fn count(rx: &Receiver, path: &str, event: &str, id: &str) -> usize {
    rx.received(path)
        .iter()
        .filter(|r| r.body["event"] == event && r.body["data"]["message_id"] == id)
        .count()
}

#[tokio::test]
async fn sms_over_smpp_with_receipts_in_decimal() {
    let smsc = Smsc::start(SmscOptions::default()).await;
    let ts = rackwave_testkit::start_with(|c| {
        c.telnxo.sms.connector = ConnectorKind::Smpp;
        let smpp = &mut c.telnxo.sms.smpp;
        smpp.host = "127.0.0.1".into();
        smpp.port = smsc.addr().port();
        smpp.system_id = "rackwave".into();
        smpp.password = "secret".into();
        smpp.window = 10;
    })
    .await;
    let rx = Receiver::start().await;
    let key = tenant(&ts, &rx, "smpp").await;
    let send = |to: &'static str, body: String| {
        let (ts, key) = (&ts, key.clone());
        async move {
            let (s, v) = ts
                .call(
                    &key,
                    "POST",
                    "/telnxo/v1/sms",
                    Some(json!({"from": NUMBER, "to": to, "body": body})),
                )
                .await;
            assert_eq!(s, 202, "{v}");
            v["message_id"].as_str().unwrap().to_string()
        }
    };

    // Delivered: the SMSC acks with a hex id and reports it in decimal.
    let ok = send("+919876543211", "Hello over SMPP".into()).await;
    event(&ts, &rx, "smpp", "sms.sent", "message_id", &ok).await;
    let d = event(&ts, &rx, "smpp", "sms.delivered", "message_id", &ok).await;
    assert_eq!(d["dlr_status"], "DELIVRD");
    let submit = smsc
        .submits()
        .into_iter()
        .find(|s| s.destination == "919876543211")
        .unwrap();
    assert!(
        submit
            .message_id
            .unwrap()
            .chars()
            .any(|c| c.is_ascii_uppercase()),
        "a hex id"
    );

    // Three UCS-2 parts, three receipts, one event.
    let multi = send("+919876543212", "Привет, мир! ".repeat(13)).await;
    let sent = event(&ts, &rx, "smpp", "sms.sent", "message_id", &multi).await;
    assert_eq!(sent["parts"], 3);
    event(&ts, &rx, "smpp", "sms.delivered", "message_id", &multi).await;
    let parts: Vec<_> = smsc
        .submits()
        .into_iter()
        .filter(|s| s.destination == "919876543212")
        .collect();
    assert_eq!(parts.len(), 3);
    assert!(parts
        .iter()
        .all(|p| p.data_coding == 8 && p.esm_class & 0x40 != 0));
    assert_eq!(count(&rx, "smpp", "sms.delivered", &multi), 1);

    // Undeliverable (the SMSC's numbers ending in 0).
    let bad = send("+919876543210", "nope".into()).await;
    let f = event(&ts, &rx, "smpp", "sms.failed", "message_id", &bad).await;
    assert_eq!(f["error_code"], "001", "{f}");

    // Throttled: back to the head of the queue, sent after the pause.
    smsc.throttle_next(1);
    let slow = send("+919876543213", "after a pause".into()).await;
    event(&ts, &rx, "smpp", "sms.delivered", "message_id", &slow).await;
    assert_eq!(
        smsc.submits()
            .iter()
            .filter(|s| s.destination == "919876543213")
            .count(),
        2,
        "refused once, then taken"
    );

    // A dropped bind comes back and sending goes on.
    smsc.drop_connections();
    let later = send("+919876543214", "after a reconnect".into()).await;
    event(&ts, &rx, "smpp", "sms.delivered", "message_id", &later).await;

    // Mobile originated.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(smsc.send_mo("919812345678", "15550001111", "STOP") > 0);
    let mo = event(&ts, &rx, "smpp", "sms.inbound", "from", "+919812345678").await;
    assert_eq!(
        (mo["to"].as_str(), mo["body"].as_str()),
        (Some(NUMBER), Some("STOP"))
    );
}

#[tokio::test]
async fn whatsapp_through_the_cloud_api_and_signed_callbacks() {
    let graph_api = GraphServer::start("1234567890", "token-abc").await;
    let ts = rackwave_testkit::start_with(|c| {
        graph_api.configure(c, APP_SECRET, "verify-me");
    })
    .await;
    let rx = Receiver::start().await;
    let key = tenant(&ts, &rx, "wa").await;
    let callback = |body: String, signature: Option<String>| post_callback(&ts, body, signature);
    let signed = |body: String| {
        let sig = graph::sign(APP_SECRET, body.as_bytes());
        callback(body, Some(sig))
    };

    // Meta's handshake.
    let ok = reqwest::get(format!(
        "{}/telnxo/v1/whatsapp/callback?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444",
        ts.http
    ))
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    let wrong = reqwest::get(format!(
        "{}/telnxo/v1/whatsapp/callback?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1",
        ts.http
    ))
    .await
    .unwrap();
    assert_eq!(wrong.status(), 403);

    // A template through the Graph API: whatsapp.sent with the wamid kept.
    let id = template(&ts, &key, "+919876543210").await;
    event(&ts, &rx, "wa", "whatsapp.sent", "message_id", &id).await;
    let sent = graph_api.sent().pop().unwrap();
    assert_eq!(sent.body["messaging_product"], "whatsapp");
    assert_eq!(sent.body["type"], "template");
    assert_eq!(sent.body["to"], "919876543210");
    assert_eq!(sent.authorization, "Bearer token-abc");
    let wamid = sent.wamid.unwrap();

    // Unsigned or wrongly signed callbacks: 401, nothing recorded.
    let delivered =
        graph::status_callback(&wamid, "delivered", "+919876543210", 1_780_825_200, None);
    assert_eq!(callback(delivered.clone(), None).await, 401);
    assert_eq!(
        callback(
            delivered.clone(),
            Some(graph::sign("wrong", delivered.as_bytes()))
        )
        .await,
        401
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(count(&rx, "wa", "whatsapp.delivered", &id), 0);

    // Read before delivered arrives: read counts, the late delivered does
    // not move the message back; repeats count once.
    let read = graph::status_callback(&wamid, "read", "+919876543210", 1_780_825_300, None);
    assert_eq!(signed(read.clone()).await, 200);
    event(&ts, &rx, "wa", "whatsapp.read", "message_id", &id).await;
    assert_eq!(signed(delivered).await, 200);
    assert_eq!(signed(read).await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&rx, "wa", "whatsapp.delivered", &id), 0);
    assert_eq!(count(&rx, "wa", "whatsapp.read", &id), 1);
    let (_, m) = ts
        .call(&key, "GET", &format!("/telnxo/v1/messages/{id}"), None)
        .await;
    assert_eq!(m["status"], "read");

    // A user writes; the window opens; a text goes; it fails at Meta.
    assert_eq!(
        signed(graph::text_callback(
            "+919812345670",
            "15550001111",
            "Hi there"
        ))
        .await,
        200
    );
    let inbound = event(&ts, &rx, "wa", "whatsapp.inbound", "from", "+919812345670").await;
    assert_eq!(
        (inbound["type"].as_str(), inbound["body"].as_str()),
        (Some("text"), Some("Hi there"))
    );
    let (s, v) = ts
        .call(
            &key,
            "POST",
            "/telnxo/v1/whatsapp/messages",
            Some(json!({"to": "+919812345670", "type": "text", "text": {"body": "Hello!"}})),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let text_id = v["message_id"].as_str().unwrap().to_string();
    event(&ts, &rx, "wa", "whatsapp.sent", "message_id", &text_id).await;
    let text_wamid = graph_api.sent().pop().unwrap().wamid.unwrap();
    let failed = graph::status_callback(
        &text_wamid,
        "failed",
        "+919812345670",
        1_780_825_400,
        Some((131026, "Message undeliverable")),
    );
    assert_eq!(signed(failed).await, 200);
    let f = event(&ts, &rx, "wa", "whatsapp.failed", "message_id", &text_id).await;
    assert_eq!(
        (f["error_code"].as_str(), f["error_title"].as_str()),
        (Some("131026"), Some("Message undeliverable"))
    );

    // Replies: an interactive button and a template's quick reply.
    assert_eq!(
        signed(graph::button_callback(
            "+919812345670",
            "15550001111",
            "yes",
            "Yes please"
        ))
        .await,
        200
    );
    let b = event(&ts, &rx, "wa", "whatsapp.button_reply", "button_id", "yes").await;
    assert_eq!(b["button_title"], "Yes please");
    assert_eq!(
        signed(graph::template_reply_callback(
            "+919812345670",
            "15550001111",
            "STOP_PROMO",
            "Stop promotions"
        ))
        .await,
        200
    );
    let q = event(
        &ts,
        &rx,
        "wa",
        "whatsapp.button_reply",
        "button_id",
        "STOP_PROMO",
    )
    .await;
    assert_eq!(q["button_title"], "Stop promotions");

    // Meta refuses a send for good: whatsapp.failed with its code.
    graph_api.fail_next(400, 131047, "Re-engagement message");
    let (_, v) = ts
        .call(
            &key,
            "POST",
            "/telnxo/v1/whatsapp/messages",
            Some(json!({"to": "+919812345670", "type": "text", "text": {"body": "late"}})),
        )
        .await;
    let refused = v["message_id"].as_str().unwrap().to_string();
    let f = event(&ts, &rx, "wa", "whatsapp.failed", "message_id", &refused).await;
    assert_eq!(f["error_code"], "131047");

    // Unknown fields and kinds are ignored; malformed bodies are refused.
    let odd = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "message_template_status_update", "value": {"event": "APPROVED"}}]}], "extra": true}).to_string();
    assert_eq!(signed(odd).await, 200);
    assert_eq!(signed("not json".into()).await, 400);
}

#[tokio::test]
async fn voice_through_the_freeswitch_event_socket() {
    let esl = EslServer::start("ClueCon").await;
    esl.set_step_ms(20);
    esl.rule(
        "919876543210",
        Outcome::Answer {
            ring_secs: 4,
            billsec: 42,
        },
    );
    esl.rule("919876543211", Outcome::Busy);
    esl.rule("919876543212", Outcome::NoAnswer { ring_secs: 30 });
    let ts = rackwave_testkit::start_with(|c| {
        let v = &mut c.telnxo.voice;
        v.connector = ConnectorKind::Freeswitch;
        v.freeswitch.host = "127.0.0.1".into();
        v.freeswitch.port = esl.addr.port();
        v.freeswitch.password = "ClueCon".into();
        v.freeswitch.recording_url_base = "https://recordings.example.test/".into();
    })
    .await;
    esl.wait_subscriptions(1).await;
    let rx = Receiver::start().await;
    let key = tenant(&ts, &rx, "voice").await;
    let call = |to: &'static str, record: bool| {
        let (ts, key) = (&ts, key.clone());
        async move {
            let (s, v) = ts
                .call(&key, "POST", "/telnxo/v1/calls",
                    Some(json!({"from": NUMBER, "to": to, "tts": "Your (order) has shipped", "record": record})))
                .await;
            assert_eq!(s, 202, "{v}");
            v["call_id"].as_str().unwrap().to_string()
        }
    };
    let answered = call("+919876543210", true).await;
    let busy = call("+919876543211", false).await;
    let unanswered = call("+919876543212", false).await;
    for id in [&answered, &busy, &unanswered] {
        event(&ts, &rx, "voice", "voice.initiated", "call_id", id).await;
    }
    event(&ts, &rx, "voice", "voice.answered", "call_id", &answered).await;
    let done = event(&ts, &rx, "voice", "voice.completed", "call_id", &answered).await;
    assert_eq!(done["duration_seconds"], 42);
    assert_eq!(
        done["recording_url"],
        format!("https://recordings.example.test/{answered}.wav")
    );
    let f = event(&ts, &rx, "voice", "voice.failed", "call_id", &busy).await;
    assert_eq!(f["error_code"], "USER_BUSY");
    let na = event(&ts, &rx, "voice", "voice.no_answer", "call_id", &unanswered).await;
    assert_eq!(na["ring_duration_seconds"], 30);
    let originate = esl
        .originates()
        .into_iter()
        .find(|o| o.destination == "919876543210")
        .unwrap();
    assert_eq!(originate.vars.get("rackwave_call_id"), Some(&answered));

    // The socket drops: the connector comes back and calls go on.
    esl.drop_connections();
    esl.wait_subscriptions(2).await;
    let after = call("+919876543210", false).await;
    event(&ts, &rx, "voice", "voice.completed", "call_id", &after).await;
    let (_, c) = ts
        .call(&key, "GET", &format!("/telnxo/v1/calls/{after}"), None)
        .await;
    assert_eq!(c["status"], "completed");
}

/// A status that overtakes the recording of its send (or comes before a
/// restart) is kept durably and applied once the send is recorded.
#[tokio::test]
async fn a_status_before_its_send_is_recorded_survives_a_restart() {
    let graph_api = GraphServer::start("1234567890", "token-abc").await;
    let mut ts = rackwave_testkit::start_with(|c| graph_api.configure(c, APP_SECRET, "v")).await;
    let rx = Receiver::start().await;
    let key = tenant(&ts, &rx, "early").await;
    let wamid = "wamid.HBgLOTE5ODc2NTQzMjEwFQIAERgSQUJDREVGMDEyMzQ1Njc4OUEA";
    let delivered =
        graph::status_callback(wamid, "delivered", "+919876543210", 1_780_825_200, None);
    let signature = graph::sign(APP_SECRET, delivered.as_bytes());
    let status = post_callback(&ts, delivered, Some(signature)).await;
    assert_eq!(status, 200, "taken: kept for its message");
    ts.restart().await;
    graph_api.answer_next_raw(
        200,
        &json!({"messaging_product": "whatsapp", "messages": [{"id": wamid}]}).to_string(),
    );
    let id = template(&ts, &key, "+919876543210").await;
    event(&ts, &rx, "early", "whatsapp.sent", "message_id", &id).await;
    event(&ts, &rx, "early", "whatsapp.delivered", "message_id", &id).await;
}

/// Posts a WhatsApp callback as Meta does; the status answered.
async fn post_callback(ts: &TestServer, body: String, signature: Option<String>) -> u16 {
    let mut req = reqwest::Client::new()
        .post(format!("{}/telnxo/v1/whatsapp/callback", ts.http))
        .header("content-type", "application/json")
        .body(body);
    if let Some(s) = signature {
        req = req.header("X-Hub-Signature-256", s);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Queues a template to `to`; its message id.
async fn template(ts: &TestServer, key: &str, to: &str) -> String {
    let body = json!({"to": to, "type": "template",
        "template": {"name": "order_update", "language": "en_US", "components": []}});
    let (s, v) = ts
        .call(key, "POST", "/telnxo/v1/whatsapp/messages", Some(body))
        .await;
    assert_eq!(s, 202, "{v}");
    v["message_id"].as_str().unwrap().to_string()
}
