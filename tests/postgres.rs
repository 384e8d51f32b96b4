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
