//! The portal as a client uses it: sign-up, login, and the lifecycle
//! events logged under a client's id.

use serde_json::{json, Value};

use crate::{api, TestServer};

/// The password of every client these helpers sign up.
pub const PASSWORD: &str = "correct horse battery";

/// A portal call with `token` as bearer (empty: none).
pub async fn portal(
    ts: &TestServer,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    api(&ts.http, token, method, path, body).await
}

/// Logs in: the status, the answer and the `Set-Cookie` field.
pub async fn login(ts: &TestServer, email: &str, password: &str) -> (u16, Value, Option<String>) {
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

/// Signs up a client in state `state_code` (with `gstin` when registered)
/// and logs in: its id and session token.
pub async fn sign_up(
    ts: &TestServer,
    email: &str,
    state_code: &str,
    gstin: Option<&str>,
) -> (String, String) {
    let mut body = json!({
        "email": email, "password": PASSWORD, "name": email.split('@').next().unwrap(),
        "address": "1 Test Road", "state_code": state_code,
    });
    if let Some(g) = gstin {
        body["gstin"] = json!(g);
    }
    let (s, created) = portal(ts, "POST", "/portal/v1/signup", "", Some(body)).await;
    assert_eq!(s, 201, "{created}");
    (
        created["id"].as_str().unwrap().to_string(),
        log_in(ts, email).await,
    )
}

/// A fresh session token of a client these helpers signed up.
pub async fn log_in(ts: &TestServer, email: &str) -> String {
    let (s, session, _) = login(ts, email, PASSWORD).await;
    assert_eq!(s, 200, "{session}");
    session["token"].as_str().unwrap().to_string()
}

/// The lifecycle events of a client, oldest first: (type, data).
pub async fn lifecycle(ts: &TestServer, client_id: &str) -> Vec<(String, Value)> {
    let query = rackwave_store::EventQuery {
        ascending: true,
        ..Default::default()
    };
    ts.server
        .as_ref()
        .unwrap()
        .events
        .list(client_id, &query, None, 1000)
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| {
            let v: Value = serde_json::from_slice(e.body()).unwrap();
            (v["event"].as_str().unwrap().to_string(), v["data"].clone())
        })
        .collect()
}

/// What a payment gateway puts in `X-Rackwave-Gateway-Signature`:
/// `sha256=` + hex HMAC-SHA256 of the body with the shared secret.
pub fn gateway_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Posts a gateway callback of `body`, signed with `signature`.
pub async fn gateway_callback(ts: &TestServer, body: &[u8], signature: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/portal/v1/payments/callback", ts.http))
        .header("content-type", "application/json")
        .header("x-rackwave-gateway-signature", signature)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// An operator records a payment of `amount` (any JSON, to try bad ones)
/// against an invoice.
pub async fn pay(
    ts: &TestServer,
    invoice_id: &str,
    amount: Value,
    reference: &str,
) -> (u16, Value) {
    let path = format!("/admin/v1/invoices/{invoice_id}/payments");
    ts.admin(
        "POST",
        &path,
        Some(json!({"amount_paise": amount, "reference": reference})),
    )
    .await
}

/// A client's invoices, newest first.
pub async fn invoices(ts: &TestServer, token: &str) -> Vec<Value> {
    let (s, list) = portal(ts, "GET", "/portal/v1/invoices", token, None).await;
    assert_eq!(s, 200, "{list}");
    list["invoices"].as_array().unwrap().clone()
}

/// `[billing]` read from the TOML of its body (plans and settings), as the
/// server would read it from `config.toml`.
pub fn billing_config(body: &str) -> rackwave_billing::BillingConfig {
    rackwave::config::Config::parse(
        &format!("[billing]\n{body}"),
        std::path::Path::new("t.toml"),
    )
    .unwrap()
    .billing
}

/// An SMTP account (password `app password 123`) made with a workspace's
/// own API key.
pub async fn smtp_account(ts: &TestServer, key: &str, ws: &str, username: &str) -> crate::Account {
    let body = json!({"username": username, "password": "app password 123", "daily_quota": 1000});
    let (s, acct) = ts
        .call(key, "POST", "/migosmtp/v1/smtp-accounts", Some(body))
        .await;
    assert_eq!(s, 201, "{acct}");
    crate::Account {
        workspace_id: ws.to_string(),
        username: username.into(),
        password: "app password 123".into(),
    }
}

/// A server whose billing has one MigoSMTP plan, `mail` ("Mail Starter",
/// 14 days of trial).
pub async fn with_mail_plan() -> TestServer {
    with_mail_plan_and(|_| {}).await
}

/// [`with_mail_plan`], with more of the configuration changed.
pub async fn with_mail_plan_and(tweak: impl FnOnce(&mut rackwave::config::Config)) -> TestServer {
    crate::start_with(|c| {
        c.billing = billing_config(
            "[[billing.plans]]\nid = \"mail\"\nplatform = \"migosmtp\"\nname = \"Mail Starter\"\nprice_paise = 99900\ndaily_quota = 1000\ntrial_days = 14\n",
        );
        tweak(c);
    })
    .await
}

/// A client `email` (in Karnataka) with a trial of `plan` on `platform`:
/// its session token and the subscription as answered (with its
/// `workspace_id` and first `api_key`).
pub async fn trial_of(ts: &TestServer, email: &str, platform: &str, plan: &str) -> (String, Value) {
    let (_, token) = sign_up(ts, email, "29", None).await;
    let (s, sub) = portal(
        ts,
        "POST",
        "/portal/v1/subscriptions",
        &token,
        Some(json!({"platform": platform, "plan": plan, "trial": true})),
    )
    .await;
    assert_eq!(s, 201, "{sub}");
    (token, sub)
}

/// The reset link of the newest password reset email the sink got.
fn reset_link(r: &crate::delivery::Rig) -> Option<String> {
    r.sinks[0].received().iter().rev().find_map(|m| {
        let parsed = mail_parser::MessageParser::default().parse(&m.data)?;
        let text = parsed.body_text(0)?.to_string();
        let at = text.find("/portal/reset?token=")?;
        let token: String = text[at + 20..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        Some(token)
    })
}

/// Waits for a reset email whose token is not `old`; its token.
pub async fn wait_for_reset_link(r: &crate::delivery::Rig, old: Option<&str>) -> String {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match reset_link(r) {
            Some(t) if Some(t.as_str()) != old => return t,
            _ => {}
        }
        assert!(tokio::time::Instant::now() < deadline, "no reset email");
        r.kick();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
