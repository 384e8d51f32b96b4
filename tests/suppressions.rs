//! The suppression list through the MigoSMTP API against the real server:
//! entries added, listed, found and removed with a workspace's own key
//! (another workspace's key sees none of them), CSV imports, bad and
//! hostile input, and what a listed address means for mail: `550 5.7.1` at
//! RCPT over SMTP and a `suppressed` rejection by the HTTP send, neither
//! using quota. Entries made by hard bounces are tested with the delivery
//! engine in `tests/delivery.rs`.

use rackwave_testkit::*;
use serde_json::{json, Value};

struct Tenant {
    ws: String,
    key: String,
}

async fn tenant(ts: &TestServer, name: &str) -> Tenant {
    let ws = ts.create_workspace(name, None).await;
    let key = ts.create_api_key(&ws, "migosmtp").await;
    Tenant { ws, key }
}

async fn add(ts: &TestServer, t: &Tenant, body: Value) -> (u16, Value) {
    ts.call(&t.key, "POST", "/migosmtp/v1/suppressions", Some(body))
        .await
}

/// A raw POST of the import endpoint: status and JSON body.
async fn import(ts: &TestServer, t: &Tenant, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/migosmtp/v1/suppressions/import", ts.http))
        .bearer_auth(&t.key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn addresses(list: &Value) -> Vec<String> {
    list["suppressions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["address"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_keeps_its_own_suppression_list() {
    let ts = start().await;
    let a = tenant(&ts, "a").await;
    let b = tenant(&ts, "b").await;

    let (s, entry) = add(&ts, &a, json!({"address": "Ada+News@Example.TEST"})).await;
    assert_eq!(s, 201, "{entry}");
    assert_eq!(entry["address"], "ada+news@example.test");
    assert_eq!(entry["reason"], "manual");
    for (address, reason) in [
        ("bob@example.test", "complaint"),
        ("cy@example.test", "unsubscribe"),
        ("dee@example.test", "hard_bounce"),
    ] {
        let (s, e) = add(
            &ts,
            &a,
            json!({"address": address, "reason": reason, "detail": "from the old ESP"}),
        )
        .await;
        assert_eq!(s, 201, "{e}");
    }
    // Found in any case, through the path.
    let (s, e) = ts
        .call(
            &a.key,
            "GET",
            "/migosmtp/v1/suppressions/ADA+news@example.test",
            None,
        )
        .await;
    assert_eq!((s, e["reason"].as_str()), (200, Some("manual")), "{e}");

    // Pages in address order; the cursor carries a `+` safely.
    let (s, page) = ts
        .call(&a.key, "GET", "/migosmtp/v1/suppressions?limit=1", None)
        .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(addresses(&page), ["ada+news@example.test"]);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, page) = ts
        .call(
            &a.key,
            "GET",
            &format!("/migosmtp/v1/suppressions?limit=2&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(addresses(&page), ["bob@example.test", "cy@example.test"]);
    let (_, page) = ts
        .call(
            &a.key,
            "GET",
            "/migosmtp/v1/suppressions?reason=complaint",
            None,
        )
        .await;
    assert_eq!(addresses(&page), ["bob@example.test"]);
    assert_eq!(page["suppressions"][0]["detail"], "from the old ESP");

    // Another workspace sees, finds and removes nothing of it.
    let (_, page) = ts
        .call(&b.key, "GET", "/migosmtp/v1/suppressions", None)
        .await;
    assert!(addresses(&page).is_empty(), "{page}");
    for method in ["GET", "DELETE"] {
        let (s, _) = ts
            .call(
                &b.key,
                method,
                "/migosmtp/v1/suppressions/bob@example.test",
                None,
            )
            .await;
        assert_eq!(s, 404, "{method} of another workspace's entry");
    }
    // A Telnxo key or no key: refused.
    let telnxo = ts.create_api_key(&a.ws, "telnxo").await;
    let (s, _) = ts
        .call(&telnxo, "GET", "/migosmtp/v1/suppressions", None)
        .await;
    assert!(s == 401 || s == 403, "telnxo key: {s}");
    let (s, _) = ts
        .call("nonsense", "GET", "/migosmtp/v1/suppressions", None)
        .await;
    assert_eq!(s, 401);

    // Removal: mail to the address is accepted again.
    let (s, _) = ts
        .call(
            &a.key,
            "DELETE",
            "/migosmtp/v1/suppressions/Bob@example.test",
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, _) = ts
        .call(
            &a.key,
            "DELETE",
            "/migosmtp/v1/suppressions/bob@example.test",
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (_, page) = ts
        .call(&a.key, "GET", "/migosmtp/v1/suppressions", None)
        .await;
    assert_eq!(addresses(&page).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_the_field_and_stores_nothing() {
    let ts = start().await;
    let a = tenant(&ts, "a").await;
    for (body, status, field) in [
        (json!({"address": "not an address"}), 422, Some("address")),
        (json!({"address": "a@b@c"}), 422, Some("address")),
        (json!({"address": ""}), 422, Some("address")),
        (
            json!({"address": format!("{}@example.test", "x".repeat(300))}),
            422,
            Some("address"),
        ),
        (
            json!({"address": "x@example.test\r\nBcc: y@example.test"}),
            422,
            Some("address"),
        ),
        (
            json!({"address": "x@example.test", "detail": "line\nbreak"}),
            422,
            Some("detail"),
        ),
        (
            json!({"address": "x@example.test", "detail": "d".repeat(501)}),
            422,
            Some("detail"),
        ),
        (
            json!({"address": "x@example.test", "reason": "because"}),
            400,
            None,
        ),
        (
            json!({"address": "x@example.test", "workspace": "other"}),
            400,
            None,
        ),
        (json!({"reason": "manual"}), 400, None),
    ] {
        let (s, answer) = add(&ts, &a, body.clone()).await;
        assert_eq!(s, status, "{body} -> {answer}");
        assert!(answer["error"]["code"].is_string(), "{answer}");
        if let Some(field) = field {
            assert_eq!(answer["error"]["field"], field, "{answer}");
        }
    }
    for query in [
        "reason=because",
        "cursor=zz",
        "limit=0",
        "limit=501",
        "colour=red",
    ] {
        let (s, answer) = ts
            .call(
                &a.key,
                "GET",
                &format!("/migosmtp/v1/suppressions?{query}"),
                None,
            )
            .await;
        assert!(s == 400 || s == 422, "{query} -> {s} {answer}");
    }
    let (_, page) = ts
        .call(&a.key, "GET", "/migosmtp/v1/suppressions", None)
        .await;
    assert!(addresses(&page).is_empty(), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_import_takes_good_lines_and_reports_the_rest() {
    let ts = start().await;
    let a = tenant(&ts, "a").await;
    let csv = "address,reason\r\n\
               one@example.test\r\n\
               \"Two@Example.test\",complaint\r\n\
               \r\n\
               three@example.test, unsubscribe\r\n\
               not-an-address\r\n\
               four@example.test,because\r\n";
    let (s, report) = import(&ts, &a, "text/csv; charset=utf-8", csv.as_bytes().to_vec()).await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["imported"], 3);
    let skipped: Vec<u64> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_u64().unwrap())
        .collect();
    assert_eq!(skipped, [6, 7], "{report}");
    let (_, page) = ts
        .call(&a.key, "GET", "/migosmtp/v1/suppressions", None)
        .await;
    assert_eq!(
        addresses(&page),
        ["one@example.test", "three@example.test", "two@example.test"]
    );
    assert_eq!(page["suppressions"][2]["reason"], "complaint");

    // Not CSV, not UTF-8, too many lines, too large: refused, nothing added.
    let (s, _) = import(&ts, &a, "application/json", b"five@example.test".to_vec()).await;
    assert_eq!(s, 415);
    let (s, answer) = import(&ts, &a, "text/csv", vec![b'f', 0xff, 0xfe, b'\n']).await;
    assert_eq!(s, 400, "{answer}");
    let many = "x@example.test\n".repeat(100_001);
    let (s, answer) = import(&ts, &a, "text/csv", many.into_bytes()).await;
    assert_eq!(s, 400, "{answer}");
    let huge = vec![b'a'; 21 * 1024 * 1024];
    let (s, answer) = import(&ts, &a, "text/csv", huge).await;
    assert_eq!(s, 413, "{answer}");
    let (_, page) = ts
        .call(&a.key, "GET", "/migosmtp/v1/suppressions", None)
        .await;
    assert_eq!(addresses(&page).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_to_a_suppressed_address_is_refused_over_smtp_and_http() {
    let ts = start().await;
    // A quota of two: a suppressed recipient must not use any of it.
    let ws = ts.create_workspace("acme", Some(2)).await;
    let key = ts.create_api_key(&ws, "migosmtp").await;
    let account = ts.create_account_in(&ws, "acme-app", 100).await;
    let t = Tenant {
        ws: ws.clone(),
        key,
    };
    let (s, _) = add(
        &ts,
        &t,
        json!({"address": "gone@example.test", "reason": "hard_bounce"}),
    )
    .await;
    assert_eq!(s, 201);

    let mut smtp = ts.authed(&account).await;
    smtp.cmd_expect("MAIL FROM:<app@sender.test>", 250).await;
    let refused = smtp.cmd("RCPT TO:<Gone@Example.test>").await;
    assert_eq!(refused.code, 550, "{refused:?}");
    assert!(
        refused.text().contains("5.7.1") && refused.text().contains("hard_bounce"),
        "{refused:?}"
    );
    smtp.cmd_expect("RCPT TO:<here@example.test>", 250).await;
    smtp.cmd_expect("DATA", 354).await;
    smtp.send_raw(message("app@sender.test", "here@example.test", "hi", "hello").as_bytes())
        .await;
    smtp.send_raw(b".\r\n").await;
    smtp.expect(250).await;

    let send = json!({
        "from": "app@sender.test",
        "to": ["GONE@example.test", "there@example.test"],
        "subject": "hi",
        "text": "hello"
    });
    let (s, sent) = ts
        .call(&t.key, "POST", "/migosmtp/v1/messages", Some(send))
        .await;
    assert_eq!(s, 202, "{sent}");
    assert_eq!(sent["messages"].as_array().unwrap().len(), 1, "{sent}");
    assert_eq!(sent["messages"][0]["to"], "there@example.test");
    assert_eq!(sent["rejected"][0]["to"], "GONE@example.test");
    assert_eq!(sent["rejected"][0]["code"], "suppressed");
    // Two accepted in all: the quota of two was enough.
    let queued: Vec<String> = ts
        .messages(&ws)
        .await
        .iter()
        .map(|m| m["to"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(queued.len(), 2, "{queued:?}");
    assert!(!queued
        .iter()
        .any(|to| to.eq_ignore_ascii_case("gone@example.test")));
}
