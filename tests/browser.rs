//! The pages in a real browser (headless Chromium over WebDriver): sign up
//! in the portal, start a MigoSMTP trial, click Access Platform, land on
//! the MigoSMTP dashboard signed in, find a message sent through the API
//! there with its timeline, add a sending domain and see its records; go
//! back (no token in the history) and replay the sign-on URL (refused),
//! let a sign-on link pass its expiry on the manual clock (refused); a
//! form whose CSRF token was tampered with is refused; a Telnxo trial and
//! its dashboard; the operator's overview. Screenshots of the main pages
//! go to `docs/screenshots/` for the README.

use std::time::Duration;

use rackwave_testkit::browser::{Browser, Hop};
use rackwave_testkit::fantoccini::Locator;
use rackwave_testkit::portal::{billing_config, with_mail_plan_and, PASSWORD};
use serde_json::json;

async fn type_into(b: &Browser, id: &str, text: &str) {
    let field = b.client.find(Locator::Id(id)).await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(b: &Browser, css: &str) {
    b.client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The API key a trial's page shows once.
async fn key_shown(b: &Browser) -> String {
    let html = b.client.source().await.unwrap();
    html.split("<code>")
        .nth(1)
        .and_then(|rest| rest.split("</code>").next())
        .expect("the API key on the page")
        .to_string()
}

async fn wait_for(b: &Browser, what: &str, ok: impl Fn(&str, &str) -> bool) {
    for _ in 0..100 {
        let url = b.client.current_url().await.unwrap().to_string();
        let source = b.client.source().await.unwrap();
        if ok(&url, &source) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "waited for {what}; at {} with {}",
        b.client.current_url().await.unwrap(),
        b.client.source().await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_start_a_trial_access_platform_and_read_the_log_in_chromium() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    // The portal sends the browser to MigoSMTP through a hop that records
    // the sign-on URL (a redirect keeps it out of the browser's history).
    let hop = Hop::start().await;
    let hop_url = hop.url.clone();
    let ts = with_mail_plan_and(|c| {
        c.sso.migosmtp_url = Some(hop_url);
        // A Telnxo plan after the mail plan: the dashboard offers it once
        // the mail trial has started.
        c.billing.plans.extend(
            billing_config(
                "[[billing.plans]]\nid = \"talk\"\nplatform = \"telnxo\"\nname = \"Talk\"\nprice_paise = 10000\ntrial_days = 7\n",
            )
            .plans,
        );
    })
    .await;
    hop.send_to(&ts.http);
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    let c = &browser.client;

    // Sign up.
    c.goto(&format!("{}/portal/signup", ts.http)).await.unwrap();
    browser.screenshot(&shots.join("portal-signup.png")).await;
    for (id, value) in [
        ("email", "ada@example.test"),
        ("password", PASSWORD),
        ("name", "Ada Lovelace"),
        ("address", "1 Engine Road, Bengaluru"),
        ("state_code", "29"),
    ] {
        type_into(&browser, id, value).await;
    }
    click(&browser, "form.stack button").await;
    wait_for(&browser, "the dashboard", |url, html| {
        url.ends_with("/portal/dashboard") && html.contains("Start a free trial")
    })
    .await;

    // Start the MigoSMTP trial: its API key is shown once.
    click(&browser, "form.stack button").await;
    wait_for(&browser, "the trial", |_, html| {
        html.contains("trial has started")
    })
    .await;
    let key = key_shown(&browser).await;
    c.goto(&format!("{}/portal/dashboard", ts.http))
        .await
        .unwrap();
    wait_for(&browser, "Access Platform", |_, html| {
        html.contains("Access Platform") && html.contains("Mail Starter")
    })
    .await;
    browser
        .screenshot(&shots.join("portal-dashboard.png"))
        .await;

    // A message through the API, then Access Platform.
    let (s, sent) = ts
        .call(
            &key,
            "POST",
            "/migosmtp/v1/messages",
            Some(
                json!({"from": "ada@example.test", "to": ["grace@example.net"],
                        "subject": "Hello", "text": "Hi Grace"}),
            ),
        )
        .await;
    assert_eq!(s, 202, "{sent}");
    let message_id = sent["messages"][0]["id"].as_str().unwrap().to_string();
    click(&browser, "button[aria-label='Access MigoSMTP']").await;
    wait_for(&browser, "the MigoSMTP dashboard", |url, html| {
        url.ends_with("/migosmtp/") && html.contains("Overview of") && html.contains(&message_id)
    })
    .await;
    assert!(
        !c.current_url().await.unwrap().as_str().contains("token="),
        "the token left the address bar"
    );
    browser
        .screenshot(&shots.join("migosmtp-overview.png"))
        .await;

    // The message's timeline, from its link.
    click(
        &browser,
        &format!("a[href='/migosmtp/messages/{message_id}']"),
    )
    .await;
    wait_for(&browser, "the timeline", |_, html| {
        html.contains("Timeline") && html.contains("email.queued") && html.contains("Hello")
    })
    .await;
    browser
        .screenshot(&shots.join("migosmtp-message.png"))
        .await;

    // A sending domain, added on its page: its records to publish, each
    // with a Copy button (the script's), and Verify.
    c.goto(&format!("{}/migosmtp/domains", ts.http))
        .await
        .unwrap();
    type_into(&browser, "domain", "ada.example.test").await;
    click(&browser, "form[action='/migosmtp/domains'] button").await;
    wait_for(&browser, "the domain's records", |_, html| {
        html.contains("_domainkey.ada.example.test")
            && html.contains("v=spf1")
            && html.contains("Verify ada.example.test")
            && html.contains("class=\"copy\"")
    })
    .await;
    browser
        .screenshot(&shots.join("migosmtp-domains.png"))
        .await;

    // Credentials: an API key made on the page, shown once.
    c.goto(&format!("{}/migosmtp/credentials", ts.http))
        .await
        .unwrap();
    click(&browser, "button[aria-label='Create API key']").await;
    wait_for(&browser, "the new key", |_, html| {
        html.contains("Your new API key") && html.contains("shown this once")
    })
    .await;
    browser
        .screenshot(&shots.join("migosmtp-credentials.png"))
        .await;

    // Back, and back again: the browser's history never holds the sign-on
    // URL (it was a redirect), so going back reaches the portal, not a
    // token; and the URL itself, replayed, is refused: used once.
    let sso_urls: Vec<String> = hop
        .seen()
        .into_iter()
        .filter(|u| u.contains("/migosmtp/sso?token="))
        .collect();
    assert_eq!(sso_urls.len(), 1, "{sso_urls:?}");
    for _ in 0..10 {
        c.back().await.unwrap();
        let url = c.current_url().await.unwrap().to_string();
        assert!(!url.contains("token="), "the history holds a token: {url}");
        if url.contains("/portal/") {
            break;
        }
    }
    wait_for(&browser, "the portal again", |url, _| {
        url.contains("/portal/")
    })
    .await;
    c.goto(&sso_urls[0]).await.unwrap();
    wait_for(&browser, "the replay's refusal", |_, html| {
        html.contains("This sign-in link cannot be used") && html.contains("used")
    })
    .await;
    browser.screenshot(&shots.join("sso-refused.png")).await;

    // A sign-on link past its 300 seconds (the manual clock): refused.
    hop.hold(true);
    c.goto(&format!("{}/portal/dashboard", ts.http))
        .await
        .unwrap();
    click(&browser, "button[aria-label='Access MigoSMTP']").await;
    wait_for(&browser, "the held hop", |_, html| html.contains("held")).await;
    hop.hold(false);
    let held = hop
        .seen()
        .into_iter()
        .rfind(|u| u.contains("/migosmtp/sso?token="))
        .unwrap();
    assert_ne!(held, sso_urls[0], "a new token");
    ts.clock.advance_ms(301_000);
    c.goto(&hop.at(&held, &ts.http)).await.unwrap();
    wait_for(&browser, "the expiry's refusal", |_, html| {
        html.contains("This sign-in link cannot be used") && html.contains("expired")
    })
    .await;

    // Back on the portal, a tampered CSRF field: refused, nothing issued.
    c.goto(&format!("{}/portal/dashboard", ts.http))
        .await
        .unwrap();
    c.execute(
        "document.querySelectorAll('input[name=_csrf]').forEach(i => i.value = 'tampered');",
        vec![],
    )
    .await
    .unwrap();
    click(&browser, "button[aria-label='Access MigoSMTP']").await;
    wait_for(&browser, "the refusal", |_, html| {
        html.contains("This form cannot be accepted")
    })
    .await;
    assert!(!c
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("/migosmtp/"));

    // A Telnxo trial from the dashboard; a number, an SMS and a WhatsApp
    // message later, its dashboard through Access Platform.
    c.goto(&format!("{}/portal/dashboard", ts.http))
        .await
        .unwrap();
    click(&browser, "form[action='/portal/subscriptions'] button").await;
    wait_for(&browser, "the Telnxo trial", |_, html| {
        html.contains("Your Telnxo trial has started")
    })
    .await;
    let telnxo_key = key_shown(&browser).await;
    let (_, subs) = ts.admin("GET", "/admin/v1/subscriptions", None).await;
    let ws = subs["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["platform"] == "telnxo")
        .expect("the Telnxo subscription")["workspace_id"]
        .as_str()
        .unwrap()
        .to_string();
    let number = json!({"workspace_id": ws, "number": "+14155550100", "channels": ["sms", "whatsapp", "voice"]});
    assert_eq!(
        ts.admin("POST", "/telnxo/v1/numbers", Some(number)).await.0,
        201
    );
    let sms = json!({"from": "+14155550100", "to": "+919876543210", "body": "Your code is 1234"});
    let (s, v) = ts
        .call(&telnxo_key, "POST", "/telnxo/v1/sms", Some(sms))
        .await;
    assert_eq!(s, 202, "{v}");
    let inbound = json!({"channel": "whatsapp", "from": "+919812345670", "to": "+14155550100", "body": "Hi!"});
    let (s, v) = ts
        .call(
            &telnxo_key,
            "POST",
            "/telnxo/v1/simulator/inbound",
            Some(inbound),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    c.goto(&format!("{}/portal/dashboard", ts.http))
        .await
        .unwrap();
    click(&browser, "button[aria-label='Access Telnxo']").await;
    wait_for(&browser, "the Telnxo dashboard", |url, html| {
        url.ends_with("/telnxo/")
            && html.contains("+919812345670")
            && html.contains("+919876543210")
    })
    .await;
    browser.screenshot(&shots.join("telnxo-overview.png")).await;

    // Log out: the login page again.
    c.goto(&format!("{}/portal/dashboard", ts.http))
        .await
        .unwrap();
    click(&browser, "form[action='/portal/logout'] button").await;
    wait_for(&browser, "the login page", |url, html| {
        url.ends_with("/portal/login") && html.contains("Log in to Rackwave")
    })
    .await;
    browser.screenshot(&shots.join("portal-login.png")).await;

    // The operator: the admin token, then the overview.
    c.goto(&format!("{}/admin/login", ts.http)).await.unwrap();
    type_into(&browser, "token", rackwave_testkit::ADMIN_TOKEN).await;
    click(&browser, "form.stack button").await;
    wait_for(&browser, "the operator's overview", |url, html| {
        url.ends_with("/admin/")
            && html.contains("Operator overview")
            && html.contains("ada@example.test")
    })
    .await;
    browser.screenshot(&shots.join("admin-overview.png")).await;
}
