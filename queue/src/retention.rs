//! The background retention pass: finished messages older than the
//! configured retention are deleted in small batches, with a pause between
//! batches, so acceptance and delivery never wait behind it (see the crate
//! docs, "Retention").

use std::time::Duration;

use rackwave_core::Clock;
use tokio::sync::watch;

use crate::Spool;

/// Records deleted (or indexed) per batch.
pub const BATCH: usize = 500;

/// Pause between two batches: the writer serves other requests meanwhile.
const PAUSE: Duration = Duration::from_millis(20);

/// How often a pass runs: a quarter of the retention, between a second
/// and ten minutes, so a short retention (a test, a benchmark) is kept
/// close and a long one costs nothing.
pub fn interval(keep_ms: i64) -> Duration {
    Duration::from_millis((keep_ms / 4).clamp(1_000, 600_000) as u64)
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Records added to the retention index (finished before it existed).
    pub indexed_batches: u64,
    /// Records deleted.
    pub pruned: u64,
}

/// One pass: completes the retention index if needed, then deletes every
/// message finished more than `keep_ms` ago (on `clock`).
pub async fn pass(spool: &Spool, clock: &Clock, keep_ms: i64) -> Result<Pass, crate::SpoolError> {
    let mut done = Pass::default();
    while spool.index_finished(BATCH).await? {
        done.indexed_batches += 1;
        tokio::time::sleep(PAUSE).await;
    }
    let cutoff = clock.now_ms().saturating_sub(keep_ms);
    loop {
        let (removed, more) = spool.prune_finished(cutoff, BATCH).await?;
        done.pruned += removed;
        if !more {
            return Ok(done);
        }
        tokio::time::sleep(PAUSE).await;
    }
}

/// Runs a pass every [`interval`] until `shutdown` turns true; `keep_ms`
/// 0 keeps everything (and returns at once).
pub async fn run(spool: Spool, clock: Clock, keep_ms: i64, mut shutdown: watch::Receiver<bool>) {
    if keep_ms <= 0 {
        return;
    }
    loop {
        match pass(&spool, &clock, keep_ms).await {
            Ok(p) if p.pruned > 0 => {
                tracing::info!(
                    records = p.pruned,
                    "spool retention: deleted finished messages"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "spool retention pass failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval(keep_ms)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}
