//! Several nodes, one PostgreSQL (issue 16): two Rackwave servers, each
//! with its own spool, sharing their state on a real PostgreSQL server
//! the test kit starts (Debian's `postgresql`; skipped with a notice where
//! it is not installed, mandatory in CI). Quotas are exact across them,
//! each event reaches a webhook receiver once, a sign-on link works on one
//! node only, a suspension reaches the other node, and a node SIGKILLed
//! mid-attempt leaves its webhook deliveries to the other once their lease
//! ends: those as two `rackwave serve` processes. Where a test moves a
//! node's clock (leases, retries) that node runs in the test's process on
//! the manual clock.

use std::collections::HashSet;
use std::time::Duration;

use rackwave::config::{Config, StorageBackend};
use rackwave_testkit::postgres::Postgres;
use rackwave_testkit::receiver::{Behavior, Receiver};
use rackwave_testkit::{RawSmtp, TestServer};
use serde_json::{json, Value};

/// One MigoSMTP plan with a trial.
const MAIL_PLAN: &str = "[[billing.plans]]\nid = \"mail\"\nplatform = \"migosmtp\"\nname = \"Mail\"\nprice_paise = 99900\ndaily_quota = 1000\ntrial_days = 14\n";

/// Points a node at the shared database (all three parts in one).
fn on_postgres(c: &mut Config, url: &str, node: &str) {
    c.storage.backend = StorageBackend::Postgres;
    c.storage.postgres.portal_url = Some(url.to_string());
    c.storage.postgres.migosmtp_url = Some(url.to_string());
    c.storage.postgres.telnxo_url = Some(url.to_string());
    c.storage.postgres.max_connections = 8;
    c.node.id = Some(node.to_string());
}

/// Two nodes on one fresh database; `None` where PostgreSQL is missing.
async fn two_nodes(
    tweak: impl Fn(&mut Config) + Clone + Send + 'static,
) -> Option<(Postgres, TestServer, TestServer)> {
    let pg = Postgres::start()?;
    let url = pg.database("rackwave");
    let (u, t) = (url.clone(), tweak.clone());
    let a = rackwave_testkit::start_with(move |c| {
        on_postgres(c, &u, "node-a");
        t(c);
    })
    .await;
    let b = rackwave_testkit::start_with(move |c| {
        on_postgres(c, &url, "node-b");
        tweak(c);
    })
    .await;
    Some((pg, a, b))
}

/// Two `rackwave serve` processes on one fresh database, `tables` more
/// of their config (on the system clock: for what needs no clock moved);
/// `None` where PostgreSQL is missing.
async fn two_processes(tables: &str) -> Option<(Postgres, TestServer, TestServer)> {
    let pg = Postgres::start()?;
    let url = pg.database("rackwave");
    let a = serve_node(&node_toml("node-a", &url, "", tables)).await;
    let b = serve_node(&node_toml("node-b", &url, "", tables)).await;
    Some((pg, a, b))
}

/// A `rackwave serve` process with `config` (and the test kit's listeners).
async fn serve_node(config: &str) -> TestServer {
    rackwave_testkit::binary::serve(env!("CARGO_BIN_EXE_rackwave"), config).await
}

/// A node's config on the database at `url`, as [`on_postgres`] sets one
/// up in process: `webhooks` more lines of `[webhooks]`, `tables` more
/// tables.
fn node_toml(id: &str, url: &str, webhooks: &str, tables: &str) -> String {
    format!(
        "[node]\nid = \"{id}\"\n\n[storage]\npath = \"data\"\nbackend = \"postgres\"\n\n\
         [storage.postgres]\nportal_url = \"{url}\"\nmigosmtp_url = \"{url}\"\n\
         telnxo_url = \"{url}\"\nmax_connections = 8\n\n[delivery]\nenabled = false\n\n\
         [webhooks]\nallow_private_targets = true\n{webhooks}\n\n\
         [tracking]\nbase_url = \"https://t.rackwave.test\"\n\n[billing]\ncycle_secs = 0\n{tables}"
    )
}

/// One message of one recipient over SMTP: its final reply code (the
/// RCPT's when refused there).
async fn send_one(node: &TestServer, user: &str, password: &str, to: &str) -> u16 {
    let mut smtp = RawSmtp::login(node.smtp, user, password).await;
    smtp.cmd_expect("MAIL FROM:<app@example.test>", 250).await;
    let rcpt = smtp.cmd(&format!("RCPT TO:<{to}>")).await;
    if rcpt.code != 250 {
        return rcpt.code;
    }
    smtp.cmd_expect("DATA", 354).await;
    let data = rackwave_testkit::message("app@example.test", to, "race", "hello");
    smtp.send_raw(format!("{data}.\r\n").as_bytes()).await;
    let reply = smtp.reply().await.expect("a reply to the data");
    smtp.cmd("QUIT").await;
    reply.code
}

/// 20 sessions spread over both nodes race for an account's last 10
/// recipients: exactly 10 are accepted, whichever node took them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_accounts_last_recipients_go_exactly_once_across_nodes() {
    let Some((_pg, a, b)) = two_processes("").await else {
        return;
    };
    let ws = a.create_workspace("race", None).await;
    let acct = a.create_account_in(&ws, "racer", 15).await;
    for i in 0..5 {
        let node = if i % 2 == 0 { &a } else { &b };
        let code = send_one(node, &acct.username, &acct.password, "warm@example.net").await;
        assert_eq!(code, 250);
    }
    let racers = (0..20).map(|i| {
        let node = if i % 2 == 0 { &a } else { &b };
        let to = format!("r{i}@example.net");
        let acct = acct.clone();
        async move { send_one(node, &acct.username, &acct.password, &to).await }
    });
    let codes = futures::future::join_all(racers).await;
    let accepted = codes.iter().filter(|c| **c == 250).count();
    assert_eq!(accepted, 10, "{codes:?}");
    assert!(
        codes.iter().all(|c| *c == 250 || *c == 550),
        "refused as over quota, nothing else: {codes:?}"
    );
    // Each node lists the same 15, whichever took them (the shared log).
    let ids = |list: Vec<Value>| -> Vec<String> {
        list.iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (on_a, on_b) = (ids(a.messages(&ws).await), ids(b.messages(&ws).await));
    assert_eq!(on_a.len(), 15);
    assert_eq!(on_a, on_b);
}

/// The message log is the same from either node: a submission over SMTP
/// on node a (delivered there to a real sink) and one over HTTP on node b
/// are listed alike on both, newest first, with their filters; a's
/// message shows its delivery on b, once a has delivered it; its data is
/// served by the node holding it, and the other names that node; another
/// workspace's key sees none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_message_log_answers_the_same_from_either_node() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let url = pg.database("rackwave");
    let u = url.clone();
    let rig = rackwave_testkit::delivery::rig(
        vec![(61, rackwave_testkit::delivery::sink())],
        [61, rackwave_testkit::delivery::DOWN],
        move |c| on_postgres(c, &u, "node-a"),
    )
    .await;
    let a = &rig.ts;
    let b = rackwave_testkit::start_with(move |c| on_postgres(c, &url, "node-b")).await;
    let ws = rig.account.workspace_id.clone();
    let key = b.create_api_key(&ws, "migosmtp").await;

    let queue_a = rig
        .send(
            "app@example.test",
            &["Ann@example.test", "bob@example.test"],
            "from a",
        )
        .await;
    let mail = json!({"from": "app@example.test", "to": ["carol@example.test"],
                      "subject": "from b", "text": "hi", "tags": ["b-side"]});
    let (s, sent) = b
        .call(&key, "POST", "/migosmtp/v1/messages", Some(mail))
        .await;
    assert_eq!(s, 202, "{sent}");
    let id_b = sent["messages"][0]["id"].as_str().unwrap().to_string();

    // Node a delivers its two; node b, with delivery off, keeps carol's.
    let delivered = rig.wait(&queue_a, &["delivered"]).await;
    assert_eq!(delivered.len(), 2);
    let id_ann = delivered
        .iter()
        .find(|m| m["to"] == "Ann@example.test")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut listed = Value::Null;
    for _ in 0..300 {
        let (s, page) = b
            .call(
                &key,
                "GET",
                "/migosmtp/v1/messages?to=ann@EXAMPLE.test",
                None,
            )
            .await;
        assert_eq!(s, 200, "{page}");
        if page["messages"][0]["status"] == "delivered" {
            listed = page;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        listed["messages"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert_eq!(listed["messages"][0]["id"], id_ann.as_str());

    // The whole log, newest first, the same on both nodes.
    let all = |node: &TestServer| {
        let key = key.clone();
        let node = node.http.clone();
        async move {
            let (s, page) =
                rackwave_testkit::api(&node, &key, "GET", "/migosmtp/v1/messages", None).await;
            assert_eq!(s, 200, "{page}");
            page["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| (m["id"].as_str().unwrap().to_string(), m["status"].clone()))
                .collect::<Vec<_>>()
        }
    };
    // Each node waits for its own feed only: node a's last change may
    // reach the log a moment after b answers.
    let (mut on_a, mut on_b) = (all(a).await, all(&b).await);
    for _ in 0..100 {
        if on_a == on_b {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        (on_a, on_b) = (all(a).await, all(&b).await);
    }
    assert_eq!(on_a, on_b);
    assert_eq!(on_a.len(), 3);
    assert_eq!(on_a[0].0, id_b, "newest first: {on_a:?}");
    let (_, tagged) = a
        .call(&key, "GET", "/migosmtp/v1/messages?tag=b-side", None)
        .await;
    assert_eq!(tagged["messages"].as_array().unwrap().len(), 1, "{tagged}");
    let (_, queued) = a
        .call(&key, "GET", "/migosmtp/v1/messages?status=queued", None)
        .await;
    assert_eq!(queued["messages"][0]["id"], id_b.as_str(), "{queued}");
    let (_, by_queue) = b
        .get(&format!("/admin/v1/messages?queue_id={queue_a}"))
        .await;
    assert_eq!(
        by_queue["messages"].as_array().unwrap().len(),
        2,
        "{by_queue}"
    );

    // a's message on b, with its delivery attempt as a recorded it.
    let (s, m) = b
        .call(
            &key,
            "GET",
            &format!("/migosmtp/v1/messages/{id_ann}"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["status"], "delivered");
    let events: Vec<&str> = m["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.last(), Some(&"email.delivered"), "{m}");
    assert_eq!(m["attempts"][0]["event"], "email.delivered", "{m}");

    // Each message's data from the node holding it; the other names it.
    let (s, held) = a
        .call(
            &key,
            "GET",
            &format!("/migosmtp/v1/messages/{id_b}/raw"),
            None,
        )
        .await;
    assert_eq!(s, 404, "{held}");
    assert!(
        held["error"]["message"]
            .as_str()
            .unwrap()
            .contains("node-b"),
        "{held}"
    );
    let raw = reqwest::Client::new()
        .get(format!("{}/migosmtp/v1/messages/{id_b}/raw", b.http))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    assert!(raw.text().await.unwrap().contains("Subject: from b"));

    // Another workspace's key: nothing of it, from either node.
    let other = b.create_workspace("other", None).await;
    let other_key = a.create_api_key(&other, "migosmtp").await;
    for node in [a, &b] {
        for id in [&id_ann, &id_b] {
            let (s, _) = node
                .call(
                    &other_key,
                    "GET",
                    &format!("/migosmtp/v1/messages/{id}"),
                    None,
                )
                .await;
            assert_eq!(s, 404);
        }
        let (s, page) = node
            .call(&other_key, "GET", "/migosmtp/v1/messages", None)
            .await;
        assert_eq!(s, 200);
        assert_eq!(page["messages"], json!([]), "{page}");
        let (s, _) = node
            .call(&key, "GET", "/migosmtp/v1/messages?cursor=zz", None)
            .await;
        assert_eq!(s, 400);
    }
}

/// Messages sent through both nodes: each event reaches the receiver
/// once (by its id), whichever node's spool made it and whichever node's
/// emitter sent it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_event_reaches_a_webhook_once_from_two_nodes() {
    let Some((_pg, a, b)) = two_processes("").await else {
        return;
    };
    let rx = Receiver::start().await;
    let (_, key, _) = hooked(&a, &rx, "hooks", "hooks", json!(["*"])).await;
    for i in 0..20 {
        let node = if i % 2 == 0 { &a } else { &b };
        let mail = json!({"from": "app@example.test", "to": [format!("u{i}@example.net")],
                          "subject": "hi", "text": "hi"});
        let (s, v) = node
            .call(&key, "POST", "/migosmtp/v1/messages", Some(mail))
            .await;
        assert_eq!(s, 202, "{v}");
        // Each node's ids carry its own node number (a started first: 0).
        let id = v["messages"][0]["id"].as_str().unwrap();
        let bits = u64::from_str_radix(id.trim_start_matches("msg_"), 16).unwrap();
        assert_eq!((bits >> 12) & 0xff, i % 2, "{id} from node {}", i % 2);
    }
    // Every event in the shared log, as either node lists it.
    let events = wait_for_events(&a, &key, 20).await;
    let (_, from_b) = b
        .call(&key, "GET", "/migosmtp/v1/events?limit=100", None)
        .await;
    assert_eq!(from_b["events"].as_array().unwrap().len(), events.len());
    let got = rx
        .wait_for("hooks", events.len(), Duration::from_secs(30))
        .await;
    // Both emitters keep scanning: give a duplicate the time to show.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let got = rx.received("hooks").len().max(got.len());
    let ids: Vec<String> = rx
        .received("hooks")
        .iter()
        .map(|r| r.webhook_id.clone())
        .collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(got, events.len(), "one request per event");
    assert_eq!(unique.len(), events.len(), "no event twice: {ids:?}");
    let want: HashSet<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(unique.into_iter().cloned().collect::<HashSet<_>>(), want);
    assert!(rx.received("hooks").iter().all(|r| r.verified()));
}

/// A workspace (named `name`) with a MigoSMTP key and an endpoint at the
/// receiver's `path` for `types`, whose secret the receiver checks:
/// `(workspace, key, endpoint id)`.
async fn hooked(
    node: &TestServer,
    rx: &Receiver,
    name: &str,
    path: &str,
    types: Value,
) -> (String, String, String) {
    let ws = node.create_workspace(name, None).await;
    let key = node.create_api_key(&ws, "migosmtp").await;
    let ep = rx.endpoint(&node.http, &key, path, types).await;
    (ws, key, ep)
}

/// The workspace's events once at least `n` are in the log.
async fn wait_for_events(node: &TestServer, key: &str, n: usize) -> Vec<Value> {
    for _ in 0..300 {
        let (s, v) = node
            .call(key, "GET", "/migosmtp/v1/events?limit=100", None)
            .await;
        assert_eq!(s, 200, "{v}");
        let events = v["events"].as_array().unwrap().clone();
        if events.len() >= n {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("fewer than {n} events after 30 s");
}

/// A billing run asked of `node`.
async fn run(node: &TestServer) -> (u16, Value) {
    node.admin("POST", "/admin/v1/billing/run", Some(json!({})))
        .await
}

/// The billing cycle runs on one node at a time, also when an operator
/// asks for a run: the node holding its lease runs it, the other says so
/// (`409`) until that lease has run out on its clock, then takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_billing_run_happens_on_the_node_holding_the_lease() {
    let Some((_pg, a, b)) = two_nodes(|_| {}).await else {
        return;
    };
    let (s, report) = run(&a).await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(run(&a).await.0, 200, "its holder runs it again");
    let (s, refused) = run(&b).await;
    assert_eq!(s, 409, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another node"),
        "{refused}"
    );
    b.clock.advance_ms(59_000);
    assert_eq!(run(&b).await.0, 409, "the lease lasts a minute");
    b.clock.advance_ms(2_000);
    assert_eq!(run(&b).await.0, 200, "taken over once it ran out");
    assert_eq!(run(&a).await.0, 409, "and now node a waits");
}

/// A sign-on link handed out by one node and redeemed on the other is
/// used up for both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sign_on_token_works_on_one_node_only() {
    let Some((_pg, a, b)) = two_processes(MAIL_PLAN).await else {
        return;
    };
    let (token, sub) =
        rackwave_testkit::portal::trial_of(&a, "ada@example.test", "migosmtp", "mail").await;
    let (s, v) = rackwave_testkit::portal::portal(
        &a,
        "POST",
        "/portal/v1/sso",
        &token,
        Some(json!({"subscription_id": sub["id"]})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let on_a = v["redirect_url"].as_str().unwrap().to_string();
    let on_b = on_a.replace(&a.http, &b.http);
    assert_ne!(on_a, on_b);
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let first = browser.get(&on_b).send().await.unwrap();
    assert_eq!(first.status(), 303, "redeemed on node b");
    let again = browser.get(&on_a).send().await.unwrap();
    assert_eq!(again.status(), 403, "and refused on node a");
    assert!(again.text().await.unwrap().contains("used already"));
}

/// A workspace suspended on one node stops sending on the other too, a
/// moment later (each node reads the suspensions every 2 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_suspension_on_one_node_stops_sending_on_the_other() {
    let Some((_pg, a, b)) = two_processes(MAIL_PLAN).await else {
        return;
    };
    let (_, sub) =
        rackwave_testkit::portal::trial_of(&a, "ada@example.test", "migosmtp", "mail").await;
    let key = sub["api_key"].as_str().unwrap();
    let mail =
        json!({"from": "app@example.test", "to": ["u@example.net"], "subject": "hi", "text": "hi"});
    let (s, v) = b
        .call(key, "POST", "/migosmtp/v1/messages", Some(mail.clone()))
        .await;
    assert_eq!(s, 202, "{v}");
    let (s, v) = a
        .admin(
            "POST",
            &format!(
                "/admin/v1/subscriptions/{}/suspend",
                sub["id"].as_str().unwrap()
            ),
            Some(json!({"reason": "operator"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let mut answer = (0, Value::Null);
    for _ in 0..100 {
        answer = b
            .call(key, "POST", "/migosmtp/v1/messages", Some(mail.clone()))
            .await;
        if answer.0 == 403 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        (answer.0, &answer.1["error"]["code"]),
        (403, &json!("suspended")),
        "{}",
        answer.1
    );
}

/// A node that is SIGKILLed while its webhook attempt is in flight (a
/// real `rackwave serve` process on the system clock): the other node
/// makes the attempt once the lease has ended (on its clock), and not
/// before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_nodes_leased_deliveries_go_out_from_the_other_after_the_lease() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let url = pg.database("rackwave");
    let mut a = serve_node(&node_toml("node-a", &url, "timeout_secs = 30", "")).await;
    let http = a.http.clone();
    let ws = a.create_workspace("lease", None).await;
    let key = a.create_api_key(&ws, "migosmtp").await;
    let rx = Receiver::start().await;
    rx.set_default("slow", Behavior::Hang);
    let ep = rx
        .endpoint(&http, &key, "slow", json!(["email.queued"]))
        .await;

    // The lease node a takes ends 60 s (30 s timeout + 30 s) after it took
    // it, on the system clock: after `sent`, before `received`.
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let sent = now();
    let mail =
        json!({"from": "app@example.test", "to": ["u@example.net"], "subject": "hi", "text": "hi"});
    let (s, v) =
        rackwave_testkit::api(&http, &key, "POST", "/migosmtp/v1/messages", Some(mail)).await;
    assert_eq!(s, 202, "{v}");
    // Node a's attempt is in flight (the receiver holds it): SIGKILL.
    rx.wait_for("slow", 1, Duration::from_secs(20)).await;
    let received = now();
    let node_a = a.process.as_mut().expect("a process");
    node_a.kill().expect("SIGKILL");
    node_a.wait().unwrap();
    rx.set_default("slow", Behavior::ok());

    let b = rackwave_testkit::start_at(sent, move |c| {
        on_postgres(c, &url, "node-b");
        c.webhooks.timeout_secs = 30;
    })
    .await;
    // Within the lease: node b leaves it alone.
    b.clock.advance_ms(59_000);
    b.server.as_ref().unwrap().events.kick();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(rx.count("slow"), 1, "leased to the dead node still");
    // Past it: node b makes the attempt, and it is recorded.
    b.clock.set_ms(received + 61_000);
    b.server.as_ref().unwrap().events.kick();
    let got = rx.wait_for("slow", 2, Duration::from_secs(20)).await;
    assert_eq!(got[0].webhook_id, got[1].webhook_id, "the same event");
    assert!(got[1].verified());
    let mut state = String::new();
    for _ in 0..100 {
        let (_, d) = b
            .call(
                &key,
                "GET",
                &format!("/migosmtp/v1/webhooks/{ep}/deliveries"),
                None,
            )
            .await;
        state = d["deliveries"][0]["state"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if state == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, "succeeded");
}

/// PostgreSQL stops under load and starts again: meanwhile the nodes
/// answer with temporary failures (SMTP 4xx, HTTP 503), never a permanent
/// refusal and never an acceptance they cannot account for; afterwards
/// they accept again by themselves, and every accepted message's event
/// reaches the webhook receiver, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopping_under_load_fails_temporarily_then_everything_resumes() {
    let Some((pg, a, b)) = two_nodes(|_| {}).await else {
        return;
    };
    let rx = Receiver::start().await;
    let (ws, key, ep) = hooked(&a, &rx, "outage", "outage", json!(["email.queued"])).await;
    let acct = a.create_account_in(&ws, "steady", 100_000).await;
    let nodes = [&a, &b];
    let mut accepted = 0;
    let mut outcomes = Vec::new();
    for phase in ["before", "during", "after"] {
        match phase {
            "during" => pg.stop(),
            "after" => pg.restart(),
            _ => {}
        }
        for i in 0..12 {
            let node = nodes[i % 2];
            let to = format!("{phase}{i}@example.net");
            let code = if i % 4 < 2 {
                try_smtp(node, &acct.username, &acct.password, &to).await
            } else {
                let mail =
                    json!({"from": "app@example.test", "to": [to], "subject": "hi", "text": "hi"});
                node.call(&key, "POST", "/migosmtp/v1/messages", Some(mail))
                    .await
                    .0
            };
            if code == 250 || code == 202 {
                accepted += 1;
            }
            outcomes.push((phase, code));
        }
    }
    let of = |p: &str| -> Vec<u16> {
        outcomes
            .iter()
            .filter(|(phase, _)| *phase == p)
            .map(|(_, c)| *c)
            .collect()
    };
    let ok = |c: &u16| *c == 250 || *c == 202;
    assert!(of("before").iter().all(ok), "{outcomes:?}");
    assert!(of("after").iter().all(ok), "back by itself: {outcomes:?}");
    assert!(
        of("during")
            .iter()
            .all(|c| ok(c) || (400..500).contains(c) && *c != 401 && *c != 404 || *c == 503),
        "temporary failures only: {outcomes:?}"
    );
    assert!(
        of("during").iter().any(|c| !ok(c)),
        "the outage was felt: {outcomes:?}"
    );
    eprintln!("outcomes: {outcomes:?}");
    // Attempts the receiver answered during the outage are recorded once
    // the database is back (each node keeps retrying its record while it
    // holds the lease), and the messages sent after it are delivered: wait
    // until the receiver is quiet and every request it answered is
    // recorded...
    for _ in 0..100 {
        let heard = rx.count("outage");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let answered: HashSet<String> = rx
            .received("outage")
            .iter()
            .map(|r| r.webhook_id.clone())
            .collect();
        if rx.count("outage") == heard && succeeded(&a, &key, &ep).await >= answered.len() {
            break;
        }
    }
    // ... and one cut off before its request left its delivery leased: it
    // is due again when the lease ends (on the nodes' clocks).
    for node in nodes {
        node.clock.advance_ms(61_000);
        node.server.as_ref().unwrap().events.kick();
    }
    // Every accepted message's event, once each.
    let got = rx
        .wait_for("outage", accepted, Duration::from_secs(60))
        .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let ids: HashSet<String> = rx
        .received("outage")
        .iter()
        .map(|r| r.webhook_id.clone())
        .collect();
    assert_eq!(ids.len(), accepted, "{} requests", got.len());
    assert_eq!(rx.count("outage"), accepted, "none twice");
}

/// How many of an endpoint's deliveries have succeeded.
async fn succeeded(node: &TestServer, key: &str, endpoint: &str) -> usize {
    let path = format!("/migosmtp/v1/webhooks/{endpoint}/deliveries?state=succeeded&limit=100");
    let (s, v) = node.call(key, "GET", &path, None).await;
    assert_eq!(s, 200, "{v}");
    v["deliveries"].as_array().unwrap().len()
}

/// One message over SMTP, whatever step refuses it: the first code that
/// is not the step's success (0 when the connection fails).
async fn try_smtp(node: &TestServer, user: &str, password: &str, to: &str) -> u16 {
    let Ok(stream) = tokio::net::TcpStream::connect(node.smtp).await else {
        return 0;
    };
    let mut smtp = RawSmtp::new(stream);
    let Some(greeting) = smtp.reply().await else {
        return 0;
    };
    if greeting.code != 220 {
        return greeting.code;
    }
    let steps = [
        ("EHLO client.example.test".to_string(), 250),
        (
            format!("AUTH PLAIN {}", rackwave_testkit::plain(user, password)),
            235,
        ),
        ("MAIL FROM:<app@example.test>".to_string(), 250),
        (format!("RCPT TO:<{to}>"), 250),
        ("DATA".to_string(), 354),
    ];
    for (line, want) in steps {
        let reply = smtp.cmd(&line).await;
        if reply.code != want {
            return reply.code;
        }
    }
    let data = rackwave_testkit::message("app@example.test", to, "hi", "hello");
    smtp.send_raw(format!("{data}.\r\n").as_bytes()).await;
    smtp.reply().await.map_or(0, |r| r.code)
}
