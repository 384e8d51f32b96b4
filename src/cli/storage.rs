//! `rackwave storage migrate`: the PostgreSQL databases of
//! `[storage.postgres]` brought to this binary's schema, each database
//! once however many parts share it. Prints what it did as JSON:
//! `{"databases": [{"parts": ["portal", …], "from": 0, "to": 1}]}`.

use std::path::Path;

use rackwave_store::postgres::Postgres;
use serde_json::{json, Value};

use crate::config::Config;

pub async fn migrate(config: &Path) -> Result<Value, String> {
    let config = Config::load(config).map_err(|e| e.to_string())?;
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
    Ok(json!({ "databases": done }))
}
