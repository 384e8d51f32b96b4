//! The portal's API over real HTTP: sign-up with a billing profile (GSTIN
//! checked), login (token and cookie, the growing delay and lockout),
//! sessions on the manual clock, logout, isolation between clients, and
//! the price list.

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

/// A call without any credential, or with `token` as bearer.
async fn portal(
    ts: &TestServer,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    api(&ts.http, token, method, path, body).await
}

async fn login(ts: &TestServer, email: &str, password: &str) -> (u16, Value, Option<String>) {
    let resp = reqwest::Client::new()
        .post(format!("{}/portal/v1/login", ts.http))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let cookie = resp
        .headers()
        .get("set-cookie")
        .map(|c| c.to_str().unwrap().to_string());
    (status, resp.json().await.unwrap(), cookie)
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
