//! The pages over real HTTP: the portal's login and dashboard, Access
//! Platform and single sign-on into a platform's dashboard exactly as the
//! seed describes it (a one-use token, validated server to server with the
//! platform's secret, a session of the platform's own), and every way it
//! must refuse: a replayed, expired, altered or other-platform token, a
//! validation without the secret, a form without its CSRF token.

use rackwave_testkit::portal::{portal, sign_up, trial_of, with_mail_plan, PASSWORD};
use rackwave_testkit::TestServer;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// The value of a cookie a response sets, and its attributes.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<(String, String)> {
    resp.headers().get_all(SET_COOKIE).iter().find_map(|v| {
        let v = v.to_str().ok()?;
        let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
        let (n, value) = pair.split_once('=')?;
        (n == name).then(|| (value.to_string(), attrs.to_string()))
    })
}

/// `GET path` with a cookie (`name=value`, or none).
async fn get(b: &reqwest::Client, ts: &TestServer, path: &str, cookie: &str) -> reqwest::Response {
    let mut req = b.get(format!("{}{path}", ts.http));
    if !cookie.is_empty() {
        req = req.header(COOKIE, cookie);
    }
    req.send().await.unwrap()
}

/// A form `POST path` with a cookie.
async fn post_form(
    b: &reqwest::Client,
    ts: &TestServer,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = b.post(format!("{}{path}", ts.http)).form(form);
    if !cookie.is_empty() {
        req = req.header(COOKIE, cookie);
    }
    req.send().await.unwrap()
}

/// The value of the hidden `_csrf` field of the first form of a page.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"_csrf\" value=\"").expect("a CSRF field") + 20;
    html[at..].split('"').next().unwrap().to_string()
}

/// Logs in through the login page: the portal session cookie.
async fn log_in_page(ts: &TestServer, b: &reqwest::Client, email: &str) -> String {
    let form = get(b, ts, "/portal/login", "").await;
    assert_eq!(form.status(), 200);
    let (double, attrs) = set_cookie(&form, "rw_csrf").expect("the login form's CSRF cookie");
    assert!(attrs.contains("HttpOnly") && attrs.contains("SameSite=Strict"));
    let html = form.text().await.unwrap();
    assert!(html.contains("<label for=\"email\""), "labelled inputs");
    let csrf = csrf_of(&html);
    // Without the double-submit cookie, the form is refused.
    let form = [("email", email), ("password", PASSWORD), ("_csrf", &csrf)];
    let forged = post_form(b, ts, "/portal/login", "", &form).await;
    assert_eq!(forged.status(), 403);
    assert!(set_cookie(&forged, "rw_portal").is_none());
    let resp = post_form(b, ts, "/portal/login", &format!("rw_csrf={double}"), &form).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()[LOCATION], "/portal/dashboard");
    let (session, attrs) = set_cookie(&resp, "rw_portal").expect("the session cookie");
    assert!(
        attrs.contains("Path=/portal") && attrs.contains("HttpOnly"),
        "{attrs}"
    );
    session
}

#[tokio::test]
async fn access_platform_signs_in_to_the_migosmtp_dashboard_once() {
    let ts = with_mail_plan().await;
    let b = browser();
    let (_, sub) = trial_of(&ts, "ada@example.test", "migosmtp", "mail").await;
    let sub_id = sub["id"].as_str().unwrap();

    // A wrong password shows the form again.
    let wrong = get(&b, &ts, "/portal/login", "").await;
    let (double, _) = set_cookie(&wrong, "rw_csrf").unwrap();
    let csrf = csrf_of(&wrong.text().await.unwrap());
    let form = [
        ("email", "ada@example.test"),
        ("password", "nope"),
        ("_csrf", &csrf),
    ];
    let refused = post_form(
        &b,
        &ts,
        "/portal/login",
        &format!("rw_csrf={double}"),
        &form,
    )
    .await;
    assert_eq!(refused.status(), 401);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("Wrong email or password"));

    let session = log_in_page(&ts, &b, "ada@example.test").await;
    let cookie = format!("rw_portal={session}");
    let dash = get(&b, &ts, "/portal/dashboard", &cookie).await;
    assert_eq!(dash.status(), 200);
    let html = dash.text().await.unwrap();
    assert!(
        html.contains("Mail Starter") && html.contains("Access Platform"),
        "{html}"
    );
    let csrf = csrf_of(&html);

    // Access Platform without its CSRF token: refused, nothing issued.
    let sso_path = format!("/portal/sso/{sub_id}");
    let forged = post_form(&b, &ts, &sso_path, &cookie, &[("_csrf", "guess")]).await;
    assert_eq!(forged.status(), 403);

    // With it: off to the platform with a one-use token.
    let access = |csrf: String| {
        let (b, cookie) = (b.clone(), cookie.clone());
        let url = format!("{}/portal/sso/{sub_id}", ts.http);
        async move {
            let resp = b
                .post(url)
                .header(COOKIE, cookie)
                .form(&[("_csrf", csrf)])
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 303);
            resp.headers()[LOCATION].to_str().unwrap().to_string()
        }
    };
    let landing = access(csrf.clone()).await;
    assert!(
        landing.starts_with(&format!("{}/migosmtp/sso?token=rwsso_", ts.http)),
        "{landing}"
    );
    let land = b.get(&landing).send().await.unwrap();
    assert_eq!(
        land.status(),
        303,
        "the platform validated it with the portal"
    );
    assert_eq!(
        land.headers()[LOCATION],
        "/migosmtp/",
        "the token leaves the address bar"
    );
    let (platform_session, attrs) =
        set_cookie(&land, "rw_migosmtp").expect("the platform's own session");
    assert!(
        attrs.contains("Path=/migosmtp") && attrs.contains("HttpOnly"),
        "{attrs}"
    );
    let board = get(
        &b,
        &ts,
        "/migosmtp/",
        &format!("rw_migosmtp={platform_session}"),
    )
    .await;
    assert_eq!(board.status(), 200);
    let html = board.text().await.unwrap();
    assert!(
        html.contains("ada@example.test")
            && html.contains("Overview of")
            && html.contains("<svg")
            && html.contains("email.delivered: 0"),
        "{html}"
    );

    // The same link again (the back button): refused.
    let replay = b.get(&landing).send().await.unwrap();
    assert_eq!(replay.status(), 403);
    assert!(replay.text().await.unwrap().contains("used already"));
    // The platform session opens nothing of another platform's, and the
    // portal's session nothing of the platform's.
    let other = get(
        &b,
        &ts,
        "/telnxo/",
        &format!("rw_telnxo={platform_session}"),
    )
    .await;
    assert_eq!(other.status(), 401);
    let portal_cookie = get(&b, &ts, "/migosmtp/", &cookie).await;
    assert_eq!(portal_cookie.status(), 401);

    // Another platform's landing, an altered token, an expired one.
    let fresh = access(csrf.clone()).await;
    let to_telnxo = fresh.replace("/migosmtp/sso", "/telnxo/sso");
    let r = b.get(&to_telnxo).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("another platform"));
    let altered = access(csrf.clone()).await;
    let mut bytes = altered.into_bytes();
    let last = bytes.len() - 1;
    bytes[last] = if bytes[last] == b'0' { b'1' } else { b'0' };
    let r = b
        .get(String::from_utf8(bytes).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let late = access(csrf.clone()).await;
    ts.clock.advance_ms(301_000);
    let r = b.get(&late).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("expired"));

    // The validation endpoint wants the platform's secret.
    let token = access(csrf)
        .await
        .split("token=")
        .nth(1)
        .unwrap()
        .to_string();
    let r = b
        .post(format!("{}/portal/v1/sso/validate", ts.http))
        .json(&json!({"token": token, "platform": "migosmtp"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = b
        .post(format!("{}/portal/v1/sso/validate", ts.http))
        .bearer_auth("not-the-secret-of-migosmtp")
        .json(&json!({"token": token, "platform": "migosmtp"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn pages_refuse_without_a_session_and_serve_their_stylesheet() {
    let ts = with_mail_plan().await;
    let b = browser();
    let r = get(&b, &ts, "/portal/dashboard", "").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/portal/login");
    for path in ["/migosmtp/", "/telnxo/"] {
        let r = b.get(format!("{}{path}", ts.http)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert!(
            r.text().await.unwrap().contains("Access Platform"),
            "{path} says how to sign in"
        );
    }
    let r = get(&b, &ts, "/migosmtp/sso", "").await;
    assert_eq!(r.status(), 400);
    let r = b
        .get(format!(
            "{}/migosmtp/sso?token=rwsso_{}",
            ts.http,
            "a".repeat(64)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a token never issued");
    let css = get(&b, &ts, "/static/site.css", "").await;
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert!(css.text().await.unwrap().len() < 100 * 1024);
    // Someone else's subscription: no token.
    let (_, bob) = sign_up(&ts, "bob@example.test", "29", None).await;
    let (_, sub) = portal(
        &ts,
        "POST",
        "/portal/v1/subscriptions",
        &bob,
        Some(json!({"platform": "migosmtp", "plan": "mail", "trial": true})),
    )
    .await;
    sign_up(&ts, "ada@example.test", "29", None).await;
    let session = log_in_page(&ts, &b, "ada@example.test").await;
    let cookie = format!("rw_portal={session}");
    let dash = get(&b, &ts, "/portal/dashboard", &cookie).await;
    let csrf = csrf_of(&dash.text().await.unwrap());
    let path = format!("/portal/sso/{}", sub["id"].as_str().unwrap());
    let r = post_form(&b, &ts, &path, &cookie, &[("_csrf", &csrf)]).await;
    assert_eq!(r.status(), 404);
    assert!(r.headers().get(LOCATION).is_none());
}

/// The sign-up page, a trial from the dashboard, and the MigoSMTP message
/// log with a message's timeline, only the workspace's own.
#[tokio::test]
async fn sign_up_start_a_trial_and_search_the_message_log() {
    let ts = with_mail_plan().await;
    let b = browser();
    let form = get(&b, &ts, "/portal/signup", "").await;
    assert_eq!(form.status(), 200);
    let (double, _) = set_cookie(&form, "rw_csrf").unwrap();
    let csrf = csrf_of(&form.text().await.unwrap());
    let mut fields = vec![
        ("email", "ada@example.test"),
        ("password", PASSWORD),
        ("name", "Ada Lovelace"),
        ("address", "1 Engine Road"),
        ("state_code", "99"),
        ("_csrf", csrf.as_str()),
    ];
    let r = post_form(&b, &ts, "/portal/signup", "", &fields).await;
    assert_eq!(r.status(), 403, "without the double-submit cookie");
    let with_cookie = format!("rw_csrf={double}");
    let r = post_form(&b, &ts, "/portal/signup", &with_cookie, &fields).await;
    assert_eq!(r.status(), 422, "no such state");
    assert!(r.text().await.unwrap().contains("state_code"));
    fields[4] = ("state_code", "29");
    let r = post_form(&b, &ts, "/portal/signup", &with_cookie, &fields).await;
    assert_eq!(r.status(), 303);
    let (session, _) = set_cookie(&r, "rw_portal").unwrap();
    let cookie = format!("rw_portal={session}");

    let dash = get(&b, &ts, "/portal/dashboard", &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(dash.contains("Start a free trial") && dash.contains("Mail Starter"));
    let csrf = csrf_of(&dash);
    let r = post_form(
        &b,
        &ts,
        "/portal/subscriptions",
        &cookie,
        &[("plan", "mail")],
    )
    .await;
    assert_eq!(r.status(), 403, "without its CSRF token");
    let r = post_form(
        &b,
        &ts,
        "/portal/subscriptions",
        &cookie,
        &[("plan", "mail"), ("_csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 201);
    let page = r.text().await.unwrap();
    let key = page
        .split("<code>")
        .nth(1)
        .unwrap()
        .split("</code>")
        .next()
        .unwrap()
        .to_string();
    let dash = get(&b, &ts, "/portal/dashboard", &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !dash.contains("Start a free trial"),
        "one trial per platform"
    );
    let platform = access(&b, &ts, &cookie, &form_action(&dash, "/portal/sso/")).await;

    let send = |key: String, to: &'static str| {
        let ts = &ts;
        async move {
            let (s, v) = ts
                .call(&key, "POST", "/migosmtp/v1/messages",
                    Some(json!({"from": "ada@example.test", "to": [to], "subject": "Hello", "text": "Hi"})))
                .await;
            assert_eq!(s, 202, "{v}");
            v["messages"][0]["id"].as_str().unwrap().to_string()
        }
    };
    let key_for_domains = key.clone();
    let mine = send(key.clone(), "grace@example.net").await;
    let other = send(key, "alan@example.net").await;
    let log = get(
        &b,
        &ts,
        "/migosmtp/messages?to=grace%40example.net",
        &platform,
    )
    .await;
    assert_eq!(log.status(), 200);
    let html = log.text().await.unwrap();
    assert!(
        html.contains(&mine) && !html.contains(&other),
        "by recipient"
    );
    let html = get(&b, &ts, "/migosmtp/messages?status=bounced", &platform)
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains(&mine), "by status");
    let detail = get(&b, &ts, &format!("/migosmtp/messages/{mine}"), &platform).await;
    assert_eq!(detail.status(), 200);
    let html = detail.text().await.unwrap();
    assert!(
        html.contains("email.queued") && html.contains("Hello"),
        "{html}"
    );

    // Sending domains: the records to publish, and a Verify button that
    // wants its CSRF token.
    let (s, d) = ts
        .call(
            &key_for_domains,
            "POST",
            "/migosmtp/v1/domains",
            Some(json!({"domain": "ada.example.test"})),
        )
        .await;
    assert_eq!(s, 201, "{d}");
    let r = get(&b, &ts, "/migosmtp/domains", &platform).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("_domainkey.ada.example.test") && html.contains("Verify ada.example.test"),
        "{html}"
    );
    assert!(html.contains("v=spf1") && html.contains("unverified"));
    let r = post_form(
        &b,
        &ts,
        "/migosmtp/domains/ada.example.test/verify",
        &platform,
        &[("_csrf", "guess")],
    )
    .await;
    assert_eq!(r.status(), 403);
    let r = get(&b, &ts, "/migosmtp/domains", "").await;
    assert_eq!(r.status(), 401, "the platform's pages need its session");

    // Credentials: an SMTP account and an API key, each secret shown once
    // and working; deleted and revoked, they stop working.
    let html = get(&b, &ts, "/migosmtp/credentials", &platform)
        .await
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&html);
    let r = post_form(
        &b,
        &ts,
        "/migosmtp/credentials/smtp-accounts",
        &platform,
        &[
            ("username", "app1"),
            ("daily_quota", "500"),
            ("_csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(r.status(), 201);
    let html = r.text().await.unwrap();
    let password = shown_once(&html, "The password of app1");
    let mut smtp = rackwave_testkit::RawSmtp::login(ts.smtp, "app1", &password).await;
    smtp.cmd_expect("QUIT", 221).await;
    let r = post_form(
        &b,
        &ts,
        "/migosmtp/credentials/api-keys",
        &platform,
        &[("_csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 201);
    let new_key = shown_once(&r.text().await.unwrap(), "Your new API key");
    assert_eq!(
        ts.call(&new_key, "GET", "/migosmtp/v1/messages", None)
            .await
            .0,
        200
    );
    let html = get(&b, &ts, "/migosmtp/credentials", &platform)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("app1") && !html.contains(&new_key),
        "keys are listed by prefix only"
    );
    let (_, keys) = ts
        .call(&new_key, "GET", "/migosmtp/v1/api-keys", None)
        .await;
    let new_id = keys["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| new_key.starts_with(k["prefix"].as_str().unwrap()))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = post_form(
        &b,
        &ts,
        &format!("/migosmtp/credentials/api-keys/{new_id}/revoke"),
        &platform,
        &[("_csrf", "guess")],
    )
    .await;
    assert_eq!(r.status(), 403, "no revocation without the CSRF token");
    let r = post_form(
        &b,
        &ts,
        &format!("/migosmtp/credentials/api-keys/{new_id}/revoke"),
        &platform,
        &[("_csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        ts.call(&new_key, "GET", "/migosmtp/v1/messages", None)
            .await
            .0,
        401
    );
    let r = post_form(
        &b,
        &ts,
        "/migosmtp/credentials/smtp-accounts/app1/delete",
        &platform,
        &[("_csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303);
    let mut smtp = rackwave_testkit::RawSmtp::connect(ts.smtp).await;
    smtp.expect(220).await;
    smtp.cmd_expect("EHLO client.test", 250).await;
    smtp.cmd_expect(
        &format!("AUTH PLAIN {}", rackwave_testkit::plain("app1", &password)),
        535,
    )
    .await;

    // Another workspace's message is not found here.
    let ws = ts.create_workspace("someone else", None).await;
    let their_key = ts.create_api_key(&ws, "migosmtp").await;
    let theirs = send(their_key, "grace@example.net").await;
    let r = get(&b, &ts, &format!("/migosmtp/messages/{theirs}"), &platform).await;
    assert_eq!(r.status(), 404);
    let html = get(&b, &ts, "/migosmtp/messages", &platform)
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains(&theirs));
}

/// The secret a page shows once, in the read-only field labelled `what`.
fn shown_once(html: &str, what: &str) -> String {
    let at = html
        .find(&format!("aria-label=\"{what}\""))
        .expect("the secret's field");
    let field = &html[..at];
    let value = field.rfind("value=\"").expect("its value") + 7;
    field[value..].split('"').next().unwrap().to_string()
}

/// The webhooks page: an endpoint's deliveries with their answers, and
/// Resend for one that is retrying.
#[tokio::test]
async fn the_webhooks_page_lists_deliveries_and_resends() {
    let ts = with_mail_plan().await;
    let rx = rackwave_testkit::receiver::Receiver::start().await;
    let b = browser();
    let (_, sub) = trial_of(&ts, "ada@example.test", "migosmtp", "mail").await;
    let key = sub["api_key"].as_str().unwrap();
    let body = json!({"url": rx.url("hooks"), "event_types": ["*"]});
    let (s, ep) = ts
        .call(key, "POST", "/migosmtp/v1/webhooks", Some(body))
        .await;
    assert_eq!(s, 201, "{ep}");
    rx.set_secrets("hooks", &[ep["secret"].as_str().unwrap()]);
    // The endpoint fails at first: the delivery retries, and can be resent.
    rx.set_default("hooks", rackwave_testkit::receiver::Behavior::Fail(500));
    let mail = json!({"from": "ada@example.test", "to": ["grace@example.net"],
        "subject": "Hi", "text": "Hi"});
    let (s, v) = ts
        .call(key, "POST", "/migosmtp/v1/messages", Some(mail))
        .await;
    assert_eq!(s, 202, "{v}");
    rx.wait_for("hooks", 1, std::time::Duration::from_secs(5))
        .await;

    let session = log_in_page(&ts, &b, "ada@example.test").await;
    let cookie = format!("rw_portal={session}");
    let platform = access(&b, &ts, &cookie, sub["id"].as_str().unwrap()).await;

    let mut html = String::new();
    for _ in 0..50 {
        html = get(&b, &ts, "/migosmtp/webhooks", &platform)
            .await
            .text()
            .await
            .unwrap();
        if html.contains("retrying") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        html.contains("email.queued") && html.contains("HTTP 500"),
        "{html}"
    );
    rx.set_default("hooks", rackwave_testkit::receiver::Behavior::ok());
    let csrf = csrf_of(&html);
    let resend = format!(
        "/migosmtp/webhooks/{}",
        form_action(&html, "/migosmtp/webhooks/")
    );
    let r = post_form(&b, &ts, &resend, &platform, &[("_csrf", "guess")]).await;
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "a page, not JSON"
    );
    let r = post_form(&b, &ts, &resend, &platform, &[("_csrf", &csrf)]).await;
    assert_eq!(r.status(), 303);
    rx.wait_for("hooks", 2, std::time::Duration::from_secs(5))
        .await;
    // Telnxo's page needs Telnxo's session.
    let r = get(&b, &ts, "/telnxo/webhooks", &platform).await;
    assert_eq!(r.status(), 401);
}

/// Access Platform from the dashboard, through the landing: the platform
/// session's cookie (`rw_migosmtp=…`).
async fn access(
    b: &reqwest::Client,
    ts: &TestServer,
    portal_cookie: &str,
    subscription: &str,
) -> String {
    access_to(b, ts, portal_cookie, subscription, "migosmtp").await
}

/// [`access`] to `platform`.
async fn access_to(
    b: &reqwest::Client,
    ts: &TestServer,
    portal_cookie: &str,
    subscription: &str,
    platform: &str,
) -> String {
    let dash = get(b, ts, "/portal/dashboard", portal_cookie)
        .await
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&dash);
    let path = format!("/portal/sso/{subscription}");
    let r = post_form(b, ts, &path, portal_cookie, &[("_csrf", &csrf)]).await;
    let land = b
        .get(r.headers()[LOCATION].to_str().unwrap())
        .send()
        .await
        .unwrap();
    let name = format!("rw_{platform}");
    let (session, _) = set_cookie(&land, &name).expect("the platform's session");
    format!("{name}={session}")
}

/// The rest of the first form action of a page starting with `prefix`.
fn form_action(html: &str, prefix: &str) -> String {
    let start = format!("action=\"{prefix}");
    let at = html.find(&start).expect("such a form") + start.len();
    html[at..].split('"').next().unwrap().to_string()
}

/// The operator's pages: the admin token logs in (constant-time compared,
/// a session of its own on `/admin`), the overview lists clients and
/// subscriptions, forms want their CSRF token.
#[tokio::test]
async fn the_operator_logs_in_with_the_admin_token() {
    let ts = with_mail_plan().await;
    let b = browser();
    trial_of(&ts, "ada@example.test", "migosmtp", "mail").await;
    let r = get(&b, &ts, "/admin/", "").await;
    assert_eq!(r.headers()[LOCATION], "/admin/login");
    let form = get(&b, &ts, "/admin/login", "").await;
    let (double, _) = set_cookie(&form, "rw_csrf").unwrap();
    let csrf = csrf_of(&form.text().await.unwrap());
    let with = format!("rw_csrf={double}");
    let r = post_form(
        &b,
        &ts,
        "/admin/login",
        &with,
        &[("token", "guess"), ("_csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(set_cookie(&r, "rw_admin").is_none());
    let token = rackwave_testkit::ADMIN_TOKEN;
    let r = post_form(
        &b,
        &ts,
        "/admin/login",
        "",
        &[("token", token), ("_csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 403, "without the double-submit cookie");
    let r = post_form(
        &b,
        &ts,
        "/admin/login",
        &with,
        &[("token", token), ("_csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303);
    let (session, attrs) = set_cookie(&r, "rw_admin").unwrap();
    assert!(
        attrs.contains("Path=/admin") && attrs.contains("HttpOnly"),
        "{attrs}"
    );
    let admin = format!("rw_admin={session}");
    let html = get(&b, &ts, "/admin/", &admin).await.text().await.unwrap();
    assert!(
        html.contains("ada@example.test") && html.contains("trial"),
        "{html}"
    );
    // The operator's session is no portal or platform session.
    let r = get(
        &b,
        &ts,
        "/portal/dashboard",
        &format!("rw_portal={session}"),
    )
    .await;
    assert_eq!(r.status(), 303);
    let r = get(&b, &ts, "/migosmtp/", &format!("rw_migosmtp={session}")).await;
    assert_eq!(r.status(), 401);
    let r = post_form(
        &b,
        &ts,
        "/admin/destinations/gmail.com/resume",
        &admin,
        &[("_csrf", "guess")],
    )
    .await;
    assert_eq!(r.status(), 403);
    let csrf = csrf_of(&html);
    let r = post_form(&b, &ts, "/admin/logout", &admin, &[("_csrf", &csrf)]).await;
    assert_eq!(r.status(), 303);
    let r = get(&b, &ts, "/admin/", &admin).await;
    assert_eq!(r.headers()[LOCATION], "/admin/login", "logged out");
}

/// The Telnxo dashboard after single sign-on: WhatsApp conversations with
/// their window, messages and calls with their timelines and events.
#[tokio::test]
async fn the_telnxo_dashboard_shows_conversations_and_timelines() {
    let ts = rackwave_testkit::start_with(|c| {
        c.billing = rackwave_testkit::portal::billing_config(
            "[[billing.plans]]\nid = \"talk\"\nplatform = \"telnxo\"\nname = \"Talk\"\nprice_paise = 10000\ntrial_days = 7\n",
        );
    })
    .await;
    let b = browser();
    let (_, sub) = trial_of(&ts, "ada@example.test", "telnxo", "talk").await;
    let (ws, key) = (
        sub["workspace_id"].as_str().unwrap(),
        sub["api_key"].as_str().unwrap(),
    );
    let number = json!({"workspace_id": ws, "number": "+14155550100", "channels": ["sms", "whatsapp", "voice"]});
    assert_eq!(
        ts.admin("POST", "/telnxo/v1/numbers", Some(number)).await.0,
        201
    );
    let sms = json!({"from": "+14155550100", "to": "+919876543210", "body": "Your code is 1234"});
    let (s, v) = ts.call(key, "POST", "/telnxo/v1/sms", Some(sms)).await;
    assert_eq!(s, 202, "{v}");
    let sms_id = v["message_id"].as_str().unwrap().to_string();
    let call = json!({"from": "+14155550100", "to": "+919876543210", "tts": "Hello"});
    let (s, v) = ts.call(key, "POST", "/telnxo/v1/calls", Some(call)).await;
    assert_eq!(s, 202, "{v}");
    let call_id = v["call_id"].as_str().unwrap().to_string();
    let inbound = json!({"channel": "whatsapp", "from": "+919812345670", "to": "+14155550100", "body": "Hi!"});
    assert_eq!(
        ts.call(key, "POST", "/telnxo/v1/simulator/inbound", Some(inbound))
            .await
            .0,
        202
    );

    let session = log_in_page(&ts, &b, "ada@example.test").await;
    let cookie = format!("rw_portal={session}");
    let platform = access_to(&b, &ts, &cookie, sub["id"].as_str().unwrap(), "telnxo").await;
    let mut html = String::new();
    for _ in 0..50 {
        html = get(&b, &ts, "/telnxo/", &platform)
            .await
            .text()
            .await
            .unwrap();
        if html.contains("+919812345670") && html.contains("sent") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        html.contains("open until") && html.contains(&sms_id) && html.contains(&call_id),
        "{html}"
    );
    let detail = get(&b, &ts, &format!("/telnxo/messages/{sms_id}"), &platform).await;
    assert_eq!(detail.status(), 200);
    let html = detail.text().await.unwrap();
    assert!(
        html.contains("sms.queued") && html.contains("Your code is 1234"),
        "{html}"
    );
    let r = get(&b, &ts, &format!("/telnxo/calls/{call_id}"), &platform).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Hello"));

    // Another workspace's message is not found; the page needs Telnxo's session.
    let other = ts.create_workspace("other", None).await;
    let other_key = ts.create_api_key(&other, "telnxo").await;
    let number = json!({"workspace_id": other, "number": "+14155550199", "channels": ["sms"]});
    assert_eq!(
        ts.admin("POST", "/telnxo/v1/numbers", Some(number)).await.0,
        201
    );
    let sms = json!({"from": "+14155550199", "to": "+919876543210", "body": "theirs"});
    let (_, v) = ts
        .call(&other_key, "POST", "/telnxo/v1/sms", Some(sms))
        .await;
    let theirs = v["message_id"].as_str().unwrap();
    let r = get(&b, &ts, &format!("/telnxo/messages/{theirs}"), &platform).await;
    assert_eq!(r.status(), 404);
    let r = get(&b, &ts, &format!("/telnxo/messages/{sms_id}"), "").await;
    assert_eq!(r.status(), 401);
}

/// The suppression list page: import pasted CSV (bad lines reported),
/// look an address up, remove one; forms want their CSRF token.
#[tokio::test]
async fn the_suppressions_page_imports_finds_and_removes() {
    let ts = with_mail_plan().await;
    let b = browser();
    let (_, sub) = trial_of(&ts, "ada@example.test", "migosmtp", "mail").await;
    let key = sub["api_key"].as_str().unwrap().to_string();
    let session = log_in_page(&ts, &b, "ada@example.test").await;
    let platform = access(
        &b,
        &ts,
        &format!("rw_portal={session}"),
        sub["id"].as_str().unwrap(),
    )
    .await;
    let html = get(&b, &ts, "/migosmtp/suppressions", &platform)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("None."), "{html}");
    let csrf = csrf_of(&html);
    let csv = "a+tag@example.net\nnot-an-address\nb@example.net,complaint\n";
    let r = post_form(
        &b,
        &ts,
        "/migosmtp/suppressions/import",
        &platform,
        &[("csv", csv)],
    )
    .await;
    assert_eq!(r.status(), 403, "without its CSRF token");
    let r = post_form(
        &b,
        &ts,
        "/migosmtp/suppressions/import",
        &platform,
        &[("csv", csv), ("_csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Imported 2 addresses.") && html.contains("Line 2 skipped"),
        "{html}"
    );
    assert!(html.contains("a+tag@example.net") && html.contains("complaint"));
    let found = get(
        &b,
        &ts,
        "/migosmtp/suppressions?address=A%2Btag%40example.net",
        &platform,
    )
    .await;
    let html = found.text().await.unwrap();
    assert!(
        html.contains("a+tag@example.net") && !html.contains("b@example.net"),
        "{html}"
    );
    let action = form_action(&html, "/migosmtp/suppressions/remove?address=");
    assert_eq!(action, "a%2Btag@example.net");
    let r = post_form(
        &b,
        &ts,
        &format!("/migosmtp/suppressions/remove?address={action}"),
        &platform,
        &[("_csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), 303);
    let (s, _) = ts
        .call(
            &key,
            "GET",
            "/migosmtp/v1/suppressions/a+tag@example.net",
            None,
        )
        .await;
    assert_eq!(s, 404, "removed");
    let (s, _) = ts
        .call(&key, "GET", "/migosmtp/v1/suppressions/b@example.net", None)
        .await;
    assert_eq!(s, 200, "the other stays");
}
