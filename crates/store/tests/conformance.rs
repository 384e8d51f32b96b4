//! The conformance suite of the storage traits: what every backend must do,
//! written against `Store` and `Txn` only. Each backend runs all of it (today:
//! sled, on a real database in a temporary directory); a new backend adds one
//! `#[tokio::test]` that opens it and calls [`conformance`].

use std::time::Duration;

use rackwave_core::event::{EmailEvent, EventType, MessageRef, Ping};
use rackwave_core::{Platform, Product, Timestamp};
use rackwave_store::*;

const T0: i64 = 1_780_825_140_000;

/// Every check of the suite, on a fresh, empty store.
async fn conformance(store: &Store) {
    workspaces_and_credentials(store).await;
    transactions(store).await;
    event_log(store).await;
    outbox(store).await;
    idempotency(store).await;
    daily_counts(store).await;
    suppressions(store).await;
    clients(store).await;
    invoices(store).await;
    long_event_pages(store).await;
    telnxo(store).await;
    coordination(store).await;
    hostile_keys(store).await;
    event_batches(store).await;
    lookups_together(store).await;
    message_log(store).await;
}

/// Many suppression lookups at once (a busy node's recipients): each gets
/// its own workspace's answer, never another's.
async fn lookups_together(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    for i in (0..60).step_by(3) {
        let s = suppression("ws_many", &format!("r{i}@x.org"), SuppressionReason::Manual);
        tx.put_suppression(&s).await.unwrap();
    }
    tx.commit().await.unwrap();
    let lookups: Vec<_> = (0..60)
        .flat_map(|i| ["ws_many", "ws_other"].map(move |ws| (ws, i)))
        .map(|(ws, i)| async move {
            let found = store.suppression(ws, &format!("r{i}@x.org")).await.unwrap();
            (ws, i, found.map(|s| (s.workspace_id, s.address)))
        })
        .collect();
    for (ws, i, found) in futures::future::join_all(lookups).await {
        let want =
            (ws == "ws_many" && i % 3 == 0).then(|| ("ws_many".to_string(), format!("r{i}@x.org")));
        assert_eq!(found, want, "{ws} r{i}");
    }
}

/// A batch of events of several workspaces appended at once: in order,
/// each in its workspace's log and daily counts, as one by one.
async fn event_batches(store: &Store) {
    let batch = [
        email_event("ws_batch1", T0, "m1", EmailEvent::Queued),
        email_event("ws_batch2", T0 + 1, "m2", EmailEvent::Queued),
        email_event("ws_batch1", T0 + 2, "m1", EmailEvent::Queued),
    ];
    let mut tx = store.begin().await.unwrap();
    let stored = tx.append_events(&batch).await.unwrap();
    assert!(tx.append_events(&[]).await.unwrap().is_empty());
    tx.commit().await.unwrap();
    assert_eq!(stored.len(), 3);
    assert!(stored.windows(2).all(|w| w[0].seq < w[1].seq), "in order");
    for (s, e) in stored.iter().zip(&batch) {
        assert_eq!(
            (s.id.as_str(), s.workspace_id.as_str()),
            (e.id.as_str(), e.workspace_id.as_str())
        );
        let again = store.event_by_id(&e.id).await.unwrap().unwrap();
        assert_eq!(again.body(), s.body());
    }
    let q = EventQuery::default();
    assert_eq!(count(store, "ws_batch1", &q, 10).await, 2);
    assert_eq!(count(store, "ws_batch2", &q, 10).await, 1);
    let day = T0.div_euclid(86_400_000);
    let counts = store
        .event_counts("ws_batch1", day, day, None)
        .await
        .unwrap();
    assert_eq!(counts, [(day, "email.queued".to_string(), 2)]);
}

/// Lookups by keys no write could have stored (NUL, empty) find nothing,
/// and leave the transaction they ran in usable.
async fn hostile_keys(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    for key in ["a\0b", "", "\0"] {
        assert!(tx.smtp_account(key).await.unwrap().is_none());
        assert!(tx.api_key(key).await.unwrap().is_none());
        assert!(tx.sender_domain(key).await.unwrap().is_none());
        assert!(tx.client_by_email(key).await.unwrap().is_none());
        assert!(tx.event_by_id(key).await.unwrap().is_none());
        assert!(tx.telnxo_number(key).await.unwrap().is_none());
        assert!(tx.sso_token(key).await.unwrap().is_none());
        assert!(!tx.delete_smtp_account(key).await.unwrap());
    }
    // A listing by such a workspace is empty (sled) or refused as invalid
    // (PostgreSQL cannot scope to it); either way nothing else changes.
    match tx.smtp_accounts_of("ws\0x").await {
        Ok(found) => assert!(found.is_empty()),
        Err(e) => assert!(matches!(e, StoreError::Invalid(_)), "{e}"),
    }
    tx.insert_workspace(&workspace("ws_after_hostile"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(store.workspace("ws_after_hostile").await.unwrap().is_some());
}

/// A NUL inside a record (not in `conformance`: what sled keeps, the copy
/// into PostgreSQL refuses, as it says): kept when the backend `keeps`
/// one, else refused as invalid.
async fn nul_in_records(store: &Store, keeps: bool) {
    // A NUL inside a record (a name sent as "\u0000"): kept as given
    // (sled), or refused as invalid (PostgreSQL's jsonb cannot hold it),
    // never a failure to try again later; the store goes on either way.
    let named = Workspace {
        name: "nul\0name".into(),
        ..workspace("ws_nul_name")
    };
    let mut tx = store.begin().await.unwrap();
    let put = tx.insert_workspace(&named).await;
    assert_eq!(put.is_ok(), keeps, "{put:?}");
    match put {
        Ok(()) => {
            tx.commit().await.unwrap();
            assert_eq!(store.workspace("ws_nul_name").await.unwrap(), Some(named));
        }
        Err(e) => {
            assert!(matches!(e, StoreError::Invalid(_)), "{e}");
            drop(tx);
            assert!(store.workspace("ws_nul_name").await.unwrap().is_none());
        }
    }
    let mut tx = store.begin().await.unwrap();
    tx.insert_workspace(&workspace("ws_after_nul"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(store.workspace("ws_after_nul").await.unwrap().is_some());
}

/// What nodes agree on through the store: webhook deliveries leased to one
/// taker at a time (due again when the lease ends), named leases held by
/// one holder, quota units never handed out past the cap, also when the
/// takers race.
async fn coordination(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    tx.put_endpoint(&endpoint("ep_lease", "ws_o", T0))
        .await
        .unwrap();
    for (id, due) in [("dl_3", T0 + 30), ("dl_1", T0 + 10), ("dl_2", T0 + 20)] {
        tx.insert_delivery(&mut delivery(
            id,
            "ep_lease",
            Some(due),
            DeliveryState::Pending,
        ))
        .await
        .unwrap();
    }
    tx.insert_delivery(&mut delivery(
        "dl_later",
        "ep_lease",
        Some(T0 + 5_000),
        DeliveryState::Pending,
    ))
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let lease = |now: i64, until: i64, limit: usize| async move {
        let mut tx = store.begin().await.unwrap();
        let got = tx
            .lease_deliveries("ep_lease", "node-a", now, until, limit)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        got.into_iter()
            .map(|d| (d.id, d.due_at_ms))
            .collect::<Vec<_>>()
    };
    let until = T0 + 1_000;
    assert_eq!(
        lease(T0 + 100, until, 2).await,
        [
            ("dl_1".to_string(), Some(until)),
            ("dl_2".to_string(), Some(until))
        ],
        "oldest due first, carrying the lease's end"
    );
    assert_eq!(
        store.delivery("dl_1").await.unwrap().unwrap().due_at_ms,
        Some(until)
    );
    assert_eq!(
        lease(T0 + 100, until, 10).await,
        [("dl_3".to_string(), Some(until))]
    );
    assert!(
        lease(T0 + 999, until + 1, 10).await.is_empty(),
        "leased until then"
    );
    // An attempt recorded settles one; the others are due again at the end.
    let mut settled = store.delivery("dl_2").await.unwrap().unwrap();
    settled.due_at_ms = None;
    settled.state = DeliveryState::Succeeded;
    let mut tx = store.begin().await.unwrap();
    tx.put_delivery(&settled).await.unwrap();
    tx.commit().await.unwrap();
    let again: Vec<String> = lease(until, until + 1_000, 10)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(again, ["dl_1", "dl_3"]);
    // Takers racing for the same due deliveries each get different ones.
    let mut tx = store.begin().await.unwrap();
    for i in 0..20 {
        tx.insert_delivery(&mut delivery(
            &format!("dl_race{i:02}"),
            "ep_lease",
            Some(T0),
            DeliveryState::Pending,
        ))
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let racers: Vec<_> = (0..8).map(|_| lease(T0 + 1, T0 + 900, 3)).collect();
    let mut taken: Vec<String> = futures::future::join_all(racers)
        .await
        .into_iter()
        .flatten()
        .map(|(id, _)| id)
        .collect();
    let n = taken.len();
    taken.sort();
    taken.dedup();
    assert_eq!((n, taken.len()), (20, 20), "each one to one taker");

    // A node starting again takes its own leases back at once; another
    // node's stay. (Node a holds dl_1, dl_3 and the 20 raced ones, whose
    // leases ended at T0 + 900: node b takes the oldest of those first.)
    let mut tx = store.begin().await.unwrap();
    let theirs = tx
        .lease_deliveries("ep_lease", "node-b", T0 + 5_000, T0 + 9_000, 1)
        .await
        .unwrap();
    assert!(theirs[0].id.starts_with("dl_race"), "{theirs:?}");
    assert_eq!(
        tx.release_leases("node-a", T0 + 2_000).await.unwrap(),
        2 + 19
    );
    tx.commit().await.unwrap();
    let back = store.delivery("dl_1").await.unwrap().unwrap();
    assert_eq!((back.due_at_ms, back.leased_by), (Some(T0 + 2_000), None));
    let kept = store.delivery(&theirs[0].id).await.unwrap().unwrap();
    assert_eq!(kept.leased_by.as_deref(), Some("node-b"));
    assert_eq!(kept.due_at_ms, Some(T0 + 9_000));

    // Named leases.
    assert!(claim(store, "billing", "node-a", T0, T0 + 60_000).await);
    assert!(
        !claim(store, "billing", "node-b", T0 + 1, T0 + 60_001).await,
        "held"
    );
    assert!(
        claim(store, "billing", "node-a", T0 + 30_000, T0 + 90_000).await,
        "renewed"
    );
    assert!(!claim(store, "billing", "node-b", T0 + 89_999, T0 + 150_000).await);
    assert!(
        claim(store, "billing", "node-b", T0 + 90_000, T0 + 150_000).await,
        "ended, taken over"
    );
    assert!(
        claim(store, "other", "node-a", T0, T0 + 1).await,
        "leases are by name"
    );

    // Quota claims: blocks until the cap, then nothing.
    let mut got = Vec::new();
    for want in [4, 4, 4, 1] {
        got.push(quota(store, "acct:a", 20_000, 10, want).await);
    }
    assert_eq!(got, [(4, 6), (4, 2), (2, 0), (0, 0)]);
    assert_eq!(
        quota(store, "acct:a", 20_001, 10, 3).await,
        (3, 7),
        "a new day"
    );
    assert_eq!(
        quota(store, "acct:b", 20_000, 10, 3).await,
        (3, 7),
        "by counter"
    );
    assert_eq!(
        quota(store, "acct:c", 20_000, 0, 3).await,
        (0, 0),
        "a cap of 0"
    );
    assert_eq!(
        quota(store, "acct:a", 20_001, 12, 1).await,
        (1, 8),
        "a cap raised"
    );
    assert_eq!(
        quota(store, "acct:a", 20_001, 2, 1).await,
        (0, 0),
        "a cap lowered"
    );
    // Racing one unit at a time for the last 10: exactly 10 granted.
    assert_eq!(quota(store, "acct:race", 20_000, 15, 5).await, (5, 10));
    let racers: Vec<_> = (0..25)
        .map(|_| quota(store, "acct:race", 20_000, 15, 1))
        .collect();
    let granted: u64 = futures::future::join_all(racers)
        .await
        .into_iter()
        .map(|(taken, _)| taken)
        .sum();
    assert_eq!(granted, 10);
}

async fn claim(store: &Store, name: &str, holder: &str, now: i64, until: i64) -> bool {
    let mut tx = store.begin().await.unwrap();
    let held = tx.claim_lease(name, holder, now, until).await.unwrap();
    tx.commit().await.unwrap();
    held
}

async fn quota(store: &Store, counter: &str, day: i64, cap: u64, want: u64) -> (u64, u64) {
    let mut tx = store.begin().await.unwrap();
    let n = tx.claim_quota(counter, day, cap, want).await.unwrap();
    tx.commit().await.unwrap();
    n
}

fn sms(id: &str, ws: &str, created: i64, due: Option<i64>) -> TelnxoMessage {
    TelnxoMessage {
        id: id.into(),
        workspace_id: ws.into(),
        channel: Channel::Sms,
        direction: Direction::Outbound,
        from: "+14155550100".into(),
        to: "+919876543210".into(),
        body: "hello".into(),
        encoding: Some("gsm7".into()),
        parts: 1,
        whatsapp: None,
        status: CommStatus::Queued,
        attempts: 0,
        due_at_ms: due,
        expires_at_ms: created + 86_400_000,
        carrier_ids: Vec::new(),
        receipts: Vec::new(),
        error: None,
        history: Vec::new(),
        created_at_ms: created,
    }
}

/// Telnxo's records: numbers owned by one workspace, messages whose queue
/// entry follows their due time, carrier ids, listings newest first with
/// cursors, usage counters, the WhatsApp window, a workspace's
/// subscription.
async fn telnxo(store: &Store) {
    let number = |n: &str, ws: &str| TelnxoNumber {
        number: n.into(),
        workspace_id: ws.into(),
        channels: vec![Channel::Sms, Channel::Voice],
        created_at_ms: T0,
    };
    let mut tx = store.begin().await.unwrap();
    tx.put_telnxo_number(&number("+14155550100", "ws_t1"))
        .await
        .unwrap();
    tx.put_telnxo_number(&number("RACKWAVE", "ws_t1"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(
        tx.put_telnxo_number(&number("+14155550100", "ws_t2")).await,
        Err(StoreError::Conflict(_))
    ));
    drop(tx);
    assert_eq!(store.telnxo_numbers_of("ws_t1").await.unwrap().len(), 2);
    assert!(store.telnxo_numbers_of("ws_t2").await.unwrap().is_empty());

    // The queue follows due times; ids come earliest first.
    let mut tx = store.begin().await.unwrap();
    for (i, due) in [(1, Some(T0 + 500)), (2, Some(T0 + 100)), (3, None)] {
        tx.put_telnxo_message(&sms(&format!("msg_{i}"), "ws_t1", T0 + i, due))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(
        store.telnxo_due(Channel::Sms, T0 + 1000, 10).await.unwrap(),
        vec!["msg_2".to_string(), "msg_1".to_string()]
    );
    assert_eq!(
        store.telnxo_due(Channel::Sms, T0 + 200, 10).await.unwrap(),
        vec!["msg_2".to_string()]
    );
    assert!(store
        .telnxo_due(Channel::Whatsapp, T0 + 1000, 10)
        .await
        .unwrap()
        .is_empty());
    let mut sent = store.telnxo_message("msg_2").await.unwrap().unwrap();
    sent.due_at_ms = None;
    sent.status = CommStatus::Sent;
    let mut tx = store.begin().await.unwrap();
    tx.put_telnxo_message(&sent).await.unwrap();
    tx.put_carrier_id(Channel::Sms, "1A2B3C", "msg_2", 0)
        .await
        .unwrap();
    tx.put_carrier_id(Channel::Sms, "1715004", "msg_2", 1)
        .await
        .unwrap();
    tx.put_carrier_id(Channel::Whatsapp, "=wamid.HBgM", "msg_3", 0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Every carrier id, by channel and id (bytewise), in pages.
    let carrier =
        |channel, id: &str, msg: &str, part| (channel, id.to_string(), msg.to_string(), part);
    assert_eq!(
        store.carrier_ids(None, 2).await.unwrap(),
        [
            carrier(Channel::Sms, "1715004", "msg_2", 1),
            carrier(Channel::Sms, "1A2B3C", "msg_2", 0)
        ]
    );
    assert_eq!(
        store
            .carrier_ids(Some((Channel::Sms, "1A2B3C".into())), 10)
            .await
            .unwrap(),
        [carrier(Channel::Whatsapp, "=wamid.HBgM", "msg_3", 0)]
    );
    assert_eq!(
        store.telnxo_due(Channel::Sms, T0 + 1000, 10).await.unwrap(),
        vec!["msg_1".to_string()]
    );
    assert_eq!(
        store
            .telnxo_by_carrier_id(Channel::Sms, "1A2B3C")
            .await
            .unwrap(),
        Some(("msg_2".to_string(), 0))
    );
    assert_eq!(
        store
            .telnxo_by_carrier_id(Channel::Sms, "1a2b3c")
            .await
            .unwrap(),
        None,
        "exactly as given: the service normalizes SMS ids, wamids are case-sensitive"
    );
    assert_eq!(
        store
            .telnxo_by_carrier_id(Channel::Sms, "1715004")
            .await
            .unwrap(),
        Some(("msg_2".to_string(), 1))
    );
    assert_eq!(
        store
            .telnxo_by_carrier_id(Channel::Whatsapp, "1A2B3C")
            .await
            .unwrap(),
        None
    );
    // A message never changes workspace.
    let mut moved = sent.clone();
    moved.workspace_id = "ws_t2".into();
    let mut tx = store.begin().await.unwrap();
    assert!(tx.put_telnxo_message(&moved).await.is_err());
    drop(tx);

    // Listings: newest first, one channel or all, pages with cursors, each
    // workspace its own.
    let page = store
        .telnxo_messages_of("ws_t1", None, None, 2)
        .await
        .unwrap();
    let ids: Vec<_> = page.items.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["msg_3", "msg_2"]);
    let rest = store
        .telnxo_messages_of("ws_t1", None, page.next_cursor.as_deref(), 10)
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].id, "msg_1");
    assert!(rest.next_cursor.is_none());
    assert!(store
        .telnxo_messages_of("ws_t1", Some(Channel::Whatsapp), None, 10)
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(store
        .telnxo_messages_of("ws_t2", None, None, 10)
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(matches!(
        store
            .telnxo_messages_of("ws_t1", None, Some("not-a-cursor"), 10)
            .await,
        Err(StoreError::Invalid(_))
    ));

    // Usage counters and the WhatsApp window, per workspace.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.add_telnxo_usage("ws_t1", "day:1", 2).await.unwrap(), 2);
    assert_eq!(tx.add_telnxo_usage("ws_t1", "day:1", 3).await.unwrap(), 5);
    tx.set_whatsapp_window("ws_t1", "+919876543210", T0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.telnxo_usage("ws_t1", "day:1").await.unwrap(), 5);
    assert_eq!(store.telnxo_usage("ws_t2", "day:1").await.unwrap(), 0);
    let mut tx = store.begin().await.unwrap();
    tx.add_telnxo_usage("ws_t1", "sms:1780825140000", 9)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store.telnxo_usage_of("ws_t1").await.unwrap(),
        [
            ("day:1".to_string(), 5),
            ("sms:1780825140000".to_string(), 9)
        ]
    );
    assert!(store.telnxo_usage_of("ws_t2").await.unwrap().is_empty());
    assert_eq!(
        store.whatsapp_windows_of("ws_t1").await.unwrap(),
        [("+919876543210".to_string(), T0)]
    );
    assert!(store.whatsapp_windows_of("ws_t2").await.unwrap().is_empty());
    assert_eq!(
        store
            .whatsapp_window("ws_t1", "+919876543210")
            .await
            .unwrap(),
        Some(T0)
    );
    assert_eq!(
        store
            .whatsapp_window("ws_t2", "+919876543210")
            .await
            .unwrap(),
        None
    );

    // Expired sign-on tokens and platform sessions go with expired logins.
    let mut tx = store.begin().await.unwrap();
    for (digest, expires) in [("sso-old", T0 - 1), ("sso-live", T0 + 300_000)] {
        tx.put_sso_token(&SsoToken {
            digest: digest.into(),
            client_id: "cus_1".into(),
            workspace_id: "ws_t1".into(),
            platform: "migosmtp".into(),
            created_at_ms: T0 - 300_000,
            expires_at_ms: expires,
            used_at_ms: None,
        })
        .await
        .unwrap();
        tx.put_platform_session(&PlatformSession {
            digest: format!("ps-{digest}"),
            platform: "migosmtp".into(),
            workspace_id: "ws_t1".into(),
            client_id: "cus_1".into(),
            expires_at_ms: expires,
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let (pruned, _) = tx.prune_client_tokens(T0, 1000).await.unwrap();
    tx.commit().await.unwrap();
    assert!(pruned >= 2, "{pruned}");
    assert!(store.sso_token("sso-old").await.unwrap().is_none());
    assert!(store
        .platform_session("ps-sso-old")
        .await
        .unwrap()
        .is_none());
    assert!(store.sso_token("sso-live").await.unwrap().is_some());
    assert!(store
        .platform_session("ps-sso-live")
        .await
        .unwrap()
        .is_some());

    // A number taken back is gone from its workspace.
    let mut tx = store.begin().await.unwrap();
    assert!(tx.delete_telnxo_number("RACKWAVE").await.unwrap());
    assert!(!tx.delete_telnxo_number("RACKWAVE").await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(store.telnxo_numbers_of("ws_t1").await.unwrap().len(), 1);
    assert!(store.telnxo_number("RACKWAVE").await.unwrap().is_none());
}

fn client(id: &str, email: &str) -> Client {
    Client {
        id: id.into(),
        email: email.into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        name: "Ada Lovelace".into(),
        company: Some("Analytical Engines".into()),
        address: "1 Engine Road, Mumbai".into(),
        state_code: "27".into(),
        gstin: Some("27AAPFU0939F1ZV".into()),
        created_at_ms: 1_780_825_140_000,
        credit_paise: 0,
        contacts: Vec::new(),
        session_epoch: 0,
        reset_requested_at_ms: None,
    }
}

fn invoice(id: &str, number: &str, client: &str, issued: i64) -> Invoice {
    let party = Party {
        name: "Ada".into(),
        address: "1 Engine Road".into(),
        state_code: "27".into(),
        gstin: None,
    };
    Invoice {
        id: id.into(),
        number: number.into(),
        client_id: client.into(),
        subscription_id: Some("sub_a".into()),
        kind: InvoiceKind::Renewal,
        status: InvoiceStatus::Open,
        lines: vec![InvoiceLine {
            description: "Mail".into(),
            sac: "998315".into(),
            period_start_ms: issued,
            period_end_ms: issued + 10,
            amount_paise: 100,
        }],
        subtotal_paise: 100,
        cgst_paise: 9,
        sgst_paise: 9,
        igst_paise: 0,
        gst_rate_bp: 1800,
        total_paise: 118,
        credit_applied_paise: 0,
        paid_paise: 0,
        credited_paise: 0,
        seller: party.clone(),
        buyer: party,
        place_of_supply: "27".into(),
        issued_at_ms: issued,
        due_at_ms: issued + 100,
        overdue_since_ms: None,
        paid_at_ms: None,
        reminded: false,
        next_action_ms: Some(issued + 50),
    }
}

/// Invoices (unique by id and by number, also against credit notes),
/// listed per client newest first and all by id; the dunning index
/// follows `next_action_ms`; payments unique by reference; credit notes
/// per invoice; the notice queue in order.
async fn invoices(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    tx.insert_invoice(&invoice("inv_a", "RW/26-27/00001", "cus_1", 10))
        .await
        .unwrap();
    tx.insert_invoice(&invoice("inv_b", "RW/26-27/00002", "cus_1", 20))
        .await
        .unwrap();
    tx.insert_invoice(&invoice("inv_c", "RW/26-27/00003", "cus_2", 30))
        .await
        .unwrap();
    for taken in [
        invoice("inv_d", "RW/26-27/00001", "cus_1", 1),
        invoice("inv_a", "RW/26-27/00009", "cus_1", 1),
    ] {
        assert!(matches!(
            tx.insert_invoice(&taken).await,
            Err(StoreError::Conflict(_))
        ));
    }
    // Only an inserted invoice is put.
    assert!(tx
        .put_invoice(&invoice("inv_z", "RW/26-27/00099", "cus_1", 1))
        .await
        .is_err());
    // Its number and client never change.
    assert!(tx
        .put_invoice(&invoice("inv_a", "RW/26-27/00005", "cus_1", 10))
        .await
        .is_err());
    tx.commit().await.unwrap();
    let numbers = |v: Vec<Invoice>| v.into_iter().map(|i| i.number).collect::<Vec<_>>();
    assert_eq!(
        numbers(store.invoices_of("cus_1").await.unwrap()),
        ["RW/26-27/00002", "RW/26-27/00001"]
    );
    let page = store.invoices(None, 2).await.unwrap();
    assert_eq!(numbers(page.items), ["RW/26-27/00001", "RW/26-27/00002"]);
    let rest = store
        .invoices(page.next_cursor.as_deref(), 2)
        .await
        .unwrap();
    assert_eq!(numbers(rest.items), ["RW/26-27/00003"]);
    assert_eq!(rest.next_cursor, None);
    // Dunning: due by a bound, after a cursor; a settled one leaves.
    assert_eq!(
        store.invoices_due(70, None, 10).await.unwrap(),
        [(60, "inv_a".to_string()), (70, "inv_b".to_string())]
    );
    assert_eq!(
        store
            .invoices_due(100, Some((60, "inv_a".into())), 10)
            .await
            .unwrap(),
        [(70, "inv_b".to_string()), (80, "inv_c".to_string())]
    );
    let mut tx = store.begin().await.unwrap();
    let paid = Invoice {
        status: InvoiceStatus::Paid,
        next_action_ms: None,
        ..invoice("inv_a", "RW/26-27/00001", "cus_1", 10)
    };
    tx.put_invoice(&paid).await.unwrap();
    let later = Invoice {
        next_action_ms: Some(500),
        ..invoice("inv_b", "RW/26-27/00002", "cus_1", 20)
    };
    tx.put_invoice(&later).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store.invoices_due(1000, None, 10).await.unwrap(),
        [(80, "inv_c".to_string()), (500, "inv_b".to_string())]
    );
    assert_eq!(store.invoice("inv_a").await.unwrap(), Some(paid));

    // Payments: a reference once, whatever the invoice.
    let payment = |id: &str, invoice: &str, reference: &str, at: i64| Payment {
        id: id.into(),
        invoice_id: invoice.into(),
        client_id: "cus_1".into(),
        amount_paise: 50,
        method: "operator".into(),
        reference: reference.into(),
        received_at_ms: at,
    };
    let mut tx = store.begin().await.unwrap();
    tx.insert_payment(&payment("pay_2", "inv_b", "UTR-2", 2))
        .await
        .unwrap();
    tx.insert_payment(&payment("pay_1", "inv_b", "UTR-1", 1))
        .await
        .unwrap();
    assert!(matches!(
        tx.insert_payment(&payment("pay_3", "inv_c", "UTR-1", 3))
            .await,
        Err(StoreError::Conflict(_))
    ));
    // Credit notes share the numbers' uniqueness with invoices.
    let note = |id: &str, number: &str| CreditNote {
        id: id.into(),
        number: number.into(),
        invoice_id: "inv_b".into(),
        client_id: "cus_1".into(),
        subtotal_paise: 10,
        cgst_paise: 1,
        sgst_paise: 1,
        igst_paise: 0,
        total_paise: 12,
        reason: "goodwill".into(),
        issued_at_ms: 5,
    };
    tx.insert_credit_note(&note("cn_1", "CN/26-27/00001"))
        .await
        .unwrap();
    assert!(matches!(
        tx.insert_credit_note(&note("cn_2", "RW/26-27/00002")).await,
        Err(StoreError::Conflict(_))
    ));
    tx.commit().await.unwrap();
    let refs: Vec<String> = store
        .payments_of("inv_b")
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.reference)
        .collect();
    assert_eq!(refs, ["UTR-1", "UTR-2"]);
    assert_eq!(
        store
            .payment_by_reference("UTR-2")
            .await
            .unwrap()
            .map(|p| p.id),
        Some("pay_2".into())
    );
    assert_eq!(store.payment_by_reference("UTR-9").await.unwrap(), None);
    assert_eq!(store.credit_notes_of("inv_b").await.unwrap().len(), 1);
    assert!(store.credit_notes_of("inv_a").await.unwrap().is_empty());

    // Notices: numbered in order, gone once deleted.
    let notice = |kind: &str| Notice {
        client_id: "cus_1".into(),
        kind: kind.into(),
        data: serde_json::json!({"total": 118}),
        created_at_ms: 1,
    };
    let mut tx = store.begin().await.unwrap();
    let first = tx.queue_notice(&notice("invoice_created")).await.unwrap();
    let second = tx.queue_notice(&notice("invoice_paid")).await.unwrap();
    tx.commit().await.unwrap();
    assert!(second > first);
    let queued = store.notices(10).await.unwrap();
    let kinds: Vec<&str> = queued.iter().map(|(_, n)| n.kind.as_str()).collect();
    assert_eq!(kinds, ["invoice_created", "invoice_paid"]);
    let mut tx = store.begin().await.unwrap();
    assert!(tx.delete_notice(first).await.unwrap());
    assert!(!tx.delete_notice(first).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(store.notices(10).await.unwrap().len(), 1);

    // Every client and subscription, a page at a time.
    let mut tx = store.begin().await.unwrap();
    tx.insert_client(&client("cus_9", "zed@example.test"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let clients = store.clients(None, 1).await.unwrap();
    assert_eq!(clients.items.len(), 1);
    assert!(clients.next_cursor.is_some());
    let subs = store.subscriptions(None, 100).await.unwrap();
    assert!(subs.items.len() >= 3 && subs.next_cursor.is_none());
}

/// Portal clients: unique by id and by email, found by either; their
/// logins by token digest, gone when deleted.
async fn clients(store: &Store) {
    let ada = client("cus_1", "ada@example.test");
    let mut tx = store.begin().await.unwrap();
    tx.insert_client(&ada).await.unwrap();
    // The same email again, or the same id: refused.
    assert!(matches!(
        tx.insert_client(&client("cus_2", "ada@example.test")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        tx.insert_client(&client("cus_1", "other@example.test"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    tx.commit().await.unwrap();
    assert_eq!(store.client("cus_1").await.unwrap(), Some(ada.clone()));
    assert_eq!(
        store.client_by_email("ada@example.test").await.unwrap(),
        Some(ada.clone())
    );
    assert_eq!(
        store.client_by_email("nobody@example.test").await.unwrap(),
        None
    );
    assert_eq!(store.client("cus_2").await.unwrap(), None);

    let mut tx = store.begin().await.unwrap();
    let renamed = Client {
        name: "Ada King".into(),
        ..ada.clone()
    };
    tx.put_client(&renamed).await.unwrap();
    let moved = Client {
        email: "new@example.test".into(),
        ..ada.clone()
    };
    assert!(matches!(
        tx.put_client(&moved).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        tx.put_client(&client("cus_9", "x@example.test")).await,
        Err(StoreError::Invalid(_))
    ));
    let session = ClientSession {
        digest: "ab".repeat(32),
        client_id: "cus_1".into(),
        created_at_ms: 1,
        expires_at_ms: 2,
        epoch: 3,
    };
    tx.put_client_session(&session).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store.client("cus_1").await.unwrap().unwrap().name,
        "Ada King"
    );
    assert_eq!(
        store.client_session(&session.digest).await.unwrap(),
        Some(session.clone())
    );
    let mut tx = store.begin().await.unwrap();
    assert!(tx.delete_client_session(&session.digest).await.unwrap());
    assert!(!tx.delete_client_session(&session.digest).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(store.client_session(&session.digest).await.unwrap(), None);

    // Password resets: by digest, used up once.
    let reset = PasswordReset {
        digest: "cd".repeat(32),
        client_id: "cus_1".into(),
        expires_at_ms: 5,
        epoch: 1,
    };
    let mut tx = store.begin().await.unwrap();
    tx.put_password_reset(&reset).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store.password_reset(&reset.digest).await.unwrap(),
        Some(reset.clone())
    );
    let mut tx = store.begin().await.unwrap();
    assert!(tx.delete_password_reset(&reset.digest).await.unwrap());
    assert!(!tx.delete_password_reset(&reset.digest).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(store.password_reset(&reset.digest).await.unwrap(), None);

    // Expired logins and reset links are pruned, a batch at a time.
    let mut tx = store.begin().await.unwrap();
    for (i, expires) in [10, 20, 30].into_iter().enumerate() {
        tx.put_client_session(&ClientSession {
            digest: format!("{i:064}"),
            client_id: "cus_1".into(),
            created_at_ms: 1,
            expires_at_ms: expires,
            epoch: 0,
        })
        .await
        .unwrap();
    }
    tx.put_password_reset(&PasswordReset {
        expires_at_ms: 15,
        ..reset.clone()
    })
    .await
    .unwrap();
    assert_eq!(tx.prune_client_tokens(20, 2).await.unwrap(), (2, true));
    assert_eq!(tx.prune_client_tokens(20, 2).await.unwrap(), (1, false));
    tx.commit().await.unwrap();
    assert!(store
        .client_session(&format!("{:064}", 2))
        .await
        .unwrap()
        .is_some());
    assert!(store
        .client_session(&format!("{:064}", 0))
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.password_reset(&reset.digest).await.unwrap(), None);

    // Subscriptions: by id, listed per client oldest first; the client of
    // one never changes.
    let sub = |id: &str, client: &str, at: i64| Subscription {
        id: id.into(),
        client_id: client.into(),
        platform: "migosmtp".into(),
        plan_id: "mail".into(),
        status: SubscriptionStatus::Trial,
        workspace_id: "ws_1".into(),
        period_start_ms: at,
        period_end_ms: at + 10,
        created_at_ms: at,
        suspension_reason: None,
        suspended_from: None,
        cancelled_at_ms: None,
        next_plan_id: None,
        suspended_for: None,
    };
    let mut tx = store.begin().await.unwrap();
    tx.put_subscription(&sub("sub_b", "cus_1", 2))
        .await
        .unwrap();
    tx.put_subscription(&sub("sub_a", "cus_1", 3))
        .await
        .unwrap();
    tx.put_subscription(&sub("sub_c", "cus_2", 1))
        .await
        .unwrap();
    assert!(matches!(
        tx.put_subscription(&sub("sub_a", "cus_2", 3)).await,
        Err(StoreError::Invalid(_))
    ));
    let suspended = Subscription {
        status: SubscriptionStatus::Suspended,
        suspension_reason: Some("overdue".into()),
        ..sub("sub_b", "cus_1", 2)
    };
    tx.put_subscription(&suspended).await.unwrap();
    tx.commit().await.unwrap();
    let ids = |v: Vec<Subscription>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.subscriptions_of("cus_1").await.unwrap()),
        ["sub_b", "sub_a"]
    );
    assert_eq!(
        ids(store.subscriptions_of("cus_2").await.unwrap()),
        ["sub_c"]
    );
    assert_eq!(store.subscription("sub_b").await.unwrap(), Some(suspended));
    assert_eq!(store.subscription("sub_x").await.unwrap(), None);

    // Live subscriptions by period end: up to a bound, after a cursor;
    // a suspended one leaves the index, a moved period moves its entry.
    let ending = |until: i64, after: Option<(i64, String)>| {
        let store = store.clone();
        async move { store.subscriptions_ending(until, after, 10).await.unwrap() }
    };
    // sub_a ends at 13, sub_c at 11; sub_b is suspended.
    assert_eq!(
        ending(13, None).await,
        [(11, "sub_c".to_string()), (13, "sub_a".to_string())]
    );
    assert_eq!(ending(12, None).await, [(11, "sub_c".to_string())]);
    assert_eq!(
        ending(100, Some((11, "sub_c".into()))).await,
        [(13, "sub_a".to_string())]
    );
    let mut tx = store.begin().await.unwrap();
    let moved = Subscription {
        period_end_ms: 50,
        ..sub("sub_c", "cus_2", 1)
    };
    tx.put_subscription(&moved).await.unwrap();
    let before_1970 = Subscription {
        period_end_ms: -5,
        ..sub("sub_neg", "cus_2", -15)
    };
    tx.put_subscription(&before_1970).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        ending(100, None).await,
        [
            (0, "sub_neg".to_string()),
            (13, "sub_a".to_string()),
            (50, "sub_c".to_string())
        ]
    );
    assert_eq!(
        store
            .subscriptions_ending(100, None, 1)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Pages across more events than one read of the store takes, both
/// ways, every event once and in order.
async fn long_event_pages(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    for i in 0..1500i64 {
        let msg = if i % 100 == 7 { "msg_one" } else { "msg_other" };
        tx.append_event(&email_event("ws_long", T0 + i, msg, EmailEvent::Queued))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    for ascending in [false, true] {
        let q = EventQuery {
            ascending,
            ..EventQuery::default()
        };
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = store
                .events("ws_long", &q, cursor.as_deref(), 400)
                .await
                .unwrap();
            seen.extend(page.items.iter().map(|e| e.at_ms));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let mut want: Vec<i64> = (0..1500).map(|i| T0 + i).collect();
        if !ascending {
            want.reverse();
        }
        assert_eq!(seen, want, "ascending: {ascending}");
    }
    // A message's events through its index, newest first.
    let q = EventQuery {
        message_id: Some("msg_one".into()),
        ..EventQuery::default()
    };
    let page = store.events("ws_long", &q, None, 100).await.unwrap();
    let got: Vec<i64> = page.items.iter().map(|e| e.at_ms).collect();
    let want: Vec<i64> = (0..1500)
        .filter(|i| i % 100 == 7)
        .rev()
        .map(|i| T0 + i)
        .collect();
    assert_eq!(got, want);
}

fn workspace(id: &str) -> Workspace {
    Workspace {
        id: id.into(),
        name: format!("name of {id}"),
        daily_quota: Some(10),
        created_at: "2026-06-07T09:39:00Z".into(),
        allow_unverified_senders: false,
        tracking: TrackingSettings::default(),
        suspended: None,
    }
}

fn account(ws: &str, username: &str) -> SmtpAccount {
    SmtpAccount {
        workspace_id: ws.into(),
        username: username.into(),
        password_hash: "$argon2id$…".into(),
        daily_quota: 100,
        created_at: "2026-06-07T09:39:00Z".into(),
    }
}

fn domain(ws: &str, name: &str) -> SenderDomain {
    SenderDomain {
        workspace_id: ws.into(),
        domain: name.into(),
        selector: "rw202606".into(),
        algorithm: DkimAlgorithm::Ed25519,
        private_key: "cHJpdmF0ZQ==".into(),
        public_key: "cHVibGlj".into(),
        created_at: "2026-06-07T09:39:00Z".into(),
        checks: Vec::new(),
        verified_at_ms: None,
        tracking_host: Some(format!("click.{name}")),
        tracking: Some(TrackingSettings {
            clicks: true,
            ..TrackingSettings::default()
        }),
    }
}

async fn workspaces_and_credentials(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    for id in ["ws_a", "ws_ab", "ws_b"] {
        tx.insert_workspace(&workspace(id)).await.unwrap();
    }
    assert!(matches!(
        tx.insert_workspace(&workspace("ws_a")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        tx.insert_workspace(&workspace("bad\0id")).await,
        Err(StoreError::Invalid(_))
    ));
    tx.insert_smtp_account(&account("ws_a", "alice"))
        .await
        .unwrap();
    tx.insert_smtp_account(&account("ws_a", "carol"))
        .await
        .unwrap();
    tx.insert_smtp_account(&account("ws_ab", "dave"))
        .await
        .unwrap();
    // A username is global: another workspace cannot take it.
    assert!(matches!(
        tx.insert_smtp_account(&account("ws_b", "alice")).await,
        Err(StoreError::Conflict(_))
    ));
    let key = ApiKey {
        id: "key_1".into(),
        digest: "d1".into(),
        workspace_id: "ws_a".into(),
        platform: Platform::Telnxo,
        prefix: "rw_telnxo_1234".into(),
        created_at: "2026-06-07T09:39:00Z".into(),
        last_used_at_ms: None,
    };
    tx.insert_api_key(&key).await.unwrap();
    tx.insert_sender_domain(&domain("ws_a", "a.example"))
        .await
        .unwrap();
    assert!(matches!(
        tx.insert_sender_domain(&domain("ws_b", "a.example")).await,
        Err(StoreError::Conflict(_))
    ));
    tx.commit().await.unwrap();

    assert_eq!(
        store.workspace("ws_a").await.unwrap(),
        Some(workspace("ws_a"))
    );
    assert_eq!(store.workspace("ws_nope").await.unwrap(), None);
    let changed = Workspace {
        allow_unverified_senders: true,
        tracking: TrackingSettings {
            opens: true,
            clicks: false,
            unsubscribe: true,
        },
        daily_quota: None,
        ..workspace("ws_b")
    };
    let mut tx = store.begin().await.unwrap();
    tx.put_workspace(&changed).await.unwrap();
    assert!(tx.put_workspace(&workspace("ws_unknown")).await.is_err());
    tx.commit().await.unwrap();
    assert_eq!(
        store.workspace("ws_b").await.unwrap(),
        Some(changed.clone())
    );
    // Suspensions: listed by id while set, gone once lifted.
    assert!(store.suspended_workspaces().await.unwrap().is_empty());
    let mut tx = store.begin().await.unwrap();
    for id in ["ws_b", "ws_a"] {
        let ws = Workspace {
            suspended: Some("unpaid".into()),
            ..store.workspace(id).await.unwrap().unwrap()
        };
        tx.put_workspace(&ws).await.unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(
        store.suspended_workspaces().await.unwrap(),
        ["ws_a", "ws_b"]
    );
    let mut tx = store.begin().await.unwrap();
    tx.put_workspace(&workspace("ws_a")).await.unwrap();
    tx.put_workspace(&changed).await.unwrap();
    tx.commit().await.unwrap();
    assert!(store.suspended_workspaces().await.unwrap().is_empty());
    let mut tx = store.begin().await.unwrap();
    tx.put_workspace(&workspace("ws_b")).await.unwrap();
    tx.commit().await.unwrap();
    let ids: Vec<String> = store
        .workspaces()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(ids, ["ws_a", "ws_ab", "ws_b"]);
    let names = |v: Vec<SmtpAccount>| v.into_iter().map(|a| a.username).collect::<Vec<_>>();
    // "ws_a" is a prefix of "ws_ab": their listings stay apart.
    assert_eq!(
        names(store.smtp_accounts_of("ws_a").await.unwrap()),
        ["alice", "carol"]
    );
    assert_eq!(
        names(store.smtp_accounts_of("ws_ab").await.unwrap()),
        ["dave"]
    );
    assert!(store.smtp_accounts_of("ws_b").await.unwrap().is_empty());
    assert_eq!(
        store
            .smtp_account("alice")
            .await
            .unwrap()
            .unwrap()
            .workspace_id,
        "ws_a"
    );
    assert_eq!(store.api_key("d1").await.unwrap(), Some(key.clone()));
    assert_eq!(
        store.api_keys_of("ws_a").await.unwrap(),
        std::slice::from_ref(&key)
    );
    assert!(store.api_keys_of("ws_ab").await.unwrap().is_empty());

    // A key's record is replaced in place; deleting keys and accounts takes
    // them out of their workspace's listing too.
    let used = ApiKey {
        last_used_at_ms: Some(T0),
        ..key.clone()
    };
    let mut tx = store.begin().await.unwrap();
    tx.put_api_key(&used).await.unwrap();
    assert!(tx
        .put_api_key(&ApiKey {
            digest: "d-unknown".into(),
            ..key.clone()
        })
        .await
        .is_err());
    tx.commit().await.unwrap();
    assert_eq!(store.api_keys_of("ws_a").await.unwrap(), [used]);
    let mut tx = store.begin().await.unwrap();
    assert!(tx.delete_api_key("d1").await.unwrap());
    assert!(!tx.delete_api_key("d1").await.unwrap());
    assert!(tx.delete_smtp_account("carol").await.unwrap());
    assert!(!tx.delete_smtp_account("nobody").await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(store.api_key("d1").await.unwrap(), None);
    assert!(store.api_keys_of("ws_a").await.unwrap().is_empty());
    assert_eq!(store.smtp_account("carol").await.unwrap(), None);
    let mut tx = store.begin().await.unwrap();
    tx.insert_api_key(&key).await.unwrap();
    tx.insert_smtp_account(&account("ws_a", "carol"))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // A sender domain's verification replaces its record; deleting it
    // takes it out of its workspace's listing.
    let verified = SenderDomain {
        checks: vec![RecordCheck {
            purpose: "spf".into(),
            record_type: "TXT".into(),
            name: "b.example".into(),
            value: "v=spf1 a:mx.example ~all".into(),
            verified: true,
            found: vec!["v=spf1 a:mx.example -all".into()],
        }],
        verified_at_ms: Some(T0),
        ..domain("ws_a", "b.example")
    };
    let mut tx = store.begin().await.unwrap();
    assert!(
        tx.put_sender_domain(&verified).await.is_err(),
        "not added yet"
    );
    tx.insert_sender_domain(&domain("ws_a", "b.example"))
        .await
        .unwrap();
    tx.put_sender_domain(&verified).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store.sender_domain("b.example").await.unwrap(),
        Some(verified)
    );
    let mut tx = store.begin().await.unwrap();
    assert!(tx.delete_sender_domain("b.example").await.unwrap());
    assert!(!tx.delete_sender_domain("b.example").await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(store.sender_domain("b.example").await.unwrap(), None);
    assert_eq!(store.sender_domains_of("ws_a").await.unwrap().len(), 1);
    assert_eq!(store.sender_domains_of("ws_a").await.unwrap().len(), 1);
    assert!(store.sender_domains_of("ws_b").await.unwrap().is_empty());
    assert_eq!(
        store
            .sender_domain("a.example")
            .await
            .unwrap()
            .unwrap()
            .workspace_id,
        "ws_a"
    );
}

async fn transactions(store: &Store) {
    // A transaction reads its own writes, in point reads and listings.
    let mut tx = store.begin().await.unwrap();
    tx.insert_workspace(&workspace("ws_t")).await.unwrap();
    tx.put_endpoint(&endpoint("ep_t1", "ws_t", 1))
        .await
        .unwrap();
    assert!(tx.workspace("ws_t").await.unwrap().is_some());
    assert_eq!(tx.endpoints_of("ws_t").await.unwrap().len(), 1);
    // Not visible outside before the commit.
    let outside = store.clone();
    assert!(outside.workspace("ws_t").await.unwrap().is_none());
    // Dropped: nothing happened.
    drop(tx);
    assert!(store.workspace("ws_t").await.unwrap().is_none());
    assert!(store.endpoints_of("ws_t").await.unwrap().is_empty());

    // Read-modify-write transactions from many tasks never lose an update.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    let mut tx = store.begin().await.unwrap();
                    let n = tx.cursor("counter").await.unwrap();
                    tokio::task::yield_now().await;
                    tx.set_cursor("counter", n + 1).await.unwrap();
                    tx.commit_eventually().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.cursor("counter").await.unwrap(), 200);
    assert_eq!(store.cursor("never set").await.unwrap(), 0);

    // Every named position, by name.
    let mut tx = store.begin().await.unwrap();
    tx.set_cursor("invoice-series/RW/2026-27", 42)
        .await
        .unwrap();
    tx.set_cursor("feed", 7).await.unwrap();
    tx.commit().await.unwrap();
    let named = |name: &str, at: u64| (name.to_string(), at);
    assert_eq!(
        store.cursors().await.unwrap(),
        [
            named("counter", 200),
            named("feed", 7),
            named("invoice-series/RW/2026-27", 42)
        ]
    );
}

fn email_event(ws: &str, at: i64, msg: &str, e: EmailEvent) -> rackwave_core::event::Event {
    let message = MessageRef {
        message_id: msg.into(),
        queue_id: "Q1".into(),
        to: "to@example.org".into(),
        from: "from@example.com".into(),
        subject: None,
        status: Default::default(),
        ..Default::default()
    };
    rackwave_core::event::Event::new(ws, Timestamp(at), e.data(message, Timestamp(at), 1, None))
}

async fn event_log(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    let mut stored = Vec::new();
    for i in 1..=10i64 {
        let e = if i % 2 == 0 {
            EmailEvent::Delivered
        } else {
            EmailEvent::Queued
        };
        let ev = email_event("ws_e", T0 + 1000 * i, &format!("msg_{}", i % 3), e);
        stored.push(tx.append_event(&ev).await.unwrap());
    }
    let ping = rackwave_core::event::Event::new(
        "ws_e",
        Timestamp(T0 + 20_000),
        Ping {
            endpoint_id: "ep".into(),
            sent_at: Timestamp(T0),
        },
    );
    tx.append_event(&ping).await.unwrap();
    tx.commit().await.unwrap();
    // Sequence numbers grow in order of storing.
    assert!(stored.windows(2).all(|w| w[0].seq < w[1].seq));
    // The envelope is kept byte for byte.
    let first = store.event("ws_e", stored[0].seq).await.unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_slice(first.body()).unwrap();
    assert_eq!(v["event"], "email.queued");
    assert_eq!(v["data"]["message_id"], "msg_1");
    assert_eq!(first.event_type, Some(EventType::EmailQueued));
    assert_eq!(
        store.event_by_id(&stored[3].id).await.unwrap().unwrap().seq,
        stored[3].seq
    );
    assert!(store.event_by_id("evt_nope").await.unwrap().is_none());

    let ids =
        |page: &Page<StoredEvent>| page.items.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
    // Newest first, pages of 4, through the whole log.
    let all = EventQuery::default();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .events("ws_e", &all, cursor.as_deref(), 4)
            .await
            .unwrap();
        seen.extend(ids(&page));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 11);
    assert_eq!(seen[1], stored[9].id);
    assert_eq!(seen[10], stored[0].id);

    // Type, product and time filters, oldest first.
    let q = EventQuery {
        types: vec![EventType::EmailDelivered],
        since_ms: Some(T0 + 4000),
        until_ms: Some(T0 + 9000),
        ascending: true,
        ..Default::default()
    };
    let page = store.events("ws_e", &q, None, 50).await.unwrap();
    assert_eq!(
        ids(&page),
        [
            stored[3].id.clone(),
            stored[5].id.clone(),
            stored[7].id.clone()
        ]
    );
    let q = EventQuery {
        products: vec![Product::Rackwave],
        ..Default::default()
    };
    assert_eq!(count(store, "ws_e", &q, 50).await, 1);
    // By message, through its index, paged.
    let q = EventQuery {
        message_id: Some("msg_1".into()),
        ..Default::default()
    };
    let page = store.events("ws_e", &q, None, 2).await.unwrap();
    assert_eq!(ids(&page), [stored[9].id.clone(), stored[6].id.clone()]);
    let page = store
        .events("ws_e", &q, page.next_cursor.as_deref(), 2)
        .await
        .unwrap();
    assert_eq!(ids(&page), [stored[3].id.clone(), stored[0].id.clone()]);
    // Another workspace sees nothing; a cursor we did not issue is invalid.
    assert!(count(store, "ws_x", &all, 5).await == 0);
    assert!(matches!(
        store.events("ws_e", &all, Some("zz"), 5).await,
        Err(StoreError::Invalid(_))
    ));

    // Pruning takes the old ones, in bounded steps, with their indexes.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.prune_events(T0 + 3500, 2).await.unwrap(), (2, true));
    assert_eq!(tx.prune_events(T0 + 3500, 2).await.unwrap(), (1, false));
    tx.commit().await.unwrap();
    assert!(store.event_by_id(&stored[0].id).await.unwrap().is_none());
    let q = EventQuery {
        message_id: Some("msg_1".into()),
        ..Default::default()
    };
    assert_eq!(count(store, "ws_e", &q, 50).await, 3);
    assert_eq!(count(store, "ws_e", &all, 50).await, 8);
}

fn endpoint(id: &str, ws: &str, created: i64) -> Endpoint {
    Endpoint {
        id: id.into(),
        workspace_id: ws.into(),
        product: Product::Migosmtp,
        url: "http://127.0.0.1:9/hook".into(),
        event_types: vec![],
        enabled: true,
        description: None,
        secrets: vec![Secret {
            secret: "whsec_x".into(),
            created_at_ms: created,
            expires_at_ms: None,
        }],
        created_at_ms: created,
        updated_at_ms: created,
    }
}

fn delivery(id: &str, ep: &str, due: Option<i64>, state: DeliveryState) -> Delivery {
    Delivery {
        id: id.into(),
        endpoint_id: ep.into(),
        workspace_id: "ws_o".into(),
        event_id: "evt_1".into(),
        event_type: EventType::EmailQueued,
        event_seq: 1,
        state,
        created_at_ms: T0,
        first_attempt_at_ms: None,
        next_attempt_at_ms: due,
        due_at_ms: due,
        resend: false,
        attempts: vec![],
        seq: 0,
        leased_by: None,
    }
}

async fn outbox(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    tx.put_endpoint(&endpoint("ep_2", "ws_o", 2)).await.unwrap();
    tx.put_endpoint(&endpoint("ep_1", "ws_o", 1)).await.unwrap();
    tx.put_endpoint(&endpoint("ep_3", "ws_other", 3))
        .await
        .unwrap();
    let mut d1 = delivery("whd_1", "ep_1", Some(T0), DeliveryState::Pending);
    let mut d2 = delivery("whd_2", "ep_1", Some(T0 + 10), DeliveryState::Pending);
    let mut d3 = delivery("whd_3", "ep_2", Some(T0 + 5), DeliveryState::Pending);
    let mut d4 = delivery("whd_4", "ep_2", None, DeliveryState::Succeeded);
    for d in [&mut d1, &mut d2, &mut d3, &mut d4] {
        tx.insert_delivery(d).await.unwrap();
    }
    tx.commit().await.unwrap();
    assert!(d1.seq < d2.seq && d2.seq < d3.seq && d3.seq < d4.seq);

    let eps: Vec<String> = store
        .endpoints_of("ws_o")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(eps, ["ep_1", "ep_2"], "oldest first");
    assert_eq!(
        store.endpoint("ep_3").await.unwrap().unwrap().workspace_id,
        "ws_other"
    );

    // What is due, by endpoint, and by time.
    assert_eq!(
        store.due_endpoints(None, T0 - 1, 10).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(store.due_endpoints(None, T0, 10).await.unwrap(), ["ep_1"]);
    assert_eq!(
        store.due_endpoints(None, T0 + 5, 10).await.unwrap(),
        ["ep_1", "ep_2"]
    );
    assert_eq!(
        store.due_endpoints(Some("ep_1"), T0 + 5, 10).await.unwrap(),
        ["ep_2"]
    );
    assert_eq!(
        store.due_endpoints(None, T0 + 5, 1).await.unwrap(),
        ["ep_1"]
    );
    assert_eq!(
        store.due_deliveries("ep_1", T0 + 10, 10).await.unwrap(),
        ["whd_1", "whd_2"]
    );
    assert_eq!(
        store.due_deliveries("ep_1", T0 + 9, 10).await.unwrap(),
        ["whd_1"]
    );
    assert_eq!(
        store.due_deliveries("ep_1", T0 + 10, 1).await.unwrap(),
        ["whd_1"]
    );

    // Replacing a delivery moves its due entry.
    let mut tx = store.begin().await.unwrap();
    d1.due_at_ms = Some(T0 + 100);
    d1.state = DeliveryState::Retrying;
    tx.put_delivery(&d1).await.unwrap();
    d2.due_at_ms = None;
    d2.state = DeliveryState::Succeeded;
    tx.put_delivery(&d2).await.unwrap();
    assert!(matches!(
        tx.put_delivery(&delivery("whd_nope", "ep_1", None, DeliveryState::Failed))
            .await,
        Err(StoreError::Invalid(_))
    ));
    tx.commit().await.unwrap();
    assert!(store
        .due_deliveries("ep_1", T0 + 99, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.due_deliveries("ep_1", T0 + 100, 10).await.unwrap(),
        ["whd_1"]
    );
    assert_eq!(
        store.delivery("whd_1").await.unwrap().unwrap().state,
        DeliveryState::Retrying
    );

    // Listing newest first, by state, in pages.
    let page = store.deliveries_of("ep_1", None, None, 1).await.unwrap();
    assert_eq!(page.items[0].id, "whd_2");
    let page = store
        .deliveries_of("ep_1", None, page.next_cursor.as_deref(), 1)
        .await
        .unwrap();
    assert_eq!(page.items[0].id, "whd_1");
    assert!(page.next_cursor.is_none());
    let retrying = store
        .deliveries_of("ep_1", Some(DeliveryState::Retrying), None, 10)
        .await
        .unwrap();
    assert_eq!(retrying.items.len(), 1);

    // Retention keeps young and unfinished deliveries.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.prune_deliveries(T0, 10).await.unwrap(), (0, false));
    assert_eq!(tx.prune_deliveries(T0 + 1, 10).await.unwrap(), (2, false));
    tx.commit().await.unwrap();
    assert!(store.delivery("whd_2").await.unwrap().is_none());
    assert!(store.delivery("whd_4").await.unwrap().is_none());
    assert!(store.delivery("whd_1").await.unwrap().is_some());

    // Deleting an endpoint takes its deliveries along.
    let mut tx = store.begin().await.unwrap();
    assert!(tx.delete_endpoint("ep_1").await.unwrap());
    assert!(!tx.delete_endpoint("ep_1").await.unwrap());
    tx.commit().await.unwrap();
    assert!(store.delivery("whd_1").await.unwrap().is_none());
    assert!(store.due_endpoints(None, i64::MAX / 2, 10).await.unwrap() == ["ep_2"]);
    assert_eq!(store.endpoints_of("ws_o").await.unwrap().len(), 1);
}

fn idem(ws: &str, key: &str, at: i64) -> IdempotencyRecord {
    IdempotencyRecord {
        workspace_id: ws.into(),
        key: key.into(),
        request: "ab12".into(),
        created_at_ms: at,
        response: None,
    }
}

/// Idempotency records: per workspace and key, replaced in place (the age
/// index follows), deleted, and pruned by age only.
async fn idempotency(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    tx.put_idempotency(&idem("ws_i1", "k1", T0)).await.unwrap();
    tx.put_idempotency(&idem("ws_i1", "k2", T0 + 10))
        .await
        .unwrap();
    tx.put_idempotency(&idem("ws_i2", "k1", T0 + 20))
        .await
        .unwrap();
    assert!(tx.idempotency("ws_i1", "k1").await.unwrap().is_some());
    tx.commit().await.unwrap();
    assert_eq!(store.idempotency("ws_i1", "k3").await.unwrap(), None);
    // Tenants do not share keys.
    assert_eq!(
        store
            .idempotency("ws_i2", "k1")
            .await
            .unwrap()
            .unwrap()
            .created_at_ms,
        T0 + 20
    );

    // Finished: the response replaces the pending record, and a later
    // creation time moves it in the age index.
    let mut done = idem("ws_i1", "k1", T0 + 100);
    done.response = Some(IdempotentResponse {
        status: 202,
        body: "{\"queue_id\":\"Q\"}".into(),
    });
    let mut tx = store.begin().await.unwrap();
    tx.put_idempotency(&done).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.idempotency("ws_i1", "k1").await.unwrap(), Some(done));

    let mut tx = store.begin().await.unwrap();
    tx.delete_idempotency("ws_i1", "k2").await.unwrap();
    tx.delete_idempotency("ws_i1", "absent").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.idempotency("ws_i1", "k2").await.unwrap(), None);

    // Older than T0 + 50: only ws_i2/k1 (ws_i1/k1 was moved to T0 + 100).
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.prune_idempotency(T0 + 50, 10).await.unwrap(), (1, false));
    tx.commit().await.unwrap();
    assert_eq!(store.idempotency("ws_i2", "k1").await.unwrap(), None);
    assert!(store.idempotency("ws_i1", "k1").await.unwrap().is_some());
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.prune_idempotency(T0 + 50, 10).await.unwrap(), (0, false));
    assert_eq!(tx.prune_idempotency(T0 + 101, 1).await.unwrap(), (1, true));
    tx.commit().await.unwrap();
    assert_eq!(store.idempotency("ws_i1", "k1").await.unwrap(), None);
}

/// Events are counted per workspace, UTC day and type as they are
/// appended, overall and per tag of their message.
async fn daily_counts(store: &Store) {
    const DAY: i64 = 86_400_000;
    let day0 = T0.div_euclid(DAY);
    let tagged = |at: i64, msg: &str, e: EmailEvent, tags: &[&str]| {
        let message = MessageRef {
            message_id: msg.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        };
        rackwave_core::event::Event::new(
            "ws_c",
            Timestamp(at),
            e.data(message, Timestamp(at), 1, None),
        )
    };
    let mut tx = store.begin().await.unwrap();
    for e in [
        tagged(T0, "m1", EmailEvent::Queued, &["spring"]),
        tagged(T0, "m1", EmailEvent::Delivered, &["spring"]),
        tagged(T0, "m2", EmailEvent::Queued, &[]),
        tagged(T0 + DAY, "m3", EmailEvent::Queued, &["spring", "de"]),
    ] {
        tx.append_event(&e).await.unwrap();
    }
    tx.commit().await.unwrap();
    let all = store
        .event_counts("ws_c", day0, day0 + 1, None)
        .await
        .unwrap();
    assert_eq!(
        all,
        [
            (day0, "email.delivered".to_string(), 1),
            (day0, "email.queued".to_string(), 2),
            (day0 + 1, "email.queued".to_string(), 1),
        ]
    );
    let spring = store
        .event_counts("ws_c", day0, day0 + 1, Some("spring"))
        .await
        .unwrap();
    assert_eq!(spring.iter().map(|c| c.2).sum::<u64>(), 3);
    let de = store
        .event_counts("ws_c", day0 + 1, day0 + 1, Some("de"))
        .await
        .unwrap();
    assert_eq!(de, [(day0 + 1, "email.queued".to_string(), 1)]);
    assert!(store
        .event_counts("ws_c", day0 + 2, day0 + 9, None)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .event_counts("ws_other", day0, day0 + 1, None)
        .await
        .unwrap()
        .is_empty());
}

fn suppression(ws: &str, address: &str, reason: SuppressionReason) -> Suppression {
    Suppression {
        workspace_id: ws.into(),
        address: address.into(),
        reason,
        message_id: Some("msg_0000000000000001".into()),
        detail: Some("550 5.1.1 no such user".into()),
        created_at_ms: T0,
    }
}

async fn suppressions(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    for (i, address) in ["c@x.org", "a@x.org", "b@x.org", "d@x.org"]
        .iter()
        .enumerate()
    {
        let reason = if i % 2 == 0 {
            SuppressionReason::HardBounce
        } else {
            SuppressionReason::Manual
        };
        tx.put_suppression(&suppression("su1", address, reason))
            .await
            .unwrap();
    }
    // Another workspace's list is its own.
    tx.put_suppression(&suppression("su2", "a@x.org", SuppressionReason::Complaint))
        .await
        .unwrap();
    // Keys cannot be broken by what a caller sends.
    assert!(tx
        .put_suppression(&suppression("su1", "", SuppressionReason::Manual))
        .await
        .is_err());
    assert!(tx
        .put_suppression(&suppression("su1", "a\0b@x.org", SuppressionReason::Manual))
        .await
        .is_err());
    tx.commit().await.unwrap();

    let a = store.suppression("su1", "a@x.org").await.unwrap().unwrap();
    assert_eq!(a.reason, SuppressionReason::Manual);
    assert_eq!(a.message_id.as_deref(), Some("msg_0000000000000001"));
    assert_eq!(
        store
            .suppression("su2", "a@x.org")
            .await
            .unwrap()
            .unwrap()
            .reason,
        SuppressionReason::Complaint
    );
    assert!(store.suppression("su2", "b@x.org").await.unwrap().is_none());
    assert!(store.suppression("su1", "").await.unwrap().is_none());

    // By address, in pages.
    let page = store.suppressions("su1", None, None, 3).await.unwrap();
    let got: Vec<_> = page.items.iter().map(|s| s.address.as_str()).collect();
    assert_eq!(got, ["a@x.org", "b@x.org", "c@x.org"]);
    let cursor = page.next_cursor.expect("a fourth");
    let page = store
        .suppressions("su1", None, Some(&cursor), 3)
        .await
        .unwrap();
    let got: Vec<_> = page.items.iter().map(|s| s.address.as_str()).collect();
    assert_eq!(got, ["d@x.org"]);
    assert!(page.next_cursor.is_none());
    let page = store
        .suppressions("su1", Some(SuppressionReason::HardBounce), None, 10)
        .await
        .unwrap();
    let got: Vec<_> = page.items.iter().map(|s| s.address.as_str()).collect();
    assert_eq!(got, ["b@x.org", "c@x.org"]);

    // Replacing keeps one entry; deleting says whether there was one.
    let mut tx = store.begin().await.unwrap();
    tx.put_suppression(&suppression(
        "su1",
        "a@x.org",
        SuppressionReason::Unsubscribe,
    ))
    .await
    .unwrap();
    assert!(tx.delete_suppression("su1", "b@x.org").await.unwrap());
    assert!(!tx.delete_suppression("su1", "b@x.org").await.unwrap());
    assert!(!tx.delete_suppression("su2", "c@x.org").await.unwrap());
    tx.commit().await.unwrap();
    let page = store.suppressions("su1", None, None, 10).await.unwrap();
    let got: Vec<_> = page
        .items
        .iter()
        .map(|s| (s.address.as_str(), s.reason))
        .collect();
    assert_eq!(
        got,
        [
            ("a@x.org", SuppressionReason::Unsubscribe),
            ("c@x.org", SuppressionReason::HardBounce),
            ("d@x.org", SuppressionReason::Manual)
        ]
    );
    assert!(store.suppression("su2", "a@x.org").await.unwrap().is_some());
}

fn sled_store(path: &std::path::Path) -> Store {
    Database::open(path, 16).unwrap().store().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sled_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = sled_store(&dir.path().join("db"));
    conformance(&store).await;
    nul_in_records(&store, true).await;
}

/// A store on a fresh PostgreSQL server (Debian's package, started here),
/// the three parts in `databases` (one name shared, or one each); `None`
/// where PostgreSQL is not installed and not required.
async fn postgres_store(
    databases: [&str; 3],
) -> Option<(rackwave_testkit_postgres::Postgres, Store)> {
    let server = rackwave_testkit_postgres::Postgres::start()?;
    let mut urls = Vec::new();
    for name in databases {
        if !urls.iter().any(|(n, _)| *n == name) {
            urls.push((name, server.database(name)));
        }
    }
    let url = |name: &str| urls.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    let (portal, migosmtp, telnxo) = (url(databases[0]), url(databases[1]), url(databases[2]));
    let store = postgres::Databases {
        portal: &portal,
        migosmtp: &migosmtp,
        telnxo: &telnxo,
        max_connections: 8,
    }
    .store()
    .await
    .unwrap();
    Some((server, store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_conforms_with_one_database() {
    let Some((_server, store)) = postgres_store(["rackwave"; 3]).await else {
        return;
    };
    conformance(&store).await;
    nul_in_records(&store, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_conforms_with_a_database_per_part() {
    let Some((_server, store)) = postgres_store(["portal", "migosmtp", "telnxo"]).await else {
        return;
    };
    conformance(&store).await;
}

/// One family at a time, for working on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_workspace_and_event_records() {
    let Some((_server, store)) = postgres_store(["rackwave"; 3]).await else {
        return;
    };
    workspaces_and_credentials(&store).await;
    transactions(&store).await;
    event_log(&store).await;
    outbox(&store).await;
    idempotency(&store).await;
    daily_counts(&store).await;
    suppressions(&store).await;
    long_event_pages(&store).await;
    coordination(&store).await;
    message_log(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_portal_records() {
    let Some((_server, store)) = postgres_store(["rackwave"; 3]).await else {
        return;
    };
    clients(&store).await;
    invoices(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_telnxo_records() {
    let Some((_server, store)) = postgres_store(["rackwave"; 3]).await else {
        return;
    };
    telnxo(&store).await;
}

/// A copy between backends (`rackwave_store::copy`) of all the suite
/// leaves behind: sled into PostgreSQL, then that back into sled, each
/// family reading back as it was; a store already holding data is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copies_every_family_between_backends() {
    let Some((_server, postgres)) = postgres_store(["portal", "migosmtp", "telnxo"]).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sled = sled_store(&dir.path().join("db"));
    conformance(&sled).await;
    // The suite writes most records of workspaces it never adds; a copy
    // walks the workspaces there are.
    let mut tx = sled.begin().await.unwrap();
    for id in [
        "ws_a", "ws_b", "ws_c", "ws_e", "ws_o", "ws_ab", "ws_old", "ws_long", "ws_other", "ws_i1",
        "ws_i2", "ws_t1", "ws_t2", "su1", "su2", "ws_1",
    ] {
        if tx.workspace(id).await.unwrap().is_none() {
            tx.insert_workspace(&workspace(id)).await.unwrap();
        }
    }
    // And what it leaves none of: a call, the audit trail, a parked
    // report, a workspace whose subscription was cancelled since.
    tx.put_call(&Call {
        id: "call_1".into(),
        workspace_id: "ws_t1".into(),
        from: "+14155550100".into(),
        to: "+919876543210".into(),
        tts: Some("Your code is 1234".into()),
        audio_url: None,
        record: false,
        status: CommStatus::Completed,
        attempts: 1,
        due_at_ms: None,
        expires_at_ms: T0 + 60_000,
        initiated_at_ms: Some(T0),
        answered_at_ms: Some(T0 + 3_000),
        ended_at_ms: Some(T0 + 9_000),
        duration_seconds: Some(6),
        ring_seconds: Some(3),
        recording_url: None,
        error: None,
        history: Vec::new(),
        created_at_ms: T0,
    })
    .await
    .unwrap();
    tx.append_audit(&AuditEntry {
        id: "au_1".into(),
        at_ms: T0,
        kind: "sso.refused".into(),
        detail: "token used twice".into(),
        client_id: Some("cus_1".into()),
    })
    .await
    .unwrap();
    tx.put_parked_report(&ParkedReport {
        id: "tr_1".into(),
        tries: 2,
        report: r#"{"carrier_id":"1A2B3C","status":"DELIVRD"}"#.into(),
    })
    .await
    .unwrap();
    let mut gone = tx.subscription("sub_a").await.unwrap().unwrap();
    gone.id = "sub_gone".into();
    gone.workspace_id = "ws_b".into();
    gone.status = SubscriptionStatus::Active;
    tx.put_subscription(&gone).await.unwrap();
    gone.status = SubscriptionStatus::Cancelled;
    tx.put_subscription(&gone).await.unwrap();
    tx.commit().await.unwrap();
    let linked = sled.subscription_of_workspace("ws_b").await.unwrap();
    assert_eq!(
        linked.map(|s| s.status),
        Some(SubscriptionStatus::Cancelled)
    );
    let into_postgres = copy::copy(&sled, &postgres).await.unwrap();
    let back_again = copy::copy(&postgres, &sled_store(&dir.path().join("again")))
        .await
        .unwrap();
    for (there, back) in into_postgres.iter().zip(&back_again) {
        assert!(there.equal(), "{there:?}");
        assert!(back.equal(), "{back:?}");
        assert_eq!(there.from, back.to, "{}", there.family);
    }
    assert_eq!(into_postgres.len(), back_again.len());
    let empty: Vec<_> = into_postgres
        .iter()
        .filter(|f| f.from.count == 0)
        .map(|f| f.family)
        .collect();
    assert!(empty.is_empty(), "the suite leaves no {empty:?}");
    let err = copy::copy(&sled, &postgres).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("already holds data")),
        "{err}"
    );
}

#[tokio::test]
async fn sled_durable_commits_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = sled_store(&path);
        let mut tx = store.begin().await.unwrap();
        tx.insert_workspace(&workspace("ws_d")).await.unwrap();
        tx.commit().await.unwrap();
    }
    // The lock is let go a moment after the last handle.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let store = sled_store(&path);
    assert!(store.workspace("ws_d").await.unwrap().is_some());
}

#[tokio::test]
async fn sled_moves_the_trees_of_earlier_versions_in() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let database = Database::open(&path, 16).unwrap();
        let db = database.sled();
        let put = |tree: &str, key: &str, value: serde_json::Value| {
            db.open_tree(tree)
                .unwrap()
                .insert(key, serde_json::to_vec(&value).unwrap())
                .unwrap();
        };
        put(
            "workspaces",
            "ws_old",
            serde_json::to_value(workspace("ws_old")).unwrap(),
        );
        put(
            "smtp_accounts",
            "olduser",
            serde_json::to_value(account("ws_old", "olduser")).unwrap(),
        );
        put(
            "api_keys",
            "abc123",
            serde_json::json!({"id": "key_o", "workspace_id": "ws_old", "platform": "migosmtp",
                               "prefix": "rw_migosmtp_0", "created_at": "2026-01-01T00:00:00Z"}),
        );
        put(
            "sender_domains",
            "old.example",
            serde_json::to_value(domain("ws_old", "old.example")).unwrap(),
        );
        db.flush().unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let database = Database::open(&path, 16).unwrap();
    let db = database.sled();
    let store = database.store().unwrap();
    assert!(store.workspace("ws_old").await.unwrap().is_some());
    assert_eq!(
        store.smtp_accounts_of("ws_old").await.unwrap()[0].username,
        "olduser"
    );
    let key = store.api_key("abc123").await.unwrap().unwrap();
    assert_eq!((key.id.as_str(), key.digest.as_str()), ("key_o", "abc123"));
    assert_eq!(store.api_keys_of("ws_old").await.unwrap().len(), 1);
    assert_eq!(
        store.sender_domains_of("ws_old").await.unwrap()[0].domain,
        "old.example"
    );
    let names: Vec<String> = db
        .tree_names()
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n == "workspaces" || n == "smtp_accounts"),
        "{names:?}"
    );
}

/// How many of a workspace's events a query finds on its first page.
async fn count(store: &Store, ws: &str, q: &EventQuery, limit: usize) -> usize {
    store.events(ws, q, None, limit).await.unwrap().items.len()
}

fn log_entry(id: &str, ws: &str, to: &str, created: i64, status: &str) -> MessageLogEntry {
    MessageLogEntry {
        id: id.into(),
        workspace_id: ws.into(),
        queue_id: format!("Q{}", id.chars().last().unwrap_or('0')),
        from: "News@Sender.example".into(),
        to: to.into(),
        status: status.into(),
        tags: vec!["weekly".into()],
        created_at_ms: created,
        finished_at_ms: None,
        node: "a".into(),
        record: format!(r#"{{"id":"{id}","subject":"caf\u00e9 \u0000 end"}}"#),
    }
}

async fn put_log(store: &Store, entries: &[MessageLogEntry]) {
    let mut tx = store.begin().await.unwrap();
    tx.put_message_log(entries).await.unwrap();
    tx.commit().await.unwrap();
}

async fn log_ids(store: &Store, ws: &str, q: &MessageLogQuery, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .message_log(ws, q, cursor.as_deref(), limit)
            .await
            .unwrap();
        ids.extend(page.items.into_iter().map(|e| e.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return ids,
        }
    }
}

/// The shared message log: entries put and replaced, listed newest first
/// by workspace or recipient (case-insensitive) with the filters and a
/// time window, paged by cursor, looked up by id and by submission, pruned
/// once final past the cutoff; another workspace's never listed; what
/// cannot be keyed refused, a malformed cursor invalid.
async fn message_log(store: &Store) {
    let mut entries = vec![
        log_entry("msg_l1", "w_log", "Ann@Example.com", T0, "delivered"),
        log_entry("msg_l2", "w_log", "bob@example.com", T0 + 10, "queued"),
        log_entry("msg_l3", "w_log", "ann@example.com", T0 + 20, "deferred"),
        log_entry("msg_l4", "w_log2", "ann@example.com", T0 + 30, "queued"),
        // Same time as l3: the id orders them.
        log_entry("msg_l5", "w_log", "ANN@example.com", T0 + 20, "bounced"),
    ];
    entries[0].finished_at_ms = Some(T0 + 5);
    entries[4].finished_at_ms = Some(T0 + 25);
    entries[1].tags = vec!["welcome".into()];
    entries[2].from = "other@sender.example".into();
    put_log(store, &entries).await;

    let all = MessageLogQuery::default();
    assert_eq!(
        log_ids(store, "w_log", &all, 50).await,
        ["msg_l5", "msg_l3", "msg_l2", "msg_l1"]
    );
    // Paged one at a time: the same order, nothing twice.
    assert_eq!(
        log_ids(store, "w_log", &all, 1).await,
        ["msg_l5", "msg_l3", "msg_l2", "msg_l1"]
    );
    assert_eq!(log_ids(store, "w_log2", &all, 50).await, ["msg_l4"]);
    assert!(log_ids(store, "w_nobody", &all, 50).await.is_empty());
    let q = |f: fn(&mut MessageLogQuery)| {
        let mut q = MessageLogQuery::default();
        f(&mut q);
        q
    };
    assert_eq!(
        log_ids(
            store,
            "w_log",
            &q(|q| q.to = Some("ann@EXAMPLE.com".into())),
            2
        )
        .await,
        ["msg_l5", "msg_l3", "msg_l1"]
    );
    assert_eq!(
        log_ids(store, "w_log", &q(|q| q.status = Some("queued".into())), 50).await,
        ["msg_l2"]
    );
    assert_eq!(
        log_ids(
            store,
            "w_log",
            &q(|q| q.from = Some("OTHER@sender.example".into())),
            50
        )
        .await,
        ["msg_l3"]
    );
    assert_eq!(
        log_ids(store, "w_log", &q(|q| q.tag = Some("welcome".into())), 50).await,
        ["msg_l2"]
    );
    assert_eq!(
        log_ids(
            store,
            "w_log",
            &q(|q| {
                q.since_ms = Some(T0 + 10);
                q.until_ms = Some(T0 + 20)
            }),
            50
        )
        .await,
        ["msg_l2"]
    );
    assert!(
        log_ids(store, "w_log", &q(|q| q.tag = Some("none".into())), 50)
            .await
            .is_empty()
    );

    // Not final: l2 and l3 of w_log, l4 of w_log2.
    assert_eq!(store.message_log_pending("w_log").await.unwrap(), 2);
    assert_eq!(store.message_log_pending("w_log2").await.unwrap(), 1);
    assert_eq!(store.message_log_pending("w_none").await.unwrap(), 0);
    assert_eq!(store.message_log_pending("").await.unwrap(), 0);
    let got = store.message_log_entry("msg_l3").await.unwrap().unwrap();
    assert_eq!(got, entries[2]);
    // The record comes back byte for byte, escapes and all.
    assert_eq!(got.record, entries[2].record);
    assert!(store.message_log_entry("msg_none").await.unwrap().is_none());
    assert!(store.message_log_entry("").await.unwrap().is_none());
    assert!(store.message_log_entry("msg\0x").await.unwrap().is_none());
    let of_queue: Vec<String> = store
        .message_log_of_queue("Q3")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(of_queue, ["msg_l3"]);
    assert!(store.message_log_of_queue("").await.unwrap().is_empty());

    // Replaced: the new status is what filters see; the last of one id in
    // a batch wins.
    let mut later = entries[1].clone();
    later.status = "deferred".into();
    let mut last = entries[1].clone();
    last.status = "delivered".into();
    last.finished_at_ms = Some(T0 + 40);
    put_log(store, &[later, last.clone()]).await;
    assert_eq!(
        store.message_log_entry("msg_l2").await.unwrap().unwrap(),
        last
    );
    assert_eq!(store.message_log_pending("w_log").await.unwrap(), 1);
    assert!(
        log_ids(store, "w_log", &q(|q| q.status = Some("queued".into())), 50)
            .await
            .is_empty()
    );
    assert_eq!(
        log_ids(
            store,
            "w_log",
            &q(|q| q.status = Some("delivered".into())),
            50
        )
        .await,
        ["msg_l2", "msg_l1"]
    );

    // Refused whole: nothing of the batch is put.
    for bad in [
        log_entry("", "w_log", "x@example.com", T0, "queued"),
        log_entry("msg_b1", "", "x@example.com", T0, "queued"),
        log_entry("msg_b2", "w\0log", "x@example.com", T0, "queued"),
        log_entry("msg_b3", "w_log", "x\0@example.com", T0, "queued"),
    ] {
        let ok = log_entry("msg_ok", "w_log", "ok@example.com", T0, "queued");
        let mut tx = store.begin().await.unwrap();
        let put = tx.put_message_log(&[ok, bad]).await;
        assert!(matches!(put, Err(StoreError::Invalid(_))), "{put:?}");
        drop(tx);
        assert!(store.message_log_entry("msg_ok").await.unwrap().is_none());
    }
    for cursor in ["zz", "00", "", "0011"] {
        let page = store.message_log("w_log", &all, Some(cursor), 10).await;
        assert!(
            matches!(page, Err(StoreError::Invalid(_))),
            "{cursor}: {page:?}"
        );
    }

    // Pruned: the final ones finished before the cutoff, in batches.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.prune_message_log(T0 + 30, i64::MIN, 1).await.unwrap(),
        (1, true)
    );
    assert_eq!(
        tx.prune_message_log(T0 + 30, i64::MIN, 10).await.unwrap().0,
        1
    );
    tx.commit().await.unwrap();
    assert_eq!(
        log_ids(store, "w_log", &all, 50).await,
        ["msg_l3", "msg_l2"]
    );
    assert!(store.message_log_entry("msg_l1").await.unwrap().is_none());
    assert!(log_ids(
        store,
        "w_log",
        &q(|q| q.to = Some("ann@example.com".into())),
        50
    )
    .await
    .contains(&"msg_l3".to_string()));

    // Never final long after it was made (its node never said): dropped
    // once created before the stale bound; a newer one stays.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.prune_message_log(T0, T0 + 25, 10).await.unwrap(),
        (1, false)
    );
    tx.commit().await.unwrap();
    assert_eq!(log_ids(store, "w_log", &all, 50).await, ["msg_l2"]);
    assert_eq!(log_ids(store, "w_log2", &all, 50).await, ["msg_l4"]);
    assert_eq!(store.message_log_pending("w_log").await.unwrap(), 0);
    assert_eq!(store.message_log_pending("w_log2").await.unwrap(), 1);
}
