//! What MigoSMTP adds to messages for their recipients, seen in the
//! messages as queued: per-recipient copies and their memory budget, the
//! switches of the message, and (delivered through the delivery rig) a
//! sending domain's own tracking host and switches. The links themselves,
//! followed from delivered messages, are tested with the delivery engine in
//! `tests/delivery.rs` (one-click unsubscribe, opens and clicks).

use rackwave_testkit::*;

/// The raw message queued for `to` in a workspace (admin view).
async fn raw_for(ts: &TestServer, ws: &str, key: &str, to: &str) -> String {
    let msg = ts
        .messages(ws)
        .await
        .into_iter()
        .find(|m| m["to"] == to)
        .unwrap_or_else(|| panic!("no message to {to}"));
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/migosmtp/v1/messages/{}/raw",
            ts.http,
            msg["id"].as_str().unwrap()
        ))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

/// Per-recipient copies are bounded: a message whose copies would take
/// more than a submission's share goes out to everyone without links
/// (never refused); a small one gets each recipient its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_recipient_copies_stay_within_their_memory_budget() {
    let ts = start().await;
    let ws = ts.create_workspace("big", None).await;
    let key = ts.create_api_key(&ws, "migosmtp").await;
    let account = ts.create_account_in(&ws, "big-app", 1000).await;
    let mut smtp = ts.authed(&account).await;
    // Three copies of 24 MB: over the 64 MiB share.
    let body =
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n".repeat(370_000);
    let big = format!(
        "From: <app@sender.test>\r\nTo: <a@example.test>\r\nSubject: big\r\n\
         X-Rackwave-Tracking: unsubscribe=on\r\n\r\n{body}"
    );
    let reply = smtp
        .send_mail(
            "app@sender.test",
            &["a@example.test", "b@example.test", "c@example.test"],
            &big,
        )
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let small = "From: <app@sender.test>\r\nTo: <d@example.test>\r\nSubject: small\r\n\
                 X-Rackwave-Tracking: unsubscribe=on\r\n\r\nhello\r\n";
    let reply = smtp
        .send_mail(
            "app@sender.test",
            &["d@example.test", "e@example.test"],
            small,
        )
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");

    for to in ["a@example.test", "c@example.test"] {
        let raw = raw_for(&ts, &ws, &key, to).await;
        assert!(raw.len() > 23_000_000, "{to}: the whole message");
        assert!(
            !raw.contains("List-Unsubscribe:"),
            "{to}: no copy per recipient"
        );
        assert!(
            !raw.contains("X-Rackwave-Tracking"),
            "{to}: the control field is gone"
        );
    }
    let d = raw_for(&ts, &ws, &key, "d@example.test").await;
    let e = raw_for(&ts, &ws, &key, "e@example.test").await;
    let link = |raw: &str| {
        raw.lines()
            .find(|l| l.starts_with("List-Unsubscribe: "))
            .map(str::to_string)
            .expect("List-Unsubscribe")
    };
    assert_ne!(link(&d), link(&e));
}

/// The switch over SMTP: `off` wins over the workspace's default, the
/// control field never reaches the queue, and a sender's own unsubscribe
/// fields are kept as the only ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smtp_switch_and_a_senders_own_unsubscribe_fields() {
    let ts = start().await;
    let ws = ts.create_workspace("lists", None).await;
    let key = ts.create_api_key(&ws, "migosmtp").await;
    let account = ts.create_account_in(&ws, "lists-app", 1000).await;
    let (s, _) = ts
        .admin(
            "PATCH",
            &format!("/admin/v1/workspaces/{ws}"),
            Some(serde_json::json!({"tracking": {"unsubscribe": true}})),
        )
        .await;
    assert_eq!(s, 200);
    let mut smtp = ts.authed(&account).await;
    let send = |to: &'static str, extra: &'static str| {
        format!("From: <app@sender.test>\r\nTo: <{to}>\r\nSubject: s\r\n{extra}\r\nhello\r\n")
    };
    for (to, extra) in [
        ("default@example.test", ""),
        (
            "off@example.test",
            "X-Rackwave-Tracking: unsubscribe=off\r\n",
        ),
        (
            "own@example.test",
            "List-Unsubscribe: <https://app.test/u/1>\r\n",
        ),
        (
            "post@example.test",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        ),
    ] {
        let reply = smtp
            .send_mail("app@sender.test", &[to], &send(to, extra))
            .await;
        assert_eq!(reply.code, 250, "{reply:?}");
    }
    let count = |raw: &str, field: &str| {
        raw.lines()
            .filter(|l| l.to_ascii_lowercase().starts_with(&format!("{field}:")))
            .count()
    };
    let raw = raw_for(&ts, &ws, &key, "default@example.test").await;
    assert_eq!(count(&raw, "list-unsubscribe"), 1, "{raw}");
    let raw = raw_for(&ts, &ws, &key, "off@example.test").await;
    assert_eq!(count(&raw, "list-unsubscribe"), 0, "{raw}");
    assert_eq!(count(&raw, "x-rackwave-tracking"), 0, "{raw}");
    let raw = raw_for(&ts, &ws, &key, "own@example.test").await;
    assert_eq!(count(&raw, "list-unsubscribe"), 1, "{raw}");
    assert!(raw.contains("<https://app.test/u/1>"), "{raw}");
    assert_eq!(count(&raw, "list-unsubscribe-post"), 0, "{raw}");
    let raw = raw_for(&ts, &ws, &key, "post@example.test").await;
    assert_eq!(count(&raw, "list-unsubscribe-post"), 1, "{raw}");
    assert_eq!(count(&raw, "list-unsubscribe"), 0, "{raw}");
}

/// Over HTTP the `tracking` field decides; the control field, sent among
/// the message's `headers`, is obeyed only when the field says nothing,
/// and is never queued either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_the_tracking_field_beats_the_control_field() {
    let ts = start().await;
    let ws = ts.create_workspace("http", None).await;
    let key = ts.create_api_key(&ws, "migosmtp").await;
    for (to, tracking, wanted) in [
        (
            "field-off@example.test",
            serde_json::json!({"unsubscribe": false}),
            0,
        ),
        ("header-only@example.test", serde_json::Value::Null, 1),
    ] {
        let mut body = serde_json::json!({
            "from": "app@sender.test", "to": [to], "subject": "s", "text": "t",
            "headers": {"X-Rackwave-Tracking": "unsubscribe=on"}
        });
        if !tracking.is_null() {
            body["tracking"] = tracking;
        }
        let (s, sent) = ts
            .call(&key, "POST", "/migosmtp/v1/messages", Some(body))
            .await;
        assert_eq!(s, 202, "{sent}");
        let raw = raw_for(&ts, &ws, &key, to).await;
        let lower = raw.to_ascii_lowercase();
        assert!(!lower.contains("x-rackwave-tracking"), "{raw}");
        assert_eq!(
            lower
                .lines()
                .filter(|l| l.starts_with("list-unsubscribe:"))
                .count(),
            wanted,
            "{raw}"
        );
    }
}

/// Without a `List-Id`, the unsubscribe names the list by the message's
/// first tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsubscribe_names_the_list_by_tag_without_a_list_id() {
    let ts = start().await;
    let ws = ts.create_workspace("tags", None).await;
    let key = ts.create_api_key(&ws, "migosmtp").await;
    let (s, sent) = ts
        .call(
            &key,
            "POST",
            "/migosmtp/v1/messages",
            Some(serde_json::json!({
                "from": "app@sender.test", "to": ["ada@example.test"], "subject": "s",
                "text": "t", "tags": ["weekly-digest", "eu"], "tracking": {"unsubscribe": true}
            })),
        )
        .await;
    assert_eq!(s, 202, "{sent}");
    let raw = raw_for(&ts, &ws, &key, "ada@example.test").await;
    let url = raw
        .lines()
        .find_map(|l| l.strip_prefix("List-Unsubscribe: <"))
        .and_then(|l| l.strip_suffix('>'))
        .unwrap_or_else(|| panic!("no List-Unsubscribe in {raw}"));
    let resp = one_click(url).await;
    assert_eq!(resp.status(), 200);
    let (_, page) = ts
        .call(
            &key,
            "GET",
            "/migosmtp/v1/events?type=email.unsubscribed",
            None,
        )
        .await;
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{page}");
    assert_eq!(events[0]["data"]["list_id"], "weekly-digest");
    assert_eq!(events[0]["data"]["message_id"], sent["messages"][0]["id"]);
}

/// A sending domain's own tracking host (a verified CNAME) and its own
/// switches, between the workspace's settings and the message's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sending_domain_has_its_own_tracking_host_and_switches() {
    use rackwave_testkit::delivery::*;
    use serde_json::{json, Value};

    let r = rig(vec![(57, sink())], [57, DOWN], |c| {
        c.tracking.base_url = Some("https://t.rackwave.test".into());
    })
    .await;
    let ws = r.account.workspace_id.clone();
    let key = r.ts.create_api_key(&ws, "migosmtp").await;
    r.signing_domain(None).await;
    // The workspace tracks clicks by default.
    let (s, _) =
        r.ts.admin(
            "PATCH",
            &format!("/admin/v1/workspaces/{ws}"),
            Some(json!({"tracking": {"clicks": true}})),
        )
        .await;
    assert_eq!(s, 200);
    let send = |tracking: Option<Value>| {
        let r = &r;
        let key = key.clone();
        async move {
            let mut body = json!({"from": "news@dkim.test", "to": ["ada@example.test"],
                "subject": "Sale", "text": "Sale",
                "html": "<html><body><a href=\"https://shop.example.test/sale\">Sale</a></body></html>"});
            if let Some(t) = tracking {
                body["tracking"] = t;
            }
            let before = r.sinks[0].received().len();
            let (s, sent) =
                r.ts.call(&key, "POST", "/migosmtp/v1/messages", Some(body))
                    .await;
            assert_eq!(s, 202, "{sent}");
            r.wait(sent["queue_id"].as_str().unwrap(), &["delivered"])
                .await;
            let got = r.sinks[0].received();
            assert_eq!(got.len(), before + 1);
            String::from_utf8_lossy(&got.last().unwrap().data).replace("=\r\n", "")
        }
    };

    // A change of dkim.test with `key`.
    let patch = |key: String, body: Value| {
        let ts = &r.ts;
        async move {
            ts.call(&key, "PATCH", "/migosmtp/v1/domains/dkim.test", Some(body))
                .await
        }
    };
    // A host outside the domain, or not a host name: refused.
    for bad in [
        "click.other.test",
        "dkim.test",
        "click dkim.test",
        "x.notdkim.test",
    ] {
        let (s, e) = patch(key.clone(), json!({"tracking_host": bad})).await;
        assert_eq!(s, 400, "{bad}: {e}");
    }
    // Another workspace cannot touch it.
    let other = r.ts.create_account("other", 100).await;
    let other_key = r.ts.create_api_key(&other.workspace_id, "migosmtp").await;
    let (s, _) = patch(
        other_key.clone(),
        json!({"tracking_host": "click.dkim.test"}),
    )
    .await;
    assert_eq!(s, 404);

    let (s, d) = patch(key.clone(), json!({"tracking_host": "Click.DKIM.test."})).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["tracking_host"], "click.dkim.test");
    let tracking_record = |d: &Value| {
        d["records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["purpose"] == "tracking")
            .cloned()
            .unwrap_or_else(|| panic!("no tracking record in {d}"))
    };
    let rec = tracking_record(&d);
    assert_eq!(
        (&rec["type"], &rec["name"], &rec["value"], &rec["verified"]),
        (
            &json!("CNAME"),
            &json!("click.dkim.test"),
            &json!("t.rackwave.test"),
            &json!(false)
        )
    );

    // Until its CNAME checks out, links stay on [tracking] base_url.
    let data = send(None).await;
    assert_eq!(
        rackwave_testkit::delivery::tracked_urls(&data, "https://t.rackwave.test", "c").len(),
        1,
        "{data}"
    );
    assert_eq!(
        rackwave_testkit::delivery::tracked_urls(&data, "https://click.dkim.test", "c").len(),
        0
    );

    r.dns.add_record("click.dkim CNAME t.rackwave.test.");
    let (s, v) =
        r.ts.call(&key, "POST", "/migosmtp/v1/domains/dkim.test/verify", None)
            .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(tracking_record(&v)["verified"], true, "{v}");
    // Not needed for the domain itself (its SPF and return path are not
    // published here).
    assert_eq!(v["status"], "unverified");
    let data = send(None).await;
    assert_eq!(
        rackwave_testkit::delivery::tracked_urls(&data, "https://click.dkim.test", "c").len(),
        1,
        "{data}"
    );
    assert_eq!(
        rackwave_testkit::delivery::tracked_urls(&data, "https://t.rackwave.test", "c").len(),
        0
    );
    r.assert_dkim_passes(data.as_bytes()).await;

    // The domain's own switches beat the workspace's; the message's beat
    // the domain's.
    let (s, d) = patch(
        key.clone(),
        json!({"tracking": {"opens": false, "clicks": false, "unsubscribe": true}}),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["tracking"]["unsubscribe"], true);
    let data = send(None).await;
    assert_eq!(
        rackwave_testkit::delivery::tracked_urls(&data, "https://click.dkim.test", "c").len(),
        0,
        "{data}"
    );
    assert!(
        data.contains("List-Unsubscribe: <https://click.dkim.test/u/"),
        "{data}"
    );
    let data = send(Some(json!({"clicks": true, "unsubscribe": false}))).await;
    assert_eq!(
        rackwave_testkit::delivery::tracked_urls(&data, "https://click.dkim.test", "c").len(),
        1,
        "{data}"
    );
    assert!(!data.contains("\nList-Unsubscribe: "), "{data}");

    // A new host is not trusted before its own check; null removes both.
    let (_, d) = patch(key.clone(), json!({"tracking_host": "links.dkim.test"})).await;
    assert_eq!(tracking_record(&d)["verified"], false, "{d}");
    let (s, d) = patch(
        key.clone(),
        json!({"tracking_host": null, "tracking": null}),
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        d["tracking_host"].is_null() && d["tracking"].is_null(),
        "{d}"
    );
    assert!(
        !d["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["purpose"] == "tracking"),
        "{d}"
    );
    let data = send(None).await;
    assert_eq!(
        rackwave_testkit::delivery::tracked_urls(&data, "https://t.rackwave.test", "c").len(),
        1,
        "{data}"
    );
}

/// Opens and clicks from `[tracking] machine_networks` are a machine's,
/// whatever their user agent says; recorded all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_from_machine_networks_are_marked() {
    use rackwave_testkit::delivery::*;
    use serde_json::json;

    let r = rig(vec![(58, sink())], [58, DOWN], |c| {
        c.tracking.machine_networks = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let key =
        r.ts.create_api_key(&r.account.workspace_id, "migosmtp")
            .await;
    let (s, sent) =
        r.ts.call(
            &key,
            "POST",
            "/migosmtp/v1/messages",
            Some(
                json!({"from": "news@sender.test", "to": ["ada@example.test"], "subject": "Hi",
                "html": "<html><body><a href=\"https://shop.example.test/\">Shop</a></body></html>",
                "tracking": {"opens": true, "clicks": true}}),
            ),
        )
        .await;
    assert_eq!(s, 202, "{sent}");
    r.wait(sent["queue_id"].as_str().unwrap(), &["delivered"])
        .await;
    let data = String::from_utf8_lossy(&r.sinks[0].received()[0].data).replace("=\r\n", "");
    let url = |kind: &str| tracked_urls(&data, &r.ts.http, kind)[0].clone();
    // A minute later, with a person's browser, from a machine network.
    r.ts.clock.advance_ms(60_000);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
    for kind in ["o", "c"] {
        let resp = http
            .get(url(kind))
            .header("user-agent", firefox)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success() || resp.status() == 302, "{kind}");
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, page) =
            r.ts.call(
                &key,
                "GET",
                "/migosmtp/v1/events?type=email.opened,email.clicked",
                None,
            )
            .await;
        let events = page["events"].as_array().unwrap();
        if events.len() == 2 {
            for e in events {
                assert_eq!(e["data"]["machine"], true, "{e}");
                assert_eq!(e["data"]["user_agent"], firefox, "{e}");
            }
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{page}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
