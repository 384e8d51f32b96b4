//! Daily sending quotas: accepted recipients per submitter (an SMTP
//! account) and, optionally, per workspace, per UTC day.
//!
//! The durable count lives in the spool, written in the same commit as the
//! messages it counts, so it can never disagree with what was accepted. On
//! top of it this module keeps in-memory reservations: a RCPT reserves one
//! unit, the reservation turns into a committed count once the message is
//! durable, and is released on RSET, failure or a dropped connection. All of
//! it happens under one lock, so concurrent sessions of one account can never
//! together exceed the quota.
//!
//! Several nodes sharing one store ([`Quotas::shared`]) cannot count from
//! their own spools: there the store keeps each day's units per account
//! and workspace, and a node claims them in blocks ([`Writes::claim_quota`],
//! one conditional update that never hands out more than the cap across
//! all nodes). A block is a sixteenth of what was left at the last claim,
//! so far from the cap the store is asked once in many recipients, and
//! near it one unit at a time: the last units go exactly to whoever asks
//! first, on whichever node. Units a node has claimed and not used stay
//! its own for the day (a node that stops loses them: the quota errs on
//! the side of sending less).
//!
//! [`Writes::claim_quota`]: rackwave_store::Writes::claim_quota

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rackwave_core::Clock;
use rackwave_queue::Spool;
use rackwave_store::Store;

#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error("daily sending quota exceeded")]
    Exceeded,
    #[error("quota state unavailable: {0}")]
    Storage(String),
}

#[derive(Clone)]
pub struct Quotas {
    inner: Arc<Inner>,
}

struct Inner {
    spool: Spool,
    store: Store,
    clock: Clock,
    usage: Mutex<HashMap<Scope, Usage>>,
    /// Shared: a scope's claim in flight (one at a time per scope).
    claims: Mutex<HashMap<Scope, Arc<tokio::sync::Mutex<()>>>>,
    /// Units are claimed from the store (several nodes) rather than
    /// counted from this node's spool.
    shared: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Scope {
    Account(String),
    Workspace(String),
}

#[derive(Debug, Clone, Copy)]
struct Usage {
    day: i64,
    committed: u64,
    reserved: u64,
    /// Shared: units claimed from the store and not reserved yet.
    allowance: u64,
    /// Shared: what the store had left at the last claim.
    left: Option<u64>,
}

impl Usage {
    fn fresh(day: i64, committed: u64) -> Usage {
        Usage {
            day,
            committed,
            reserved: 0,
            allowance: 0,
            left: None,
        }
    }
}

impl Scope {
    /// The store's counter of a scope's units (shared quotas).
    fn counter(&self) -> String {
        match self {
            Scope::Account(name) => format!("account:{name}"),
            Scope::Workspace(id) => format!("workspace:{id}"),
        }
    }
}

/// The most units one claim asks the store for.
const MAX_BLOCK: u64 = 256;

/// Recipients reserved by one transaction. Dropping it without
/// [`Quotas::commit`] gives the units back.
pub struct Reservation {
    quotas: Quotas,
    account: String,
    workspace: String,
    day: i64,
    count: u64,
    /// Shared quotas: of `count`, the units also taken from the
    /// workspace's (only while it has a cap).
    workspace_count: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.count > 0 {
            self.quotas.settle(self, None);
        }
    }
}

/// What a reservation is checked against.
pub struct Limits<'a> {
    pub account: &'a str,
    pub account_quota: u64,
    pub workspace: &'a str,
    pub workspace_quota: Option<u64>,
}

impl Quotas {
    /// Quotas counted from this node's spool (one node).
    pub fn new(spool: Spool, store: Store, clock: Clock) -> Quotas {
        Quotas::open(spool, store, clock, false)
    }

    /// Quotas claimed from the store, which several nodes share.
    pub fn shared(spool: Spool, store: Store, clock: Clock) -> Quotas {
        Quotas::open(spool, store, clock, true)
    }

    fn open(spool: Spool, store: Store, clock: Clock, shared: bool) -> Quotas {
        Quotas {
            inner: Arc::new(Inner {
                spool,
                store,
                clock,
                usage: Mutex::new(HashMap::new()),
                claims: Mutex::new(HashMap::new()),
                shared,
            }),
        }
    }

    /// An empty reservation for a new transaction.
    pub fn begin(&self, account: &str, workspace: &str) -> Reservation {
        Reservation {
            quotas: self.clone(),
            account: account.to_string(),
            workspace: workspace.to_string(),
            day: self.inner.clock.today(),
            count: 0,
            workspace_count: 0,
        }
    }

    /// Reserves one more recipient, or refuses if that would pass a quota.
    pub async fn reserve_one(
        &self,
        r: &mut Reservation,
        limits: &Limits<'_>,
    ) -> Result<(), QuotaError> {
        let acct = Scope::Account(limits.account.to_string());
        let ws = Scope::Workspace(limits.workspace.to_string());
        if self.inner.shared {
            return self.reserve_shared(r, acct, ws, limits).await;
        }
        // A workspace cap the first time on a day needs the workspace's
        // accounts, read from the store without holding the lock; the sum
        // of their counters is then taken under it.
        let mut members: Option<Vec<String>> = None;
        loop {
            let today = self.inner.clock.today();
            let needs_members = limits.workspace_quota.is_some()
                && members.is_none()
                && lock(&self.inner.usage)
                    .get(&ws)
                    .is_none_or(|u| u.day != today);
            if needs_members {
                // Every submitter of the workspace: its SMTP accounts and
                // its API keys (the HTTP send API counts per key).
                let store = &self.inner.store;
                let storage = |e: rackwave_store::StoreError| QuotaError::Storage(e.to_string());
                let accounts = store
                    .smtp_accounts_of(limits.workspace)
                    .await
                    .map_err(storage)?;
                let keys = store.api_keys_of(limits.workspace).await.map_err(storage)?;
                members = Some(
                    accounts
                        .into_iter()
                        .map(|a| a.username)
                        .chain(keys.into_iter().map(|k| k.id))
                        .collect(),
                );
                continue;
            }
            let mut usage = lock(&self.inner.usage);
            if r.day != today && r.count > 0 {
                // The transaction straddles midnight: move its units to today.
                release(&mut usage, r, false, false);
            }
            r.day = today;
            let a = self
                .current(&mut usage, &acct, today, None)?
                .expect("an account scope always loads");
            if a.committed + a.reserved >= limits.account_quota {
                return Err(QuotaError::Exceeded);
            }
            if let Some(cap) = limits.workspace_quota {
                let Some(w) = self.current(&mut usage, &ws, today, members.as_deref())? else {
                    // Evicted meanwhile (a new day began): read the members again.
                    members = None;
                    continue;
                };
                if w.committed + w.reserved >= cap {
                    return Err(QuotaError::Exceeded);
                }
            }
            for scope in [acct, ws] {
                if let Some(u) = usage.get_mut(&scope) {
                    u.reserved += 1;
                }
            }
            r.count += 1;
            return Ok(());
        }
    }

    /// One unit of each capped scope, claimed from the store when this
    /// node has none left of the day.
    async fn reserve_shared(
        &self,
        r: &mut Reservation,
        acct: Scope,
        ws: Scope,
        limits: &Limits<'_>,
    ) -> Result<(), QuotaError> {
        let today = self.inner.clock.today();
        if r.day != today && r.count > 0 {
            self.settle(r, None);
            r.count = 0;
            r.workspace_count = 0;
        }
        r.day = today;
        if !self.take_unit(&acct, limits.account_quota, today).await? {
            return Err(QuotaError::Exceeded);
        }
        // The account's unit goes back if the workspace's is refused, or
        // if this is abandoned on the way (the caller gone).
        let mut account_unit = Unit {
            quotas: self,
            scope: &acct,
            day: today,
            held: true,
        };
        if let Some(cap) = limits.workspace_quota {
            if !self.take_unit(&ws, cap, today).await? {
                return Err(QuotaError::Exceeded);
            }
            r.workspace_count += 1;
        }
        account_unit.held = false;
        r.count += 1;
        Ok(())
    }

    /// Reserves one unit of `scope` from this node's allowance, claiming
    /// a block from the store first when it is empty; false once the store
    /// has none left.
    async fn take_unit(&self, scope: &Scope, cap: u64, today: i64) -> Result<bool, QuotaError> {
        let mut claiming = None;
        loop {
            let want = {
                let mut usage = lock(&self.inner.usage);
                let u = usage
                    .entry(scope.clone())
                    .or_insert_with(|| Usage::fresh(today, 0));
                // Only forward: a caller that read the clock just before
                // midnight never takes a new day's units back to the old.
                if u.day < today {
                    *u = Usage::fresh(today, 0);
                }
                if u.allowance > 0 {
                    u.allowance -= 1;
                    u.reserved += 1;
                    return Ok(true);
                }
                u.left.map_or(1, |left| (left / 16).clamp(1, MAX_BLOCK))
            };
            // One claim of a scope at a time on this node: the sessions
            // that find the allowance empty together wait for one block
            // rather than each claiming its own (and one node holding
            // what another would have sent).
            if claiming.is_none() {
                let turn = lock(&self.inner.claims)
                    .entry(scope.clone())
                    .or_default()
                    .clone();
                claiming = Some(turn.lock_owned().await);
                continue;
            }
            // On a task of its own: a caller that goes away mid-claim does
            // not lose the block (it is credited whatever happens here).
            let quotas = self.clone();
            let scope_owned = scope.clone();
            let claim = tokio::spawn(async move {
                let inner = &quotas.inner;
                let storage = |e: rackwave_store::StoreError| QuotaError::Storage(e.to_string());
                let mut tx = inner.store.begin().await.map_err(storage)?;
                let (got, left) = tx
                    .claim_quota(&scope_owned.counter(), today, cap, want)
                    .await
                    .map_err(storage)?;
                tx.commit().await.map_err(storage)?;
                let mut usage = lock(&inner.usage);
                if let Some(u) = usage.get_mut(&scope_owned).filter(|u| u.day == today) {
                    u.allowance += got;
                    u.left = Some(left);
                }
                Ok::<_, QuotaError>(got)
            });
            let got = claim
                .await
                .map_err(|e| QuotaError::Storage(format!("a quota claim: {e}")))??;
            if got == 0 {
                return Ok(false);
            }
        }
    }

    /// Turns a reservation into accepted recipients once the spool has made
    /// them durable; `accepted_day` is the UTC day the spool counted them on.
    pub fn commit(&self, mut r: Reservation, accepted_day: i64) {
        self.settle(&r, Some(accepted_day));
        r.count = 0;
        r.workspace_count = 0;
    }

    /// Gives back a reservation's units (RSET, failure) and keeps it usable.
    pub fn release_all(&self, r: &mut Reservation) {
        if r.count > 0 {
            self.settle(r, None);
            r.count = 0;
            r.workspace_count = 0;
        }
    }

    fn settle(&self, r: &Reservation, accepted_day: Option<i64>) {
        let mut usage = lock(&self.inner.usage);
        // Shared units given back stay this node's to reserve again; used
        // ones are gone (the store counted them when they were claimed).
        let give_back = self.inner.shared && accepted_day.is_none();
        release(&mut usage, r, self.inner.shared, give_back);
        if let Some(day) = accepted_day {
            for scope in [
                Scope::Account(r.account.clone()),
                Scope::Workspace(r.workspace.clone()),
            ] {
                if let Some(u) = usage.get_mut(&scope) {
                    if u.day == day {
                        u.committed += r.count;
                    }
                }
            }
        }
    }

    /// Usage for today, loaded from the spool the first time a scope is
    /// seen on a new day (so it is right after a restart too). A workspace
    /// scope is the sum over `members` (its accounts); without them it
    /// cannot be loaded and is `None`.
    fn current(
        &self,
        usage: &mut HashMap<Scope, Usage>,
        scope: &Scope,
        today: i64,
        members: Option<&[String]>,
    ) -> Result<Option<Usage>, QuotaError> {
        if let Some(u) = usage.get(scope) {
            if u.day == today {
                return Ok(Some(*u));
            }
        }
        let accepted = |name: &str| {
            self.inner
                .spool
                .accepted_on_day(name, today)
                .map_err(|e| QuotaError::Storage(e.to_string()))
        };
        let committed = match (scope, members) {
            (Scope::Account(name), _) => accepted(name)?,
            (Scope::Workspace(_), Some(members)) => {
                let mut sum = 0;
                for name in members {
                    sum += accepted(name)?;
                }
                sum
            }
            (Scope::Workspace(_), None) => return Ok(None),
        };
        let u = Usage::fresh(today, committed);
        usage.insert(scope.clone(), u);
        Ok(Some(u))
    }
}

/// Locks the usage table, ignoring poisoning: plain counters stay
/// consistent even if a holder panicked.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes a reservation's units off its scopes; `give_back` returns them
/// to the allowance (shared units not used).
fn release(usage: &mut HashMap<Scope, Usage>, r: &Reservation, shared: bool, give_back: bool) {
    // Shared quotas take a workspace unit only while it has a cap; the
    // spool's count every recipient against both.
    let workspace_units = if shared { r.workspace_count } else { r.count };
    for (scope, n) in [
        (Scope::Account(r.account.clone()), r.count),
        (Scope::Workspace(r.workspace.clone()), workspace_units),
    ] {
        if let Some(u) = usage.get_mut(&scope) {
            if u.day == r.day {
                let n = n.min(u.reserved);
                u.reserved -= n;
                if give_back {
                    u.allowance += n;
                }
            }
        }
    }
}

/// A unit of one scope taken for a reservation still in the making: given
/// back to the allowance if dropped while held (the reservation refused,
/// or abandoned on the way).
struct Unit<'a> {
    quotas: &'a Quotas,
    scope: &'a Scope,
    day: i64,
    held: bool,
}

impl Drop for Unit<'_> {
    fn drop(&mut self) {
        if self.held {
            let mut usage = lock(&self.quotas.inner.usage);
            if let Some(u) = usage.get_mut(self.scope).filter(|u| u.day == self.day) {
                u.reserved = u.reserved.saturating_sub(1);
                u.allowance += 1;
            }
        }
    }
}
