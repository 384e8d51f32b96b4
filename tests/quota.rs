//! Daily quotas under concurrency and across UTC midnight, over real SMTP.

use rackwave_testkit::*;

const MS_PER_DAY: i64 = 86_400_000;

/// One session: MAIL, one RCPT, DATA. Returns the RCPT reply code and, if
/// accepted, the final reply code.
async fn try_send(ts: &TestServer, account: &Account, n: usize) -> (u16, Option<u16>) {
    let mut s = ts.authed(account).await;
    s.cmd_expect("MAIL FROM:<app@sender.test>", 250).await;
    let rcpt = s.cmd(&format!("RCPT TO:<user{n}@dest.test>")).await;
    if rcpt.code != 250 {
        assert_eq!(rcpt.text(), "5.4.5 Daily sending quota exceeded");
        return (rcpt.code, None);
    }
    s.cmd_expect("DATA", 354).await;
    let data = message("app@sender.test", "x@dest.test", "race", "hello");
    s.send_raw(format!("{data}.\r\n").as_bytes()).await;
    let done = s.reply().await.unwrap();
    s.cmd_expect("QUIT", 221).await;
    (rcpt.code, Some(done.code))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sessions_race_for_the_last_ten() {
    let ts = start().await;
    let account = ts.create_account("racer", 30).await;
    // Spend 20 of 30 in one message.
    let mut s = ts.authed(&account).await;
    let rcpts: Vec<String> = (0..20).map(|i| format!("early{i}@dest.test")).collect();
    let rcpt_refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let r = s
        .send_mail(
            "app@sender.test",
            &rcpt_refs,
            &message("app@sender.test", "x@dest.test", "first", "hi"),
        )
        .await;
    assert_eq!(r.code, 250, "{r:?}");

    let ts = std::sync::Arc::new(ts);
    let mut tasks = Vec::new();
    for n in 0..20 {
        let ts = ts.clone();
        let account = account.clone();
        tasks.push(tokio::spawn(
            async move { try_send(&ts, &account, n).await },
        ));
    }
    let mut accepted = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            (250, Some(250)) => accepted += 1,
            (550, None) => refused += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(accepted, 10, "exactly the last ten recipients are accepted");
    assert_eq!(refused, 10);
    assert_eq!(ts.messages(&account.workspace_id).await.len(), 30);

    // Spent for today…
    assert_eq!(try_send(&ts, &account, 99).await, (550, None));
    // …and fresh after midnight UTC.
    let now = ts.clock.now_ms();
    let next_midnight = (now / MS_PER_DAY + 1) * MS_PER_DAY;
    ts.clock.set_ms(next_midnight - 1);
    assert_eq!(try_send(&ts, &account, 100).await, (550, None));
    ts.clock.set_ms(next_midnight);
    assert_eq!(try_send(&ts, &account, 101).await, (250, Some(250)));
}

#[tokio::test]
async fn quota_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let mut ts = start_with(|c| c.storage.path = path.join("data")).await;
    let account = ts.create_account("restarter", 2).await;
    assert_eq!(try_send(&ts, &account, 1).await, (250, Some(250)));
    assert_eq!(try_send(&ts, &account, 2).await, (250, Some(250)));
    ts.stop().await;
    drop(ts);

    let path2 = dir.path().to_path_buf();
    let ts = start_with(|c| c.storage.path = path2.join("data")).await;
    ts.clock.set_ms(START_MS + 1000);
    assert_eq!(try_send(&ts, &account, 3).await, (550, None));
}

#[tokio::test]
async fn workspace_cap_spans_its_accounts() {
    let ts = start().await;
    let ws = ts.create_workspace("capped", Some(3)).await;
    let a = ts.create_account_in(&ws, "cap-a", 100).await;
    let b = ts.create_account_in(&ws, "cap-b", 100).await;
    assert_eq!(try_send(&ts, &a, 1).await, (250, Some(250)));
    assert_eq!(try_send(&ts, &b, 2).await, (250, Some(250)));
    assert_eq!(try_send(&ts, &a, 3).await, (250, Some(250)));
    assert_eq!(try_send(&ts, &b, 4).await, (550, None));
    assert_eq!(try_send(&ts, &a, 5).await, (550, None));
    // Another workspace is not affected.
    let other = ts.create_account("uncapped", 100).await;
    assert_eq!(try_send(&ts, &other, 6).await, (250, Some(250)));
}

#[tokio::test]
async fn refused_message_gives_its_reservation_back() {
    let ts = start_with(|c| c.smtp.max_message_size = 2048).await;
    let account = ts.create_account("giveback", 1).await;
    let mut s = ts.authed(&account).await;
    let lines: Vec<String> = (0..3).map(|_| "x".repeat(900)).collect();
    let big = message("app@sender.test", "x@dest.test", "big", &lines.join("\r\n"));
    let r = s.send_mail("app@sender.test", &["x@dest.test"], &big).await;
    assert_eq!(r.code, 552, "{r:?}");
    assert!(r.text().starts_with("5.3.4"), "{r:?}");
    // The unit reserved at RCPT is free again.
    assert_eq!(try_send(&ts, &account, 1).await, (250, Some(250)));
}
