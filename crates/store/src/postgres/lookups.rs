//! Suppression lookups that arrive together, asked together. Every
//! recipient of every message is looked up (`Reads::suppression`), which
//! would make PostgreSQL a round trip of every recipient. Instead a lookup
//! made while another is on its way waits for it and goes in the next
//! query with every other that waited: one query for the first, one for
//! all that came during it, and so on. Under load a query answers dozens;
//! alone, a lookup costs what it did. Nothing is cached: each answer is
//! what the database held when its query ran, which began after the lookup
//! was asked.
//!
//! The queries run on a task of their own, so a caller that gives up (a
//! client hanging up mid-command) never strands the lookups queued behind
//! it.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::txn::{record, Part, PgStore};
use super::{lock, Scope};
use crate::{Result, StoreError, Suppression};

type Answer = oneshot::Sender<Result<Option<Suppression>>>;

/// The lookups waiting for the next query, and whether one is running.
#[derive(Default)]
pub(crate) struct Lookups {
    waiting: Vec<((String, String), Answer)>,
    asking: bool,
}

/// Most lookups one query carries; more wait for the next.
const MOST: usize = 1024;

impl PgStore {
    /// A workspace's suppression of an address, asked with whatever other
    /// lookups are waiting.
    pub(crate) async fn suppression_together(
        self: &Arc<Self>,
        workspace_id: &str,
        address: &str,
    ) -> Result<Option<Suppression>> {
        let (answer, answered) = oneshot::channel();
        let lead = {
            let mut lookups = lock(&self.lookups);
            lookups
                .waiting
                .push(((workspace_id.to_string(), address.to_string()), answer));
            !std::mem::replace(&mut lookups.asking, true)
        };
        if lead {
            tokio::spawn(self.clone().ask_waiting());
        }
        answered
            .await
            .map_err(|_| StoreError::Unavailable("a suppression lookup was dropped".into()))?
    }

    /// Queries for the waiting lookups until none wait.
    async fn ask_waiting(self: Arc<Self>) {
        // A task that ends abnormally (a panic) lets the next lookup start
        // a new one rather than wait for it.
        struct Abnormal(Arc<PgStore>, bool);
        impl Drop for Abnormal {
            fn drop(&mut self) {
                if self.1 {
                    lock(&self.0.lookups).asking = false;
                }
            }
        }
        let mut abnormal = Abnormal(self.clone(), true);
        loop {
            let batch = {
                let mut lookups = lock(&self.lookups);
                if lookups.waiting.is_empty() {
                    // Under the lock: a lookup queued after this starts a
                    // new task.
                    lookups.asking = false;
                    abnormal.1 = false;
                    return;
                }
                let n = lookups.waiting.len().min(MOST);
                lookups.waiting.drain(..n).collect::<Vec<_>>()
            };
            match self.ask(&batch).await {
                Ok(found) => {
                    for (key, answer) in batch {
                        let _ = answer.send(Ok(found.get(&key).cloned()));
                    }
                }
                Err(e) => {
                    for (_, answer) in batch {
                        let _ = answer.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// One query for a batch of lookups (of any workspaces: the service's
    /// scope, each row matched by its workspace and address).
    async fn ask(
        self: &Arc<Self>,
        batch: &[((String, String), Answer)],
    ) -> Result<HashMap<(String, String), Suppression>> {
        let workspaces: Vec<&str> = batch.iter().map(|((ws, _), _)| ws.as_str()).collect();
        let addresses: Vec<&str> = batch.iter().map(|((_, a), _)| a.as_str()).collect();
        let view = self.reader();
        let rows = view
            .on(Part::Migosmtp, Scope::Service)
            .await?
            .query(
                "SELECT s.workspace_id, s.address, s.record FROM suppressions s
                   JOIN unnest($1::text[], $2::text[]) AS l (workspace_id, address)
                     ON s.workspace_id = l.workspace_id AND s.address = l.address",
                &[&workspaces, &addresses],
            )
            .await?;
        let mut found = HashMap::new();
        for row in &rows {
            let corrupt =
                |e: tokio_postgres::Error| StoreError::Corrupt(format!("a suppression: {e}"));
            let key = (
                row.try_get(0).map_err(corrupt)?,
                row.try_get(1).map_err(corrupt)?,
            );
            found.insert(key, record(row, 2)?);
        }
        view.finish();
        Ok(found)
    }
}
