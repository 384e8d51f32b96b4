//! Daily sending quotas: accepted recipients per SMTP account (and,
//! optionally, per workspace) per UTC day.
//!
//! The durable count lives in the spool, written in the same commit as the
//! messages it counts, so it can never disagree with what was accepted. On
//! top of it this module keeps in-memory reservations: a RCPT reserves one
//! unit, the reservation turns into a committed count once the message is
//! durable, and is released on RSET, failure or a dropped connection. All of
//! it happens under one lock, so concurrent sessions of one account can never
//! together exceed the quota.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rackwave_queue::Spool;

use crate::accounts::Accounts;
use crate::clock::Clock;

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
    accounts: Accounts,
    clock: Clock,
    usage: Mutex<HashMap<Scope, Usage>>,
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
}

/// Recipients reserved by one transaction. Dropping it without
/// [`Quotas::commit`] gives the units back.
pub struct Reservation {
    quotas: Quotas,
    account: String,
    workspace: String,
    day: i64,
    count: u64,
}

impl Reservation {
    pub fn count(&self) -> u64 {
        self.count
    }
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
    pub fn new(spool: Spool, accounts: Accounts, clock: Clock) -> Quotas {
        Quotas {
            inner: Arc::new(Inner {
                spool,
                accounts,
                clock,
                usage: Mutex::new(HashMap::new()),
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
        }
    }

    /// Reserves one more recipient, or refuses if that would pass a quota.
    pub fn reserve_one(&self, r: &mut Reservation, limits: &Limits) -> Result<(), QuotaError> {
        let today = self.inner.clock.today();
        let mut usage = self.inner.usage.lock().unwrap();
        if r.day != today && r.count > 0 {
            // The transaction straddles midnight: move its units to today.
            release(&mut usage, r, r.count);
        }
        r.day = today;
        let acct = Scope::Account(limits.account.to_string());
        let ws = Scope::Workspace(limits.workspace.to_string());
        let a = self.current(&mut usage, &acct, today)?;
        if a.committed + a.reserved >= limits.account_quota {
            return Err(QuotaError::Exceeded);
        }
        if let Some(cap) = limits.workspace_quota {
            let w = self.current(&mut usage, &ws, today)?;
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
        Ok(())
    }

    /// Turns a reservation into accepted recipients once the spool has made
    /// them durable; `accepted_day` is the UTC day the spool counted them on.
    pub fn commit(&self, mut r: Reservation, accepted_day: i64) {
        self.settle(&r, Some(accepted_day));
        r.count = 0;
    }

    /// Gives back a reservation's units (RSET, failure) and keeps it usable.
    pub fn release_all(&self, r: &mut Reservation) {
        if r.count > 0 {
            self.settle(r, None);
            r.count = 0;
        }
    }

    fn settle(&self, r: &Reservation, accepted_day: Option<i64>) {
        let mut usage = self.inner.usage.lock().unwrap();
        release(&mut usage, r, r.count);
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
    /// seen on a new day (so it is right after a restart too).
    fn current(
        &self,
        usage: &mut HashMap<Scope, Usage>,
        scope: &Scope,
        today: i64,
    ) -> Result<Usage, QuotaError> {
        if let Some(u) = usage.get(scope) {
            if u.day == today {
                return Ok(*u);
            }
        }
        let committed = match scope {
            Scope::Account(name) => self
                .inner
                .spool
                .accepted_on_day(name, today)
                .map_err(|e| QuotaError::Storage(e.to_string()))?,
            Scope::Workspace(id) => {
                let accounts = self
                    .inner
                    .accounts
                    .smtp_accounts_of(id)
                    .map_err(|e| QuotaError::Storage(e.to_string()))?;
                let mut sum = 0;
                for a in accounts {
                    sum += self
                        .inner
                        .spool
                        .accepted_on_day(&a.username, today)
                        .map_err(|e| QuotaError::Storage(e.to_string()))?;
                }
                sum
            }
        };
        let u = Usage {
            day: today,
            committed,
            reserved: 0,
        };
        usage.insert(scope.clone(), u);
        Ok(u)
    }

    /// Recipients accepted today plus those reserved by open transactions.
    pub fn used_today(&self, account: &str) -> Result<(u64, u64), QuotaError> {
        let today = self.inner.clock.today();
        let mut usage = self.inner.usage.lock().unwrap();
        let u = self.current(&mut usage, &Scope::Account(account.to_string()), today)?;
        Ok((u.committed, u.reserved))
    }
}

fn release(usage: &mut HashMap<Scope, Usage>, r: &Reservation, n: u64) {
    for scope in [
        Scope::Account(r.account.clone()),
        Scope::Workspace(r.workspace.clone()),
    ] {
        if let Some(u) = usage.get_mut(&scope) {
            if u.day == r.day {
                u.reserved = u.reserved.saturating_sub(n);
            }
        }
    }
}
