//! Row-level tenancy in the database itself. Every tenant table carries
//! its workspace and has a policy (see the first migration) admitting a
//! row only when the transaction is scoped to that workspace: the backend
//! sets `rackwave.workspace` for each transaction (`SET LOCAL`, so it ends
//! with the transaction and never leaks to the next user of a pooled
//! connection). A query that forgets its `WHERE workspace_id` still cannot
//! read or write another tenant's rows; a transaction with no scope sees
//! none at all. The service's own cross-tenant work (finding an API key by
//! its digest before the workspace is known, the schedulers) runs in the
//! `Service` scope, named as such where it is used.

use std::future::Future;
use std::pin::Pin;

use deadpool_postgres::Transaction;

use super::{pg_error, Postgres};
use crate::{Result, StoreError};

/// Whose rows a transaction may see and change.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// One workspace's (or one portal client's) rows.
    Workspace(&'a str),
    /// Every tenant's: the service's own work across tenants.
    Service,
}

/// The work of a scoped transaction.
pub type Work<'t, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 't>>;

impl Postgres {
    /// Runs `work` in one transaction scoped to `scope`, and commits it if
    /// `work` succeeds (rolls back otherwise).
    pub async fn scoped<T>(
        &self,
        scope: Scope<'_>,
        work: impl for<'t> FnOnce(&'t Transaction<'t>) -> Work<'t, T>,
    ) -> Result<T> {
        let value = match scope {
            Scope::Workspace(ws) if ws.is_empty() || ws == "*" => {
                return Err(StoreError::Invalid(format!(
                    "{ws:?} is not a workspace to scope a transaction to"
                )))
            }
            Scope::Workspace(ws) => ws,
            Scope::Service => "*",
        };
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        tx.execute(
            "SELECT set_config('rackwave.workspace', $1, true)",
            &[&value],
        )
        .await
        .map_err(pg_error)?;
        let out = work(&tx).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(out)
    }
}
