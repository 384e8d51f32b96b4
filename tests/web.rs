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

    // Sending domains: added from the page (with its CSRF token), the
    // records to publish with Copy buttons, and a Verify button that wants
    // its CSRF token.
    let html = get(&b, &ts, "/migosmtp/domains", &platform)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("No sending domains yet."), "{html}");
    let csrf = csrf_of(&html);
    let add = [("domain", "ada.example.test"), ("_csrf", csrf.as_str())];
    let r = post_form(&b, &ts, "/migosmtp/domains", &platform, &add[..1]).await;
    assert_eq!(r.status(), 403);
    let r = post_form(&b, &ts, "/migosmtp/domains", &platform, &add).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/migosmtp/domains");
    let r = post_form(&b, &ts, "/migosmtp/domains", &platform, &add).await;
    assert_eq!(r.status(), 409, "added once");
    let bad = [("domain", "not a domain"), ("_csrf", csrf.as_str())];
    let r = post_form(&b, &ts, "/migosmtp/domains", &platform, &bad).await;
    assert_eq!(r.status(), 400);
    let (_, listed) = ts
        .call(&key_for_domains, "GET", "/migosmtp/v1/domains", None)
        .await;
    assert_eq!(listed["domains"].as_array().unwrap().len(), 1, "{listed}");
    let r = get(&b, &ts, "/migosmtp/domains", &platform).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("data-copy"), "values to copy");
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
    attribute_after(html, "action", prefix)
}

/// The rest of the first `attribute` of a page whose value starts with
/// `prefix`.
fn attribute_after(html: &str, attribute: &str, prefix: &str) -> String {
    let start = format!("{attribute}=\"{prefix}");
    let at = html.find(&start).expect("such an attribute") + start.len();
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
    let (key, platform) = ada_in_migosmtp(&ts, &b).await;
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

    // A CSV file, as the page's file field sends it (multipart), with
    // pasted lines beside it; without the CSRF field, nothing is taken.
    let upload = |csrf: &str| {
        let mut body = String::new();
        let mut field = |name: &str, extra: &str, value: &str| {
            body.push_str(&format!(
                "--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"{extra}\r\n\r\n{value}\r\n"
            ));
        };
        if !csrf.is_empty() {
            field("_csrf", "", csrf);
        }
        field(
            "file",
            "; filename=\"list.csv\"\r\nContent-Type: text/csv",
            "c@example.net,unsubscribe\r\nd@example.net",
        );
        field("csv", "", "e@example.net");
        body.push_str("--XyZ--\r\n");
        b.post(format!("{}/migosmtp/suppressions/import", ts.http))
            .header(COOKIE, platform.clone())
            .header("content-type", "multipart/form-data; boundary=XyZ")
            .body(body)
            .send()
    };
    let r = upload("").await.unwrap();
    assert_eq!(r.status(), 403);
    let r = upload(&csrf).await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Imported 3 addresses."), "{html}");
    for (address, reason) in [
        ("c@example.net", "unsubscribe"),
        ("d@example.net", "manual"),
        ("e@example.net", "manual"),
    ] {
        let (s, v) = ts
            .call(
                &key,
                "GET",
                &format!("/migosmtp/v1/suppressions/{address}"),
                None,
            )
            .await;
        assert_eq!((s, v["reason"].as_str()), (200, Some(reason)), "{v}");
    }
    // A multipart body that is not one: a clear refusal, nothing taken.
    let r = b
        .post(format!("{}/migosmtp/suppressions/import", ts.http))
        .header(COOKIE, platform.clone())
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body("--XyZ\r\nnonsense")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// The overview counts what waits in the queue; a platform's webhooks
/// page adds endpoints (secret shown once); pages say their server time
/// and load one small script.
#[tokio::test]
async fn the_overview_counts_and_endpoints_are_added_from_the_page() {
    let ts = with_mail_plan().await;
    let b = browser();
    let rx = rackwave_testkit::receiver::Receiver::start().await;
    let (key, platform) = ada_in_migosmtp(&ts, &b).await;
    for to in ["a@example.net", "b@example.net", "c@example.net"] {
        let mail = json!({"from": "ada@example.test", "to": [to], "subject": "Hi", "text": "Hi"});
        let (s, v) = ts
            .call(&key, "POST", "/migosmtp/v1/messages", Some(mail))
            .await;
        assert_eq!(s, 202, "{v}");
    }
    // Another workspace's mail is not counted here.
    let ws = ts.create_workspace("someone else", None).await;
    let theirs = ts.create_api_key(&ws, "migosmtp").await;
    let mail =
        json!({"from": "x@example.test", "to": ["d@example.net"], "subject": "Hi", "text": "Hi"});
    assert_eq!(
        ts.call(&theirs, "POST", "/migosmtp/v1/messages", Some(mail))
            .await
            .0,
        202
    );
    let r = get(&b, &ts, "/migosmtp/", &platform).await;
    assert_eq!(r.status(), 200);
    let timing = r.headers()["server-timing"].to_str().unwrap().to_string();
    assert!(timing.starts_with("app;dur="), "{timing}");
    let html = r.text().await.unwrap();
    assert!(
        html.contains("<strong>3</strong><span class=\"status\">waiting in the queue"),
        "{html}"
    );
    assert!(html.contains("<script src=\"/static/site.js\" defer>"));
    let js = get(&b, &ts, "/static/site.js", "").await;
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let css = get(&b, &ts, "/static/site.css", "").await;
    let weight = js.text().await.unwrap().len() + css.text().await.unwrap().len();
    assert!(weight < 100 * 1024, "{weight} bytes of CSS and script");

    // The log pages back through older messages, 50 at a time.
    let batch: Vec<_> = (0..50)
        .map(|i| json!({"from": "ada@example.test", "to": [format!("r{i}@example.net")], "subject": "Hi", "text": "Hi"}))
        .collect();
    let (s, v) = ts
        .call(
            &key,
            "POST",
            "/migosmtp/v1/messages/batch",
            Some(json!({"messages": batch})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let html = get(&b, &ts, "/migosmtp/messages", &platform)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("r49@example.net") && !html.contains("a@example.net"));
    let older = attribute_after(
        &html,
        "href",
        "/migosmtp/messages?to=&amp;status=&amp;cursor=",
    );
    let html = get(
        &b,
        &ts,
        &format!("/migosmtp/messages?to=&status=&cursor={older}"),
        &platform,
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        html.contains("a@example.net") && html.contains("c@example.net"),
        "{html}"
    );
    assert!(!html.contains("r49@example.net") && !html.contains("Older messages"));
    let r = get(&b, &ts, "/migosmtp/messages?cursor=zz", &platform).await;
    assert_eq!(r.status(), 200, "a bad cursor finds nothing, as a page");

    let html = get(&b, &ts, "/migosmtp/webhooks", &platform)
        .await
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&html);
    let url = rx.url("hooks");
    let add = [
        ("url", url.as_str()),
        ("event_types", "email.delivered,email.bounced"),
        ("_csrf", csrf.as_str()),
    ];
    let r = post_form(&b, &ts, "/migosmtp/webhooks", &platform, &add[..2]).await;
    assert_eq!(r.status(), 403);
    let r = post_form(&b, &ts, "/migosmtp/webhooks", &platform, &add).await;
    assert_eq!(r.status(), 201);
    let secret = shown_once(&r.text().await.unwrap(), "Signing secret");
    let (_, listed) = ts.call(&key, "GET", "/migosmtp/v1/webhooks", None).await;
    let listed = listed["webhooks"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0]["event_types"],
        json!(["email.delivered", "email.bounced"])
    );
    assert!(secret.starts_with("whsec_"));
    let bad = [
        ("url", "ftp://example.com/"),
        ("event_types", "*"),
        ("_csrf", csrf.as_str()),
    ];
    let r = post_form(&b, &ts, "/migosmtp/webhooks", &platform, &bad).await;
    assert_eq!(r.status(), 400);
    // The other workspace sees none of it.
    let (_, none) = ts.call(&theirs, "GET", "/migosmtp/v1/webhooks", None).await;
    assert_eq!(none["webhooks"], json!([]));
}

/// The portal's own pages: a password reset from the emailed link, a plan
/// change and a cancellation from the dashboard (with a question first),
/// contacts, and lifecycle webhooks with their deliveries; none of them
/// without its CSRF token, none on another client's subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_resets_passwords_changes_plans_contacts_and_webhooks() {
    use rackwave_testkit::delivery::{rig, sink, DOWN};
    use rackwave_testkit::portal::{billing_config, wait_for_reset_link};

    let r = rig(vec![(1, sink())], [1, DOWN], |c| {
        c.billing = billing_config(
            "[[billing.plans]]\nid = \"mail\"\nplatform = \"migosmtp\"\nname = \"Mail Starter\"\nprice_paise = 99900\ndaily_quota = 1000\ntrial_days = 14\n\
             [[billing.plans]]\nid = \"mail_pro\"\nplatform = \"migosmtp\"\nname = \"Mail Pro\"\nprice_paise = 299900\ndaily_quota = 10000\ntrial_days = 14\n",
        );
    })
    .await;
    let ts = &r.ts;
    let b = browser();
    let (api_token, sub) = trial_of(ts, "ada@example.test", "migosmtp", "mail").await;
    let sub_id = sub["id"].as_str().unwrap().to_string();

    // Forgot password: the form, refused without its double-submit cookie.
    let form = get(&b, ts, "/portal/reset", "").await;
    assert_eq!(form.status(), 200);
    let (double, _) = set_cookie(&form, "rw_csrf").unwrap();
    let csrf = csrf_of(&form.text().await.unwrap());
    let ask = [("email", "ada@example.test"), ("_csrf", csrf.as_str())];
    let forged = post_form(&b, ts, "/portal/reset", "", &ask).await;
    assert_eq!(forged.status(), 403);
    let double_cookie = format!("rw_csrf={double}");
    let asked = post_form(&b, ts, "/portal/reset", &double_cookie, &ask).await;
    assert_eq!(asked.status(), 202);
    assert!(asked.text().await.unwrap().contains("on its way"));
    // An unknown address answers the same.
    let unknown = [("email", "nobody@example.test"), ("_csrf", csrf.as_str())];
    let asked = post_form(&b, ts, "/portal/reset", &double_cookie, &unknown).await;
    assert_eq!(asked.status(), 202);
    let token = wait_for_reset_link(&r, None).await;

    // The emailed link: the new password form carries the token.
    let form = get(&b, ts, &format!("/portal/reset?token={token}"), "").await;
    let (double, _) = set_cookie(&form, "rw_csrf").unwrap();
    let double_cookie = format!("rw_csrf={double}");
    let html = form.text().await.unwrap();
    assert!(html.contains(&format!("value=\"{token}\"")), "{html}");
    let csrf = csrf_of(&html);
    let set = |token: &str, password: &str| {
        vec![
            ("token", token.to_string()),
            ("password", password.to_string()),
            ("_csrf", csrf.clone()),
        ]
    };
    let post = |form: Vec<(&'static str, String)>| {
        let (b, url, cookie) = (
            b.clone(),
            format!("{}/portal/reset/password", ts.http),
            double_cookie.clone(),
        );
        async move {
            b.post(url)
                .header(COOKIE, cookie)
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    let short = post(set(&token, "short")).await;
    assert_eq!(short.status(), 422);
    let wrong = post(set("rwr_0000", "a new password 1")).await;
    assert_eq!(wrong.status(), 422);
    assert!(wrong
        .text()
        .await
        .unwrap()
        .contains("wrong, used or expired"));
    let done = post(set(&token, "a new password 1")).await;
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()[LOCATION], "/portal/dashboard");
    let (session, _) = set_cookie(&done, "rw_portal").expect("logged in");
    let again = post(set(&token, "another password 2")).await;
    assert_eq!(again.status(), 422, "the link works once");
    assert_eq!(
        portal(ts, "GET", "/portal/v1/me", &api_token, None).await.0,
        401,
        "the reset ended the other sessions"
    );
    let cookie = format!("rw_portal={session}");

    // Bob's subscription, for the cross-client checks.
    let (_, bob) = trial_of(ts, "bob@example.test", "migosmtp", "mail").await;
    let bob_sub = bob["id"].as_str().unwrap();

    // Lifecycle webhooks: add an endpoint (its secret shown once).
    let rx = rackwave_testkit::receiver::Receiver::start().await;
    let hooks = get(&b, ts, "/portal/webhooks", &cookie).await;
    assert_eq!(hooks.status(), 200);
    let html = hooks.text().await.unwrap();
    assert!(html.contains("No endpoints yet."), "{html}");
    let csrf = csrf_of(&html);
    let url = rx.url("life");
    let add = [
        ("url", url.as_str()),
        ("event_types", "service_cancelled, invoice_created"),
    ];
    let forged = post_form(&b, ts, "/portal/webhooks", &cookie, &add).await;
    assert_eq!(forged.status(), 403);
    let mut with_csrf = add.to_vec();
    with_csrf.push(("_csrf", &csrf));
    let added = post_form(&b, ts, "/portal/webhooks", &cookie, &with_csrf).await;
    assert_eq!(added.status(), 201);
    let html = added.text().await.unwrap();
    let secret = shown_once(&html, "Signing secret");
    assert!(secret.starts_with("whsec_"), "{secret}");
    rx.set_secrets("life", &[&secret]);
    let bad = [
        ("url", url.as_str()),
        ("event_types", "email.sent"),
        ("_csrf", csrf.as_str()),
    ];
    let refused = post_form(&b, ts, "/portal/webhooks", &cookie, &bad).await;
    assert_eq!(refused.status(), 400, "a platform's event type");

    // Change plan: the dashboard offers the platform's other plan.
    let dash = get(&b, ts, "/portal/dashboard", &cookie).await;
    let html = dash.text().await.unwrap();
    assert!(
        html.contains("Mail Pro (₹2,999.00 a month)") && html.contains("Cancel…"),
        "{html}"
    );
    let plan = format!("/portal/subscriptions/{sub_id}/plan");
    let forged = post_form(&b, ts, &plan, &cookie, &[("plan", "mail_pro")]).await;
    assert_eq!(forged.status(), 403);
    let bobs = format!("/portal/subscriptions/{bob_sub}/plan");
    let form = [("plan", "mail_pro"), ("_csrf", csrf.as_str())];
    assert_eq!(
        post_form(&b, ts, &bobs, &cookie, &form).await.status(),
        404,
        "not Ada's"
    );
    let changed = post_form(&b, ts, &plan, &cookie, &form).await;
    assert_eq!(changed.status(), 303);
    let (_, mine) = portal(
        ts,
        "GET",
        &format!("/portal/v1/subscriptions/{sub_id}"),
        &session,
        None,
    )
    .await;
    assert_eq!(mine["plan"], "mail_pro", "{mine}");

    // Cancel: a question first, then at once.
    let cancel = format!("/portal/subscriptions/{sub_id}/cancel");
    let ask = get(&b, ts, &cancel, &cookie).await;
    assert_eq!(ask.status(), 200);
    assert!(ask.text().await.unwrap().contains("Yes, cancel it"));
    let bobs = format!("/portal/subscriptions/{bob_sub}/cancel");
    assert_eq!(get(&b, ts, &bobs, &cookie).await.status(), 404);
    let form = [("_csrf", csrf.as_str())];
    assert_eq!(post_form(&b, ts, &bobs, &cookie, &form).await.status(), 404);
    assert_eq!(post_form(&b, ts, &cancel, &cookie, &[]).await.status(), 403);
    let done = post_form(&b, ts, &cancel, &cookie, &form).await;
    assert_eq!(done.status(), 303);
    let html = get(&b, ts, "/portal/dashboard", &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("cancelled") && !html.contains("Access Platform"),
        "{html}"
    );
    let (_, bobs) = portal(
        ts,
        "GET",
        &format!("/portal/v1/subscriptions/{bob_sub}"),
        &bob_token(ts).await,
        None,
    )
    .await;
    assert_eq!(bobs["status"], "trial", "Bob's untouched: {bobs}");

    // The lifecycle webhook got the cancellation; the page lists it.
    let got = rx
        .wait_for("life", 1, std::time::Duration::from_secs(10))
        .await;
    assert!(got[0].verified(), "signed with the secret shown");
    let mut html = String::new();
    for _ in 0..100 {
        html = get(&b, ts, "/portal/webhooks", &cookie)
            .await
            .text()
            .await
            .unwrap();
        if html.contains("succeeded") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        html.contains("service_cancelled") && html.contains("HTTP 200"),
        "{html}"
    );

    // Contacts: add (a bad address says why), list, remove.
    let page = get(&b, ts, "/portal/contacts", &cookie).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("No contacts"), "{html}");
    let add = [
        ("email", "boss@example.test"),
        ("name", "The Boss"),
        ("billing", "on"),
        ("_csrf", csrf.as_str()),
    ];
    assert_eq!(
        post_form(&b, ts, "/portal/contacts", &cookie, &add[..3])
            .await
            .status(),
        403
    );
    let added = post_form(&b, ts, "/portal/contacts", &cookie, &add).await;
    assert_eq!(added.status(), 303);
    let bad = [("email", "not an address"), ("_csrf", csrf.as_str())];
    let refused = post_form(&b, ts, "/portal/contacts", &cookie, &bad).await;
    assert_eq!(refused.status(), 422);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("not an email address"));
    let (_, contacts) = portal(ts, "GET", "/portal/v1/contacts", &session, None).await;
    assert_eq!(
        contacts["contacts"],
        json!([{"email": "boss@example.test", "name": "The Boss", "billing": true, "technical": false}])
    );
    let html = get(&b, ts, "/portal/contacts", &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("The Boss"), "{html}");
    let remove = [("email", "boss@example.test"), ("_csrf", csrf.as_str())];
    let removed = post_form(&b, ts, "/portal/contacts/remove", &cookie, &remove).await;
    assert_eq!(removed.status(), 303);
    let (_, contacts) = portal(ts, "GET", "/portal/v1/contacts", &session, None).await;
    assert_eq!(contacts["contacts"], json!([]));
}

/// Bob's session token (through the portal API).
async fn bob_token(ts: &TestServer) -> String {
    rackwave_testkit::portal::log_in(ts, "bob@example.test").await
}

/// Ada with a MigoSMTP trial, signed in to its dashboard through the
/// login page and Access Platform: her API key and the platform's
/// session cookie.
async fn ada_in_migosmtp(ts: &TestServer, b: &reqwest::Client) -> (String, String) {
    let (_, sub) = trial_of(ts, "ada@example.test", "migosmtp", "mail").await;
    let session = log_in_page(ts, b, "ada@example.test").await;
    let cookie = format!("rw_portal={session}");
    let platform = access(b, ts, &cookie, sub["id"].as_str().unwrap()).await;
    (sub["api_key"].as_str().unwrap().to_string(), platform)
}

/// `POST /portal/v1/sso`: Access Platform for a client's own app, the
/// landing URL with a one-use token; refused for another client's
/// subscription, without a session, and for bad JSON.
#[tokio::test]
async fn the_portal_api_hands_out_sign_on_urls() {
    let ts = with_mail_plan().await;
    let b = browser();
    let (token, sub) = trial_of(&ts, "ada@example.test", "migosmtp", "mail").await;
    let (_, bob) = trial_of(&ts, "bob@example.test", "migosmtp", "mail").await;
    let body = json!({"subscription_id": sub["id"]});
    let (s, v) = portal(&ts, "POST", "/portal/v1/sso", &token, Some(body.clone())).await;
    assert_eq!(s, 200, "{v}");
    let url = v["redirect_url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&format!("{}/migosmtp/sso?token=rwsso_", ts.http)),
        "{url}"
    );
    let landing = b.get(&url).send().await.unwrap();
    assert_eq!(landing.status(), 303);
    assert!(set_cookie(&landing, "rw_migosmtp").is_some());
    assert_eq!(b.get(&url).send().await.unwrap().status(), 403, "once");

    let theirs = json!({"subscription_id": bob["id"]});
    let (s, _) = portal(&ts, "POST", "/portal/v1/sso", &token, Some(theirs)).await;
    assert_eq!(s, 404, "not Ada's");
    let (s, _) = portal(&ts, "POST", "/portal/v1/sso", "", Some(body)).await;
    assert_eq!(s, 401);
    let odd = json!({"subscription_id": sub["id"], "platform": "telnxo"});
    let (s, v) = portal(&ts, "POST", "/portal/v1/sso", &token, Some(odd)).await;
    assert_eq!(s, 400, "unknown field: {v}");
    let r = b
        .post(format!("{}/portal/v1/sso", ts.http))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"subscription_id\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let long = json!({"subscription_id": "x".repeat(100_000)});
    let (s, _) = portal(&ts, "POST", "/portal/v1/sso", &token, Some(long)).await;
    assert_eq!(s, 404);
}
