//! `rackwave storage migrate`: the PostgreSQL databases of
//! `[storage.postgres]` brought to this binary's schema, each database
//! once however many parts share it. Prints what it did as JSON:
//! `{"databases": [{"parts": ["portal", …], "from": 0, "to": 1}]}`.
//!
//! With `--from sled --to postgres` it then copies this node's shared
//! state from its sled store (`db` in `[storage] path`; the node stopped,
//! which sled's lock makes sure of) into those databases, empty, with
//! [`rackwave_store::copy`], and adds what it read back on each side:
//! `"copy": {"from": "sled", "to": "postgres", "equal": true, "families":
//! [{"family": "workspaces", "from": {"count": 2, "sha256": "…"}, "to":
//! {…}, "equal": true}, …]}`. When a family differs, the report is printed
//! all the same and the command fails.

use std::path::Path;

use rackwave_store::copy::{FamilyReport, Tallying};
use rackwave_store::postgres::Postgres;
use rackwave_store::{Database, Store};
use serde_json::{json, Value};

use crate::config::Config;

/// A storage backend, as `--from` and `--to` name it.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sled,
    Postgres,
}

impl Backend {
    fn as_str(self) -> &'static str {
        match self {
            Backend::Sled => "sled",
            Backend::Postgres => "postgres",
        }
    }
}

pub async fn migrate(config: &Path, copy: Option<(Backend, Backend)>) -> Result<Value, String> {
    let config = Config::load(config).map_err(|e| e.to_string())?;
    let sled = match copy {
        None => None,
        Some((Backend::Sled, Backend::Postgres)) => Some(open_sled(&config)?),
        Some((from, to)) => {
            return Err(format!(
                "--from {} --to {}: the copy goes --from sled --to postgres only (a single node's store into PostgreSQL)",
                from.as_str(),
                to.as_str()
            ))
        }
    };
    let mut answer = json!({ "databases": migrate_databases(&config).await? });
    if let Some((database, sled)) = sled {
        let report = copy_into_postgres(&config, &database, &sled).await?;
        let equal = report["equal"] == true;
        answer["copy"] = report;
        if !equal {
            println!(
                "{}",
                serde_json::to_string_pretty(&answer).expect("JSON value serializes")
            );
            return Err(
                "PostgreSQL does not read back what the sled store holds (see the families with \"equal\": false)"
                    .into(),
            );
        }
    }
    Ok(answer)
}

/// Each distinct database of `[storage.postgres]` migrated: what it did.
async fn migrate_databases(config: &Config) -> Result<Vec<Value>, String> {
    let section = &config.storage.postgres;
    // One entry per distinct URL, with the parts that use it.
    let mut databases: Vec<(&str, Vec<&str>)> = Vec::new();
    for (part, url) in section.databases()? {
        match databases.iter_mut().find(|(u, _)| *u == url) {
            Some((_, parts)) => parts.push(part),
            None => databases.push((url, vec![part])),
        }
    }
    let mut done = Vec::new();
    for (url, parts) in databases {
        let pg = Postgres::connect(url, 1)
            .await
            .map_err(|e| format!("{}: {e}", parts.join(", ")))?;
        let migrated = pg
            .migrate()
            .await
            .map_err(|e| format!("{}: {e}", parts.join(", ")))?;
        done.push(json!({"parts": parts, "from": migrated.from, "to": migrated.to}));
    }
    Ok(done)
}

/// The node's sled store, as `serve` opens it; refused while the node
/// runs (it holds sled's lock), since its store must not change while it
/// is copied.
fn open_sled(config: &Config) -> Result<(Database, Store), String> {
    let path = config.storage.path.join("db");
    if !path.exists() {
        return Err(format!(
            "no sled store at {}: [storage] path names the node's data directory",
            path.display()
        ));
    }
    let database = Database::open(&path, config.storage.cache_mb).map_err(|e| {
        if e.to_string().contains("could not acquire lock") {
            format!(
                "the sled store at {} is in use: stop the node first",
                path.display()
            )
        } else {
            format!("{}: {e}", path.display())
        }
    })?;
    let store = database
        .store()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((database, store))
}

async fn copy_into_postgres(
    config: &Config,
    database: &Database,
    sled: &Store,
) -> Result<Value, String> {
    let section = &config.storage.postgres;
    let urls = section.databases()?;
    let url = |part: &str| {
        urls.iter()
            .find(|(p, _)| *p == part)
            .map_or("", |(_, url)| *url)
    };
    let postgres = rackwave_store::postgres::Databases {
        portal: url("portal"),
        migosmtp: url("migosmtp"),
        telnxo: url("telnxo"),
        max_connections: section.max_connections,
    }
    .store()
    .await
    .map_err(|e| format!("PostgreSQL: {e}"))?;
    let mut families = rackwave_store::copy::copy(sled, &postgres)
        .await
        .map_err(|e| format!("copying the sled store into PostgreSQL: {e}"))?;
    families.push(share_message_log(config, database, sled, &postgres).await?);
    let equal = families.iter().all(|f| f.equal());
    if equal {
        // On PostgreSQL each node names its position in its own spool's
        // feed after the spool (`crate::server::feed_position`): this node
        // goes on where it stopped, rather than from the spool's oldest
        // untrimmed entry.
        let position = sled.cursor("feed").await.map_err(|e| e.to_string())?;
        let mut shared = config.clone();
        shared.storage.backend = crate::config::StorageBackend::Postgres;
        let name = crate::server::feed_position(&shared, &config.storage.path)
            .map_err(|e| format!("{}: {e}", config.storage.path.display()))?;
        let mut tx = postgres.begin().await.map_err(|e| e.to_string())?;
        tx.set_cursor(&name, position)
            .await
            .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
    }
    let families: Vec<Value> = families
        .iter()
        .map(|f| json!({"family": f.family, "from": f.from, "to": f.to, "equal": f.equal()}))
        .collect();
    Ok(json!({
        "from": Backend::Sled.as_str(),
        "to": Backend::Postgres.as_str(),
        "equal": equal,
        "families": families,
    }))
}

/// The node's messages (its spool's records) put in the shared message
/// log, so every node lists them once it runs on PostgreSQL; counted on
/// both sides, workspace by workspace.
async fn share_message_log(
    config: &Config,
    database: &Database,
    sled: &Store,
    postgres: &Store,
) -> Result<FamilyReport, String> {
    let data = &config.storage.path;
    let spool = rackwave_queue::Spool::open_in(
        database,
        &data.join("bodies"),
        rackwave_queue::SpoolConfig::default(),
    )
    .map_err(|e| format!("the spool in {}: {e}", data.display()))?;
    let node = config.node.id();
    let failed = |e: &dyn std::fmt::Display| format!("sharing the message log: {e}");
    let (mut from, mut to) = (Tallying::default(), Tallying::default());
    for workspace in sled.workspaces().await.map_err(|e| failed(&e))? {
        let filter = rackwave_queue::ListFilter {
            workspace_id: workspace.id.clone(),
            ..Default::default()
        };
        let mut cursor = None;
        loop {
            let page = spool
                .list(&filter, cursor.as_deref(), 500)
                .map_err(|e| failed(&e))?;
            // What the log cannot key stays listed by nothing but this
            // node's spool, as the feed leaves it.
            let entries: Vec<_> = page
                .messages
                .iter()
                .map(|m| {
                    let json = serde_json::to_string(m).expect("records serialize");
                    rackwave_events::message_log_entry(m, json, &node)
                })
                .filter(|e| e.check().is_ok())
                .collect();
            entries.iter().for_each(|e| from.add(e));
            let mut tx = postgres.begin().await.map_err(|e| failed(&e))?;
            tx.put_message_log(&entries).await.map_err(|e| failed(&e))?;
            tx.commit().await.map_err(|e| failed(&e))?;
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let mut cursor = None;
        loop {
            let page = postgres
                .message_log(&workspace.id, &Default::default(), cursor.as_deref(), 500)
                .await
                .map_err(|e| failed(&e))?;
            page.items.iter().for_each(|e| to.add(e));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    Ok(FamilyReport {
        family: "message log",
        from: from.finish(),
        to: to.finish(),
    })
}
