//! The portal's API over real HTTP: sign-up with a billing profile (GSTIN
//! checked), login (token and cookie, the growing delay and lockout),
//! sessions on the manual clock, logout, isolation between clients, and
//! the price list.

use rackwave_testkit::portal::{billing_config, lifecycle, login, pay, portal, smtp_account};
use rackwave_testkit::*;
use serde_json::{json, Value};

fn ada() -> Value {
    json!({
        "email": "Ada@Example.test", "password": "correct horse battery",
        "name": "Ada Lovelace", "company": "Analytical Engines",
        "address": "1 Engine Road, Mumbai", "state_code": "27",
        "gstin": "27aapfu0939f1zv"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_log_in_and_out() {
    let ts = start().await;
    let (s, c) = portal(&ts, "POST", "/portal/v1/signup", "", Some(ada())).await;
    assert_eq!(s, 201, "{c}");
    assert!(c["id"].as_str().unwrap().starts_with("cus_"), "{c}");
    assert_eq!(c["email"], "ada@example.test");
    assert_eq!(c["gstin"], "27AAPFU0939F1ZV");
    assert_eq!(c["state"], "Maharashtra");
    assert!(c.get("password").is_none() && c.get("password_hash").is_none());

    // The same email, in another case: taken.
    let mut again = ada();
    again["email"] = json!("ADA@example.TEST");
    assert_eq!(
        portal(&ts, "POST", "/portal/v1/signup", "", Some(again))
            .await
            .0,
        409
    );

    // Each field checked, named in the answer.
    for (field, value) in [
        ("gstin", json!("27AAPFU0939F1ZW")),
        ("gstin", json!("29AAGCB7383J1Z4")),
        ("gstin", json!("27AAPFU0939F1Z")),
        ("email", json!("not an address")),
        ("password", json!("short")),
        ("state_code", json!("40")),
        ("name", json!("")),
        ("address", json!("x".repeat(600))),
    ] {
        let mut body = ada();
        body["email"] = json!("other@example.test");
        body[field] = value.clone();
        let (s, e) = portal(&ts, "POST", "/portal/v1/signup", "", Some(body)).await;
        assert_eq!(s, 422, "{field} {value}: {e}");
        assert_eq!(e["error"]["field"], field, "{e}");
    }
    let mut unknown = ada();
    unknown["admin"] = json!(true);
    assert_eq!(
        portal(&ts, "POST", "/portal/v1/signup", "", Some(unknown))
            .await
            .0,
        400
    );
    // No GSTIN is fine (an unregistered client).
    let mut bob = ada();
    bob["email"] = json!("bob@example.test");
    bob["state_code"] = json!("29");
    bob.as_object_mut().unwrap().remove("gstin");
    assert_eq!(
        portal(&ts, "POST", "/portal/v1/signup", "", Some(bob))
            .await
            .0,
        201
    );

    // Login: a token and a cookie the browser keeps to itself.
    let (s, session, cookie) = login(&ts, "ADA@example.test", "correct horse battery").await;
    assert_eq!(s, 200, "{session}");
    let token = session["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("rwc_"));
    let cookie = cookie.expect("a session cookie");
    for attr in [
        "rw_portal=",
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/portal",
    ] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let (s, me) = portal(&ts, "GET", "/portal/v1/me", &token, None).await;
    assert_eq!((s, &me["email"]), (200, &json!("ada@example.test")));
    let by_cookie = reqwest::Client::new()
        .get(format!("{}/portal/v1/me", ts.http))
        .header("cookie", format!("theme=dark; rw_portal={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), 200);
    let me2: Value = by_cookie.json().await.unwrap();
    assert_eq!(me2["id"], me["id"]);

    // Bob sees Bob.
    let (_, bob_session, _) = login(&ts, "bob@example.test", "correct horse battery").await;
    let bob_token = bob_session["token"].as_str().unwrap();
    let (_, bob_me) = portal(&ts, "GET", "/portal/v1/me", bob_token, None).await;
    assert_eq!(bob_me["email"], "bob@example.test");
    assert_ne!(bob_me["id"], me["id"]);

    // No token, a forged one, an API key of a platform: 401.
    for bad in ["", "rwc_0123", "rwc_", &"rwc_a".repeat(40)] {
        assert_eq!(
            portal(&ts, "GET", "/portal/v1/me", bad, None).await.0,
            401,
            "{bad}"
        );
    }
    let ws = ts.create_workspace("ws", None).await;
    let key = ts.create_api_key(&ws, "migosmtp").await;
    assert_eq!(portal(&ts, "GET", "/portal/v1/me", &key, None).await.0, 401);

    // Logout ends the session and clears the cookie.
    let resp = reqwest::Client::new()
        .post(format!("{}/portal/v1/logout", ts.http))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        portal(&ts, "GET", "/portal/v1/me", &token, None).await.0,
        401
    );
    assert_eq!(
        portal(&ts, "GET", "/portal/v1/me", bob_token, None).await.0,
        200
    );

    // A session lasts fourteen days.
    ts.clock.advance_ms(14 * 86_400_000 - 1);
    assert_eq!(
        portal(&ts, "GET", "/portal/v1/me", bob_token, None).await.0,
        200
    );
    ts.clock.advance_ms(1);
    assert_eq!(
        portal(&ts, "GET", "/portal/v1/me", bob_token, None).await.0,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_wait_then_lock_out() {
    let ts = start().await;
    assert_eq!(
        portal(&ts, "POST", "/portal/v1/signup", "", Some(ada()))
            .await
            .0,
        201
    );
    // Wrong password and unknown email look the same.
    let (s, e, cookie) = login(&ts, "ada@example.test", "wrong password!").await;
    assert_eq!(
        (s, &e["error"]["code"]),
        (401, &json!("invalid_credentials"))
    );
    assert!(cookie.is_none());
    let (s, e2, _) = login(&ts, "nobody@example.test", "wrong password!").await;
    assert_eq!(s, 401);
    assert_eq!(e["error"]["message"], e2["error"]["message"]);
    // A login to an account of one's own between guesses does not reset
    // the count (sign-up is open to anyone).
    client(&ts, "bob@example.test").await;
    // Five failures (the [smtp] auth_max_failures default) lock the
    // address out, even for the right password.
    for _ in 0..3 {
        assert_eq!(
            login(&ts, "ada@example.test", "wrong password!").await.0,
            401
        );
    }
    let (s, e, _) = login(&ts, "ada@example.test", "correct horse battery").await;
    assert_eq!(s, 429, "{e}");
    // Until the lockout ends (the [smtp] auth_lockout_secs default).
    ts.clock.advance_ms(900_001);
    assert_eq!(
        login(&ts, "ada@example.test", "correct horse battery")
            .await
            .0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_price_list_comes_from_the_config() {
    let ts = start_with(|c| {
        c.billing = rackwave::config::Config::parse(
            "[billing]\n[[billing.plans]]\nid = \"m1\"\nplatform = \"migosmtp\"\nname = \"Mail\"\nprice_paise = 99900\ndaily_quota = 10000\ntrial_days = 14\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap()
        .billing;
    })
    .await;
    let (s, list) = portal(&ts, "GET", "/portal/v1/plans", "", None).await;
    assert_eq!(s, 200);
    assert_eq!(
        list["plans"],
        json!([{"id": "m1", "platform": "migosmtp", "name": "Mail", "price_paise": 99900,
                "daily_quota": 10000, "sms_allowance": null, "whatsapp_allowance": null,
                "voice_minutes": null, "trial_days": 14}])
    );
}

/// The workspaces that are not the system's (notifications).
async fn client_workspaces(ts: &TestServer) -> Vec<Value> {
    let (_, all) = ts.get("/admin/v1/workspaces").await;
    let all = all["workspaces"].as_array().unwrap().clone();
    all.into_iter()
        .filter(|w| w["id"] != "ws_notifications")
        .collect()
}

/// Plans for the subscription tests.
fn with_plans(c: &mut rackwave::config::Config) {
    c.billing = billing_config(
        "[[billing.plans]]\nid = \"mail\"\nplatform = \"migosmtp\"\nname = \"Mail Starter\"\nprice_paise = 99900\ndaily_quota = 1000\ntrial_days = 14\n\
         [[billing.plans]]\nid = \"mail-pro\"\nplatform = \"migosmtp\"\nname = \"Mail Pro\"\nprice_paise = 499900\ndaily_quota = 100000\n\
         [[billing.plans]]\nid = \"sms\"\nplatform = \"telnxo\"\nname = \"SMS\"\nprice_paise = 149900\nsms_allowance = 5000\ntrial_days = 7\n",
    );
}

/// Starts a trial of `plan` on `platform` as the client of `token`.
async fn trial(ts: &TestServer, token: &str, platform: &str, plan: &str) -> (u16, Value) {
    let body = json!({"platform": platform, "plan": plan, "trial": true});
    portal(ts, "POST", "/portal/v1/subscriptions", token, Some(body)).await
}

/// Signs `email` up and logs in; the session token.
async fn client(ts: &TestServer, email: &str) -> String {
    let mut body = ada();
    body["email"] = json!(email);
    body.as_object_mut().unwrap().remove("gstin");
    assert_eq!(
        portal(ts, "POST", "/portal/v1/signup", "", Some(body))
            .await
            .0,
        201
    );
    let (s, session, _) = login(ts, email, "correct horse battery").await;
    assert_eq!(s, 200);
    session["token"].as_str().unwrap().to_string()
}

/// A trial provisions the platform's workspace with the plan's quota and
/// a first API key, in one commit with `trial_activated`; the client can
/// then create an SMTP account and send mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_provisions_a_workspace_that_sends() {
    let ts = start_with(with_plans).await;
    let ada = client(&ts, "ada@example.test").await;
    let bob = client(&ts, "bob@example.test").await;

    // Wrong platform, unknown plan, a plan without a trial, a paid start
    // (not yet: the paid start is in tests/billing.rs), no session: refused,
    // nothing provisioned.
    for (platform, plan, trial, field) in [
        ("fax", "mail", true, "platform"),
        ("migosmtp", "nope", true, "plan"),
        ("telnxo", "mail", true, "plan"),
        ("migosmtp", "mail-pro", true, "trial"),
    ] {
        let body = json!({"platform": platform, "plan": plan, "trial": trial});
        let (s, e) = portal(&ts, "POST", "/portal/v1/subscriptions", &ada, Some(body)).await;
        assert_eq!(s, 422, "{platform} {plan} {trial}: {e}");
        assert_eq!(e["error"]["field"], field, "{e}");
    }
    assert_eq!(trial(&ts, "", "migosmtp", "mail").await.0, 401);
    assert_eq!(client_workspaces(&ts).await.len(), 0, "nothing provisioned");

    let (s, sub) = trial(&ts, &ada, "migosmtp", "mail").await;
    assert_eq!(s, 201, "{sub}");
    assert_eq!(sub["status"], "trial");
    assert_eq!(sub["plan_name"], "Mail Starter");
    assert_eq!(
        sub["expires_at"],
        rackwave_core::rfc3339(START_MS + 14 * 86_400_000)
    );
    let ws = sub["workspace_id"].as_str().unwrap().to_string();
    let key = sub["api_key"].as_str().unwrap().to_string();
    assert!(key.starts_with("rw_migosmtp_"), "{key}");

    // The workspace has the plan's quota; the key is the workspace's.
    let (s, w) = ts.get(&format!("/admin/v1/workspaces/{ws}")).await;
    assert_eq!((s, &w["daily_quota"]), (200, &json!(1000)), "{w}");
    let account = smtp_account(&ts, &key, &ws, "ada-app").await;
    let mut smtp = ts.authed(&account).await;
    let reply = smtp
        .send_mail(
            "news@ada.test",
            &["reader@example.test"],
            &message(
                "news@ada.test",
                "reader@example.test",
                "hello",
                "from a trial",
            ),
        )
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");

    // trial_activated, logged under the client with the seed's fields.
    let (_, me) = portal(&ts, "GET", "/portal/v1/me", &ada, None).await;
    let client_id = me["id"].as_str().unwrap();
    let events = ts
        .server
        .as_ref()
        .unwrap()
        .events
        .list(client_id, &Default::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(events.items.len(), 1);
    let payload: Value = serde_json::from_slice(events.items[0].body()).unwrap();
    assert_eq!(payload["event"], "trial_activated", "{payload}");
    assert_eq!(payload["product"], "rackwave");
    assert_eq!(payload["data"]["customer_id"], client_id);
    assert_eq!(payload["data"]["platform_id"], "1");
    assert_eq!(payload["data"]["expires_at"], sub["expires_at"]);

    // One subscription per platform; another platform is fine.
    let (s, _) = trial(&ts, &ada, "migosmtp", "mail").await;
    assert_eq!(s, 409);
    let (s, sms) = trial(&ts, &ada, "telnxo", "sms").await;
    assert_eq!(s, 201, "{sms}");
    assert!(sms["api_key"].as_str().unwrap().starts_with("rw_telnxo_"));

    // Listed (without keys), oldest first; Bob sees none of them.
    let (_, list) = portal(&ts, "GET", "/portal/v1/subscriptions", &ada, None).await;
    let list = list["subscriptions"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|s| s.get("api_key").is_none()));
    let id = sub["id"].as_str().unwrap();
    assert_eq!(
        portal(
            &ts,
            "GET",
            &format!("/portal/v1/subscriptions/{id}"),
            &ada,
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        portal(
            &ts,
            "GET",
            &format!("/portal/v1/subscriptions/{id}"),
            &bob,
            None
        )
        .await
        .0,
        404
    );
    let (_, bobs) = portal(&ts, "GET", "/portal/v1/subscriptions", &bob, None).await;
    assert_eq!(bobs["subscriptions"].as_array().unwrap().len(), 0);
}

/// Two trials of one platform started at once: one wins, one workspace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_trials_at_once_make_one() {
    let ts = start_with(with_plans).await;
    let ada = client(&ts, "ada@example.test").await;
    let (a, b) = tokio::join!(
        trial(&ts, &ada, "migosmtp", "mail"),
        trial(&ts, &ada, "migosmtp", "mail"),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409]);
    assert_eq!(client_workspaces(&ts).await.len(), 1, "one workspace");
}

/// A trial that ends goes on as the paid service; left unpaid, the
/// billing run suspends it after the grace days (once): its workspace
/// stops sending at once, open SMTP sessions included, and its API refuses
/// changes; a restart keeps the suspension; paying ends it. An operator
/// suspends and reactivates by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaid_service_is_suspended_and_sending_stops() {
    let mut ts = start_with(with_plans).await;
    let ada = client(&ts, "ada@example.test").await;
    let (_, me) = portal(&ts, "GET", "/portal/v1/me", &ada, None).await;
    let client_id = me["id"].as_str().unwrap().to_string();
    let (_, sub) = trial(&ts, &ada, "migosmtp", "mail").await;
    let (id, ws) = (
        sub["id"].as_str().unwrap().to_string(),
        sub["workspace_id"].as_str().unwrap().to_string(),
    );
    let key = sub["api_key"].as_str().unwrap().to_string();
    let account = smtp_account(&ts, &key, &ws, "ada-app").await;
    let mut open = ts.authed(&account).await;
    let send =
        json!({"from": "news@ada.test", "to": ["r@example.test"], "subject": "s", "text": "t"});

    // A day before the trial ends the run does nothing; at its end the
    // plan goes on as the paid service with its first invoice; a second
    // run does nothing twice.
    const DAY: i64 = 86_400_000;
    ts.clock.advance_ms(13 * DAY);
    let (s, r) = ts.admin("POST", "/admin/v1/billing/run", None).await;
    assert_eq!((s, &r["converted"]), (200, &json!(0)), "{r}");
    ts.clock.advance_ms(DAY);
    let (_, r) = ts.admin("POST", "/admin/v1/billing/run", None).await;
    assert_eq!(
        (&r["converted"], &r["invoiced"]),
        (&json!(1), &json!(1)),
        "{r}"
    );
    let (_, r) = ts.admin("POST", "/admin/v1/billing/run", None).await;
    assert_eq!(
        (&r["converted"], &r["invoiced"]),
        (&json!(0), &json!(0)),
        "{r}"
    );
    // Unpaid: overdue after the 15 days to pay, suspended after 7 more of
    // grace (not a minute before), once.
    ts.clock.advance_ms(15 * DAY);
    let (_, r) = ts.admin("POST", "/admin/v1/billing/run", None).await;
    assert_eq!(
        (&r["overdue"], &r["suspended"]),
        (&json!(1), &json!(0)),
        "{r}"
    );
    ts.clock.advance_ms(7 * DAY - 60_000);
    let (_, r) = ts.admin("POST", "/admin/v1/billing/run", None).await;
    assert_eq!(r["suspended"], 0, "{r}");
    ts.clock.advance_ms(60_000);
    let (_, r) = ts.admin("POST", "/admin/v1/billing/run", None).await;
    assert_eq!(r["suspended"], 1, "{r}");
    let (_, r) = ts.admin("POST", "/admin/v1/billing/run", None).await;
    assert_eq!(r["suspended"], 0, "a second run does nothing twice: {r}");
    // (The login of weeks ago has lapsed.)
    let (_, session, _) = login(&ts, "ada@example.test", "correct horse battery").await;
    let ada = session["token"].as_str().unwrap().to_string();
    let (_, got) = portal(
        &ts,
        "GET",
        &format!("/portal/v1/subscriptions/{id}"),
        &ada,
        None,
    )
    .await;
    let (_, invoices) = portal(&ts, "GET", "/portal/v1/invoices", &ada, None).await;
    let invoice = invoices["invoices"][0].clone();
    assert_eq!(got["status"], "suspended");
    assert_eq!(
        got["suspension_reason"],
        format!("invoice {} unpaid", invoice["number"].as_str().unwrap())
    );

    // The open session is refused at its next transaction, a new one too;
    // the API reads but neither sends nor changes.
    let r = open.cmd("MAIL FROM:<news@ada.test>").await;
    assert_eq!(
        (r.code, r.text().contains("5.7.1 account suspended")),
        (554, true),
        "{r:?}"
    );
    let mut fresh = ts.authed(&account).await;
    assert_eq!(fresh.cmd("MAIL FROM:<news@ada.test>").await.code, 554);
    let (s, e) = ts
        .call(&key, "POST", "/migosmtp/v1/messages", Some(send.clone()))
        .await;
    assert_eq!((s, &e["error"]["code"]), (403, &json!("suspended")));
    assert_eq!(
        ts.call(&key, "GET", "/migosmtp/v1/messages", None).await.0,
        200
    );

    // Still suspended after a restart.
    ts.restart().await;
    let mut after = ts.authed(&account).await;
    assert_eq!(after.cmd("MAIL FROM:<news@ada.test>").await.code, 554);

    // Paying the invoice ends the suspension at once.
    let pay_id = invoice["id"].as_str().unwrap().to_string();
    let amount = invoice["total_paise"].clone();
    let (s, paid) = pay(&ts, &pay_id, amount.clone(), "NEFT-1").await;
    assert_eq!(
        (s, &paid["invoice"]["status"]),
        (201, &json!("paid")),
        "{paid}"
    );
    let mut after = ts.authed(&account).await;
    assert_eq!(after.cmd("MAIL FROM:<news@ada.test>").await.code, 250);

    // Bob's trial runs: an operator suspends it by hand and reactivates it.
    let bob = client(&ts, "bob@example.test").await;
    let (_, bob_sub) = trial(&ts, &bob, "migosmtp", "mail").await;
    let bob_id = bob_sub["id"].as_str().unwrap().to_string();
    let bob_key = bob_sub["api_key"].as_str().unwrap().to_string();
    let bob_ws = bob_sub["workspace_id"].as_str().unwrap().to_string();
    let bob_account = smtp_account(&ts, &bob_key, &bob_ws, "bob-app").await;
    let mut bob_smtp = ts.authed(&bob_account).await;
    for bad in [
        json!({"reason": ""}),
        json!({"reason": "x".repeat(600)}),
        json!({}),
    ] {
        let path = format!("/admin/v1/subscriptions/{bob_id}/suspend");
        let (s, _) = ts.admin("POST", &path, Some(bad.clone())).await;
        assert!(s == 422 || s == 400, "{bad}: {s}");
    }
    let (s, got) = ts
        .admin(
            "POST",
            &format!("/admin/v1/subscriptions/{bob_id}/suspend"),
            Some(json!({"reason": "abuse report"})),
        )
        .await;
    assert_eq!((s, &got["status"]), (200, &json!("suspended")));
    assert_eq!(bob_smtp.cmd("MAIL FROM:<news@bob.test>").await.code, 554);
    // A BDAT chunk is read (the session stays in step) and refused alike.
    bob_smtp.send("BDAT 5 LAST").await;
    bob_smtp.send_raw(b"hello").await;
    let r = bob_smtp.reply().await.unwrap();
    assert_eq!(
        (r.code, r.text().contains("account suspended")),
        (554, true),
        "{r:?}"
    );
    // A suspended workspace may still revoke its key.
    let (s, keys) = ts
        .call(&bob_key, "GET", "/migosmtp/v1/api-keys", None)
        .await;
    assert_eq!(s, 200, "{keys}");
    let (s, got) = ts
        .admin(
            "POST",
            &format!("/admin/v1/subscriptions/{bob_id}/reactivate"),
            None,
        )
        .await;
    assert_eq!((s, &got["status"]), (200, &json!("trial")), "{got}");
    assert_eq!(bob_smtp.cmd("MAIL FROM:<news@bob.test>").await.code, 250);
    bob_smtp.cmd_expect("RSET", 250).await;
    let bob_send =
        json!({"from": "news@bob.test", "to": ["r@example.test"], "subject": "s", "text": "t"});
    assert_eq!(
        ts.call(&bob_key, "POST", "/migosmtp/v1/messages", Some(bob_send))
            .await
            .0,
        202
    );
    let key_id = keys["api_keys"][0]["id"].as_str().unwrap();
    assert_eq!(
        ts.admin(
            "POST",
            "/admin/v1/subscriptions/sub_nope/suspend",
            Some(json!({"reason": "x"}))
        )
        .await
        .0,
        404
    );
    let (_, bob_me) = portal(&ts, "GET", "/portal/v1/me", &bob, None).await;
    let bob_events = lifecycle(&ts, bob_me["id"].as_str().unwrap()).await;
    let bob_types: Vec<&str> = bob_events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        bob_types,
        [
            "trial_activated",
            "service_suspended",
            "service_reactivated"
        ]
    );
    assert_eq!(bob_events[1].1["suspension_reason"], "abuse report");
    assert_eq!(bob_events[2].1["plan_name"], "Mail Starter");
    // Suspended again, Bob's workspace can still revoke its key.
    ts.admin(
        "POST",
        &format!("/admin/v1/subscriptions/{bob_id}/suspend"),
        Some(json!({"reason": "again"})),
    )
    .await;
    let (s, _) = ts
        .call(
            &bob_key,
            "DELETE",
            &format!("/migosmtp/v1/api-keys/{key_id}"),
            None,
        )
        .await;
    assert_eq!(s, 204);

    // Ada's transitions, in order, with the seed's fields.
    let events = lifecycle(&ts, &client_id).await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    // (`trial_activated` is past the event log's 30 days of retention.)
    assert_eq!(
        types,
        [
            "service_activated",
            "invoice_created",
            "invoice_overdue",
            "service_suspended",
            "invoice_paid",
            "service_reactivated"
        ]
    );
    assert_eq!(events[3].1["customer_id"], client_id.as_str());
    assert_eq!(events[3].1["platform_id"], "1");
}

/// A client's own lifecycle webhooks, under `/portal/v1/webhooks` with its
/// session: trial, suspension and reactivation arrive signed with the
/// seed's fields; email events are not the portal's to subscribe to;
/// another client sees nothing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_events_reach_the_clients_webhook() {
    use rackwave_testkit::receiver::Receiver;
    use std::time::Duration;

    let ts = start_with(with_plans).await;
    let ada = client(&ts, "ada@example.test").await;
    let bob = client(&ts, "bob@example.test").await;
    let rx = Receiver::start().await;
    let hook = json!({"url": rx.url("life"), "event_types": ["*"]});
    let (s, ep) = portal(&ts, "POST", "/portal/v1/webhooks", &ada, Some(hook.clone())).await;
    assert_eq!(s, 201, "{ep}");
    assert_eq!(ep["platform"], "rackwave");
    rx.set_secrets("life", &[ep["secret"].as_str().unwrap()]);
    let id = ep["id"].as_str().unwrap().to_string();
    // Email events are no portal events; no session, another client, or
    // a platform key: no access.
    let email = json!({"url": rx.url("x"), "event_types": ["email.delivered"]});
    let (s, e) = portal(&ts, "POST", "/portal/v1/webhooks", &ada, Some(email)).await;
    assert!(s == 400 || s == 422, "{s} {e}");
    assert_eq!(
        portal(&ts, "GET", "/portal/v1/webhooks", "", None).await.0,
        401
    );
    let path = format!("/portal/v1/webhooks/{id}");
    assert_eq!(portal(&ts, "GET", &path, &bob, None).await.0, 404);
    let (_, bobs) = portal(&ts, "GET", "/portal/v1/webhooks", &bob, None).await;
    assert_eq!(bobs["webhooks"].as_array().map(Vec::len), Some(0), "{bobs}");
    let ws = ts.create_workspace("w", None).await;
    let key = ts.create_api_key(&ws, "migosmtp").await;
    assert_eq!(
        portal(&ts, "GET", "/portal/v1/webhooks", &key, None)
            .await
            .0,
        401
    );

    let (_, sub) = trial(&ts, &ada, "migosmtp", "mail").await;
    let sub_id = sub["id"].as_str().unwrap();
    let reason = json!({"reason": "abuse report"});
    let suspend = format!("/admin/v1/subscriptions/{sub_id}/suspend");
    assert_eq!(ts.admin("POST", &suspend, Some(reason)).await.0, 200);
    let got = rx.wait_for("life", 2, Duration::from_secs(30)).await;
    let (_, me) = portal(&ts, "GET", "/portal/v1/me", &ada, None).await;
    let mut types = Vec::new();
    for r in &got {
        assert!(r.verified(), "signature");
        let v = &r.body;
        assert_eq!(v["product"], "rackwave");
        assert_eq!(v["data"]["customer_id"], me["id"]);
        types.push(v["event"].as_str().unwrap().to_string());
    }
    types.sort();
    assert_eq!(types, ["service_suspended", "trial_activated"]);
    // Bob's receiver got nothing; Ada's events list shows both.
    let (_, events) = portal(&ts, "GET", "/portal/v1/events", &ada, None).await;
    assert_eq!(events["events"].as_array().unwrap().len(), 2, "{events}");
    let (_, none) = portal(&ts, "GET", "/portal/v1/events", &bob, None).await;
    assert_eq!(none["events"].as_array().unwrap().len(), 0);
}

/// Ten guesses sent at once are no more than the five the lockout allows:
/// logins from one address take turns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_parallel_guesses_is_no_more_guesses() {
    let ts = start().await;
    let (s, _) = portal(&ts, "POST", "/portal/v1/signup", "", Some(ada())).await;
    assert_eq!(s, 201);
    let mut guesses = tokio::task::JoinSet::new();
    for i in 0..10 {
        let url = format!("{}/portal/v1/login", ts.http);
        let body = json!({"email": "ada@example.test", "password": format!("guess number {i}")});
        guesses.spawn(async move {
            let resp = reqwest::Client::new().post(url).json(&body).send().await;
            resp.unwrap().status().as_u16()
        });
    }
    let statuses = guesses.join_all().await;
    let wrong = statuses.iter().filter(|s| **s == 401).count();
    let locked = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((wrong, locked), (5, 5), "{statuses:?}");
}

/// Asks for a password reset link for `email`; the status.
async fn ask_reset(ts: &TestServer, email: &str) -> u16 {
    let body = json!({"email": email});
    portal(ts, "POST", "/portal/v1/password/reset", "", Some(body))
        .await
        .0
}

/// A password change needs the current one and ends every session; a
/// reset link is mailed to the account (never to its contacts), works
/// once and for an hour; asking for an unknown account looks the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_change_and_reset_by_email() {
    use rackwave_testkit::delivery::{rig, sink, DOWN};
    use rackwave_testkit::portal::{log_in, sign_up, PASSWORD};
    use std::time::Duration;

    let r = rig(vec![(1, sink())], [1, DOWN], |_| {}).await;
    let ts = &r.ts;
    let (_, old) = sign_up(ts, "ada@example.test", "27", None).await;
    let other = log_in(ts, "ada@example.test").await;
    let contacts =
        json!({"contacts": [{"email": "boss@example.test", "billing": true, "technical": true}]});
    assert_eq!(
        portal(ts, "PUT", "/portal/v1/contacts", &old, Some(contacts))
            .await
            .0,
        200
    );

    // Change: the current password is checked; every session ends.
    let wrong = json!({"current_password": "not the password", "new_password": "a new password 1"});
    assert_eq!(
        portal(ts, "POST", "/portal/v1/password", &old, Some(wrong))
            .await
            .0,
        401
    );
    let short = json!({"current_password": PASSWORD, "new_password": "short"});
    assert_eq!(
        portal(ts, "POST", "/portal/v1/password", &old, Some(short))
            .await
            .0,
        422
    );
    let change = json!({"current_password": PASSWORD, "new_password": "a new password 1"});
    let (s, changed) = portal(ts, "POST", "/portal/v1/password", &old, Some(change)).await;
    assert_eq!(s, 200, "{changed}");
    let new = changed["token"].as_str().unwrap().to_string();
    for gone in [&old, &other] {
        assert_eq!(portal(ts, "GET", "/portal/v1/me", gone, None).await.0, 401);
    }
    assert_eq!(portal(ts, "GET", "/portal/v1/me", &new, None).await.0, 200);
    assert_eq!(login(ts, "ada@example.test", PASSWORD).await.0, 401);
    assert_eq!(
        login(ts, "ada@example.test", "a new password 1").await.0,
        200
    );

    // Reset: an unknown address and a known one get the same answer; one
    // email, to the account only.
    let s = ask_reset(ts, "nobody@example.test").await;
    assert_eq!(s, 202);
    let s = ask_reset(ts, "ADA@example.test").await;
    assert_eq!(s, 202);
    // A second request within the minute mails nothing more.
    ask_reset(ts, "ada@example.test").await;
    let token = rackwave_testkit::portal::wait_for_reset_link(&r, None).await;

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let resets: Vec<Vec<String>> = r.sinks[0]
        .received()
        .iter()
        .filter(|m| String::from_utf8_lossy(&m.data).contains("password_reset"))
        .map(|m| m.rcpt_to.clone())
        .collect();
    assert_eq!(resets, [vec!["ada@example.test".to_string()]]);

    let confirm = |token: &str, pw: &str| json!({"token": token, "password": pw});
    let path = "/portal/v1/password/reset/confirm";
    for bad in ["", "rwr_0000", &token.replace("rwr_", "rwc_")] {
        let (s, e) = portal(ts, "POST", path, "", Some(confirm(bad, "third password 1"))).await;
        assert_eq!(
            (s, &e["error"]["field"]),
            (422, &json!("token")),
            "{bad}: {e}"
        );
    }
    let (s, e) = portal(ts, "POST", path, "", Some(confirm(&token, "short"))).await;
    assert_eq!(s, 422, "{e}");
    let (s, done) = portal(
        ts,
        "POST",
        path,
        "",
        Some(confirm(&token, "third password 1")),
    )
    .await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(portal(ts, "GET", "/portal/v1/me", &new, None).await.0, 401);
    let (s, _) = portal(
        ts,
        "POST",
        path,
        "",
        Some(confirm(&token, "fourth password 1")),
    )
    .await;
    assert_eq!(s, 422, "used once");
    assert_eq!(
        login(ts, "ada@example.test", "third password 1").await.0,
        200
    );

    // A link an hour old no longer works.
    ts.clock.advance_ms(120_000);
    ask_reset(ts, "ada@example.test").await;
    let late = rackwave_testkit::portal::wait_for_reset_link(&r, Some(&token)).await;

    ts.clock.advance_ms(3_600_000);
    let (s, _) = portal(
        ts,
        "POST",
        path,
        "",
        Some(confirm(&late, "fifth password 12")),
    )
    .await;
    assert_eq!(s, 422, "expired");
}

/// With the session cookie (what a browser sends by itself), a change
/// needs the session's CSRF token; reads do not; a bearer token needs
/// none. The billing profile can be changed, checked like at sign-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_changes_need_the_csrf_token() {
    use rackwave_testkit::portal::sign_up;

    let ts = start().await;
    // Unknown fields are refused, at sign-up too.
    let mut extra = ada();
    extra["is_admin"] = json!(true);
    let (s, e) = portal(&ts, "POST", "/portal/v1/signup", "", Some(extra)).await;
    assert!(s == 400 || s == 422, "{s} {e}");
    let (_, _) = sign_up(&ts, "ada@example.test", "27", None).await;
    let (_, session, _) = login(&ts, "ada@example.test", "correct horse battery").await;
    let token = session["token"].as_str().unwrap();
    let csrf = session["csrf_token"].as_str().unwrap();
    let profile = json!({"name": "Ada", "address": "2 Loom Lane\nPune", "state_code": "27",
        "gstin": "27AAPFU0939F1ZV"});
    let send = |csrf: Option<&str>, method: &str, body: Option<Value>| {
        let mut req = reqwest::Client::new()
            .request(method.parse().unwrap(), format!("{}/portal/v1/me", ts.http))
            .header("cookie", format!("rw_portal={token}"));
        if let Some(c) = csrf {
            req = req.header("x-csrf-token", c);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(send(None, "GET", None).await, 200);
    assert_eq!(send(None, "PUT", Some(profile.clone())).await, 403);
    assert_eq!(send(Some("0123"), "PUT", Some(profile.clone())).await, 403);
    assert_eq!(send(Some(csrf), "PUT", Some(profile.clone())).await, 200);
    let (_, me) = portal(&ts, "GET", "/portal/v1/me", token, None).await;
    assert_eq!(
        (&me["address"], &me["gstin"]),
        (&json!("2 Loom Lane\nPune"), &json!("27AAPFU0939F1ZV"))
    );
    // Bearer: no CSRF token needed; the profile is checked.
    let mut bad = profile.clone();
    bad["gstin"] = json!("29AAGCB7383J1Z4");
    let (s, e) = portal(&ts, "PUT", "/portal/v1/me", token, Some(bad)).await;
    assert_eq!((s, &e["error"]["field"]), (422, &json!("gstin")), "{e}");
    let mut bad = profile;
    bad["state_code"] = json!("99");
    let (s, e) = portal(&ts, "PUT", "/portal/v1/me", token, Some(bad)).await;
    assert_eq!(
        (s, &e["error"]["field"]),
        (422, &json!("state_code")),
        "{e}"
    );
}

/// The anonymous calls (sign-up, login, password resets) are limited per
/// client address: 30 a minute, then `429` with `Retry-After`, until the
/// bucket refills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_calls_are_limited_per_address() {
    let ts = start().await;
    let mut statuses = Vec::new();
    for _ in 0..31 {
        statuses.push(ask_reset(&ts, "nobody@example.test").await);
    }
    assert!(statuses[..30].iter().all(|s| *s == 202), "{statuses:?}");
    let resp = reqwest::Client::new()
        .post(format!("{}/portal/v1/login", ts.http))
        .json(&json!({"email": "nobody@example.test", "password": "whatever it is"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    ts.clock.advance_ms(60_000);
    assert_eq!(ask_reset(&ts, "nobody@example.test").await, 202);
    // The price list is not one of them.
    for _ in 0..40 {
        assert_eq!(
            portal(&ts, "GET", "/portal/v1/plans", "", None).await.0,
            200
        );
    }
}
