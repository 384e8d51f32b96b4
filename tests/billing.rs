//! The portal's billing end to end, on the manual clock, against the real
//! server: a client's whole life (trial, conversion with a GST invoice,
//! reminder, overdue, suspension, a signed gateway payment, upgrade with
//! proration, partial and over-payment, downgrade, cancellation), with
//! every lifecycle event at a real webhook receiver and every notification
//! email at a real SMTP sink; IGST for another state and a paid start;
//! credit notes; bad money and other clients' records; races.

use std::collections::BTreeMap;

use mail_parser::MimeHeaders;
use std::time::Duration;

use rackwave_core::event::EventType;
use rackwave_testkit::delivery::{rig, sink, Rig};
use rackwave_testkit::portal::{
    billing_config, gateway_callback, gateway_signature, invoices, log_in, pay, portal, sign_up,
    smtp_account,
};
use rackwave_testkit::receiver::Receiver;
use rackwave_testkit::*;
use serde_json::{json, Value};

const DAY: i64 = 86_400_000;
const GATEWAY_SECRET: &str = "gateway secret 0123456789";

/// Plans and the gateway's secret.
fn billing(c: &mut rackwave::config::Config) {
    c.billing = billing_config(
        "seller_name = \"Rackwave Networks Pvt Ltd\"\n\
         seller_address = \"7 Harbour Road, Mumbai\"\nseller_gstin = \"27AAPFU0939F1ZV\"\n\
         [[billing.plans]]\nid = \"mail\"\nplatform = \"migosmtp\"\nname = \"Mail Starter\"\nprice_paise = 99950\ndaily_quota = 1000\ntrial_days = 14\n\
         [[billing.plans]]\nid = \"mail-pro\"\nplatform = \"migosmtp\"\nname = \"Mail Pro\"\nprice_paise = 499900\ndaily_quota = 100000\n\
         [[billing.plans]]\nid = \"mail-lite\"\nplatform = \"migosmtp\"\nname = \"Mail Lite\"\nprice_paise = 49900\ndaily_quota = 500\n",
    );
    c.billing.gateway_secret = Some(GATEWAY_SECRET.into());
}

/// Asks for another plan through `upgrade` (the subscription's path).
async fn change_plan(ts: &TestServer, token: &str, upgrade: &str, plan: &str) -> (u16, Value) {
    portal(ts, "POST", upgrade, token, Some(json!({"plan": plan}))).await
}

/// Starts a subscription as the client of `token`: `POST
/// /portal/v1/subscriptions` with `body`.
async fn subscribe(ts: &TestServer, token: &str, body: Value) -> (u16, Value) {
    portal(ts, "POST", "/portal/v1/subscriptions", token, Some(body)).await
}

async fn run(ts: &TestServer) -> Value {
    let (s, r) = ts.admin("POST", "/admin/v1/billing/run", None).await;
    assert_eq!(s, 200, "{r}");
    r
}

/// An SMTP account in a subscription's workspace, made with its key.
async fn account_of(ts: &TestServer, sub: &Value, username: &str) -> Account {
    let key = sub["api_key"].as_str().unwrap();
    smtp_account(ts, key, sub["workspace_id"].as_str().unwrap(), username).await
}

/// An operator's credit note of `amount` paise on an invoice.
async fn credit(ts: &TestServer, invoice_id: &str, amount: i64, reason: &str) -> (u16, Value) {
    let path = format!("/admin/v1/invoices/{invoice_id}/credit-notes");
    ts.admin(
        "POST",
        &path,
        Some(json!({"amount_paise": amount, "reason": reason})),
    )
    .await
}

/// The reply code to `MAIL FROM` in a fresh session of `account`.
async fn mail_from(ts: &TestServer, account: &Account) -> u16 {
    let mut s = ts.authed(account).await;
    s.cmd("MAIL FROM:<billing-test@example.test>").await.code
}

/// ms of an RFC 3339 time.
fn ms(t: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

/// `n * bp / 10000` rounded half away from zero, by hand.
fn percent_of(n: i64, bp: i64, divisor: i64) -> i64 {
    let exact = n * bp;
    (exact + divisor / 2) / divisor
}

/// The notification emails the sink got: (recipient, kind) pairs.
fn notifications(r: &Rig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for m in r.sinks[0].received() {
        let parsed = mail_parser::MessageParser::default()
            .parse(&m.data)
            .unwrap();
        let Some(kind) = parsed
            .header("X-Rackwave-Notification")
            .and_then(|h| h.as_text())
        else {
            continue;
        };
        for rcpt in &m.rcpt_to {
            out.push((rcpt.clone(), kind.to_string()));
        }
    }
    out.sort();
    out
}

/// Waits until the sink has `want` notification emails.
async fn wait_for_notifications(r: &Rig, want: usize) -> Vec<(String, String)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got = notifications(r);
        if got.len() >= want {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {want} notifications: {got:?}",
            got.len()
        );
        r.kick();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_whole_life() {
    let r = rig(
        vec![(1, sink())],
        [1, rackwave_testkit::delivery::DOWN],
        billing,
    )
    .await;
    let ts = &r.ts;
    // Ada: Maharashtra, the seller's state, registered for GST.
    let (ada_id, ada) = sign_up(ts, "ada@example.test", "27", Some("27AAPFU0939F1ZV")).await;
    let contacts = json!({"contacts": [
        {"email": "Accounts@Example.test", "name": "Accounts", "billing": true},
        {"email": "ops@example.test", "name": "Ops", "technical": true}
    ]});
    let (s, got) = portal(ts, "PUT", "/portal/v1/contacts", &ada, Some(contacts)).await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["contacts"][0]["email"], "accounts@example.test");
    let rx = Receiver::start().await;
    let hook = json!({"url": rx.url("life"), "event_types": ["*"]});
    let (s, ep) = portal(ts, "POST", "/portal/v1/webhooks", &ada, Some(hook)).await;
    assert_eq!(s, 201, "{ep}");
    rx.set_secrets("life", &[ep["secret"].as_str().unwrap()]);

    // Day 0: the trial provisions a workspace that sends.
    let body = json!({"platform": "migosmtp", "plan": "mail", "trial": true});
    let (s, sub) = subscribe(ts, &ada, body).await;
    assert_eq!(s, 201, "{sub}");
    let sub_id = sub["id"].as_str().unwrap().to_string();
    let account = account_of(ts, &sub, "ada-app").await;
    assert_eq!(mail_from(ts, &account).await, 250);

    // Bob: Karnataka, unregistered; a paid start is pending (its workspace
    // does not send) until its first invoice is paid.
    let (bob_id, bob) = sign_up(ts, "bob@example.test", "29", None).await;
    let body = json!({"platform": "migosmtp", "plan": "mail", "trial": false});
    let (s, bob_sub) = subscribe(ts, &bob, body).await;
    assert_eq!(
        (s, &bob_sub["status"]),
        (201, &json!("pending")),
        "{bob_sub}"
    );
    let send =
        json!({"from": "news@bob.test", "to": ["r@example.test"], "subject": "s", "text": "t"});
    let bob_key = bob_sub["api_key"].as_str().unwrap();
    let (s, e) = ts
        .call(bob_key, "POST", "/migosmtp/v1/messages", Some(send))
        .await;
    assert_eq!((s, &e["error"]["code"]), (403, &json!("suspended")), "{e}");
    let bob_first = invoices(ts, &bob).await[0].clone();
    // Another state: IGST at 18 % on ₹999.50 = ₹179.91 (not the ₹179.92
    // of two halves rounded each).
    assert_eq!(
        (
            &bob_first["subtotal_paise"],
            &bob_first["igst_paise"],
            &bob_first["cgst_paise"],
            &bob_first["total_paise"]
        ),
        (&json!(99950), &json!(17991), &json!(0), &json!(117941)),
        "{bob_first}"
    );
    assert_eq!(bob_first["number"], "RW/26-27/00001");
    assert_eq!(bob_first["place_of_supply"], "29");
    // Bob pays ₹2,000: the rest is his credit; the service starts.
    let pay_id = bob_first["id"].as_str().unwrap().to_string();
    let (s, paid) = pay(ts, &pay_id, json!(200000), "UTR-BOB-1").await;
    assert_eq!(s, 201, "{paid}");
    assert_eq!(paid["credited_paise"], 200000 - 117941);
    assert_eq!(paid["invoice"]["status"], "paid");
    let bob_account = account_of(ts, &bob_sub, "bob-app").await;
    assert_eq!(mail_from(ts, &bob_account).await, 250);
    let (_, bob_me) = portal(ts, "GET", "/portal/v1/me", &bob, None).await;
    assert_eq!(bob_me["credit_paise"], 82059);

    // Clients see only their own.
    let bob_invoice = format!("/portal/v1/invoices/{}", bob_first["id"].as_str().unwrap());
    for path in [
        bob_invoice.clone(),
        format!("{bob_invoice}.pdf"),
        format!("{bob_invoice}.html"),
    ] {
        assert_eq!(portal(ts, "GET", &path, &ada, None).await.0, 404, "{path}");
    }
    let upgrade = format!("/portal/v1/subscriptions/{sub_id}/upgrade");
    assert_eq!(
        portal(
            ts,
            "POST",
            &upgrade,
            &bob,
            Some(json!({"plan": "mail-pro"}))
        )
        .await
        .0,
        404
    );
    let cancel = format!("/portal/v1/subscriptions/{sub_id}/cancel");
    assert_eq!(portal(ts, "POST", &cancel, &bob, None).await.0, 404);

    // Day 14: the trial ends; the plan goes on with its first invoice.
    ts.clock.advance_ms(14 * DAY);
    let report = run(ts).await;
    assert_eq!(report["converted"], 1, "{report}");
    let ada = log_in(ts, "ada@example.test").await;
    let first = invoices(ts, &ada).await[0].clone();
    // Same state: CGST and SGST at 9 % each on ₹999.50, each ₹89.955
    // rounded to ₹89.96.
    assert_eq!(
        (
            &first["subtotal_paise"],
            &first["cgst_paise"],
            &first["sgst_paise"],
            &first["igst_paise"],
            &first["total_paise"]
        ),
        (
            &json!(99950),
            &json!(8996),
            &json!(8996),
            &json!(0),
            &json!(117942)
        ),
        "{first}"
    );
    assert_eq!(first["number"], "RW/26-27/00002");
    assert_eq!(first["kind"], "activation");
    assert_eq!(first["lines"][0]["sac"], "998315");
    assert_eq!(first["buyer"]["gstin"], "27AAPFU0939F1ZV");
    assert_eq!(first["seller"]["gstin"], "27AAPFU0939F1ZV");
    let invoice_path = format!("/portal/v1/invoices/{}", first["id"].as_str().unwrap());
    let html = reqwest::Client::new()
        .get(format!("{}{invoice_path}.html", ts.http))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "Tax Invoice",
        "RW/26-27/00002",
        "Rackwave Networks Pvt Ltd",
        "27 (Maharashtra)",
        "998315",
        "CGST @ 9%",
        "SGST @ 9%",
        "89.96",
        "1,179.42",
        "Reverse charge",
    ] {
        assert!(html.contains(needle), "{needle} missing from {html}");
    }
    let pdf = reqwest::Client::new()
        .get(format!("{}{invoice_path}.pdf", ts.http))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    let pdf = pdf.bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF-"), "a PDF");
    assert!(
        pdf.windows(14).any(|w| w == b"RW/26-27/00002"),
        "its number"
    );

    // Day 26: a reminder; day 29: overdue; day 36: suspended.
    ts.clock.advance_ms(12 * DAY);
    assert_eq!(run(ts).await["reminded"], 1);
    ts.clock.advance_ms(3 * DAY);
    assert_eq!(run(ts).await["overdue"], 1);
    ts.clock.advance_ms(7 * DAY);
    let report = run(ts).await;
    assert_eq!(
        (&report["suspended"], &report["renewed"]),
        (&json!(1), &json!(1)),
        "Ada suspended, Bob renewed: {report}"
    );
    assert_eq!(mail_from(ts, &account).await, 554);

    // Bob's renewal used his credit first.
    let bob = log_in(ts, "bob@example.test").await;
    let renewal = invoices(ts, &bob).await[0].clone();
    assert_eq!(
        (
            &renewal["kind"],
            &renewal["credit_applied_paise"],
            &renewal["balance_paise"]
        ),
        (&json!("renewal"), &json!(82059), &json!(117941 - 82059)),
        "{renewal}"
    );

    // (Ada's login of day 14 has lapsed.)
    let ada = log_in(ts, "ada@example.test").await;
    // The gateway pays Ada's invoice: a wrong or altered signature is
    // refused; the real one pays and reactivates; its replay is refused.
    let callback = json!({"payment_id": "pay_gw_1", "invoice_id": first["id"],
        "amount_paise": 117942, "status": "captured"})
    .to_string();
    let signature = gateway_signature(GATEWAY_SECRET, callback.as_bytes());
    let (s, _) = gateway_callback(
        ts,
        callback.as_bytes(),
        &gateway_signature("wrong secret 0123456", callback.as_bytes()),
    )
    .await;
    assert_eq!(s, 401);
    let altered = callback.replace("117942", "217942");
    assert_eq!(
        gateway_callback(ts, altered.as_bytes(), &signature).await.0,
        401
    );
    assert_eq!(gateway_callback(ts, callback.as_bytes(), "").await.0, 401);
    let (s, got) = gateway_callback(ts, callback.as_bytes(), &signature).await;
    assert_eq!(
        (s, &got["invoice"]["status"]),
        (200, &json!("paid")),
        "{got}"
    );
    let (s, again) = gateway_callback(ts, callback.as_bytes(), &signature).await;
    assert_eq!(s, 409, "{again}");
    assert_eq!(mail_from(ts, &account).await, 250);
    let (_, got) = portal(ts, "GET", &invoice_path, &ada, None).await;
    assert_eq!(
        got["paid_paise"], 117942,
        "the replay counted nothing: {got}"
    );
    assert_eq!(got["payments"].as_array().unwrap().len(), 1);

    // An upgrade applies at once with a prorated invoice for the rest of
    // the period: (₹4,999 − ₹999.50) × time left / period, to the paisa.
    let (_, before) = portal(
        ts,
        "GET",
        &format!("/portal/v1/subscriptions/{sub_id}"),
        &ada,
        None,
    )
    .await;
    let (start, end) = (ms(&before["period_start"]), ms(&before["expires_at"]));
    let now = rackwave_testkit::START_MS + 36 * DAY;
    let expected = ((499900 - 99950) as i128 * (end - now) as i128 + (end - start) as i128 / 2)
        / (end - start) as i128;
    let expected = expected as i64;
    let (s, change) = change_plan(ts, &ada, &upgrade, "mail-pro").await;
    assert_eq!(
        (s, &change["subscription"]["plan"]),
        (200, &json!("mail-pro")),
        "{change}"
    );
    let (_, proration) = portal(
        ts,
        "GET",
        &format!(
            "/portal/v1/invoices/{}",
            change["invoice_id"].as_str().unwrap()
        ),
        &ada,
        None,
    )
    .await;
    let half = percent_of(expected, 900, 10000);
    assert_eq!(
        (
            &proration["kind"],
            &proration["subtotal_paise"],
            &proration["cgst_paise"],
            &proration["total_paise"]
        ),
        (
            &json!("proration"),
            &json!(expected),
            &json!(half),
            &json!(expected + 2 * half)
        ),
        "{proration}"
    );
    let (_, ws) = ts
        .get(&format!(
            "/admin/v1/workspaces/{}",
            sub["workspace_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(ws["daily_quota"], 100000, "the new plan's quota: {ws}");

    // Paid in two parts, the second ₹10 too much: credit.
    let total = expected + 2 * half;
    let pay_id = proration["id"].as_str().unwrap().to_string();
    let (s, part) = pay(ts, &pay_id, json!(total / 2), "UTR-ADA-1").await;
    assert_eq!(
        (s, &part["invoice"]["status"]),
        (201, &json!("open")),
        "{part}"
    );
    assert_eq!(part["invoice"]["balance_paise"], total - total / 2);
    let rest = total - total / 2 + 1000;
    let (_, done) = pay(ts, &pay_id, json!(rest), "UTR-ADA-2").await;
    assert_eq!(
        (&done["invoice"]["status"], &done["credited_paise"]),
        (&json!("paid"), &json!(1000)),
        "{done}"
    );

    // A downgrade waits for the period's end; cancelling stops sending.
    let (_, down) = change_plan(ts, &ada, &upgrade, "mail-lite").await;
    assert_eq!(
        (
            &down["scheduled"],
            &down["subscription"]["plan"],
            &down["subscription"]["next_plan"]
        ),
        (&json!(true), &json!("mail-pro"), &json!("mail-lite")),
        "{down}"
    );
    let (s, cancelled) = portal(ts, "POST", &cancel, &ada, None).await;
    assert_eq!(
        (s, &cancelled["status"]),
        (200, &json!("cancelled")),
        "{cancelled}"
    );
    assert_eq!(mail_from(ts, &account).await, 554);

    // Every lifecycle event reached Ada's webhook, signed, with exactly
    // the seed's fields.
    // Every email Ada gets, in order; all but the reminder are events.
    let ada_kinds = [
        "trial_activated",
        "service_activated",
        "invoice_created",
        "invoice_reminder",
        "invoice_overdue",
        "service_suspended",
        "invoice_paid",
        "service_reactivated",
        "invoice_created",
        "invoice_paid",
        "service_cancelled",
    ];
    let expected_events: Vec<&str> = ada_kinds
        .iter()
        .copied()
        .filter(|k| *k != "invoice_reminder")
        .collect();
    let got = rx
        .wait_for("life", expected_events.len(), Duration::from_secs(60))
        .await;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for hit in &got {
        assert!(hit.verified(), "signature");
        let v = &hit.body;
        assert_eq!(v["product"], "rackwave");
        let kind = v["event"].as_str().unwrap();
        let mut fields: Vec<&str> = v["data"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        let mut want = EventType::parse(kind).unwrap().fields().to_vec();
        want.sort_unstable();
        assert_eq!(fields, want, "{kind}");
        assert_eq!(v["data"]["customer_id"], ada_id.as_str());
        *seen.entry(kind.to_string()).or_default() += 1;
    }
    let mut want: BTreeMap<String, usize> = BTreeMap::new();
    for e in &expected_events {
        *want.entry(e.to_string()).or_default() += 1;
    }
    assert_eq!(seen, want);
    let overdue = got
        .iter()
        .find(|h| h.body["event"] == "invoice_overdue")
        .unwrap();
    assert_eq!(overdue.body["data"]["total"], 117942);
    // Issued 2026-06-21 (IST), due 15 days later, overdue the day after.
    assert_eq!(first["due_date"], "2026-07-06");
    assert_eq!(overdue.body["data"]["overdue_since"], "2026-07-07");

    // Every notification reached the sink: Ada each one, her billing
    // contact the invoices, her technical contact the service changes.
    let bob_kinds = [
        "invoice_created",
        "invoice_paid",
        "service_activated",
        "invoice_created",
    ];
    let mut expected: Vec<(String, String)> = Vec::new();
    for k in ada_kinds {
        expected.push(("ada@example.test".into(), k.into()));
        let contact = if k.starts_with("invoice_") {
            "accounts"
        } else {
            "ops"
        };
        expected.push((format!("{contact}@example.test"), k.into()));
    }
    for k in bob_kinds {
        expected.push(("bob@example.test".into(), k.into()));
    }
    expected.sort();
    let got = wait_for_notifications(&r, expected.len()).await;
    assert_eq!(got, expected);
    // A new invoice's email carries it as a PDF; the others nothing.
    for m in r.sinks[0].received() {
        let parsed = mail_parser::MessageParser::default()
            .parse(&m.data)
            .unwrap();
        let kind = parsed
            .header("X-Rackwave-Notification")
            .and_then(|h| h.as_text())
            .unwrap_or_default()
            .to_string();
        let pdfs: Vec<_> = parsed
            .attachments()
            .filter(|a| a.attachment_name().is_some_and(|n| n.ends_with(".pdf")))
            .map(|a| {
                (
                    a.attachment_name().unwrap().to_string(),
                    a.contents().to_vec(),
                )
            })
            .collect();
        if kind == "invoice_created" {
            assert_eq!(pdfs.len(), 1, "{kind}");
            assert!(pdfs[0].0.starts_with("RW-26-27-"), "{}", pdfs[0].0);
            assert!(pdfs[0].1.starts_with(b"%PDF-"));
        } else {
            assert!(pdfs.is_empty(), "{kind}");
        }
    }
    let _ = bob_id;
}

/// Money is whole paise: negative, zero, fractional, overflowing or
/// textual amounts are refused and change nothing; a credit note cannot
/// exceed what is left of an invoice; unknown invoices are 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_money_is_refused() {
    let ts = start_with(billing).await;
    let (_, bob) = sign_up(&ts, "bob@example.test", "29", None).await;
    let body = json!({"platform": "migosmtp", "plan": "mail", "trial": false});
    let (_, _) = subscribe(&ts, &bob, body).await;
    let id = invoices(&ts, &bob).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let pay_id = id.clone();
    for amount in [
        json!(-100),
        json!(0),
        json!(1.5),
        json!(1e30),
        json!("100"),
        json!(null),
    ] {
        let (s, e) = pay(&ts, &pay_id, amount.clone(), "x").await;
        assert!(s == 400 || s == 422, "{amount}: {s} {e}");
    }
    for reference in ["", &"r".repeat(200), "a\nb"] {
        let (s, _) = pay(&ts, &pay_id, json!(100), reference).await;
        assert_eq!(s, 422, "{reference:?}");
    }
    let (_, invoice) = ts.get(&format!("/admin/v1/invoices/{id}")).await;
    assert_eq!(
        (&invoice["paid_paise"], &invoice["status"]),
        (&json!(0), &json!("open"))
    );
    assert_eq!(pay(&ts, "inv_nope", json!(1), "y").await.0, 404);

    // Credit notes: at most the subtotal, in parts, their tax adding up to
    // the invoice's to the paisa (IGST on ₹499.75 is ₹89.955: 8996 paise
    // on the first half, 8995 on the second, 17991 in all); the whole of
    // an unpaid invoice voids it, and the pending start it was the first
    // invoice of is cancelled.
    let (s, e) = credit(&ts, &id, 99951, "too much").await;
    assert_eq!(s, 422, "{e}");
    let (s, note) = credit(&ts, &id, 49975, "goodwill").await;
    assert_eq!(s, 201, "{note}");
    assert_eq!(note["credit_note"]["number"], "CN/26-27/00001");
    assert_eq!(note["credit_note"]["igst_paise"], 8996);
    assert_eq!(note["invoice"]["balance_paise"], 117941 - 58971);
    let (_, rest) = credit(&ts, &id, 49975, "cancelled order").await;
    assert_eq!(rest["credit_note"]["igst_paise"], 8995);
    assert_eq!(rest["invoice"]["status"], "void", "{rest}");
    assert_eq!(rest["credit_note"]["number"], "CN/26-27/00002");
    let (_, me) = portal(&ts, "GET", "/portal/v1/me", &bob, None).await;
    assert_eq!(me["credit_paise"], 0, "nothing left over: {me}");
    let (_, subs) = portal(&ts, "GET", "/portal/v1/subscriptions", &bob, None).await;
    assert_eq!(subs["subscriptions"][0]["status"], "cancelled");
    // Nothing more to credit; money paid on it anyway is credit.
    assert_eq!(credit(&ts, &id, 1, "again").await.0, 409);
    let (s, late) = pay(&ts, &pay_id, json!(100), "late").await;
    assert_eq!((s, &late["credited_paise"]), (201, &json!(100)), "{late}");
    // Callbacks are refused while no gateway is configured elsewhere; here
    // one with a body that is not JSON but signed is a 400.
    let junk = b"not json";
    let (s, _) = gateway_callback(&ts, junk, &gateway_signature(GATEWAY_SECRET, junk)).await;
    assert_eq!(s, 400);
}

/// Two upgrades at once make one proration; two billing runs at once make
/// one invoice each; a payment racing the suspension ends with the
/// service running and the invoice paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn races_end_in_one_state() {
    let ts = start_with(billing).await;
    let (_, ada) = sign_up(&ts, "ada@example.test", "27", None).await;
    let body = json!({"platform": "migosmtp", "plan": "mail", "trial": true});
    let (_, sub) = subscribe(&ts, &ada, body).await;
    let sub_id = sub["id"].as_str().unwrap().to_string();
    ts.clock.advance_ms(14 * DAY);
    let (a, b) = tokio::join!(run(&ts), run(&ts));
    assert_eq!(
        a["invoiced"].as_u64().unwrap() + b["invoiced"].as_u64().unwrap(),
        1,
        "{a} {b}"
    );
    let ada = log_in(&ts, "ada@example.test").await;
    let upgrade = format!("/portal/v1/subscriptions/{sub_id}/upgrade");
    let up = json!({"plan": "mail-pro"});
    let (x, y) = tokio::join!(
        portal(&ts, "POST", &upgrade, &ada, Some(up.clone())),
        portal(&ts, "POST", &upgrade, &ada, Some(up.clone())),
    );
    let prorations = [&x.1, &y.1]
        .iter()
        .filter(|c| c["invoice_id"].is_string())
        .count();
    assert_eq!((x.0, y.0, prorations), (200, 200, 1), "{x:?} {y:?}");
    let invoices = invoices(&ts, &ada).await;
    assert_eq!(invoices.len(), 2);
    // Numbers are consecutive.
    let mut numbers: Vec<&str> = invoices
        .iter()
        .map(|i| i["number"].as_str().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, ["RW/26-27/00001", "RW/26-27/00002"]);

    // The proration is paid; the first invoice is not.
    let proration = invoices.iter().find(|i| i["kind"] == "proration").unwrap();
    let pay_id = proration["id"].as_str().unwrap().to_string();
    let amount = proration["total_paise"].clone();
    assert_eq!(pay(&ts, &pay_id, amount, "upgrade").await.0, 201);

    // Past due and grace: the run and the payment race.
    let first = invoices
        .iter()
        .find(|i| i["kind"] == "activation")
        .unwrap()
        .clone();
    ts.clock.advance_ms(15 * DAY);
    run(&ts).await;
    ts.clock.advance_ms(7 * DAY);
    let pay_id = first["id"].as_str().unwrap().to_string();
    let amount = first["total_paise"].clone();
    let (report, (s, _)) = tokio::join!(run(&ts), pay(&ts, &pay_id, amount, "race"));
    assert_eq!(s, 201);
    let (_, after) = ts
        .get(&format!(
            "/admin/v1/subscriptions?client={}",
            first["customer_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        after["subscriptions"][0]["status"], "active",
        "whichever came first, the paid service runs: {report} {after}"
    );
}

/// A client who cancelled has had the platform's trial; a paid start takes
/// back the workspace they had, with its SMTP accounts, and it sends again
/// once the first invoice is paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_who_cancelled_comes_back_to_their_workspace() {
    let ts = start_with(billing).await;
    let (_, ada) = sign_up(&ts, "ada@example.test", "27", None).await;
    let start = |trial: bool| json!({"platform": "migosmtp", "plan": "mail", "trial": trial});
    let (_, sub) = subscribe(&ts, &ada, start(true)).await;
    let account = account_of(&ts, &sub, "ada-app").await;
    let cancel = format!(
        "/portal/v1/subscriptions/{}/cancel",
        sub["id"].as_str().unwrap()
    );
    assert_eq!(portal(&ts, "POST", &cancel, &ada, None).await.0, 200);
    assert_eq!(mail_from(&ts, &account).await, 554);
    let (s, e) = subscribe(&ts, &ada, start(true)).await;
    assert_eq!(s, 409, "one trial a platform: {e}");
    let (s, again) = subscribe(&ts, &ada, start(false)).await;
    assert_eq!((s, &again["status"]), (201, &json!("pending")), "{again}");
    assert_eq!(again["workspace_id"], sub["workspace_id"]);
    assert!(again.get("api_key").is_none(), "the keys it had still work");
    // Still not sending, a second live one refused.
    assert_eq!(mail_from(&ts, &account).await, 554);
    let (s, _) = subscribe(&ts, &ada, start(false)).await;
    assert_eq!(s, 409);
    let invoice = invoices(&ts, &ada).await[0].clone();
    let amount = invoice["total_paise"].clone();
    assert_eq!(
        pay(&ts, invoice["id"].as_str().unwrap(), amount, "UTR-BACK")
            .await
            .0,
        201
    );
    assert_eq!(mail_from(&ts, &account).await, 250);
    let (_, list) = portal(&ts, "GET", "/portal/v1/subscriptions", &ada, None).await;
    let states: Vec<&str> = list["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    let mut states = states;
    states.sort_unstable();
    assert_eq!(states, ["active", "cancelled"]);
}

/// An operator records the whole of an invoice as paid; the status.
async fn pay_whole(ts: &TestServer, invoice: &Value, reference: &str) -> u16 {
    let id = invoice["id"].as_str().unwrap();
    pay(ts, id, invoice["total_paise"].clone(), reference)
        .await
        .0
}

/// Whether a subscription's answer says it is suspended for `invoice`.
fn suspended_for(sub: &Value, invoice: &Value) -> bool {
    let reason = format!("invoice {} unpaid", invoice["number"].as_str().unwrap());
    sub["status"] == "suspended" && sub["suspension_reason"] == json!(reason)
}

/// Suspensions and payments meet: an operator's suspension is not ended
/// by paying an invoice, and outlasts one for an invoice; an unpaid
/// invoice past its grace keeps a subscription suspended when an operator
/// reactivates it; a pending start suspended by the dunning starts when
/// its invoice is paid; cancelling a pending start voids its invoice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspensions_and_payments_meet() {
    let ts = start_with(billing).await;
    let start = json!({"platform": "migosmtp", "plan": "mail", "trial": false});
    let sub_of = |v: &Value| v["id"].as_str().unwrap().to_string();
    // Bob's pending start goes unpaid past its grace: suspended; paying
    // it starts the service.
    let (_, bob) = sign_up(&ts, "bob@example.test", "29", None).await;
    let (_, bob_sub) = subscribe(&ts, &bob, start.clone()).await;
    let bob_invoice = invoices(&ts, &bob).await[0].clone();
    // Carol's pending start is suspended by an operator; paying starts
    // the service under the operator's suspension.
    let (_, carol) = sign_up(&ts, "carol@example.test", "27", None).await;
    let (_, carol_sub) = subscribe(&ts, &carol, start.clone()).await;
    let suspend = |id: &str| format!("/admin/v1/subscriptions/{id}/suspend");
    let reactivate = |id: &str| format!("/admin/v1/subscriptions/{id}/reactivate");
    let why = json!({"reason": "identity check"});
    assert_eq!(
        ts.admin("POST", &suspend(&sub_of(&carol_sub)), Some(why.clone()))
            .await
            .0,
        200
    );
    // Dan's pending start is cancelled: its invoice is voided.
    let (_, dan) = sign_up(&ts, "dan@example.test", "27", None).await;
    let (_, dan_sub) = subscribe(&ts, &dan, start.clone()).await;
    let cancel = format!("/portal/v1/subscriptions/{}/cancel", sub_of(&dan_sub));
    assert_eq!(portal(&ts, "POST", &cancel, &dan, None).await.0, 200);
    let dan_invoice = invoices(&ts, &dan).await[0].clone();
    assert_eq!(dan_invoice["status"], "void", "{dan_invoice}");

    ts.clock.advance_ms(22 * DAY);
    run(&ts).await;
    let report = run(&ts).await;
    assert_eq!(report["failed"], 0, "{report}");
    let status = |token: String| {
        let ts = &ts;
        async move {
            let (_, subs) = portal(ts, "GET", "/portal/v1/subscriptions", &token, None).await;
            subs["subscriptions"][0].clone()
        }
    };
    let bob = log_in(&ts, "bob@example.test").await;
    let got = status(bob.clone()).await;
    assert!(suspended_for(&got, &bob_invoice), "{got}");
    assert_eq!(pay_whole(&ts, &bob_invoice, "UTR-B").await, 201);
    assert_eq!(status(bob.clone()).await["status"], "active");

    let carol = log_in(&ts, "carol@example.test").await;
    let carol_invoice = invoices(&ts, &carol).await[0].clone();
    assert_eq!(pay_whole(&ts, &carol_invoice, "UTR-C").await, 201);
    let got = status(carol.clone()).await;
    assert_eq!(
        (&got["status"], &got["suspension_reason"]),
        (&json!("suspended"), &json!("identity check")),
        "{got}"
    );
    let (_, back) = ts
        .admin("POST", &reactivate(&sub_of(&carol_sub)), None)
        .await;
    assert_eq!(back["status"], "active", "the paid service resumes: {back}");
    assert!(
        ms(&back["expires_at"]) > rackwave_testkit::START_MS + 22 * DAY,
        "{back}"
    );

    // Bob's renewal goes unpaid past its grace while an operator has him
    // suspended: paying it does not end the operator's suspension, and the
    // operator's reactivation does not end the invoice's.
    ts.clock.advance_ms(31 * DAY);
    assert_eq!(run(&ts).await["renewed"], 2);
    let bob = log_in(&ts, "bob@example.test").await;
    let renewal = invoices(&ts, &bob).await[0].clone();
    assert_eq!(
        ts.admin("POST", &suspend(&sub_of(&bob_sub)), Some(why.clone()))
            .await
            .0,
        200
    );
    ts.clock.advance_ms(22 * DAY);
    run(&ts).await;
    let (_, still) = ts.admin("POST", &reactivate(&sub_of(&bob_sub)), None).await;
    assert!(suspended_for(&still, &renewal), "{still}");
    assert_eq!(pay_whole(&ts, &renewal, "UTR-B2").await, 201);
    let bob = log_in(&ts, "bob@example.test").await;
    assert_eq!(status(bob).await["status"], "active");
}

/// A suspended workspace sends nothing, not even what it queued before:
/// its deferred message is not tried again while it is suspended, and is
/// delivered once it is reactivated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_workspace_s_queued_mail_waits() {
    use rackwave_bench::sink::{Action, Script};
    use rackwave_testkit::delivery::scripted_rig;

    // (Only Fay's first try: the sink also plays ada@example.test's MX,
    // which gets her notifications.)
    let script = Script::default()
        .on_rcpt_containing("fay@", Action::reply("421 4.7.0 Try again later"))
        .times(1);
    let r = scripted_rig(43, script, |c| {
        billing(c);
        c.delivery.retry_schedule_secs = vec![300];
    })
    .await;
    let ts = &r.ts;
    let (_, ada) = sign_up(ts, "ada@example.test", "27", None).await;
    let body = json!({"platform": "migosmtp", "plan": "mail", "trial": true});
    let (_, sub) = subscribe(ts, &ada, body).await;
    let account = account_of(ts, &sub, "ada-app").await;
    let mut smtp = ts.authed(&account).await;
    let reply = smtp
        .send_mail(
            "news@ada.test",
            &["fay@example.test"],
            &message("news@ada.test", "fay@example.test", "held", "Hello."),
        )
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let qid = queue_id(&reply);
    r.wait(&qid, &["deferred"]).await;
    let suspend = format!(
        "/admin/v1/subscriptions/{}/suspend",
        sub["id"].as_str().unwrap()
    );
    let why = json!({"reason": "abuse report"});
    assert_eq!(ts.admin("POST", &suspend, Some(why)).await.0, 200);
    // Its retry is due; nothing is tried while it is suspended.
    ts.clock.advance_ms(600_000);
    for _ in 0..20 {
        r.kick();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let msg = r.wait(&qid, &["deferred"]).await.remove(0);
    let attempts = msg["delivery_attempts"].as_array().map(Vec::len);
    assert_eq!(attempts, Some(1), "not tried again: {msg}");
    let to_fay = || {
        r.sinks[0]
            .received()
            .iter()
            .filter(|m| m.rcpt_to.iter().any(|t| t.contains("fay@")))
            .count()
    };
    assert_eq!(to_fay(), 0);
    // Reactivated: delivered.
    let reactivate = format!(
        "/admin/v1/subscriptions/{}/reactivate",
        sub["id"].as_str().unwrap()
    );
    assert_eq!(ts.admin("POST", &reactivate, None).await.0, 200);
    r.wait(&qid, &["delivered"]).await;
    assert_eq!(to_fay(), 1);
}
