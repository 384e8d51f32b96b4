//! Quotas claimed from a shared store (`Quotas::shared`, several nodes):
//! two nodes' quotas on one store never hand out more than the cap
//! together, a unit given back (RSET) is this node's to reserve again, a
//! recipient refused by the workspace's cap gives its account unit back,
//! and a caller that goes away mid-reservation leaks nothing. The store
//! here is sled (the claims are the store's operation, the same on
//! PostgreSQL: see the storage conformance suite and tests/nodes.rs).

use rackwave_core::Clock;
use rackwave_intake::{Limits, QuotaError, Quotas};
use rackwave_queue::{Spool, SpoolConfig};
use rackwave_store::{Database, Store};

const T0: i64 = 1_780_825_140_000;

struct Rig {
    _dir: tempfile::TempDir,
    spool: Spool,
    store: Store,
    clock: Clock,
}

fn new_rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let database = Database::open(&dir.path().join("db"), 16).unwrap();
    let store = database.store().unwrap();
    let spool = Spool::open_in(
        &database,
        &dir.path().join("bodies"),
        SpoolConfig::default(),
    )
    .unwrap();
    Rig {
        _dir: dir,
        spool,
        store,
        clock: Clock::manual(T0),
    }
}

impl Rig {
    /// A node's quotas on the shared store.
    fn node(&self) -> Quotas {
        Quotas::shared(self.spool.clone(), self.store.clone(), self.clock.clone())
    }
}

fn limits(account_quota: u64, workspace_quota: Option<u64>) -> Limits<'static> {
    Limits {
        account: "alice",
        account_quota,
        workspace: "ws_1",
        workspace_quota,
    }
}

/// Reserves one recipient in a reservation of its own and commits it; false
/// when refused as over quota.
async fn send_one(quotas: &Quotas, limits: &Limits<'_>) -> bool {
    let mut r = quotas.begin("alice", "ws_1");
    match quotas.reserve_one(&mut r, limits).await {
        Ok(()) => {
            quotas.commit(r, T0.div_euclid(86_400_000));
            true
        }
        Err(QuotaError::Exceeded) => false,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_never_pass_the_cap_together() {
    let rig = new_rig();
    let (a, b) = (rig.node(), rig.node());
    let cap = limits(300, None);
    let racers: Vec<_> = (0..400)
        .map(|i| {
            let node = if i % 2 == 0 { a.clone() } else { b.clone() };
            async move { send_one(&node, &limits(300, None)).await }
        })
        .collect();
    let sent = futures::future::join_all(racers)
        .await
        .into_iter()
        .filter(|ok| *ok)
        .count();
    assert!(sent <= 300, "{sent} sent against a cap of 300");
    // Near the cap blocks are one unit: what one node holds unused is a
    // few units at most, so together they sent nearly all of it.
    assert!(sent >= 290, "only {sent} of 300 sent");
    assert!(!send_one(&a, &cap).await && !send_one(&b, &cap).await);
}

#[tokio::test]
async fn units_given_back_are_reserved_again_and_a_refusal_leaks_none() {
    let rig = new_rig();
    let node = rig.node();
    // RSET: the units go back to this node's allowance, not lost.
    let mut r = node.begin("alice", "ws_1");
    for _ in 0..5 {
        node.reserve_one(&mut r, &limits(5, None)).await.unwrap();
    }
    assert!(matches!(
        node.reserve_one(&mut r, &limits(5, None)).await,
        Err(QuotaError::Exceeded)
    ));
    node.release_all(&mut r);
    for _ in 0..5 {
        node.reserve_one(&mut r, &limits(5, None)).await.unwrap();
    }
    node.commit(r, T0.div_euclid(86_400_000));
    assert!(!send_one(&node, &limits(5, None)).await);

    // The workspace's cap refuses: the account's unit is given back.
    let other = new_rig();
    let node = other.node();
    for _ in 0..3 {
        assert!(send_one(&node, &limits(10, Some(3))).await);
    }
    assert!(!send_one(&node, &limits(10, Some(3))).await);
    // Without the workspace cap the account has its 7 units left.
    let sent = {
        let mut n = 0;
        while send_one(&node, &limits(10, None)).await {
            n += 1;
        }
        n
    };
    assert_eq!(sent, 7);
}

#[tokio::test]
async fn a_reservation_abandoned_mid_claim_leaks_nothing() {
    let rig = new_rig();
    let node = rig.node();
    // Callers that give up at every point of a reservation (the future
    // dropped after each poll).
    let capped = limits(20, Some(20));
    for polls in 0..20 {
        let mut r = node.begin("alice", "ws_1");
        {
            let reserve = node.reserve_one(&mut r, &capped);
            tokio::pin!(reserve);
            for _ in 0..polls {
                if futures::poll!(reserve.as_mut()).is_ready() {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        node.release_all(&mut r);
    }
    // Let claims in flight finish crediting.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let mut sent = 0;
    while send_one(&node, &limits(20, Some(20))).await {
        sent += 1;
    }
    assert_eq!(
        sent, 20,
        "every unit claimed by an abandoned caller was kept"
    );
}
