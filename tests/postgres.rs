//! PostgreSQL, the shared store of several nodes, against a real server
//! the test kit starts (Debian's `postgresql`; skipped with a notice where
//! it is not installed, mandatory in CI): the schema's migrations, and
//! row-level tenancy enforced by the database itself.

use rackwave_store::postgres::{pg_error, Migrated, Postgres, Scope, MIGRATIONS};
use rackwave_store::StoreError;
use rackwave_testkit::postgres::Postgres as Server;
use serde_json::json;

/// The migrations apply once, also when two nodes start together, and a
/// database with a newer schema than the binary's is refused.
#[tokio::test]
async fn migrations_apply_once_and_refuse_a_newer_schema() {
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.database("migrations");
    let latest = MIGRATIONS.last().unwrap().version;
    let (a, b) = (
        Postgres::connect(&url, 2).await.unwrap(),
        Postgres::connect(&url, 2).await.unwrap(),
    );
    assert_eq!(a.schema_version().await.unwrap(), 0);
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let mut froms = [ra.from, rb.from];
    froms.sort();
    assert_eq!(
        froms,
        [0, latest],
        "one node migrated, the other found it done"
    );
    assert_eq!(ra.to, latest);
    assert_eq!(
        a.migrate().await.unwrap(),
        Migrated {
            from: latest,
            to: latest
        }
    );
    assert_eq!(
        server.sql("migrations", "SELECT count(*) FROM rackwave_schema"),
        MIGRATIONS.len().to_string()
    );

    // A newer binary migrated this database: this one stops.
    server.sql(
        "migrations",
        &format!(
            "INSERT INTO rackwave_schema (version, name) VALUES ({}, 'from the future')",
            latest + 1
        ),
    );
    let err = a.migrate().await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("newer than this binary")),
        "{err}"
    );
}

/// The backend refuses roles that row-level security does not bind, and
/// a URL that is no URL or names no server.
#[tokio::test]
async fn connecting_refuses_superusers_and_says_what_is_wrong() {
    let Some(server) = Server::start() else {
        return;
    };
    server.database("roles");
    let admin = format!(
        "postgres://postgres_admin@127.0.0.1:{}/roles?sslmode=disable",
        server.port
    );
    let err = Postgres::connect(&admin, 1).await.err().unwrap();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("bypasses row-level security")),
        "{err}"
    );
    let err = Postgres::connect("not a url", 1).await.err().unwrap();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    server.stop();
    let err = Postgres::connect(&server.url("roles"), 1)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
}

/// A deliberately unscoped query (no `WHERE workspace_id`) in a
/// transaction scoped to one workspace reads only that workspace's rows,
/// cannot write another's, and with no scope at all reads nothing.
#[tokio::test]
async fn row_level_security_keeps_an_unscoped_query_in_its_workspace() {
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.database("tenancy");
    let pg = Postgres::connect(&url, 4).await.unwrap();
    pg.migrate().await.unwrap();

    // The service's own scope writes both tenants' rows.
    pg.scoped(Scope::Service, |tx| {
        Box::pin(async move {
            for (digest, ws) in [("k1", "ws_a"), ("k2", "ws_a"), ("k3", "ws_b")] {
                tx.execute(
                    "INSERT INTO api_keys (digest, workspace_id, record) VALUES ($1, $2, $3)",
                    &[&digest, &ws, &json!({"workspace_id": ws})],
                )
                .await
                .unwrap();
            }
            Ok(())
        })
    })
    .await
    .unwrap();

    let unscoped = |scope| {
        pg.scoped(scope, |tx| {
            Box::pin(async move {
                let rows = tx
                    .query("SELECT digest FROM api_keys ORDER BY digest", &[])
                    .await
                    .unwrap();
                Ok(rows
                    .iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<_>>())
            })
        })
    };
    assert_eq!(
        unscoped(Scope::Workspace("ws_a")).await.unwrap(),
        ["k1", "k2"]
    );
    assert_eq!(unscoped(Scope::Workspace("ws_b")).await.unwrap(), ["k3"]);
    assert_eq!(unscoped(Scope::Service).await.unwrap(), ["k1", "k2", "k3"]);
    assert!(unscoped(Scope::Workspace("ws_c")).await.unwrap().is_empty());
    for bad in ["", "*"] {
        assert!(matches!(
            unscoped(Scope::Workspace(bad)).await,
            Err(StoreError::Invalid(_))
        ));
    }

    // Writing into another workspace from ws_a's scope: refused by the
    // policy's check, and an unscoped UPDATE or DELETE touches only ws_a's.
    let err = pg
        .scoped(Scope::Workspace("ws_a"), |tx| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO api_keys (digest, workspace_id, record) VALUES ('k4', 'ws_b', '{}')",
                    &[],
                )
                .await
                .map_err(pg_error)?;
                Ok(())
            })
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("row-level security")),
        "{err}"
    );
    let changed = pg
        .scoped(Scope::Workspace("ws_a"), |tx| {
            Box::pin(async move {
                let updated = tx
                    .execute("UPDATE api_keys SET record = '{\"touched\": true}'", &[])
                    .await
                    .unwrap();
                let deleted = tx.execute("DELETE FROM api_keys", &[]).await.unwrap();
                Ok((updated, deleted))
            })
        })
        .await
        .unwrap();
    assert_eq!(changed, (2, 2));
    assert_eq!(
        unscoped(Scope::Service).await.unwrap(),
        ["k3"],
        "ws_b's key stays"
    );

    // A connection that sets no scope at all (as a forgetful query would):
    // nothing, even for the tables' owner.
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let rows = client
        .query("SELECT digest FROM api_keys", &[])
        .await
        .unwrap();
    assert!(rows.is_empty(), "no scope, no rows");
    let err = client
        .execute(
            "INSERT INTO api_keys (digest, workspace_id, record) VALUES ('k5', 'ws_a', '{}')",
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(pg_error(err), StoreError::Invalid(m) if m.contains("row-level security")),
        "an insert without a scope is refused"
    );

    // Every table holding a workspace's rows has its policy, forced even
    // for the tables' owner (the message log among them). The portal's
    // `workspace_subscriptions` is not a tenant's: the portal's records
    // are its clients', kept in the service's scope (the seed asks
    // row-level tenancy of the platforms' databases).
    let unguarded: Vec<String> = client
        .query(
            "SELECT c.relname::text FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'workspace_id'
              WHERE c.relkind = 'r' AND NOT (c.relrowsecurity AND c.relforcerowsecurity)
                AND c.relname <> 'workspace_subscriptions'
              ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(unguarded, Vec::<String>::new());
}

/// `rackwave storage migrate` prepares the databases of
/// `[storage.postgres]`, each once (two parts share one here), and a
/// missing URL is a configuration error.
#[tokio::test]
async fn the_storage_migrate_command_prepares_each_database_once() {
    let Some(server) = Server::start() else {
        return;
    };
    let (shared, telnxo) = (server.database("shared"), server.database("telnxo"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let write = |extra: &str| {
        std::fs::write(
            &config,
            format!(
                "[storage]\npath = \"data\"\nbackend = \"postgres\"\n\n[storage.postgres]\nportal_url = \"{shared}\"\nmigosmtp_url = \"{shared}\"\n{extra}"
            ),
        )
        .unwrap()
    };
    let rackwave = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_rackwave"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap()
    };
    write("");
    let out = rackwave(&["storage", "migrate"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("telnxo_url is not set"),
        "{out:?}"
    );
    write(&format!("telnxo_url = \"{telnxo}\"\n"));
    let out = rackwave(&["storage", "migrate"]);
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let latest = MIGRATIONS.last().unwrap().version;
    assert_eq!(
        report,
        json!({"databases": [
            {"parts": ["portal", "migosmtp"], "from": 0, "to": latest},
            {"parts": ["telnxo"], "from": 0, "to": latest},
        ]})
    );
    let again = rackwave(&["storage", "migrate"]);
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        report["databases"][0]["from"], latest,
        "nothing to do twice"
    );
}

/// `rackwave storage migrate --from sled --to postgres`: a stopped node's
/// sled store copied into the databases of `[storage.postgres]`, every
/// family reading back equal; the copy is what the node had (a delivery
/// names its event, the invoice series goes on); it refuses a running
/// node, a target that holds data, and any other direction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storage_migrate_command_copies_a_sled_node_into_postgres() {
    use rackwave_billing::numbering::next_invoice_number;
    use rackwave_core::event::{EmailEvent, Event, MessageRef};
    use rackwave_core::{Platform, Product, Timestamp};
    use rackwave_store::telnxo::{Channel, CommStatus, Direction, TelnxoMessage, TelnxoNumber};
    use rackwave_store::*;

    let Some(server) = Server::start() else {
        return;
    };
    let (shared, telnxo) = (server.database("shared"), server.database("telnxo"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\npath = \"data\"\n\n[storage.postgres]\nportal_url = \"{shared}\"\nmigosmtp_url = \"{shared}\"\ntelnxo_url = \"{telnxo}\"\n"
        ),
    )
    .unwrap();
    let rackwave = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_rackwave"))
            .args(["storage", "migrate"])
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap()
    };
    let stderr = |out: &std::process::Output| String::from_utf8_lossy(&out.stderr).into_owned();

    // A node's store, as the node left it.
    const NOW: i64 = 1_780_825_140_123;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let database = Database::open(&data.join("db"), 16).unwrap();
    let sled = database.store().unwrap();
    let mut tx = sled.begin().await.unwrap();
    tx.insert_workspace(&Workspace {
        id: "ws_1".into(),
        name: "Acme".into(),
        daily_quota: Some(1000),
        created_at: "2026-06-07T09:39:00Z".into(),
        allow_unverified_senders: false,
        tracking: TrackingSettings::default(),
        suspended: None,
    })
    .await
    .unwrap();
    tx.insert_smtp_account(&SmtpAccount {
        workspace_id: "ws_1".into(),
        username: "acme".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        daily_quota: 100,
        created_at: "2026-06-07T09:39:00Z".into(),
    })
    .await
    .unwrap();
    tx.insert_api_key(&ApiKey {
        id: "key_1".into(),
        digest: "d1gest".into(),
        workspace_id: "ws_1".into(),
        platform: Platform::Migosmtp,
        prefix: "rw_live_1234".into(),
        created_at: "2026-06-07T09:39:00Z".into(),
        last_used_at_ms: Some(NOW),
    })
    .await
    .unwrap();
    tx.insert_sender_domain(&SenderDomain {
        workspace_id: "ws_1".into(),
        domain: "acme.example".into(),
        selector: "rw202606".into(),
        algorithm: DkimAlgorithm::Ed25519,
        private_key: "cHJpdmF0ZQ==".into(),
        public_key: "cHVibGlj".into(),
        created_at: "2026-06-07T09:39:00Z".into(),
        checks: Vec::new(),
        verified_at_ms: Some(NOW),
        tracking_host: None,
        tracking: None,
    })
    .await
    .unwrap();
    tx.put_suppression(&Suppression {
        workspace_id: "ws_1".into(),
        address: "gone@example.org".into(),
        reason: SuppressionReason::HardBounce,
        message_id: Some("msg_1".into()),
        detail: Some("550 5.1.1 no such user".into()),
        created_at_ms: NOW,
    })
    .await
    .unwrap();
    let mut events = Vec::new();
    for (i, step) in [EmailEvent::Queued, EmailEvent::Sent, EmailEvent::Delivered]
        .into_iter()
        .enumerate()
    {
        let at = Timestamp(NOW + i as i64);
        let message = MessageRef {
            message_id: "msg_1".into(),
            queue_id: "Q1".into(),
            to: "to@example.org".into(),
            from: "news@acme.example".into(),
            subject: Some("Hello".into()),
            tags: vec!["welcome".into()],
            ..MessageRef::default()
        };
        let event = Event::new("ws_1", at, step.data(message, at, 1, None));
        events.push(tx.append_event(&event).await.unwrap());
    }
    let endpoint = Endpoint {
        id: "ep_1".into(),
        workspace_id: "ws_1".into(),
        product: Product::Migosmtp,
        url: "https://hooks.acme.example/rackwave".into(),
        event_types: Vec::new(),
        enabled: true,
        description: Some("ours".into()),
        secrets: vec![Secret {
            secret: "whsec_x".into(),
            created_at_ms: NOW,
            expires_at_ms: None,
        }],
        created_at_ms: NOW,
        updated_at_ms: NOW,
    };
    tx.put_endpoint(&endpoint).await.unwrap();
    let delivered = &events[2];
    tx.insert_delivery(&mut Delivery {
        id: "whd_1".into(),
        endpoint_id: "ep_1".into(),
        workspace_id: "ws_1".into(),
        event_id: delivered.id.clone(),
        event_type: delivered.event_type.unwrap(),
        event_seq: delivered.seq,
        state: DeliveryState::Retrying,
        created_at_ms: NOW,
        first_attempt_at_ms: Some(NOW),
        next_attempt_at_ms: Some(NOW + 60_000),
        due_at_ms: Some(NOW + 60_000),
        resend: false,
        attempts: Vec::new(),
        seq: 0,
        leased_by: None,
    })
    .await
    .unwrap();
    tx.insert_client(&Client {
        id: "cus_1".into(),
        email: "ada@acme.example".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        name: "Ada".into(),
        company: Some("Acme".into()),
        address: "1 Engine Road, Mumbai".into(),
        state_code: "27".into(),
        gstin: None,
        created_at_ms: NOW,
        credit_paise: 0,
        contacts: Vec::new(),
        session_epoch: 0,
        reset_requested_at_ms: None,
    })
    .await
    .unwrap();
    tx.put_subscription(&Subscription {
        id: "sub_1".into(),
        client_id: "cus_1".into(),
        platform: "migosmtp".into(),
        plan_id: "mail".into(),
        status: SubscriptionStatus::Active,
        workspace_id: "ws_1".into(),
        period_start_ms: NOW,
        period_end_ms: NOW + 30 * 86_400_000,
        created_at_ms: NOW,
        suspension_reason: None,
        suspended_from: None,
        cancelled_at_ms: None,
        next_plan_id: None,
        suspended_for: None,
    })
    .await
    .unwrap();
    let number = next_invoice_number(&mut tx, "RW", NOW).await.unwrap();
    assert_eq!(number, "RW/26-27/00001");
    let party = Party {
        name: "Ada".into(),
        address: "1 Engine Road, Mumbai".into(),
        state_code: "27".into(),
        gstin: None,
    };
    tx.insert_invoice(&Invoice {
        id: "inv_1".into(),
        number,
        client_id: "cus_1".into(),
        subscription_id: Some("sub_1".into()),
        kind: InvoiceKind::Activation,
        status: InvoiceStatus::Open,
        lines: vec![InvoiceLine {
            description: "Mail, June".into(),
            sac: "998315".into(),
            period_start_ms: NOW,
            period_end_ms: NOW + 30 * 86_400_000,
            amount_paise: 100_000,
        }],
        subtotal_paise: 100_000,
        cgst_paise: 9_000,
        sgst_paise: 9_000,
        igst_paise: 0,
        gst_rate_bp: 1800,
        total_paise: 118_000,
        credit_applied_paise: 0,
        paid_paise: 0,
        credited_paise: 0,
        seller: party.clone(),
        buyer: party,
        place_of_supply: "27".into(),
        issued_at_ms: NOW,
        due_at_ms: NOW + 7 * 86_400_000,
        overdue_since_ms: None,
        paid_at_ms: None,
        reminded: false,
        next_action_ms: Some(NOW + 4 * 86_400_000),
    })
    .await
    .unwrap();
    tx.put_telnxo_number(&TelnxoNumber {
        number: "+14155550100".into(),
        workspace_id: "ws_1".into(),
        channels: vec![Channel::Sms],
        created_at_ms: NOW,
    })
    .await
    .unwrap();
    tx.put_telnxo_message(&TelnxoMessage {
        id: "msg_t1".into(),
        workspace_id: "ws_1".into(),
        channel: Channel::Sms,
        direction: Direction::Outbound,
        from: "+14155550100".into(),
        to: "+919876543210".into(),
        body: "Your code is 1234".into(),
        encoding: Some("gsm7".into()),
        parts: 1,
        whatsapp: None,
        status: CommStatus::Sent,
        attempts: 1,
        due_at_ms: None,
        expires_at_ms: NOW + 86_400_000,
        carrier_ids: vec!["1A2B3C".into()],
        receipts: vec![None],
        error: None,
        history: Vec::new(),
        created_at_ms: NOW,
    })
    .await
    .unwrap();
    tx.put_carrier_id(Channel::Sms, "=1a2b3c", "msg_t1", 0)
        .await
        .unwrap();
    tx.add_telnxo_usage("ws_1", "day:20611", 1).await.unwrap();
    tx.commit().await.unwrap();
    // And its spool's messages, which the shared message log gets.
    let spool = rackwave_queue::Spool::open_in(
        &database,
        &data.join("bodies"),
        rackwave_queue::SpoolConfig::default(),
    )
    .unwrap();
    let queued = spool
        .enqueue(rackwave_queue::Submission {
            queue_id: None,
            workspace_id: "ws_1".into(),
            submitter: "acme".into(),
            mail_from: "news@acme.example".into(),
            recipients: vec!["a@example.org".into(), "b@example.org".into()],
            subject: Some("Hello".into()),
            body: b"Subject: Hello\r\n\r\nHi\r\n".to_vec(),
            received_at_ms: NOW,
            tags: vec!["welcome".into()],
            metadata: Default::default(),
            return_path: None,
        })
        .await
        .unwrap();
    drop(spool);

    // While the node runs, its store is not copied.
    let out = rackwave(&["--from", "sled", "--to", "postgres"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("stop the node first"), "{out:?}");
    sled.flush().await.unwrap();
    drop(sled);
    drop(database);

    // Only a stopped sled node's store goes into PostgreSQL.
    let out = rackwave(&["--from", "postgres", "--to", "sled"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--from sled --to postgres only"),
        "{out:?}"
    );
    let out = rackwave(&["--from", "sled"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--to <TO>"), "{out:?}");

    let out = rackwave(&["--from", "sled", "--to", "postgres"]);
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let latest = MIGRATIONS.last().unwrap().version;
    assert_eq!(report["databases"][0]["to"], latest);
    let copy = &report["copy"];
    assert_eq!(
        (&copy["from"], &copy["to"], &copy["equal"]),
        (&json!("sled"), &json!("postgres"), &json!(true))
    );
    let families = copy["families"].as_array().unwrap();
    for family in families {
        assert_eq!(family["equal"], true, "{family}");
        assert_eq!(family["from"], family["to"], "{family}");
        assert_eq!(
            family["from"]["sha256"].as_str().unwrap().len(),
            64,
            "{family}"
        );
    }
    let count = |name: &str| {
        families
            .iter()
            .find(|f| f["family"] == name)
            .unwrap_or_else(|| panic!("no {name} in {copy}"))["from"]["count"]
            .as_u64()
            .unwrap()
    };
    for (family, n) in [
        ("workspaces", 1),
        ("smtp_accounts", 1),
        ("api_keys", 1),
        ("sender_domains", 1),
        ("suppressions", 1),
        ("events", 3),
        ("endpoints", 1),
        ("deliveries", 1),
        ("clients", 1),
        ("subscriptions", 1),
        ("workspace_subscriptions", 1),
        ("invoices", 1),
        ("telnxo_numbers", 1),
        ("telnxo_messages", 1),
        ("carrier_ids", 1),
        ("telnxo_usage", 1),
        ("named_positions", 1),
        ("message log", 2),
    ] {
        assert_eq!(count(family), n, "{family}");
    }

    // PostgreSQL holds what the node had.
    let pg = postgres::Databases {
        portal: &shared,
        migosmtp: &shared,
        telnxo: &telnxo,
        max_connections: 2,
    }
    .store()
    .await
    .unwrap();
    assert_eq!(pg.workspace("ws_1").await.unwrap().unwrap().name, "Acme");
    let log = pg
        .message_log("ws_1", &MessageLogQuery::default(), None, 10)
        .await
        .unwrap();
    let mut ids: Vec<&str> = log.items.iter().map(|e| e.id.as_str()).collect();
    ids.sort();
    let mut want: Vec<&str> = queued.message_ids.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(ids, want);
    assert!(log
        .items
        .iter()
        .all(|e| e.status == "queued" && e.tags == ["welcome"]));
    assert_eq!(
        pg.smtp_account("acme").await.unwrap().unwrap().workspace_id,
        "ws_1"
    );
    assert_eq!(pg.api_key("d1gest").await.unwrap().unwrap().id, "key_1");
    assert!(pg.sender_domain("acme.example").await.unwrap().is_some());
    assert!(pg
        .suppression("ws_1", "gone@example.org")
        .await
        .unwrap()
        .is_some());
    assert_eq!(pg.endpoint("ep_1").await.unwrap().unwrap(), endpoint);
    let delivery = pg.delivery("whd_1").await.unwrap().unwrap();
    let event = pg.event("ws_1", delivery.event_seq).await.unwrap().unwrap();
    assert_eq!(event.id, delivered.id, "the delivery names its event");
    assert_eq!(event.body(), delivered.body(), "byte for byte");
    assert_eq!(event.at_ms, NOW + 2);
    assert_eq!(
        pg.due_deliveries("ep_1", NOW + 60_000, 10).await.unwrap(),
        ["whd_1"],
        "still due"
    );
    assert_eq!(
        pg.subscription_of_workspace("ws_1")
            .await
            .unwrap()
            .unwrap()
            .id,
        "sub_1"
    );
    assert_eq!(pg.invoices_of("cus_1").await.unwrap().len(), 1);
    assert_eq!(
        pg.telnxo_by_carrier_id(Channel::Sms, "=1a2b3c")
            .await
            .unwrap(),
        Some(("msg_t1".to_string(), 0))
    );
    assert_eq!(pg.telnxo_usage("ws_1", "day:20611").await.unwrap(), 1);
    let mut tx = pg.begin().await.unwrap();
    assert_eq!(
        next_invoice_number(&mut tx, "RW", NOW).await.unwrap(),
        "RW/26-27/00002",
        "the series goes on"
    );
    drop(tx);

    // Copying again would mix two installations.
    let again = rackwave(&["--from", "sled", "--to", "postgres"]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("already holds data"), "{again:?}");
}

/// Text PostgreSQL cannot hold (a NUL sent as `\u0000`) is the request's
/// fault: `400` with the JSON error shape, never a `503` to retry, and
/// the node goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_record_is_refused_as_bad_input() {
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.database("rackwave");
    let ts = rackwave_testkit::start_with(move |c| {
        c.storage.backend = rackwave::config::StorageBackend::Postgres;
        c.storage.postgres.portal_url = Some(url.clone());
        c.storage.postgres.migosmtp_url = Some(url.clone());
        c.storage.postgres.telnxo_url = Some(url);
    })
    .await;
    let (s, refused) = ts
        .admin(
            "POST",
            "/admin/v1/workspaces",
            Some(json!({"name": "nul\u{0}name"})),
        )
        .await;
    assert_eq!(s, 400, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_request", "{refused}");
    let ws = ts.create_workspace("after", None).await;
    let key = ts.create_api_key(&ws, "migosmtp").await;
    let (s, hook) = ts
        .call(
            &key,
            "POST",
            "/migosmtp/v1/webhooks",
            Some(json!({"url": "https://hooks.example.test/x", "description": "a\u{0}b"})),
        )
        .await;
    assert_eq!(s, 400, "{hook}");
    let (s, list) = ts.call(&key, "GET", "/migosmtp/v1/webhooks", None).await;
    assert_eq!(s, 200);
    assert_eq!(list["webhooks"], json!([]), "{list}");
}
