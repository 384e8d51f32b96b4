//! Events and webhooks end to end: mail accepted over SMTP becomes events
//! (through the spool's change feed), which reach a real HTTP receiver
//! (`rackwave_testkit::receiver`) that checks every signature independently
//! from the Standard Webhooks spec. Retries run on the manual clock: the
//! test moves time to each offset of the seed's schedule.

use std::time::{Duration, Instant};

use rackwave_core::event::{EventType, InvoicePaid, TrialActivated};
use rackwave_core::Timestamp;
use rackwave_events::Pruned;
use rackwave_testkit::binary::{wait_ready, Ports};
use rackwave_testkit::receiver::{Behavior, Receiver};
use rackwave_testkit::*;
use serde_json::{json, Value};

/// The `rackwave` binary under test, serving `config`.
fn spawn(config: &std::path::Path) -> rackwave_testkit::binary::Running {
    rackwave_testkit::binary::spawn(env!("CARGO_BIN_EXE_rackwave"), config)
}

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
/// The seed's schedule: offsets of attempts 1 to 6 from the first.
const OFFSETS: [i64; 6] = [0, 5 * MIN, 35 * MIN, 155 * MIN, 635 * MIN, 24 * HOUR];
const WAIT: Duration = Duration::from_secs(15);

struct Tenant {
    ws: String,
    migo: String,
    telnxo: String,
    account: Account,
}

async fn tenant(ts: &TestServer, name: &str) -> Tenant {
    let ws = ts.create_workspace(name, None).await;
    let account = ts
        .create_account_in(&ws, &format!("{name}-user"), 10_000)
        .await;
    Tenant {
        migo: ts.create_api_key(&ws, "migosmtp").await,
        telnxo: ts.create_api_key(&ws, "telnxo").await,
        ws,
        account,
    }
}

/// Creates an endpoint; returns its id and secret.
async fn endpoint(ts: &TestServer, key: &str, url: &str, types: Value) -> (String, String) {
    let (s, ep) = ts
        .call(
            key,
            "POST",
            "/migosmtp/v1/webhooks",
            Some(json!({"url": url, "event_types": types, "description": "test"})),
        )
        .await;
    assert_eq!(s, 201, "{ep}");
    let secret = ep["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{ep}");
    (ep["id"].as_str().unwrap().to_string(), secret)
}

/// A server, a receiver, and one tenant `name` with one endpoint at the
/// receiver's path `name` subscribed to `types`, whose secret the receiver
/// verifies with: the start of most tests here.
async fn one_endpoint(name: &str, types: Value) -> (TestServer, Receiver, Tenant, String) {
    let ts = start().await;
    let rx = Receiver::start().await;
    let t = tenant(&ts, name).await;
    let (ep, secret) = endpoint(&ts, &t.migo, &rx.url(name), types).await;
    rx.set_secrets(name, &[&secret]);
    (ts, rx, t, ep)
}

/// Sends one message over SMTP; returns its message id.
async fn send_mail(ts: &TestServer, t: &Tenant, to: &str, subject: &str) -> String {
    let mut s = ts.authed(&t.account).await;
    let r = s
        .send_mail(
            "app@sender.test",
            &[to],
            &message("app@sender.test", to, subject, "hello"),
        )
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    let qid = queue_id(&r);
    let (_, page) = ts.get(&format!("/admin/v1/messages?queue_id={qid}")).await;
    page["messages"][0]["id"].as_str().unwrap().to_string()
}

fn kick(ts: &TestServer) {
    ts.server.as_ref().unwrap().events.kick();
}

/// Moves the manual clock to `at_ms` and wakes the emitter.
fn clock_to(ts: &TestServer, at_ms: i64) {
    ts.clock.set_ms(at_ms);
    kick(ts);
}

async fn deliveries(ts: &TestServer, key: &str, ep: &str) -> Vec<Value> {
    let (s, page) = ts
        .call(
            key,
            "GET",
            &format!("/migosmtp/v1/webhooks/{ep}/deliveries"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{page}");
    page["deliveries"].as_array().unwrap().clone()
}

/// Waits until the endpoint's only delivery is in `state`.
async fn wait_state(ts: &TestServer, key: &str, ep: &str, state: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let ds = deliveries(ts, key, ep).await;
        if let Some(d) = ds.first().filter(|d| d["state"] == state) {
            return d.clone();
        }
        assert!(Instant::now() < deadline, "delivery never {state}: {ds:?}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// Waits until the endpoint's only delivery has `n` attempts recorded.
async fn wait_attempts(ts: &TestServer, key: &str, ep: &str, n: usize) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let ds = deliveries(ts, key, ep).await;
        if let Some(d) = ds
            .first()
            .filter(|d| d["attempts"].as_array().map(Vec::len) == Some(n))
        {
            return d.clone();
        }
        assert!(Instant::now() < deadline, "never {n} attempts: {ds:?}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// The event log and finished deliveries are kept for `[webhooks]
/// retention_days` (30 by default) on the injectable clock, then deleted;
/// younger ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_finished_deliveries_expire_after_the_retention() {
    let (ts, rx, t, ep) = one_endpoint("aging", json!(["email.queued"])).await;
    let old = send_mail(&ts, &t, "old@example.test", "old").await;
    rx.wait_for("aging", 1, WAIT).await;
    wait_state(&ts, &t.migo, &ep, "succeeded").await;
    let events = &ts.server.as_ref().unwrap().events;
    assert_eq!(
        events.prune_expired().await.unwrap(),
        Pruned::default(),
        "nothing is old enough yet"
    );

    clock_to(&ts, START_MS + 30 * 24 * HOUR + 1);
    let new = send_mail(&ts, &t, "new@example.test", "new").await;
    rx.wait_for("aging", 2, WAIT).await;
    let deadline = Instant::now() + WAIT;
    while deliveries(&ts, &t.migo, &ep)
        .await
        .iter()
        .any(|d| d["state"] != "succeeded")
    {
        assert!(Instant::now() < deadline, "second delivery never succeeded");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(
        events.prune_expired().await.unwrap(),
        Pruned {
            events: 1,
            deliveries: 1,
            messages: 0
        }
    );

    let (s, page) = ts.call(&t.migo, "GET", "/migosmtp/v1/events", None).await;
    assert_eq!(s, 200);
    let listed: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [new.as_str()]);
    let (s, gone) = ts
        .call(
            &t.migo,
            "GET",
            &format!("/migosmtp/v1/events?message_id={old}"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(gone["events"], json!([]), "its message index went too");
    let left = deliveries(&ts, &t.migo, &ep).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["event_id"], page["events"][0]["id"]);
    assert_eq!(events.prune_expired().await.unwrap(), Pruned::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_event_reaches_the_subscribed_endpoint_only() {
    let ts = start().await;
    let rx = Receiver::start().await;
    let a = tenant(&ts, "alpha").await;
    let b = tenant(&ts, "beta").await;
    let (_, s_queued) = endpoint(&ts, &a.migo, &rx.url("queued"), json!(["email.queued"])).await;
    rx.set_secrets("queued", &[&s_queued]);
    endpoint(
        &ts,
        &a.migo,
        &rx.url("delivered"),
        json!(["email.delivered"]),
    )
    .await;
    endpoint(&ts, &b.migo, &rx.url("other-tenant"), json!(["*"])).await;
    let (off, _) = endpoint(&ts, &a.migo, &rx.url("disabled"), json!(["*"])).await;
    let (s, _) = ts
        .call(
            &a.migo,
            "PATCH",
            &format!("/migosmtp/v1/webhooks/{off}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(s, 200);

    let msg = send_mail(&ts, &a, "rcpt@example.test", "Your order has shipped").await;
    let got = rx.wait_for("queued", 1, WAIT).await;
    let r = &got[0];
    assert!(r.verified(), "signature must verify: {r:?}");
    assert_eq!(r.headers["content-type"], "application/json");
    assert!(
        r.headers["user-agent"].starts_with("rackwave/"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.timestamp, START_MS / 1000);
    let body = &r.body;
    assert_eq!(body["id"], r.webhook_id.as_str());
    assert!(r.webhook_id.starts_with("evt_"));
    assert_eq!(body["event"], "email.queued");
    assert_eq!(body["product"], "migosmtp");
    assert_eq!(body["platform_id"], "1");
    assert_eq!(body["workspace_id"], a.ws.as_str());
    assert_eq!(body["timestamp"], "2026-06-07T09:39:00Z");
    let data = &body["data"];
    assert_eq!(data["message_id"], msg.as_str());
    assert_eq!(data["to"], "rcpt@example.test");
    assert_eq!(data["from"], "app@sender.test");
    assert_eq!(data["subject"], "Your order has shipped");
    assert_eq!(data["queued_at"], "2026-06-07T09:39:00Z");
    for f in EventType::EmailQueued.fields() {
        assert!(data.get(f).is_some(), "data lacks {f}");
    }

    // Nothing for the endpoint not subscribed to it, the other tenant's,
    // or the disabled one.
    tokio::time::sleep(Duration::from_millis(600)).await;
    for path in ["delivered", "other-tenant", "disabled"] {
        assert!(rx.received(path).is_empty(), "{path} got a request");
    }
    assert_eq!(rx.received("queued").len(), 1, "delivered exactly once");

    // The event log: by type and message id, and not across platforms.
    let (s, page) = ts
        .call(
            &a.migo,
            "GET",
            &format!("/migosmtp/v1/events?type=email.queued&message_id={msg}"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    assert_eq!(page["events"][0], *body);
    let (s, page) = ts.call(&a.telnxo, "GET", "/telnxo/v1/events", None).await;
    assert_eq!(s, 200);
    assert!(page["events"].as_array().unwrap().is_empty(), "{page}");
    let (_, page) = ts.call(&b.migo, "GET", "/migosmtp/v1/events", None).await;
    assert!(page["events"].as_array().unwrap().is_empty(), "{page}");
    let (s, one) = ts
        .call(
            &a.migo,
            "GET",
            &format!("/migosmtp/v1/events/{}", r.webhook_id),
            None,
        )
        .await;
    assert_eq!((s, &one), (200, body));
    let (s, _) = ts
        .call(
            &b.migo,
            "GET",
            &format!("/migosmtp/v1/events/{}", r.webhook_id),
            None,
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_failures_then_success_at_the_seed_offsets() {
    let (ts, rx, t, ep) = one_endpoint("retry", json!(["email.queued"])).await;
    rx.script("retry", vec![Behavior::Fail(500); 4]);
    send_mail(&ts, &t, "rcpt@example.test", "retry me").await;

    let first = rx.wait_for("retry", 1, WAIT).await[0].clone();
    for (n, offset) in OFFSETS.iter().enumerate().skip(1).take(4) {
        // One second early: nothing.
        clock_to(&ts, START_MS + offset - 1000);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            rx.received("retry").len(),
            n,
            "attempt {} came early",
            n + 1
        );
        clock_to(&ts, START_MS + offset);
        let got = rx.wait_for("retry", n + 1, WAIT).await;
        let r = &got[n];
        assert!(r.verified());
        assert_eq!(
            r.webhook_id, first.webhook_id,
            "a retry carries the same event id"
        );
        assert_eq!(r.raw, first.raw, "and the same payload");
        assert_eq!(r.timestamp, (START_MS + offset) / 1000, "a fresh timestamp");
        assert_ne!(r.signature, got[n - 1].signature, "and a fresh signature");
    }
    let d = wait_state(&ts, &t.migo, &ep, "succeeded").await;
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 5, "{d}");
    for (a, offset) in attempts.iter().zip(OFFSETS) {
        assert_eq!(a["at"], rackwave_core::rfc3339(START_MS + offset).as_str());
    }
    for a in &attempts[..4] {
        assert_eq!(a["status_code"], 500);
        assert_eq!(a["success"], false);
        assert_eq!(a["error"], "HTTP 500 Internal Server Error");
        assert_eq!(a["response_body"], "failing with 500 as told");
    }
    assert_eq!(attempts[4]["status_code"], 200);
    assert_eq!(attempts[4]["success"], true);
    assert!(d["next_attempt_at"].is_null());

    // Nothing more, ever.
    clock_to(&ts, START_MS + 48 * HOUR);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(rx.received("retry").len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_failing_is_permanently_failed_after_24_hours_then_resent_by_hand() {
    let (ts, rx, t, ep) = one_endpoint("dead", json!(["*"])).await;
    rx.set_default("dead", Behavior::Fail(503));
    send_mail(&ts, &t, "rcpt@example.test", "never").await;

    rx.wait_for("dead", 1, WAIT).await;
    for (n, offset) in OFFSETS.iter().enumerate().skip(1) {
        let d = wait_attempts(&ts, &t.migo, &ep, n).await;
        assert_eq!(d["state"], "retrying");
        assert_eq!(
            d["next_attempt_at"],
            rackwave_core::rfc3339(START_MS + offset).as_str()
        );
        clock_to(&ts, START_MS + offset);
        rx.wait_for("dead", n + 1, WAIT).await;
    }
    let d = wait_state(&ts, &t.migo, &ep, "failed").await;
    assert_eq!(d["attempts"].as_array().unwrap().len(), 6);
    assert_eq!(
        d["attempts"][5]["at"],
        rackwave_core::rfc3339(START_MS + 24 * HOUR).as_str()
    );
    clock_to(&ts, START_MS + 72 * HOUR);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        rx.received("dead").len(),
        6,
        "no attempt after the final one"
    );

    // A resend by hand, once the receiver is fixed.
    rx.set_default("dead", Behavior::ok());
    let id = d["id"].as_str().unwrap();
    let (s, r) = ts
        .call(
            &t.migo,
            "POST",
            &format!("/migosmtp/v1/webhooks/{ep}/deliveries/{id}/resend"),
            None,
        )
        .await;
    assert_eq!(s, 202, "{r}");
    let got = rx.wait_for("dead", 7, WAIT).await;
    assert_eq!(got[6].webhook_id, got[0].webhook_id);
    assert_eq!(got[6].timestamp, (START_MS + 72 * HOUR) / 1000);
    assert!(got[6].verified());
    let d = wait_state(&ts, &t.migo, &ep, "succeeded").await;
    assert_eq!(d["attempts"][6]["manual"], true);
    // What an operator's dashboard sees of it.
    let metrics = ts.metrics().await;
    for (series, want) in [
        ("rackwave_webhook_attempts_total{result=\"failed\"}", 6),
        ("rackwave_webhook_attempts_total{result=\"succeeded\"}", 1),
        ("rackwave_webhook_attempt_seconds_count", 7),
        ("rackwave_webhook_deliveries_failed_total", 1),
    ] {
        let line = metrics
            .lines()
            .find(|l| l.split_whitespace().next() == Some(series))
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"));
        assert_eq!(line, format!("{series} {want}"), "{series}");
    }
    // A succeeded delivery is not resent.
    let (s, _) = ts
        .call(
            &t.migo,
            "POST",
            &format!("/migosmtp/v1/webhooks/{ep}/deliveries/{id}/resend"),
            None,
        )
        .await;
    assert_eq!(s, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_signs_with_both_secrets_for_24_hours() {
    let ts = start().await;
    let rx = Receiver::start().await;
    let t = tenant(&ts, "rotate").await;
    let (ep, old) = endpoint(&ts, &t.migo, &rx.url("rot"), json!(["email.queued"])).await;
    let (s, rotated) = ts
        .call(
            &t.migo,
            "POST",
            &format!("/migosmtp/v1/webhooks/{ep}/rotate-secret"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert!(new.starts_with("whsec_") && new != old);
    assert_eq!(
        rotated["previous_secret_expires_at"],
        rackwave_core::rfc3339(START_MS + 24 * HOUR).as_str()
    );
    // The secret is never shown again.
    let (_, shown) = ts
        .call(&t.migo, "GET", &format!("/migosmtp/v1/webhooks/{ep}"), None)
        .await;
    assert!(shown.get("secret").is_none(), "{shown}");

    rx.set_secrets("rot", &[&old, &new]);
    send_mail(&ts, &t, "a@example.test", "during the grace period").await;
    let r = rx.wait_for("rot", 1, WAIT).await[0].clone();
    assert_eq!(r.signature_count(), 2, "{}", r.signature);
    assert_eq!(r.matched_secrets, vec![old.clone(), new.clone()]);

    clock_to(&ts, START_MS + 24 * HOUR + 1000);
    send_mail(&ts, &t, "b@example.test", "after it").await;
    let r = rx.wait_for("rot", 2, WAIT).await[1].clone();
    assert_eq!(r.signature_count(), 1, "{}", r.signature);
    assert_eq!(r.matched_secrets, vec![new.clone()]);
    let (_, shown) = ts
        .call(&t.migo, "GET", &format!("/migosmtp/v1/webhooks/{ep}"), None)
        .await;
    assert!(shown["previous_secret_expires_at"].is_null(), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_other_tenants_and_platforms_are_refused() {
    let ts = start().await;
    let a = tenant(&ts, "owner").await;
    let b = tenant(&ts, "intruder").await;
    let (ep, _) = endpoint(&ts, &a.migo, "http://127.0.0.1:9/x", json!(["*"])).await;
    let http = &ts.http;

    // Another workspace: 404 everywhere, and it sees nothing.
    for (method, path, body) in [
        ("GET", format!("/migosmtp/v1/webhooks/{ep}"), None),
        (
            "PATCH",
            format!("/migosmtp/v1/webhooks/{ep}"),
            Some(json!({"enabled": false})),
        ),
        ("DELETE", format!("/migosmtp/v1/webhooks/{ep}"), None),
        (
            "POST",
            format!("/migosmtp/v1/webhooks/{ep}/rotate-secret"),
            None,
        ),
        ("POST", format!("/migosmtp/v1/webhooks/{ep}/test"), None),
        (
            "GET",
            format!("/migosmtp/v1/webhooks/{ep}/deliveries"),
            None,
        ),
    ] {
        let (s, e) = api(http, &b.migo, method, &path, body).await;
        assert_eq!(s, 404, "{method} {path}: {e}");
        assert_eq!(e["error"]["code"], "not_found");
    }
    let (_, list) = api(http, &b.migo, "GET", "/migosmtp/v1/webhooks", None).await;
    assert!(list["webhooks"].as_array().unwrap().is_empty(), "{list}");

    // The same workspace's Telnxo key does not see MigoSMTP endpoints.
    let (s, _) = api(
        http,
        &a.telnxo,
        "GET",
        &format!("/telnxo/v1/webhooks/{ep}"),
        None,
    )
    .await;
    assert_eq!(s, 404);
    // A key of one platform is refused on the other's routes.
    for (key, path) in [
        (&a.migo, "/telnxo/v1/webhooks"),
        (&a.telnxo, "/migosmtp/v1/webhooks"),
        (&a.migo, "/telnxo/v1/events"),
        (&a.telnxo, "/migosmtp/v1/events"),
    ] {
        let (s, e) = api(http, key, "GET", path, None).await;
        assert_eq!(s, 401, "{path}: {e}");
        assert_eq!(e["error"]["code"], "unauthorized");
    }
    for key in ["", "rw_migosmtp_bogus", ADMIN_TOKEN] {
        let (s, _) = api(http, key, "GET", "/migosmtp/v1/webhooks", None).await;
        assert_eq!(s, 401, "key {key:?}");
    }
    // A Telnxo endpoint takes Telnxo and portal events, not email ones.
    let (s, e) = api(
        http,
        &a.telnxo,
        "POST",
        "/telnxo/v1/webhooks",
        Some(json!({"url": "http://127.0.0.1:9/t", "event_types": ["email.queued"]})),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = api(
        http,
        &a.telnxo,
        "POST",
        "/telnxo/v1/webhooks",
        Some(json!({"url": "http://127.0.0.1:9/t", "event_types": ["sms.delivered", "invoice_paid"]})),
    )
    .await;
    assert_eq!(s, 201, "{e}");
    assert_eq!(e["platform"], "telnxo");
    // The OpenAPI document describes the platform routes.
    let (s, doc) = ts.get("/openapi.json").await;
    assert_eq!(s, 200);
    for path in [
        "/{platform}/v1/webhooks",
        "/{platform}/v1/webhooks/{id}/deliveries/{delivery_id}/resend",
        "/{platform}/v1/events",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from /openapi.json"
        );
    }
    // The owner still has its endpoint, untouched.
    let (s, e) = api(
        http,
        &a.migo,
        "GET",
        &format!("/migosmtp/v1/webhooks/{ep}"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(e["enabled"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_addresses_are_refused_at_creation_and_at_delivery() {
    // Created while allowed (as an operator might have), then the server
    // restarts with private targets refused.
    let mut ts = start().await;
    let rx = Receiver::start().await;
    let t = tenant(&ts, "private").await;
    let literal = rx.url("literal");
    let named = format!("http://localhost:{}/named", rx.addr.port());
    let (ep_literal, _) = endpoint(&ts, &t.migo, &literal, json!(["*"])).await;
    let (ep_named, _) = endpoint(&ts, &t.migo, &named, json!(["*"])).await;
    ts.stop().await;
    let mut config = test_config(ts.dir.path());
    config.webhooks.allow_private_targets = false;
    let server = rackwave::server::Server::start(config, ts.clock.clone())
        .await
        .unwrap();
    ts.http = format!("http://{}", server.http_addr);
    ts.smtp = server.smtp_addr;
    ts.server = Some(server);

    for url in [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/",
        "http://192.168.0.10:8443/x",
        "http://[::1]/",
        "http://[fd00:ec2::254]/",
        "ftp://example.com/hook",
        "not a url",
    ] {
        let (s, e) = ts
            .call(
                &t.migo,
                "POST",
                "/migosmtp/v1/webhooks",
                Some(json!({"url": url})),
            )
            .await;
        assert_eq!(s, 400, "{url} must be refused: {e}");
        assert_eq!(e["error"]["code"], "invalid_request");
    }
    let (s, e) = ts
        .call(
            &t.migo,
            "PATCH",
            &format!("/migosmtp/v1/webhooks/{ep_literal}"),
            Some(json!({"url": "http://127.0.0.2/"})),
        )
        .await;
    assert_eq!(s, 400, "{e}");

    // At delivery time both are refused again: the literal address, and the
    // name whose resolution lands on loopback.
    send_mail(&ts, &t, "rcpt@example.test", "no SSRF").await;
    for (ep, why) in [(&ep_literal, "loopback"), (&ep_named, "resolves to")] {
        let d = wait_state(&ts, &t.migo, ep, "retrying").await;
        let err = d["attempts"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(err.contains(why), "{ep}: {err}");
        assert!(d["attempts"][0]["status_code"].is_null());
    }
    assert!(rx.received("literal").is_empty());
    assert!(rx.received("named").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_ping_attempt_log_and_portal_events() {
    let (ts, rx, t, ep) = one_endpoint("ping", json!(["invoice_paid"])).await;
    // A response far over 1 KiB: only the first KiB is kept.
    rx.set_default("ping", Behavior::Ok("x".repeat(10_000)));
    let (s, sent) = ts
        .call(
            &t.migo,
            "POST",
            &format!("/migosmtp/v1/webhooks/{ep}/test"),
            None,
        )
        .await;
    assert_eq!(s, 202, "{sent}");
    let r = rx.wait_for("ping", 1, WAIT).await[0].clone();
    assert!(r.verified());
    assert_eq!(r.body["event"], "webhook.ping");
    assert_eq!(r.body["data"]["endpoint_id"], ep.as_str());
    assert_eq!(r.webhook_id, sent["event"]["id"].as_str().unwrap());
    let d = wait_state(&ts, &t.migo, &ep, "succeeded").await;
    assert_eq!(d["attempts"][0]["status_code"], 200);
    assert_eq!(
        d["attempts"][0]["response_body"].as_str().unwrap().len(),
        1024
    );
    assert!(d["attempts"][0]["latency_ms"].is_u64());

    // A portal event, emitted by another part of the system, reaches the
    // endpoint that subscribed to it; a Telnxo endpoint subscribed to all
    // gets it too.
    let (s, tel) = ts
        .call(
            &t.telnxo,
            "POST",
            "/telnxo/v1/webhooks",
            Some(json!({"url": rx.url("telnxo")})),
        )
        .await;
    assert_eq!(s, 201, "{tel}");
    rx.set_secrets("telnxo", &[tel["secret"].as_str().unwrap()]);
    let events = &ts.server.as_ref().unwrap().events;
    // Typed: the struct has every field of the seed, money in paise.
    let paid = InvoicePaid {
        invoice_id: "inv_1".into(),
        invoice_number: "2026-0001".into(),
        customer_id: "cus_1".into(),
        amount_paid: 4900,
        paid_at: Timestamp(START_MS),
    };
    let ev = events.emit(&t.ws, paid).await.unwrap();
    assert_eq!(ev.event_type, Some(EventType::InvoicePaid));
    let r = rx.wait_for("ping", 2, WAIT).await[1].clone();
    assert_eq!(r.webhook_id, ev.id);
    assert_eq!(r.body["product"], "rackwave");
    assert_eq!(r.body["platform_id"], "0");
    assert_eq!(
        r.body["data"],
        json!({"invoice_id": "inv_1", "invoice_number": "2026-0001", "customer_id": "cus_1",
               "amount_paid": 4900, "paid_at": "2026-06-07T09:39:00Z"})
    );
    // What was sent is what the log keeps, byte for byte.
    assert_eq!(r.body, serde_json::from_slice::<Value>(ev.body()).unwrap());
    let r = rx.wait_for("telnxo", 1, WAIT).await[0].clone();
    assert!(r.verified());
    assert_eq!(r.webhook_id, ev.id);

    // Event listing pagination over a few more events.
    for i in 0..5 {
        let trial = TrialActivated {
            customer_id: format!("c{i}"),
            platform_id: "1".into(),
            expires_at: Timestamp(START_MS + 86_400_000),
        };
        events.emit(&t.ws, trial).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (s, page) = ts
            .call(
                &t.migo,
                "GET",
                &format!("/migosmtp/v1/events?type=trial_activated&limit=2&order=asc{cursor}"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{page}");
        for e in page["events"].as_array().unwrap() {
            seen.push(e["data"]["customer_id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["c0", "c1", "c2", "c3", "c4"]);
    let (s, _) = ts
        .call(&t.migo, "GET", "/migosmtp/v1/events?since=yesterday", None)
        .await;
    assert_eq!(s, 400);
    let (s, _) = ts
        .call(&t.migo, "GET", "/migosmtp/v1/events?type=email.nope", None)
        .await;
    assert_eq!(s, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_does_not_delay_the_others() {
    let ts = start_with(|c| c.webhooks.timeout_secs = 10).await;
    let rx = Receiver::start().await;
    let t = tenant(&ts, "slow").await;
    endpoint(&ts, &t.migo, &rx.url("hang"), json!(["*"])).await;
    endpoint(&ts, &t.migo, &rx.url("fast"), json!(["*"])).await;
    rx.set_default("hang", Behavior::Hang);
    let started = Instant::now();
    for i in 0..12 {
        send_mail(&ts, &t, &format!("r{i}@example.test"), "x").await;
    }
    rx.wait_for("fast", 12, WAIT).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the fast endpoint waited for the hanging one: {:?}",
        started.elapsed()
    );
    // The hanging one holds at most its per-endpoint share.
    assert!(
        rx.received("hang").len() <= 4,
        "{}",
        rx.received("hang").len()
    );
    rx.release();
}

/// The delivery engine's outcomes become events with the seed's fields:
/// a real DNS server and SMTP sink play the remote side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_outcomes_become_events_with_the_seed_fields() {
    use rackwave_bench::sink::{Action, Script};
    use rackwave_testkit::delivery::scripted_rig;

    let script = Script::default()
        .on_rcpt_containing("busy", Action::reply("450 4.2.1 Mailbox busy, try later"))
        .times(1)
        .on_rcpt_containing("nobody", Action::reply("550 5.1.1 No such user here"));
    let r = scripted_rig(71, script, |c| c.delivery.retry_schedule_secs = vec![300]).await;
    let ts = &r.ts;
    let rx = Receiver::start().await;
    let t = tenant(ts, "outcomes").await;
    let (_, secret) = endpoint(ts, &t.migo, &rx.url("all"), json!(["*"])).await;
    rx.set_secrets("all", &[&secret]);

    let mut s = ts.authed(&t.account).await;
    let rcpts = [
        "ok@example.test",
        "busy@example.test",
        "nobody@example.test",
    ];
    let r = s
        .send_mail(
            "app@sender.test",
            &rcpts,
            &message("app@sender.test", rcpts[0], "outcomes", "hello"),
        )
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    let find = |got: &[rackwave_testkit::receiver::Received], to: &str, event: &str| {
        got.iter()
            .find(|r| r.body["data"]["to"] == to && r.body["event"] == event)
            .map(|r| r.body["data"].clone())
    };
    let deadline = Instant::now() + WAIT;
    let got = loop {
        let got = rx.received("all");
        if find(&got, rcpts[0], "email.delivered").is_some()
            && find(&got, rcpts[1], "email.deferred").is_some()
            && find(&got, rcpts[2], "email.bounced").is_some()
        {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "events so far: {:?}",
            got.iter()
                .map(|r| (r.body["event"].clone(), r.body["data"]["to"].clone()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    };
    let deferred = find(&got, rcpts[1], "email.deferred").unwrap();
    assert!(
        deferred["defer_reason"]
            .as_str()
            .unwrap()
            .contains("Mailbox busy"),
        "{deferred}"
    );
    assert_eq!(deferred["attempt_number"], 1);
    assert_eq!(
        deferred["next_retry_at"],
        rackwave_core::rfc3339(START_MS + 300_000).as_str()
    );
    let bounced = find(&got, rcpts[2], "email.bounced").unwrap();
    assert_eq!(bounced["bounce_code"], "5.1.1", "{bounced}");
    assert!(bounced["bounce_reason"]
        .as_str()
        .unwrap()
        .contains("No such user"));
    assert!(bounced["bounce_type"].is_string());
    assert!(find(&got, rcpts[0], "email.sent").is_some());

    // The deferred one goes out on the engine's retry, on the moved clock.
    ts.clock.set_ms(START_MS + 300_000);
    let deadline = Instant::now() + WAIT;
    let got = loop {
        ts.server
            .as_ref()
            .unwrap()
            .delivery
            .as_ref()
            .unwrap()
            .kick();
        let got = rx.received("all");
        if find(&got, rcpts[1], "email.delivered").is_some() {
            break got;
        }
        assert!(Instant::now() < deadline, "the retry was never delivered");
        tokio::time::sleep(Duration::from_millis(30)).await;
    };
    for r in &got {
        assert!(r.verified());
        let ty = EventType::parse(r.body["event"].as_str().unwrap()).unwrap();
        for f in ty.fields() {
            assert!(
                r.body["data"].get(f).is_some(),
                "{ty} lacks {f}: {}",
                r.body
            );
        }
    }
    let mut per_rcpt: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            (
                r.body["data"]["to"].as_str().unwrap().to_string(),
                r.body["event"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    per_rcpt.sort();
    per_rcpt.dedup();
    assert_eq!(
        per_rcpt.len(),
        got.len(),
        "no event delivered twice: {per_rcpt:?}"
    );

    // One typed event, serialized once: the bytes the webhook carried are
    // the bytes the event log serves, and what the message's history holds
    // for it (the admin API's `detail` object) is the event's own data.
    let client = reqwest::Client::new();
    for r in &got {
        let id = r.body["id"].as_str().unwrap();
        let logged = client
            .get(format!("{}/migosmtp/v1/events/{id}", ts.http))
            .bearer_auth(&t.migo)
            .send()
            .await
            .unwrap();
        assert_eq!(logged.status(), 200);
        assert_eq!(logged.bytes().await.unwrap(), r.raw, "event {id}");

        let data = &r.body["data"];
        let (s, m) = ts
            .get(&format!(
                "/admin/v1/messages/{}",
                data["message_id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(s, 200, "{m}");
        let event = r.body["event"].as_str().unwrap();
        let ty = EventType::parse(event).unwrap();
        let in_history = m["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["event"] == event)
            .map(|h| &h["detail"])
            .collect::<Vec<_>>();
        assert_eq!(in_history.len(), 1, "{event} once in {m}");
        match ty {
            EventType::EmailDeferred | EventType::EmailBounced => {
                let detail = in_history[0].as_object().expect("detail is an object");
                assert!(!detail.is_empty());
                for (field, value) in detail {
                    assert_eq!(&data[field], value, "{event}.{field}");
                }
                // The history and webhook both name the rule that decided.
                assert!(!detail["classified_by"].as_str().unwrap().is_empty());
            }
            _ => assert!(in_history[0].is_null(), "{m}"),
        }
        assert_eq!(data["to"], m["to"]);
        assert_eq!(data["queue_id"], m["queue_id"]);
    }
    // The attempt log tells the same story: the deferral and the delivery
    // of the busy recipient, numbered, with the deferral's detail.
    let busy = find(&got, rcpts[1], "email.deferred").unwrap();
    let (_, m) = ts
        .get(&format!(
            "/admin/v1/messages/{}",
            busy["message_id"].as_str().unwrap()
        ))
        .await;
    let attempts = m["delivery_attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{m}");
    assert_eq!(
        (&attempts[0]["attempt_number"], &attempts[0]["event"]),
        (&json!(1), &json!("email.deferred"))
    );
    assert_eq!(attempts[0]["detail"]["defer_code"], busy["defer_code"]);
    assert_eq!(
        (&attempts[1]["attempt_number"], &attempts[1]["event"]),
        (&json!(2), &json!("email.delivered"))
    );
}

// --- The real binary, SIGKILLed with deliveries pending. -------------------

async fn admin(http: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    api(http, ADMIN_TOKEN, method, path, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_deliveries_pending_then_all_delivered_with_their_event_ids() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::free();
    let (smtp, http_addr) = (ports.smtp, ports.http);
    let config = ports.write_config(
        dir.path(),
        "[storage]\npath = \"data\"\n\n[delivery]\nenabled = false\n\n\
         [webhooks]\nallow_private_targets = true\ntimeout_secs = 120",
    );
    let http = format!("http://{http_addr}");
    let rx = Receiver::start().await;
    rx.set_default("kill", Behavior::Hang);

    let mut child = spawn(&config);
    wait_ready(http_addr).await;
    let (_, ws) = admin(
        &http,
        "POST",
        "/admin/v1/workspaces",
        Some(json!({"name": "kill"})),
    )
    .await;
    let ws = ws["id"].as_str().unwrap().to_string();
    let (s, _) = admin(
        &http,
        "POST",
        &format!("/admin/v1/workspaces/{ws}/smtp-accounts"),
        Some(json!({"username": "killer", "password": "killer-pass", "daily_quota": 1000})),
    )
    .await;
    assert_eq!(s, 201);
    let (_, key) = admin(
        &http,
        "POST",
        &format!("/admin/v1/workspaces/{ws}/api-keys"),
        Some(json!({"platform": "migosmtp"})),
    )
    .await;
    let key = key["key"].as_str().unwrap().to_string();
    let ep_id = rx
        .endpoint(&http, &key, "kill", json!(["email.queued"]))
        .await;

    // Six messages; at most four requests hang at the endpoint at once,
    // the other deliveries wait in the outbox.
    let mut s = RawSmtp::login(smtp, "killer", "killer-pass").await;
    let mut messages = Vec::new();
    for i in 0..6 {
        let to = format!("r{i}@dest.test");
        let r = s
            .send_mail(
                "app@src.test",
                &[&to],
                &message("app@src.test", &to, "kill", "body"),
            )
            .await;
        assert_eq!(r.code, 250);
        messages.push(to);
    }
    let hung = rx.wait_for("kill", 4, Duration::from_secs(20)).await;
    let before: Vec<String> = hung.iter().map(|r| r.webhook_id.clone()).collect();
    child.kill().expect("SIGKILL");
    child.wait().unwrap();

    rx.set_default("kill", Behavior::ok());
    let mut child = spawn(&config);
    wait_ready(http_addr).await;
    // Every message's event arrives, verified, and the ones that hung come
    // again with the event ids they had before the kill.
    let deadline = Instant::now() + Duration::from_secs(30);
    let by_rcpt = loop {
        let got = rx.received("kill");
        let ok: Vec<_> = got
            .iter()
            .filter(|r| matches!(r.behavior, Behavior::Ok(_)))
            .cloned()
            .collect();
        let mut rcpts: Vec<String> = ok
            .iter()
            .map(|r| r.body["data"]["to"].as_str().unwrap().to_string())
            .collect();
        rcpts.sort();
        rcpts.dedup();
        if rcpts.len() == messages.len() {
            break ok;
        }
        assert!(
            Instant::now() < deadline,
            "only {rcpts:?} delivered after restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(by_rcpt.iter().all(|r| r.verified()));
    for id in &before {
        assert!(
            by_rcpt.iter().any(|r| &r.webhook_id == id),
            "event {id} was not redelivered with its id"
        );
    }
    // One event per message: the crash duplicated none.
    let mut ids: Vec<&str> = by_rcpt.iter().map(|r| r.webhook_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), messages.len(), "{ids:?}");
    let (_, page) = api(
        &http,
        &key,
        "GET",
        "/migosmtp/v1/events?type=email.queued",
        None,
    )
    .await;
    assert_eq!(page["events"].as_array().unwrap().len(), messages.len());
    let (_, page) = api(
        &http,
        &key,
        "GET",
        &format!("/migosmtp/v1/webhooks/{ep_id}/deliveries?state=succeeded"),
        None,
    )
    .await;
    assert_eq!(
        page["deliveries"].as_array().unwrap().len(),
        messages.len(),
        "{page}"
    );
    let _ = child.kill();
    let _ = child.wait();
    rx.release();
}
