//! The admin API and `rackwave admin` over real HTTP: provisioning, message
//! lookup, tenancy, and every kind of bad request answered in the JSON error
//! shape.

use std::process::Command;

use rackwave_testkit::*;
use serde_json::{json, Value};

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

async fn raw_request(
    ts: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, &str)>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client.request(method.parse().unwrap(), format!("{}{}", ts.http, path));
    if let Some(t) = token {
        req = req.header("Authorization", t);
    }
    if let Some((ctype, b)) = body {
        req = req.header("Content-Type", ctype).body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn token_is_required_and_checked() {
    let ts = start().await;
    let (s, b) = raw_request(&ts, "GET", "/admin/v1/queue", None, None).await;
    assert_error(s, &b, 401, "unauthorized");
    let (s, b) = raw_request(&ts, "GET", "/admin/v1/queue", Some("Bearer wrong"), None).await;
    assert_error(s, &b, 401, "unauthorized");
    let (s, b) = raw_request(
        &ts,
        "GET",
        "/admin/v1/queue",
        Some(&format!("Basic {ADMIN_TOKEN}")),
        None,
    )
    .await;
    assert_error(s, &b, 401, "unauthorized");
    let (s, b) = raw_request(
        &ts,
        "POST",
        "/admin/v1/workspaces",
        None,
        Some(("application/json", r#"{"name":"x"}"#)),
    )
    .await;
    assert_error(s, &b, 401, "unauthorized");
    let (s, b) = raw_request(
        &ts,
        "GET",
        "/admin/v1/queue",
        Some(&format!("Bearer {ADMIN_TOKEN}")),
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["depth"], 0);
}

#[tokio::test]
async fn malformed_and_hostile_bodies() {
    let ts = start().await;
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let post = |body: &'static str| {
        let ts = &ts;
        let auth = auth.clone();
        async move {
            raw_request(
                ts,
                "POST",
                "/admin/v1/workspaces",
                Some(&auth),
                Some(("application/json", body)),
            )
            .await
        }
    };
    let (s, b) = post("{not json").await;
    assert_error(s, &b, 400, "invalid_json");
    let (s, b) = post(r#"{"nom": "x"}"#).await;
    assert_error(s, &b, 400, "invalid_json");
    let (s, b) = post(r#"{"name": 42}"#).await;
    assert_error(s, &b, 400, "invalid_json");
    let (s, b) = post(r#"{"name": ""}"#).await;
    assert_error(s, &b, 400, "invalid_request");
    let (s, b) = post(r#"{"name": "a\u0000b"}"#).await;
    assert_error(s, &b, 400, "invalid_request");
    let (s, b) = raw_request(
        &ts,
        "POST",
        "/admin/v1/workspaces",
        Some(&auth),
        Some(("text/plain", r#"{"name":"x"}"#)),
    )
    .await;
    assert_error(s, &b, 415, "unsupported_media_type");
    let huge = format!(r#"{{"name": "{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{}/admin/v1/workspaces", ts.http))
        .header("Authorization", &auth)
        .header("Content-Type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    let b: Value = resp.json().await.unwrap();
    assert_error(s, &b, 413, "payload_too_large");
    let (s, b) = raw_request(&ts, "GET", "/admin/v1/nothing-here", Some(&auth), None).await;
    assert_error(s, &b, 404, "not_found");
    // The server is still fine.
    let id = ts.create_workspace("after abuse", None).await;
    assert!(id.starts_with("ws_"));
}

/// Every error answer has the JSON shape, including the ones axum makes on
/// its own: wrong methods (with `Allow`), undecodable paths and queries,
/// unmatched routes, unknown platforms.
#[tokio::test]
async fn every_error_has_the_json_shape() {
    let ts = start().await;
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let ws = ts.create_workspace("shapes", None).await;
    let (_, key) = ts
        .admin(
            "POST",
            &format!("/admin/v1/workspaces/{ws}/api-keys"),
            Some(serde_json::json!({"platform": "migosmtp"})),
        )
        .await;
    let key = format!("Bearer {}", key["key"].as_str().unwrap());
    let client = reqwest::Client::new();
    let send = |method: &str, path: &str, token: &str| {
        client
            .request(method.parse().unwrap(), format!("{}{}", ts.http, path))
            .header("Authorization", token)
            .send()
    };

    // Wrong methods: 405, the Allow header, and the shape.
    for (method, path, token, allowed) in [
        (
            "PUT",
            "/admin/v1/workspaces",
            auth.as_str(),
            "GET,HEAD,POST",
        ),
        ("POST", "/healthz", "", "GET,HEAD"),
        ("DELETE", "/metrics", "", "GET,HEAD"),
        (
            "PUT",
            "/migosmtp/v1/webhooks",
            key.as_str(),
            "GET,HEAD,POST",
        ),
    ] {
        let resp = send(method, path, token).await.unwrap();
        assert_eq!(resp.status(), 405, "{method} {path}");
        let allow = resp.headers()["allow"].to_str().unwrap().replace(' ', "");
        let mut allow: Vec<&str> = allow.split(',').collect();
        allow.sort();
        assert_eq!(allow.join(","), allowed, "{method} {path}");
        let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ctype.starts_with("application/json"), "{ctype}");
        let b: Value = resp.json().await.unwrap();
        assert_error(405, &b, 405, "method_not_allowed");
        // The message names the method and never an empty list.
        let message = b["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("method {method} not allowed")),
            "{message}"
        );
        assert!(!message.ends_with("allowed: "), "{message}");
    }

    // A path parameter that is not UTF-8.
    let resp = send("GET", "/migosmtp/v1/webhooks/%ff%fe%fd", &key)
        .await
        .unwrap();
    let s = resp.status().as_u16();
    let b: Value = resp.json().await.unwrap();
    assert_error(s, &b, 400, "invalid_path");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("UTF-8"),
        "{b}"
    );
    let resp = send("GET", "/admin/v1/messages/%ff", &auth).await.unwrap();
    let s = resp.status().as_u16();
    let b: Value = resp.json().await.unwrap();
    assert_error(s, &b, 400, "invalid_path");

    // Undecodable and unknown queries.
    for path in [
        "/admin/v1/messages?workspace=%ff",
        "/admin/v1/messages?limit=many",
        "/admin/v1/messages?workspace=x&bogus=1",
        "/admin/v1/messages?workspace=x&limit=0",
    ] {
        let (s, b) = raw_request(&ts, "GET", path, Some(&auth), None).await;
        assert_error(s, &b, 400, "invalid_request");
    }

    // Unmatched routes and platforms that do not exist.
    for (path, token) in [
        ("/nowhere", ""),
        ("/admin/v1/nothing", auth.as_str()),
        ("/portal/v1/nothing", key.as_str()),
        ("/smtp/v1/webhooks", key.as_str()),
    ] {
        let (s, b) = raw_request(&ts, "GET", path, Some(token), None).await;
        assert_error(s, &b, 404, "not_found");
    }
    // A HEAD on an error has no body but the status.
    let resp = client
        .head(format!("{}/nowhere", ts.http))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn provisioning_and_unknown_workspaces() {
    let ts = start().await;
    let ws = ts.create_workspace("Acme", Some(1000)).await;
    let (s, w) = ts.get(&format!("/admin/v1/workspaces/{ws}")).await;
    assert_eq!(s, 200);
    assert_eq!(w["name"], "Acme");
    assert_eq!(w["daily_quota"], 1000);

    let (s, b) = ts
        .admin(
            "POST",
            "/admin/v1/workspaces/ws_0000000000000000/smtp-accounts",
            Some(json!({"username": "u", "password": "longenough", "daily_quota": 1})),
        )
        .await;
    assert_error(s, &b, 404, "not_found");
    let (s, b) = ts
        .admin(
            "POST",
            "/admin/v1/workspaces/ws_0000000000000000/api-keys",
            Some(json!({"platform": "migosmtp"})),
        )
        .await;
    assert_error(s, &b, 404, "not_found");

    let (s, acct) = ts
        .admin(
            "POST",
            &format!("/admin/v1/workspaces/{ws}/smtp-accounts"),
            Some(json!({"username": "app", "password": "longenough", "daily_quota": 10})),
        )
        .await;
    assert_eq!(s, 201, "{acct}");
    assert!(
        acct.get("password").is_none() && acct.get("password_hash").is_none(),
        "{acct}"
    );
    let (s, b) = ts
        .admin(
            "POST",
            &format!("/admin/v1/workspaces/{ws}/smtp-accounts"),
            Some(json!({"username": "app", "password": "longenough2", "daily_quota": 10})),
        )
        .await;
    assert_error(s, &b, 409, "conflict");
    let (s, b) = ts
        .admin(
            "POST",
            &format!("/admin/v1/workspaces/{ws}/smtp-accounts"),
            Some(json!({"username": "short", "password": "short", "daily_quota": 10})),
        )
        .await;
    assert_error(s, &b, 400, "invalid_request");

    let (s, key) = ts
        .admin(
            "POST",
            &format!("/admin/v1/workspaces/{ws}/api-keys"),
            Some(json!({"platform": "telnxo"})),
        )
        .await;
    assert_eq!(s, 201, "{key}");
    assert_eq!(key["platform"], "telnxo");
    assert!(key["key"].as_str().unwrap().starts_with("rw_telnxo_"));
    let (s, b) = ts
        .admin(
            "POST",
            &format!("/admin/v1/workspaces/{ws}/api-keys"),
            Some(json!({"platform": "smtp2go"})),
        )
        .await;
    assert_error(s, &b, 400, "invalid_json");
}

#[tokio::test]
async fn messages_are_found_by_workspace_recipient_and_queue_id_and_not_across_tenants() {
    let ts = start().await;
    let a = ts.create_account("tenant-a", 100).await;
    let b = ts.create_account("tenant-b", 100).await;
    let mut s = ts.authed(&a).await;
    let r = s
        .send_mail(
            "app@a.test",
            &["one@dest.test", "Two@Dest.test", "three@dest.test"],
            &message("app@a.test", "one@dest.test", "hello", "body"),
        )
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    let qid = queue_id(&r);
    let mut s = ts.authed(&b).await;
    let r = s
        .send_mail(
            "app@b.test",
            &["one@dest.test"],
            &message("app@b.test", "one@dest.test", "other", "body"),
        )
        .await;
    assert_eq!(r.code, 250);

    let msgs = ts.messages(&a.workspace_id).await;
    assert_eq!(msgs.len(), 3);
    for m in &msgs {
        assert_eq!(m["workspace_id"], a.workspace_id.as_str());
        assert_eq!(m["queue_id"], qid.as_str());
        assert_eq!(m["status"], "queued");
        let id = m["id"].as_str().unwrap();
        assert!(id.starts_with("msg_") && id.len() == 20, "{id}");
    }
    let ids: std::collections::HashSet<&str> =
        msgs.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "one message id per recipient");

    let (_, page) = ts
        .get(&format!(
            "/admin/v1/messages?workspace={}&to=two@dest.test",
            a.workspace_id
        ))
        .await;
    let found = page["messages"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{page}");
    assert_eq!(found[0]["to"], "Two@Dest.test");
    // Workspace B only sees its own message to the same address.
    let (_, page) = ts
        .get(&format!(
            "/admin/v1/messages?workspace={}&to=one@dest.test",
            b.workspace_id
        ))
        .await;
    let found = page["messages"].as_array().unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["subject"], "other");
    // The queue id finds all three, and scoped to another workspace, none.
    let (_, page) = ts.get(&format!("/admin/v1/messages?queue_id={qid}")).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 3);
    let (_, page) = ts
        .get(&format!(
            "/admin/v1/messages?queue_id={qid}&workspace={}",
            b.workspace_id
        ))
        .await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 0);

    // Pagination: one at a time covers all three exactly once.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (s, page) = ts
            .get(&format!(
                "/admin/v1/messages?workspace={}&limit=1{cursor}",
                a.workspace_id
            ))
            .await;
        assert_eq!(s, 200, "{page}");
        for m in page["messages"].as_array().unwrap() {
            seen.push(m["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3);

    // One message in full.
    let id = msgs[0]["id"].as_str().unwrap();
    let (s, m) = ts.get(&format!("/admin/v1/messages/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(m["history"][0]["event"], "email.queued");
    assert_eq!(m["history"][0]["status"], "queued");
    assert_eq!(m["from"], "app@a.test");
    assert_eq!(m["subject"], "hello");
    assert_eq!(m["created_at"], "2026-06-07T09:39:00Z");

    let ws = &a.workspace_id;
    for (path, status, code) in [
        (
            "/admin/v1/messages/msg_0000000000000000".to_string(),
            404,
            "not_found",
        ),
        (
            "/admin/v1/messages?workspace=ws_0000000000000000".into(),
            404,
            "not_found",
        ),
        ("/admin/v1/messages".into(), 400, "invalid_request"),
        (
            format!("/admin/v1/messages?workspace={ws}&status=lost"),
            400,
            "invalid_request",
        ),
        (
            format!("/admin/v1/messages?workspace={ws}&cursor=%00%01garbage"),
            400,
            "invalid_request",
        ),
        (
            format!("/admin/v1/messages?workspace={ws}&limit=0"),
            400,
            "invalid_request",
        ),
        (
            format!("/admin/v1/messages?workspace={ws}&limit=many"),
            400,
            "invalid_request",
        ),
    ] {
        let (s, body) = ts.get(&path).await;
        assert_error(s, &body, status, code);
    }

    let (_, q) = ts.get("/admin/v1/queue").await;
    assert_eq!(q["queued"], 4);
    assert_eq!(q["depth"], 4);
}

#[tokio::test]
async fn health_metrics_and_openapi() {
    let ts = start().await;
    let account = ts.create_account("metered", 10).await;
    let mut s = ts.authed(&account).await;
    assert_eq!(
        s.send_mail(
            "a@b.test",
            &["c@d.test"],
            &message("a@b.test", "c@d.test", "m", "b")
        )
        .await
        .code,
        250
    );
    let bad = ts.raw().await;
    drop(bad);

    let resp = reqwest::get(format!("{}/healthz", ts.http)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let metrics = ts.metrics().await;
    for name in [
        "rackwave_smtp_connections_total",
        "rackwave_messages_accepted_total{source=\"smtp\"} 1",
        "rackwave_recipients_accepted_total{source=\"smtp\"} 1",
        "rackwave_spool_messages{status=\"queued\"} 1",
        "rackwave_spool_depth 1",
        "rackwave_spool_flushes_total",
        "rackwave_spool_flush_seconds_total",
        "rackwave_smtp_auth_failures_total 0",
    ] {
        assert!(metrics.contains(name), "missing {name} in\n{metrics}");
    }
    let doc: Value = reqwest::get(format!("{}/openapi.json", ts.http))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/admin/v1/workspaces",
        "/admin/v1/workspaces/{id}/smtp-accounts",
        "/admin/v1/workspaces/{id}/api-keys",
        "/admin/v1/messages",
        "/admin/v1/messages/{id}",
        "/admin/v1/queue",
        "/{platform}/v1/webhooks",
        "/{platform}/v1/webhooks/{id}/deliveries/{delivery_id}/resend",
        "/{platform}/v1/events",
        "/admin/v1/destinations/{domain}/resume",
        "/migosmtp/v1/messages",
        "/migosmtp/v1/messages/batch",
        "/migosmtp/v1/messages/{id}/raw",
        "/migosmtp/v1/domains/{domain}/verify",
        "/migosmtp/v1/smtp-accounts/{username}",
        "/migosmtp/v1/api-keys/{id}",
        "/migosmtp/v1/stats",
        "/healthz",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "openapi lacks {path}");
    }
    // Every operation has a unique id (they are generated from one list).
    let mut ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "operation ids repeat");
}

/// Runs `rackwave admin <args>` against the server at `http` with the
/// admin token: success, stdout, stderr.
fn admin_cli(http: &str, args: &[&str]) -> (bool, String, String) {
    let mut all = vec![
        "admin",
        "--config",
        "/nonexistent.toml",
        "--url",
        http,
        "--token",
        ADMIN_TOKEN,
    ];
    all.extend_from_slice(args);
    let out = Command::new(env!("CARGO_BIN_EXE_rackwave"))
        .args(&all)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cli_performs_the_same_calls() {
    let ts = start().await;
    let exe = env!("CARGO_BIN_EXE_rackwave");
    let cli = |args: &[&str]| admin_cli(&ts.http, args);
    let (ok, out, err) =
        tokio::task::block_in_place(|| cli(&["workspaces", "create", "--name", "From CLI"]));
    assert!(ok, "{err}");
    let ws: Value = serde_json::from_str(&out).unwrap();
    let ws_id = ws["id"].as_str().unwrap().to_string();
    let (ok, out, err) = tokio::task::block_in_place(|| {
        cli(&[
            "smtp-accounts",
            "create",
            "--workspace",
            &ws_id,
            "--username",
            "cli-user",
            "--password",
            "cli-password",
            "--daily-quota",
            "5",
        ])
    });
    assert!(ok, "{err}");
    assert!(out.contains("cli-user"));
    let (ok, out, _) = tokio::task::block_in_place(|| {
        cli(&[
            "api-keys",
            "create",
            "--workspace",
            &ws_id,
            "--platform",
            "migosmtp",
        ])
    });
    assert!(ok);
    assert!(out.contains("rw_migosmtp_"));
    // Telnxo numbers: provisioned with their channels, refused for a
    // channel that does not exist, released.
    let provision = |channels: &str, number: &str| {
        let args = [
            "numbers",
            "provision",
            "--workspace",
            &ws_id,
            "--channels",
            channels,
            number,
        ];
        tokio::task::block_in_place(|| cli(&args))
    };
    let (ok, out, err) = provision("sms,whatsapp", "+14155550100");
    assert!(ok, "{err}");
    let number: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(number["number"], "+14155550100");
    assert_eq!(number["channels"], serde_json::json!(["sms", "whatsapp"]));
    let (ok, _, err) = provision("fax", "+14155550101");
    assert!(!ok && err.contains("422"), "{err}");
    let (ok, _, err) = tokio::task::block_in_place(|| {
        cli(&["numbers", "release", "--workspace", &ws_id, "+14155550100"])
    });
    assert!(ok, "{err}");
    let (ok, _, err) = tokio::task::block_in_place(|| {
        cli(&["numbers", "release", "--workspace", &ws_id, "+14155550100"])
    });
    assert!(!ok && err.contains("404"), "released once: {err}");
    let (ok, out, _) = tokio::task::block_in_place(|| cli(&["queue"]));
    assert!(ok);
    assert!(out.contains("\"depth\""));
    let (ok, _, err) =
        tokio::task::block_in_place(|| cli(&["messages", "get", "msg_0000000000000000"]));
    assert!(!ok);
    assert!(err.contains("404"), "{err}");
    // A wrong token fails with the server's message.
    let out = tokio::task::block_in_place(|| {
        Command::new(exe)
            .args([
                "admin",
                "--config",
                "/nonexistent.toml",
                "--url",
                &ts.http,
                "--token",
                "nope",
                "queue",
            ])
            .output()
            .unwrap()
    });
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}

/// An operator edits a workspace's suppression list with the CLI, and the
/// workspace sees it with its own key; an unknown workspace is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_manages_a_workspaces_suppressions_from_the_cli() {
    let ts = start().await;
    let ws = ts.create_workspace("supp", None).await;
    let key = ts.create_api_key(&ws, "migosmtp").await;
    let cli = |args: &[&str]| admin_cli(&ts.http, &[&["suppressions"], args].concat());
    let (ok, out, err) = tokio::task::block_in_place(|| {
        cli(&[
            "add",
            "--workspace",
            &ws,
            "Ops+1@Example.test",
            "--reason",
            "complaint",
        ])
    });
    assert!(ok, "{err}");
    assert!(out.contains("ops+1@example.test"), "{out}");
    let (_, mine) = ts
        .call(&key, "GET", "/migosmtp/v1/suppressions", None)
        .await;
    assert_eq!(mine["suppressions"][0]["address"], "ops+1@example.test");
    assert_eq!(mine["suppressions"][0]["reason"], "complaint");
    let (ok, out, err) =
        tokio::task::block_in_place(|| cli(&["list", "--workspace", &ws, "--reason", "complaint"]));
    assert!(ok, "{err}");
    assert!(out.contains("ops+1@example.test"), "{out}");
    let (ok, _, err) =
        tokio::task::block_in_place(|| cli(&["add", "--workspace", &ws, "not-an-address"]));
    assert!(!ok && err.contains("422"), "{err}");
    let (ok, _, err) =
        tokio::task::block_in_place(|| cli(&["list", "--workspace", "ws_nonexistent"]));
    assert!(!ok && err.contains("404"), "{err}");
    let (ok, _, err) =
        tokio::task::block_in_place(|| cli(&["remove", "--workspace", &ws, "ops+1@example.test"]));
    assert!(ok, "{err}");
    let (_, mine) = ts
        .call(&key, "GET", "/migosmtp/v1/suppressions", None)
        .await;
    assert!(
        mine["suppressions"].as_array().unwrap().is_empty(),
        "{mine}"
    );
}

/// The operator can do what a workspace does with its own key: list and
/// revoke its keys, delete an SMTP account, delete a sending domain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_manages_a_workspaces_credentials_and_domains() {
    let ts = start().await;
    let ws = ts.create_workspace("ops", None).await;
    let account = ts.create_account_in(&ws, "ops-app", 10).await;
    let key = ts.create_api_key(&ws, "migosmtp").await;
    let (_, keys) = ts.get(&format!("/admin/v1/workspaces/{ws}/api-keys")).await;
    let id = keys["api_keys"][0]["id"].as_str().unwrap().to_string();
    assert!(!keys.to_string().contains(&key), "a secret was listed");
    let (s, _) = ts
        .admin(
            "DELETE",
            &format!("/admin/v1/workspaces/{ws}/api-keys/{id}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, _) = ts.call(&key, "GET", "/migosmtp/v1/messages", None).await;
    assert_eq!(s, 401, "a revoked key still works");
    let (s, _) = ts
        .admin(
            "DELETE",
            &format!("/admin/v1/workspaces/{ws}/api-keys/{id}"),
            None,
        )
        .await;
    assert_eq!(s, 404);

    let path = format!(
        "/admin/v1/workspaces/{ws}/smtp-accounts/{}",
        account.username
    );
    assert_eq!(ts.admin("DELETE", &path, None).await.0, 204);
    assert_eq!(ts.admin("DELETE", &path, None).await.0, 404);
    let (_, list) = ts
        .get(&format!("/admin/v1/workspaces/{ws}/smtp-accounts"))
        .await;
    assert!(list["smtp_accounts"].as_array().unwrap().is_empty());

    let (s, _) = ts
        .admin(
            "POST",
            &format!("/admin/v1/workspaces/{ws}/domains"),
            Some(serde_json::json!({"domain": "ops.test", "algorithm": "ed25519"})),
        )
        .await;
    assert_eq!(s, 201);
    let other = ts.create_workspace("other", None).await;
    let (s, _) = ts
        .admin(
            "DELETE",
            &format!("/admin/v1/workspaces/{other}/domains/ops.test"),
            None,
        )
        .await;
    assert_eq!(s, 404, "another workspace's domain");
    let (s, _) = ts
        .admin(
            "DELETE",
            &format!("/admin/v1/workspaces/{ws}/domains/ops.test"),
            None,
        )
        .await;
    assert_eq!(s, 204);

    let (s, stats) = ts.get(&format!("/admin/v1/workspaces/{ws}/stats")).await;
    assert_eq!(s, 200, "{stats}");
    assert_eq!(stats["days"].as_array().unwrap().len(), 7);
    let (s, _) = ts.get("/admin/v1/workspaces/ws_nope/stats").await;
    assert_eq!(s, 404);

    // And send as the workspace.
    let message = serde_json::json!({"from": "ops@ops.test", "to": ["a@example.test"],
        "subject": "from the operator", "text": "hi"});
    let (s, sent) = ts
        .admin(
            "POST",
            &format!("/admin/v1/workspaces/{ws}/messages"),
            Some(message.clone()),
        )
        .await;
    assert_eq!(s, 202, "{sent}");
    assert_eq!(ts.messages(&ws).await.len(), 1);
    let (s, _) = ts
        .admin(
            "POST",
            "/admin/v1/workspaces/ws_nope/messages",
            Some(message),
        )
        .await;
    assert_eq!(s, 404);
}

/// An operator works the portal's billing from the CLI: finds a client,
/// lists subscriptions and invoices, suspends and reactivates, records a
/// payment and a credit note, runs the billing, cancels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_works_the_billing_from_the_cli() {
    use rackwave_testkit::portal::{billing_config, portal, sign_up};

    let ts = start_with(|c| {
        c.billing = billing_config(
            "[[billing.plans]]\nid = \"mail\"\nplatform = \"migosmtp\"\nname = \"Mail\"\nprice_paise = 100000\ndaily_quota = 100\n",
        )
    })
    .await;
    let (client_id, token) = sign_up(&ts, "grace@example.test", "29", None).await;
    let body = json!({"platform": "migosmtp", "plan": "mail", "trial": false});
    let (s, sub) = portal(&ts, "POST", "/portal/v1/subscriptions", &token, Some(body)).await;
    assert_eq!(s, 201, "{sub}");
    let sub_id = sub["id"].as_str().unwrap();
    let cli = |args: &[&str]| {
        let (ok, out, err) = tokio::task::block_in_place(|| admin_cli(&ts.http, args));
        assert!(ok, "{args:?}: {err}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    let found = cli(&["clients", "list", "--q", "GRACE"]);
    assert_eq!(found["clients"][0]["id"], client_id.as_str());
    assert_eq!(
        cli(&["clients", "list", "--q", "nobody"])["clients"],
        json!([])
    );
    assert_eq!(
        cli(&["clients", "get", &client_id])["subscriptions"][0]["id"],
        sub_id
    );
    let pending = cli(&["subscriptions", "list", "--status", "pending"]);
    assert_eq!(pending["subscriptions"][0]["id"], sub_id);
    let invoices = cli(&[
        "invoices", "list", "--client", &client_id, "--status", "open",
    ]);
    let invoice = invoices["invoices"][0].clone();
    let id = invoice["id"].as_str().unwrap();
    // ₹1,000 + IGST ₹180; a credit note of ₹100 (+ ₹18), then the rest paid.
    assert_eq!(invoice["total_paise"], 118000);
    let credited = cli(&[
        "invoices",
        "credit",
        id,
        "--amount-paise",
        "10000",
        "--reason",
        "launch offer",
    ]);
    assert_eq!(credited["invoice"]["balance_paise"], 118000 - 11800);
    let paid = cli(&[
        "invoices",
        "pay",
        id,
        "--amount-paise",
        "106200",
        "--reference",
        "NEFT-77",
    ]);
    assert_eq!(paid["invoice"]["status"], "paid");
    let got = cli(&["invoices", "get", id]);
    assert_eq!(got["credit_notes"][0]["reason"], "launch offer");
    assert_eq!(got["payments"][0]["reference"], "NEFT-77");
    assert_eq!(
        cli(&["subscriptions", "list", "--client", &client_id])["subscriptions"][0]["status"],
        "active"
    );
    let suspended = cli(&[
        "subscriptions",
        "suspend",
        sub_id,
        "--reason",
        "abuse report",
    ]);
    assert_eq!(suspended["status"], "suspended");
    assert_eq!(
        cli(&["subscriptions", "reactivate", sub_id])["status"],
        "active"
    );
    let run = cli(&["billing", "run"]);
    assert_eq!(run["invoiced"], 0, "{run}");
    assert_eq!(
        cli(&["subscriptions", "cancel", sub_id])["status"],
        "cancelled"
    );
    // A payment with a reference seen before fails with the server's word.
    let (ok, _, err) = tokio::task::block_in_place(|| {
        admin_cli(
            &ts.http,
            &[
                "invoices",
                "pay",
                id,
                "--amount-paise",
                "1",
                "--reference",
                "NEFT-77",
            ],
        )
    });
    assert!(!ok && err.contains("409"), "{err}");
}
