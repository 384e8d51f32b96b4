//! This node's number in the ids it draws, when several nodes share one
//! store: message and queue ids are drawn by each node on its own (the
//! time, then random bits), so two nodes could draw the same one in the
//! same millisecond. Each node holds one of [`ID_NODES`] numbers as a
//! lease in the store (held by its data directory's spool id, so two
//! nodes configured with one `[node] id` still get two) and puts it into
//! every id (`rackwave_core::set_id_node`). The lease lasts a day and is
//! renewed every hour; a node gone for a day gives its number back.

use std::time::Duration;

use rackwave_core::{Clock, ID_NODES};
use rackwave_store::{Store, StoreError};
use tokio::sync::watch;

/// How long a number stays a node's without being renewed.
const HOLD_MS: i64 = 86_400_000;
/// How often it is renewed.
const RENEW: Duration = Duration::from_secs(3600);

fn lease(number: u32) -> String {
    format!("id-node:{number}")
}

/// The first number `holder` holds or can take now, held for a day.
pub(crate) async fn take_id_number(
    store: &Store,
    holder: &str,
    clock: &Clock,
) -> Result<u32, StoreError> {
    let now = clock.now_ms();
    for number in 0..ID_NODES {
        if store
            .hold_lease(&lease(number), holder, now, now + HOLD_MS)
            .await?
        {
            return Ok(number);
        }
    }
    Err(StoreError::Conflict(format!(
        "all {ID_NODES} node numbers are held (by nodes seen within a day): no number for this node's ids"
    )))
}

/// Renews the number every hour until shutdown; takes another (and puts
/// it into the ids) if it was lost meanwhile (the store away for a day).
pub(crate) async fn keep_id_number(
    store: Store,
    holder: String,
    clock: Clock,
    mut number: u32,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RENEW) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let now = clock.now_ms();
        let renewed = store
            .hold_lease(&lease(number), &holder, now, now + HOLD_MS)
            .await;
        match renewed {
            Ok(true) => {}
            Ok(false) => match take_id_number(&store, &holder, &clock).await {
                Ok(taken) => {
                    tracing::warn!(
                        lost = number,
                        taken,
                        "this node's id number was taken over; drawing ids with another"
                    );
                    number = taken;
                    rackwave_core::set_id_node(number);
                }
                Err(e) => {
                    tracing::error!(error = %e, "this node's id number was taken over and no other is free")
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "renewing this node's id number failed; next in an hour")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Holders get numbers of their own, keep theirs when asking again,
    /// and get a number back once its holder has been gone for a day.
    #[tokio::test]
    async fn each_holder_gets_its_own_number_until_it_is_gone_for_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let store = rackwave_store::Database::open(&dir.path().join("db"), 16)
            .unwrap()
            .store()
            .unwrap();
        let clock = Clock::manual(1_780_825_140_000);
        assert_eq!(take_id_number(&store, "spool-a", &clock).await.unwrap(), 0);
        assert_eq!(take_id_number(&store, "spool-b", &clock).await.unwrap(), 1);
        assert_eq!(take_id_number(&store, "spool-a", &clock).await.unwrap(), 0);
        clock.advance_ms(HOLD_MS / 2);
        assert_eq!(take_id_number(&store, "spool-b", &clock).await.unwrap(), 1);
        // spool-a has not renewed for a day: its number goes to a newcomer.
        clock.advance_ms(HOLD_MS / 2 + 1);
        assert_eq!(take_id_number(&store, "spool-c", &clock).await.unwrap(), 0);
        assert_eq!(take_id_number(&store, "spool-a", &clock).await.unwrap(), 2);
    }
}
