//! Subscriptions: a client's plan on a platform, and the workspace it
//! provisions there (Layer 1 driving Layer 2, as the seed says).
//!
//! Starting a trial creates, in ONE transaction, the client's workspace on
//! the platform with the plan's quota, a first API key of that platform
//! (shown once, so the client can create SMTP accounts and send), the
//! subscription, and its `trial_activated` event: all of them exist, or
//! none. A client has one live subscription per platform, and one trial
//! per platform ever; both are checked inside the transaction, so two
//! requests at once cannot both win.
//!
//! Lifecycle events are the client's: they are logged under the client's
//! id (`cus_…`), where the portal's own webhook endpoints will find them.

use rackwave_accounts::Accounts;
use rackwave_core::event::{ServiceReactivated, ServiceSuspended, TrialActivated};
use rackwave_core::{random_hex, Clock, Platform, Product, Timestamp, MS_PER_DAY};
use rackwave_events::Events;
use rackwave_store::{Client, Store, Subscription, SubscriptionStatus};

use crate::clients::{invalid, ClientsError};
use crate::config::BillingConfig;

/// A started subscription, with the API key of its new workspace (shown
/// once).
#[derive(Debug, Clone)]
pub struct Started {
    pub subscription: Subscription,
    pub api_key: String,
}

/// The subscriptions service (cheap to clone).
#[derive(Clone)]
pub struct Subscriptions {
    store: Store,
    clock: Clock,
    accounts: Accounts,
    events: Events,
    config: std::sync::Arc<BillingConfig>,
}

impl Subscriptions {
    pub fn new(
        store: Store,
        clock: Clock,
        accounts: Accounts,
        events: Events,
        config: std::sync::Arc<BillingConfig>,
    ) -> Subscriptions {
        Subscriptions {
            store,
            clock,
            accounts,
            events,
            config,
        }
    }

    /// Starts `client`'s trial of `plan_id` on `platform` (see the module
    /// docs). Paid starts come with invoicing.
    pub async fn start_trial(
        &self,
        client: &Client,
        platform: &str,
        plan_id: &str,
    ) -> Result<Started, ClientsError> {
        let Some(platform) = Platform::parse(platform) else {
            return Err(invalid("platform", "migosmtp or telnxo"));
        };
        let plan = self
            .config
            .plan(plan_id)
            .filter(|p| p.platform == platform.as_str())
            .ok_or_else(|| invalid("plan", format!("no {} plan {plan_id}", platform.as_str())))?;
        if plan.trial_days == 0 {
            return Err(invalid("trial", format!("{} has no trial", plan.name)));
        }
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        let mine = tx.subscriptions_of(&client.id).await?;
        if let Some(s) = mine.iter().find(|s| s.platform == platform.as_str()) {
            return Err(ClientsError::Conflict(
                if s.status == SubscriptionStatus::Cancelled {
                    format!("the {} trial was used ({})", platform.as_str(), s.id)
                } else {
                    format!(
                        "you already have a {} subscription ({})",
                        platform.as_str(),
                        s.id
                    )
                },
            ));
        }
        let ws = self
            .accounts
            .create_workspace_in(
                &mut tx,
                &format!("{} ({})", client.name, plan.name),
                plan.daily_quota,
            )
            .await?;
        let key = self
            .accounts
            .create_api_key_in(&mut tx, &ws.id, platform)
            .await?;
        let subscription = Subscription {
            id: format!("sub_{}", random_hex(8)),
            client_id: client.id.clone(),
            platform: platform.as_str().into(),
            plan_id: plan.id.clone(),
            status: SubscriptionStatus::Trial,
            workspace_id: ws.id,
            period_start_ms: now,
            period_end_ms: now + i64::from(plan.trial_days) * MS_PER_DAY,
            created_at_ms: now,
            suspension_reason: None,
            suspended_from: None,
            cancelled_at_ms: None,
        };
        tx.put_subscription(&subscription).await?;
        self.events
            .emit_in(
                &mut tx,
                &client.id,
                TrialActivated {
                    customer_id: client.id.clone(),
                    platform_id: platform_id(platform.as_str()),
                    expires_at: Timestamp(subscription.period_end_ms),
                },
            )
            .await?;
        tx.commit().await?;
        self.events.kick();
        Ok(Started {
            subscription,
            api_key: key.key,
        })
    }

    /// Suspends a subscription and stops its workspace's sending at once
    /// (`service_suspended`, in the same commit). `Ok(None)` when there is
    /// no such subscription; a suspended or cancelled one stays as it is.
    pub async fn suspend(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<Option<Subscription>, ClientsError> {
        self.suspend_if(id, reason, |_| true)
            .await
            .map(|r| r.map(|(s, _)| s))
    }

    /// [`suspend`](Self::suspend) when `due` holds for the subscription as
    /// read in the transaction that suspends it; with whether it changed.
    async fn suspend_if(
        &self,
        id: &str,
        reason: &str,
        due: impl Fn(&Subscription) -> bool,
    ) -> Result<Option<(Subscription, bool)>, ClientsError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > 512 || reason.contains(char::is_control) {
            return Err(invalid("reason", "1 to 512 characters"));
        }
        let mut tx = self.store.begin().await?;
        let Some(mut s) = tx.subscription(id).await? else {
            return Ok(None);
        };
        let live = !matches!(
            s.status,
            SubscriptionStatus::Suspended | SubscriptionStatus::Cancelled
        );
        if !live || !due(&s) {
            drop(tx);
            self.accounts.refresh_suspended(&s.workspace_id).await?;
            return Ok(Some((s, false)));
        }
        s.suspended_from = Some(s.status);
        s.status = SubscriptionStatus::Suspended;
        s.suspension_reason = Some(reason.to_string());
        tx.put_subscription(&s).await?;
        self.accounts
            .set_suspended_in(&mut tx, &s.workspace_id, Some(reason.to_string()))
            .await?;
        self.events
            .emit_in(
                &mut tx,
                &s.client_id,
                ServiceSuspended {
                    customer_id: s.client_id.clone(),
                    platform_id: platform_id(&s.platform),
                    suspension_reason: reason.to_string(),
                },
            )
            .await?;
        let committed = tx.commit().await;
        // Whatever the commit's outcome: its write may have landed.
        self.accounts.refresh_suspended(&s.workspace_id).await?;
        committed?;
        self.events.kick();
        Ok(Some((s, true)))
    }

    /// Ends a suspension: the subscription is what it was, its workspace
    /// sends again (`service_reactivated`). `Ok(None)` when there is no
    /// such subscription; one that is not suspended stays as it is; a
    /// trial whose time is up resumes only with a payment (`Conflict`).
    pub async fn reactivate(&self, id: &str) -> Result<Option<Subscription>, ClientsError> {
        let mut tx = self.store.begin().await?;
        let Some(mut s) = tx.subscription(id).await? else {
            return Ok(None);
        };
        if s.status != SubscriptionStatus::Suspended {
            drop(tx);
            self.accounts.refresh_suspended(&s.workspace_id).await?;
            return Ok(Some(s));
        }
        let was = s.suspended_from.unwrap_or(SubscriptionStatus::Active);
        if was == SubscriptionStatus::Trial && s.period_end_ms <= self.clock.now_ms() {
            return Err(ClientsError::Conflict(
                "the trial has ended: the service resumes when it is paid for".into(),
            ));
        }
        s.status = was;
        s.suspended_from = None;
        s.suspension_reason = None;
        tx.put_subscription(&s).await?;
        self.accounts
            .set_suspended_in(&mut tx, &s.workspace_id, None)
            .await?;
        self.events
            .emit_in(
                &mut tx,
                &s.client_id,
                ServiceReactivated {
                    customer_id: s.client_id.clone(),
                    platform_id: platform_id(&s.platform),
                    plan_name: self.plan_name(&s.plan_id),
                },
            )
            .await?;
        let committed = tx.commit().await;
        self.accounts.refresh_suspended(&s.workspace_id).await?;
        committed?;
        self.events.kick();
        Ok(Some(s))
    }

    /// The billing cycle's work so far: every trial that ended by `now_ms`
    /// without becoming paid is suspended (checked again in the
    /// transaction that suspends it). Running it twice suspends nothing
    /// twice. A subscription that fails is logged and left for the next
    /// run. How many it suspended.
    pub async fn run(&self, now_ms: i64) -> Result<u64, ClientsError> {
        let mut suspended = 0;
        let mut after = None;
        loop {
            let due = self
                .store
                .subscriptions_ending(now_ms, after.clone(), 1000)
                .await?;
            let Some(last) = due.last().cloned() else {
                return Ok(suspended);
            };
            after = Some(last);
            for (_, id) in due {
                // Paid renewals come with invoicing; trials end here.
                let ended = |s: &Subscription| {
                    s.status == SubscriptionStatus::Trial && s.period_end_ms <= now_ms
                };
                match self.suspend_if(&id, "trial expired", ended).await {
                    Ok(Some((_, true))) => suspended += 1,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(subscription = %id, error = %e, "billing run: left for the next run");
                    }
                }
            }
        }
    }

    /// A client's subscriptions, oldest first.
    pub async fn of(&self, client_id: &str) -> Result<Vec<Subscription>, ClientsError> {
        Ok(self.store.subscriptions_of(client_id).await?)
    }

    /// One of a client's subscriptions; another client's is `None`.
    pub async fn get(
        &self,
        client_id: &str,
        id: &str,
    ) -> Result<Option<Subscription>, ClientsError> {
        Ok(self
            .store
            .subscription(id)
            .await?
            .filter(|s| s.client_id == client_id))
    }

    /// The plan of a subscription, as configured now.
    pub fn plan_name(&self, plan_id: &str) -> String {
        self.config
            .plan(plan_id)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| plan_id.to_string())
    }
}

/// The `platform_id` of lifecycle events: `"1"` MigoSMTP, `"2"` Telnxo.
fn platform_id(platform: &str) -> String {
    Platform::parse(platform)
        .map(|p| Product::of_platform(p).platform_id())
        .unwrap_or("0")
        .to_string()
}
