//! The MigoSMTP API over real HTTP against the real server: the send
//! endpoint's answers to bad, hostile, oversized and other tenants' input
//! (a 4xx in the one error shape with the field at fault, and nothing
//! queued), batches, and quotas. Delivery of what it sends is tested with
//! the delivery engine in `tests/delivery.rs`.

use rackwave_testkit::*;
use serde_json::{json, Value};

struct Tenant {
    ws: String,
    key: String,
}

async fn tenant(ts: &TestServer, name: &str, quota: Option<u64>) -> Tenant {
    let ws = ts.create_workspace(name, quota).await;
    let key = ts.create_api_key(&ws, "migosmtp").await;
    Tenant { ws, key }
}

fn message() -> Value {
    json!({
        "from": "App <app@sender.test>",
        "to": ["ada@example.test"],
        "subject": "hello",
        "text": "hi"
    })
}

/// `message()` with `field` set to `value` (a JSON pointer-free path of
/// one level).
fn with(field: &str, value: Value) -> Value {
    let mut m = message();
    m[field] = value;
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_hostile_sends_are_refused_with_the_field_and_queue_nothing() {
    // Small limits, so that oversized bodies stay small enough to be sent
    // whole before the server answers.
    let ts = start_with(|c| {
        c.http.max_send_bytes = 256 * 1024;
        c.http.max_attachment_bytes = 64 * 1024;
    })
    .await;
    let t = tenant(&ts, "sender", None).await;
    let b64 = |n: usize| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(vec![7u8; n])
    };
    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (
            with("from", json!("not a mailbox")),
            422,
            "invalid_request",
            Some("from"),
        ),
        (
            with("from", json!("a@b.test\r\nBcc: x@evil.test")),
            422,
            "invalid_request",
            Some("from"),
        ),
        (
            with("subject", json!("hi\r\nBcc: x@evil.test")),
            422,
            "invalid_request",
            Some("subject"),
        ),
        (
            with("headers", json!({"X-A": "1\r\nBcc: x@evil.test"})),
            422,
            "invalid_request",
            Some("headers.X-A"),
        ),
        (
            with("headers", json!({"Bcc": "x@evil.test"})),
            422,
            "invalid_request",
            Some("headers.Bcc"),
        ),
        (
            with("headers", json!({"Bad Name": "v"})),
            422,
            "invalid_request",
            Some("headers.Bad Name"),
        ),
        (with("to", json!([])), 422, "invalid_request", Some("to")),
        (
            with("to", json!(["nobody"])),
            422,
            "invalid_request",
            Some("to"),
        ),
        (
            with(
                "to",
                json!((0..1001)
                    .map(|i| format!("r{i}@example.test"))
                    .collect::<Vec<_>>()),
            ),
            422,
            "invalid_request",
            Some("to"),
        ),
        (
            with("text", Value::Null),
            422,
            "invalid_request",
            Some("text"),
        ),
        (
            with(
                "attachments",
                json!([{"filename": "a.bin", "content_type": "application/octet-stream", "content": "%%% not base64"}]),
            ),
            422,
            "invalid_request",
            Some("attachments[0].content"),
        ),
        (
            with(
                "attachments",
                json!([{"filename": "a.bin", "content_type": "nonsense", "content": b64(3)}]),
            ),
            422,
            "invalid_request",
            Some("attachments[0].content_type"),
        ),
        (
            with(
                "attachments",
                json!([{"filename": "big.bin", "content_type": "application/octet-stream", "content": b64(64 * 1024 + 1)}]),
            ),
            422,
            "invalid_request",
            Some("attachments[0].content"),
        ),
        (
            with("tags", json!(["ok", ""])),
            422,
            "invalid_request",
            Some("tags[1]"),
        ),
        (
            with("metadata", json!({"k": "x".repeat(600)})),
            422,
            "invalid_request",
            Some("metadata.k"),
        ),
        (with("surprise", json!(1)), 400, "invalid_json", None),
        (
            with("to", json!("ada@example.test")),
            400,
            "invalid_json",
            None,
        ),
    ];
    for (body, status, code, field) in cases {
        let (s, answer) = ts
            .call(&t.key, "POST", "/migosmtp/v1/messages", Some(body.clone()))
            .await;
        assert_eq!(s, status, "{body} -> {answer}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
        match field {
            Some(f) => assert_eq!(answer["error"]["field"], f, "{answer}"),
            None => assert!(answer["error"]["message"].is_string(), "{answer}"),
        }
    }

    // Not JSON, and a body over the send limit.
    let http = reqwest::Client::new();
    let url = format!("{}/migosmtp/v1/messages", ts.http);
    let r = http
        .post(&url)
        .bearer_auth(&t.key)
        .header("content-type", "application/json")
        .body("{\"from\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let huge = with(
        "attachments",
        json!([{"filename": "big.bin", "content_type": "application/octet-stream", "content": b64(200 * 1024)}]),
    );
    let r = http
        .post(&url)
        .bearer_auth(&t.key)
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");

    assert!(ts.messages(&t.ws).await.is_empty(), "something was queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_migosmtp_key_sends_and_into_its_own_workspace() {
    let ts = start().await;
    let a = tenant(&ts, "a", None).await;
    let b = tenant(&ts, "b", None).await;
    let telnxo = ts.create_api_key(&a.ws, "telnxo").await;
    for key in [telnxo.as_str(), "rw_migosmtp_0000", ""] {
        let (s, answer) = ts
            .call(key, "POST", "/migosmtp/v1/messages", Some(message()))
            .await;
        assert_eq!(s, 401, "{answer}");
        assert_eq!(answer["error"]["code"], "unauthorized");
    }
    let (s, sent) = ts
        .call(&a.key, "POST", "/migosmtp/v1/messages", Some(message()))
        .await;
    assert_eq!(s, 202, "{sent}");
    assert_eq!(ts.messages(&a.ws).await.len(), 1);
    assert!(ts.messages(&b.ws).await.is_empty());
    // The message is the key's workspace's, counted against its key.
    let id = sent["messages"][0]["id"].as_str().unwrap();
    let (_, m) = ts.get(&format!("/admin/v1/messages/{id}")).await;
    assert_eq!(m["workspace_id"], a.ws.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_sends_each_message_on_its_own() {
    let ts = start().await;
    let t = tenant(&ts, "batch", None).await;
    let batch = json!({"messages": [
        message(),
        with("from", json!("nobody")),
        with("to", json!(["x@example.test", "y@example.test"])),
    ]});
    let (s, answer) = ts
        .call(&t.key, "POST", "/migosmtp/v1/messages/batch", Some(batch))
        .await;
    assert_eq!(s, 200, "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["messages"].as_array().unwrap().len(), 1);
    assert_eq!(results[1]["error"]["field"], "messages[1].from", "{answer}");
    assert_eq!(results[2]["messages"].as_array().unwrap().len(), 2);
    assert_ne!(results[0]["queue_id"], results[2]["queue_id"]);
    assert_eq!(ts.messages(&t.ws).await.len(), 3);

    for bad in [
        json!({"messages": []}),
        json!({"messages": vec![message(); 501]}),
    ] {
        let (s, answer) = ts
            .call(&t.key, "POST", "/migosmtp/v1/messages/batch", Some(bad))
            .await;
        assert_eq!(s, 422, "{answer}");
        assert_eq!(answer["error"]["field"], "messages");
    }
    assert_eq!(ts.messages(&t.ws).await.len(), 3);
}

/// The workspace's daily quota counts HTTP sends like SMTP ones: over it,
/// the recipients beyond are rejected with a reason, and a send with none
/// left is `429`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workspace_quota_rejects_recipients_beyond_it() {
    let ts = start().await;
    let t = tenant(&ts, "quota", Some(3)).await;
    let body = with(
        "to",
        json!([
            "a@example.test",
            "b@example.test",
            "c@example.test",
            "d@example.test"
        ]),
    );
    let (s, sent) = ts
        .call(&t.key, "POST", "/migosmtp/v1/messages", Some(body))
        .await;
    assert_eq!(s, 202, "{sent}");
    assert_eq!(sent["messages"].as_array().unwrap().len(), 3);
    assert_eq!(sent["rejected"][0]["to"], "d@example.test");
    assert_eq!(sent["rejected"][0]["code"], "quota_exceeded");
    let (s, answer) = ts
        .call(&t.key, "POST", "/migosmtp/v1/messages", Some(message()))
        .await;
    assert_eq!(s, 429, "{answer}");
    assert_eq!(answer["error"]["code"], "quota_exceeded");
    assert_eq!(ts.messages(&t.ws).await.len(), 3);
}

/// The message log with a MigoSMTP key: its own workspace's messages only
/// (another's answer 404 as if they did not exist), with tags and metadata,
/// the raw message while the spool holds it, and unknown filters refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_message_log_shows_a_workspace_its_own_messages() {
    let ts = start().await;
    let a = tenant(&ts, "a", None).await;
    let b = tenant(&ts, "b", None).await;
    let mut tagged = with("to", json!(["ada@example.test", "bo@example.test"]));
    tagged["tags"] = json!(["welcome"]);
    tagged["metadata"] = json!({"user": "42"});
    let (s, sent_a) = ts
        .call(&a.key, "POST", "/migosmtp/v1/messages", Some(tagged))
        .await;
    assert_eq!(s, 202, "{sent_a}");
    let (s, sent_b) = ts
        .call(&b.key, "POST", "/migosmtp/v1/messages", Some(message()))
        .await;
    assert_eq!(s, 202, "{sent_b}");
    let id_a = sent_a["messages"][0]["id"].as_str().unwrap();
    let id_b = sent_b["messages"][0]["id"].as_str().unwrap();

    let (s, page) = ts.call(&a.key, "GET", "/migosmtp/v1/messages", None).await;
    assert_eq!(s, 200, "{page}");
    let listed: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["to"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 2, "{page}");
    assert!(listed.contains(&"bo@example.test"));
    let (s, page) = ts
        .call(
            &a.key,
            "GET",
            "/migosmtp/v1/messages?to=BO@example.test&status=queued",
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(page["messages"].as_array().unwrap().len(), 1, "{page}");
    let qid_b = sent_b["queue_id"].as_str().unwrap();
    let (_, page) = ts
        .call(
            &a.key,
            "GET",
            &format!("/migosmtp/v1/messages?queue_id={qid_b}"),
            None,
        )
        .await;
    assert!(page["messages"].as_array().unwrap().is_empty(), "{page}");

    let (s, m) = ts
        .call(
            &a.key,
            "GET",
            &format!("/migosmtp/v1/messages/{id_a}"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["tags"], json!(["welcome"]));
    assert_eq!(m["metadata"], json!({"user": "42"}));
    assert_eq!(m["events"][0]["event"], "email.queued");
    assert_eq!(m["attempts"], json!([]), "no delivery attempt yet");
    for path in [
        format!("/migosmtp/v1/messages/{id_b}"),
        format!("/migosmtp/v1/messages/{id_b}/raw"),
        "/migosmtp/v1/messages/msg_0000000000000000".to_string(),
    ] {
        let (s, answer) = ts.call(&a.key, "GET", &path, None).await;
        assert_eq!(s, 404, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "not_found");
    }

    let raw = reqwest::Client::new()
        .get(format!("{}/migosmtp/v1/messages/{id_a}/raw", ts.http))
        .bearer_auth(&a.key)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    assert_eq!(raw.headers()["content-type"], "message/rfc822");
    let text = raw.text().await.unwrap();
    assert!(text.starts_with("Received: "), "{text}");
    assert!(text.contains("Subject: hello\r\n"), "{text}");

    // Filters: sender, tag and a time window (on the manual clock).
    let t0 = ts.clock.now_ms();
    ts.clock.advance_ms(3_600_000);
    let (s, _) = ts
        .call(
            &a.key,
            "POST",
            "/migosmtp/v1/messages",
            Some(with("from", json!("Other <OTHER@sender.test>"))),
        )
        .await;
    assert_eq!(s, 202);
    let count = |path: String| {
        let (ts, key) = (&ts, a.key.clone());
        async move {
            let (s, page) = ts.call(&key, "GET", &path, None).await;
            assert_eq!(s, 200, "{path}: {page}");
            page["messages"].as_array().unwrap().len()
        }
    };
    let half = rackwave_core::rfc3339(t0 + 1_800_000);
    assert_eq!(count("/migosmtp/v1/messages".into()).await, 3);
    assert_eq!(
        count("/migosmtp/v1/messages?from=other@sender.test".into()).await,
        1
    );
    assert_eq!(count("/migosmtp/v1/messages?tag=welcome".into()).await, 2);
    assert_eq!(
        count(format!("/migosmtp/v1/messages?since={half}")).await,
        1
    );
    assert_eq!(
        count(format!("/migosmtp/v1/messages?until={half}")).await,
        2
    );
    assert_eq!(
        count(format!(
            "/migosmtp/v1/messages?until={half}&tag=welcome&to=ada@example.test"
        ))
        .await,
        1
    );
    let (s, _) = ts
        .call(&a.key, "GET", "/migosmtp/v1/messages?since=yesterday", None)
        .await;
    assert_eq!(s, 400);

    let (s, answer) = ts
        .call(&a.key, "GET", "/migosmtp/v1/messages?workspace=x", None)
        .await;
    assert_eq!(s, 400, "{answer}");
    let (s, _) = ts
        .call(&a.key, "GET", "/migosmtp/v1/messages?status=lost", None)
        .await;
    assert_eq!(s, 400);
}

/// `Idempotency-Key`: 20 identical requests at once queue one message and
/// all get its answer; a later retry, also after a restart, gets it too
/// (marked as replayed); the same key with another body is `409`; after 24
/// hours the key is new again; a malformed key is `400`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_sends_once() {
    let mut ts = start().await;
    let t = tenant(&ts, "idem", None).await;
    let key = t.key.clone();
    let post = |base: String, key: &String, body: Value, idem: &str| {
        post_idempotent(base, key.clone(), body, idem.to_string())
    };
    let calls: Vec<_> = (0..20)
        .map(|_| tokio::spawn(post(ts.http.clone(), &key, message(), "order-17")))
        .collect();
    let mut answers = Vec::new();
    for c in calls {
        answers.push(c.await.unwrap());
    }
    assert!(answers.iter().all(|(s, _, _)| *s == 202), "{answers:?}");
    let first = &answers[0].2;
    assert!(answers.iter().all(|(_, _, b)| b == first), "{answers:?}");
    assert_eq!(
        answers.iter().filter(|(_, replayed, _)| !replayed).count(),
        1
    );
    assert_eq!(ts.messages(&t.ws).await.len(), 1, "sent more than once");

    ts.restart().await;
    let (s, replayed, again) = post(ts.http.clone(), &key, message(), "order-17").await;
    assert_eq!((s, replayed), (202, true));
    assert_eq!(&again, first);
    let (s, _, conflict) = post(
        ts.http.clone(),
        &key,
        with("subject", json!("other")),
        "order-17",
    )
    .await;
    assert_eq!(s, 409, "{conflict}");
    assert_eq!(conflict["error"]["code"], "conflict");
    let (s, _, bad) = post(ts.http.clone(), &key, message(), "bad key ").await;
    assert_eq!(s, 400, "{bad}");
    assert_eq!(ts.messages(&t.ws).await.len(), 1);

    // A refusal is remembered too; a day later the key is new.
    let (s, _, refused) = post(
        ts.http.clone(),
        &key,
        with("from", json!("nobody")),
        "order-18",
    )
    .await;
    assert_eq!(s, 422, "{refused}");
    let (s, replayed, again) = post(
        ts.http.clone(),
        &key,
        with("from", json!("nobody")),
        "order-18",
    )
    .await;
    assert_eq!((s, replayed, &again), (422, true, &refused));
    ts.clock.advance_ms(rackwave_http::idempotency::TTL_MS);
    let (s, replayed, _) = post(ts.http.clone(), &key, message(), "order-17").await;
    assert_eq!((s, replayed), (202, false));
    assert_eq!(ts.messages(&t.ws).await.len(), 2);
}

/// POSTs a send with an `Idempotency-Key`: status, whether the answer says
/// it was replayed, and the body.
async fn post_idempotent(
    base: String,
    key: String,
    body: Value,
    idem: String,
) -> (u16, bool, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/migosmtp/v1/messages"))
        .bearer_auth(key)
        .header("idempotency-key", idem)
        .json(&body)
        .send()
        .await
        .unwrap();
    let replayed = r.headers().get("idempotent-replayed").is_some();
    let status = r.status().as_u16();
    (status, replayed, r.json::<Value>().await.unwrap())
}

/// Per-key rate limits on the injectable clock: the burst, then `429`
/// with `Retry-After` and the `RateLimit-*` headers; another key has its
/// own budget; time refills it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_is_rate_limited_on_its_own() {
    let ts = start_with(|c| {
        c.http.rate_limit_per_second = 2;
        c.http.rate_limit_burst = 3;
    })
    .await;
    let a = tenant(&ts, "a", None).await;
    let b = tenant(&ts, "b", None).await;
    let get = |key: String| {
        let url = format!("{}/migosmtp/v1/messages", ts.http);
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
        }
    };
    for left in ["2", "1", "0"] {
        let r = get(a.key.clone()).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["ratelimit-limit"], "3");
        assert_eq!(r.headers()["ratelimit-remaining"], left);
    }
    let r = get(a.key.clone()).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(r.headers()["ratelimit-remaining"], "0");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Sends, batches and every other keyed route share the same budget.
    for (method, path, body) in [
        ("POST", "/migosmtp/v1/messages", Some(message())),
        (
            "POST",
            "/migosmtp/v1/messages/batch",
            Some(json!({"messages": [message()]})),
        ),
        ("GET", "/migosmtp/v1/stats", None),
        ("GET", "/migosmtp/v1/domains", None),
        ("GET", "/migosmtp/v1/api-keys", None),
    ] {
        let (s, _) = ts.call(&a.key, method, path, body).await;
        assert_eq!(s, 429, "{method} {path} is not rate limited");
    }
    assert!(ts.messages(&a.ws).await.is_empty());

    assert_eq!(get(b.key.clone()).await.status(), 200);
    ts.clock.advance_ms(1_000);
    assert_eq!(get(a.key.clone()).await.status(), 200);
    assert_eq!(get(a.key.clone()).await.status(), 200);
    assert_eq!(get(a.key.clone()).await.status(), 429);
}

/// Credentials managed with the workspace's own key: an SMTP account made
/// with a generated password works over SMTP, is listed without secrets,
/// cannot be touched by another workspace, and once deleted its open
/// session is refused at the next command and AUTH fails; a key listed by
/// prefix with its last use, revoked (another's, then itself) is refused at
/// the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_manages_its_credentials_with_its_key() {
    let ts = start().await;
    let a = tenant(&ts, "a", None).await;
    let b = tenant(&ts, "b", None).await;

    let (s, created) = ts
        .call(
            &a.key,
            "POST",
            "/migosmtp/v1/smtp-accounts",
            Some(json!({"username": "app-a", "daily_quota": 100})),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let password = created["password"].as_str().unwrap().to_string();
    assert!(password.len() >= 16);
    let (s, _) = ts
        .call(
            &b.key,
            "POST",
            "/migosmtp/v1/smtp-accounts",
            Some(json!({"username": "app-a", "password": "another password", "daily_quota": 1})),
        )
        .await;
    assert_eq!(s, 409, "usernames are unique across workspaces");
    let (_, list) = ts
        .call(&a.key, "GET", "/migosmtp/v1/smtp-accounts", None)
        .await;
    assert_eq!(list["smtp_accounts"][0]["username"], "app-a");
    assert!(!list.to_string().contains(&password));
    let (_, list) = ts
        .call(&b.key, "GET", "/migosmtp/v1/smtp-accounts", None)
        .await;
    assert!(
        list["smtp_accounts"].as_array().unwrap().is_empty(),
        "{list}"
    );

    for bad in [
        json!({"username": "has space", "daily_quota": 1}),
        json!({"username": "ctl\u{7}", "daily_quota": 1}),
        json!({"username": "shortpw", "password": "short", "daily_quota": 1}),
        json!({"username": "noquota"}),
        json!({"username": "extra", "daily_quota": 1, "admin": true}),
    ] {
        let (s, answer) = ts
            .call(
                &a.key,
                "POST",
                "/migosmtp/v1/smtp-accounts",
                Some(bad.clone()),
            )
            .await;
        assert_eq!(s, 400, "{bad} -> {answer}");
    }

    // A session authenticated before the account is deleted.
    let mut session = RawSmtp::login(ts.smtp, "app-a", &password).await;
    let (s, _) = ts
        .call(&b.key, "DELETE", "/migosmtp/v1/smtp-accounts/app-a", None)
        .await;
    assert_eq!(s, 404, "another workspace's account");
    let (s, _) = ts
        .call(&a.key, "DELETE", "/migosmtp/v1/smtp-accounts/app-a", None)
        .await;
    assert_eq!(s, 204);
    let reply = session.cmd("MAIL FROM:<app@sender.test>").await;
    assert_eq!(reply.code, 530, "{reply:?}");
    let mut fresh = ts.raw().await;
    fresh.expect(220).await;
    fresh.cmd_expect("EHLO client.test", 250).await;
    let reply = fresh
        .cmd(&format!("AUTH PLAIN {}", plain("app-a", &password)))
        .await;
    assert_eq!(reply.code, 535, "{reply:?}");

    // Keys.
    let (s, second) = ts
        .call(&a.key, "POST", "/migosmtp/v1/api-keys", Some(json!({})))
        .await;
    assert_eq!(s, 201, "{second}");
    let second_key = second["key"].as_str().unwrap().to_string();
    let (s, _) = ts
        .call(
            &a.key,
            "POST",
            "/migosmtp/v1/api-keys",
            Some(json!({"platform": "telnxo"})),
        )
        .await;
    assert_eq!(s, 422);
    let (s, _) = ts
        .call(&second_key, "GET", "/migosmtp/v1/messages", None)
        .await;
    assert_eq!(s, 200);
    let (_, keys) = ts.call(&a.key, "GET", "/migosmtp/v1/api-keys", None).await;
    let listed = keys["api_keys"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{keys}");
    assert!(
        !keys.to_string().contains(&second_key),
        "a secret was listed"
    );
    assert!(
        listed.iter().all(|k| k["last_used_at"].is_string()),
        "{keys}"
    );
    let second_id = second["id"].as_str().unwrap();
    let (s, _) = ts
        .call(
            &b.key,
            "DELETE",
            &format!("/migosmtp/v1/api-keys/{second_id}"),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = ts
        .call(
            &a.key,
            "DELETE",
            &format!("/migosmtp/v1/api-keys/{second_id}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, _) = ts
        .call(&second_key, "GET", "/migosmtp/v1/messages", None)
        .await;
    assert_eq!(s, 401);
    let own_id = listed.iter().find(|k| k["id"] != second_id).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = ts
        .call(
            &a.key,
            "DELETE",
            &format!("/migosmtp/v1/api-keys/{own_id}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, _) = ts.call(&a.key, "GET", "/migosmtp/v1/messages", None).await;
    assert_eq!(s, 401);
}

/// Bad and hostile input to the domain and stats resources: clear 4xx in
/// the one error shape, and a domain is one workspace's only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domains_and_stats_refuse_bad_input() {
    let ts = start().await;
    let a = tenant(&ts, "a", None).await;
    let b = tenant(&ts, "b", None).await;
    for bad in [
        json!({"domain": "not a domain"}),
        json!({"domain": "../etc"}),
        json!({"domain": "nodot"}),
        json!({"domain": "ok.test", "selector": "bad selector!"}),
        json!({"domain": "ok.test", "algorithm": "rsa-512"}),
        json!({"domain": "ok.test", "extra": 1}),
    ] {
        let (s, answer) = ts
            .call(&a.key, "POST", "/migosmtp/v1/domains", Some(bad.clone()))
            .await;
        assert_eq!(s, 400, "{bad} -> {answer}");
        assert!(answer["error"]["code"].is_string(), "{answer}");
    }
    let (s, _) = ts
        .call(
            &a.key,
            "POST",
            "/migosmtp/v1/domains",
            Some(json!({"domain": "Mine.Test.", "algorithm": "ed25519"})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, answer) = ts
        .call(
            &b.key,
            "POST",
            "/migosmtp/v1/domains",
            Some(json!({"domain": "mine.test", "algorithm": "ed25519"})),
        )
        .await;
    assert_eq!(s, 409, "{answer}");
    let (s, _) = ts
        .call(
            &a.key,
            "POST",
            "/migosmtp/v1/domains/unknown.test/verify",
            None,
        )
        .await;
    assert_eq!(s, 404);

    for query in [
        "since=2026-06-10&until=2026-06-01",
        "since=2024-01-01&until=2026-01-01",
        "since=2026-02-30",
        "until=tomorrow",
        "days=3",
    ] {
        let (s, answer) = ts
            .call(&a.key, "GET", &format!("/migosmtp/v1/stats?{query}"), None)
            .await;
        assert_eq!(s, 400, "{query} -> {answer}");
    }
    let (s, stats) = ts.call(&a.key, "GET", "/migosmtp/v1/stats", None).await;
    assert_eq!(s, 200);
    assert_eq!(
        stats["days"].as_array().unwrap().len(),
        7,
        "a week by default"
    );
}
