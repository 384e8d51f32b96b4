//! The schema's versions. Each migration is a file of SQL applied once, in
//! order, in one transaction with its record in `rackwave_schema`; nodes
//! starting together take turns on an advisory lock, so each is applied
//! once. A database whose schema is newer than this binary knows is
//! refused: an older node must not write into tables it does not
//! understand.

use super::{pg_error, Postgres};
use crate::{Result, StoreError};

/// One step of the schema.
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every step, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "tenancy",
        sql: include_str!("migrations/0001_tenancy.sql"),
    },
    Migration {
        version: 2,
        name: "tenants",
        sql: include_str!("migrations/0002_tenants.sql"),
    },
    Migration {
        version: 3,
        name: "events",
        sql: include_str!("migrations/0003_events.sql"),
    },
    Migration {
        version: 4,
        name: "portal",
        sql: include_str!("migrations/0004_portal.sql"),
    },
    Migration {
        version: 5,
        name: "telnxo",
        sql: include_str!("migrations/0005_telnxo.sql"),
    },
    Migration {
        version: 6,
        name: "coordination",
        sql: include_str!("migrations/0006_coordination.sql"),
    },
    Migration {
        version: 7,
        name: "message log",
        sql: include_str!("migrations/0007_message_log.sql"),
    },
    Migration {
        version: 8,
        name: "suspended",
        sql: include_str!("migrations/0008_suspended.sql"),
    },
];

/// The advisory lock migrations take turns on (`RWSCHEMA` in ASCII).
const LOCK: i64 = 0x5257_5343_4845_4d41;

/// What [`Postgres::migrate`] found and left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    pub from: u32,
    pub to: u32,
}

fn latest() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

impl Postgres {
    /// Brings the schema to this binary's version; refuses a newer one.
    pub async fn migrate(&self) -> Result<Migrated> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
            .await
            .map_err(pg_error)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS rackwave_schema (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(pg_error)?;
        let from: i32 = tx
            .query_one("SELECT COALESCE(max(version), 0) FROM rackwave_schema", &[])
            .await
            .map_err(pg_error)?
            .get(0);
        let from = from.max(0) as u32;
        if from > latest() {
            return Err(StoreError::Invalid(format!(
                "the database's schema is version {from}, newer than this binary's {}: run the newer Rackwave",
                latest()
            )));
        }
        for m in MIGRATIONS.iter().filter(|m| m.version > from) {
            tx.batch_execute(m.sql).await.map_err(|e| {
                StoreError::Invalid(format!("migration {} ({}): {e}", m.version, m.name))
            })?;
            tx.execute(
                "INSERT INTO rackwave_schema (version, name) VALUES ($1, $2)",
                &[&(m.version as i32), &m.name],
            )
            .await
            .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(Migrated {
            from,
            to: from.max(latest()),
        })
    }

    /// The schema's version (0: never migrated).
    pub async fn schema_version(&self) -> Result<u32> {
        let client = self.client().await?;
        let exists: bool = client
            .query_one("SELECT to_regclass('rackwave_schema') IS NOT NULL", &[])
            .await
            .map_err(pg_error)?
            .get(0);
        if !exists {
            return Ok(0);
        }
        let v: i32 = client
            .query_one("SELECT COALESCE(max(version), 0) FROM rackwave_schema", &[])
            .await
            .map_err(pg_error)?
            .get(0);
        Ok(v.max(0) as u32)
    }
}
