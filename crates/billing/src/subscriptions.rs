//! Subscriptions: a client's plan on a platform, and the workspace it
//! provisions there (Layer 1 driving Layer 2, as the seed says).
//!
//! Starting one creates, in ONE transaction, the client's workspace on the
//! platform with the plan's quota, a first API key of that platform (shown
//! once, so the client can create SMTP accounts and send), the
//! subscription and its event: all of them exist, or none. A trial sends
//! at once; a paid start is `pending` (its workspace exists but may not
//! send) with its first invoice, and becomes `active` when that invoice is
//! paid. A client has one subscription per platform (a cancelled one
//! included: a platform's trial is had once); both are checked inside the
//! transaction, so two requests at once cannot both win.
//!
//! Every change of state and its lifecycle event (and the notice that
//! mails it) commit together. Lifecycle events are the client's: they are
//! logged under the client's id (`cus_…`), where the portal's webhook
//! endpoints find them. Transactions are serialized by the store, so two
//! upgrades at once, or a payment racing a suspension, end in one state.

use chrono::{Months, TimeZone};
use rackwave_core::event::{
    ServiceActivated, ServiceCancelled, ServiceReactivated, ServiceSuspended, TrialActivated,
};
use rackwave_core::{random_hex, Platform, Timestamp, MS_PER_DAY};
use rackwave_store::{Client, InvoiceKind, InvoiceLine, Subscription, SubscriptionStatus, Txn};

use crate::config::Plan;
use crate::error::{invalid, BillingError};
use crate::service::{platform_id, Billing};

/// What a workspace waiting for its first payment is told when it sends.
const AWAITING_PAYMENT: &str = "awaiting the first payment";
/// What a cancelled subscription's workspace is told.
const CANCELLED: &str = "subscription cancelled";

/// A started subscription, with the API key of its new workspace (shown
/// once).
#[derive(Debug, Clone)]
pub struct Started {
    pub subscription: Subscription,
    pub api_key: String,
}

/// What changing a subscription's plan did.
#[derive(Debug, Clone)]
pub struct PlanChange {
    pub subscription: Subscription,
    /// The prorated invoice of an upgrade during a paid period.
    pub invoice_id: Option<String>,
    /// Whether it waits for the period's end (a downgrade).
    pub scheduled: bool,
}

/// The end of a month-long period that starts at `start_ms`: the same
/// day and time of the next month in India (the 31st gives the month's
/// last day).
pub fn month_after(start_ms: i64) -> i64 {
    let ist =
        chrono::FixedOffset::east_opt(crate::numbering::IST_OFFSET_SECS).expect("a valid offset");
    ist.timestamp_millis_opt(start_ms)
        .single()
        .and_then(|t| t.checked_add_months(Months::new(1)))
        .map(|t| t.timestamp_millis())
        .unwrap_or(start_ms + 30 * MS_PER_DAY)
}

impl Billing {
    /// Starts `client`'s subscription to `plan_id` on `platform`: its
    /// trial, or a paid start waiting for its first invoice (see the
    /// module docs).
    pub async fn start(
        &self,
        client: &Client,
        platform: &str,
        plan_id: &str,
        trial: bool,
    ) -> Result<Started, BillingError> {
        let Some(platform) = Platform::parse(platform) else {
            return Err(invalid("platform", "migosmtp or telnxo"));
        };
        let plan = self.plan_of(platform.as_str(), plan_id)?.clone();
        if trial && plan.trial_days == 0 {
            return Err(invalid("trial", format!("{} has no trial", plan.name)));
        }
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        let mine = tx.subscriptions_of(&client.id).await?;
        if let Some(s) = mine.iter().find(|s| s.platform == platform.as_str()) {
            return Err(BillingError::Conflict(
                if s.status == SubscriptionStatus::Cancelled {
                    format!(
                        "the {} subscription {} was cancelled",
                        platform.as_str(),
                        s.id
                    )
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
        let mut subscription = Subscription {
            id: format!("sub_{}", random_hex(8)),
            client_id: client.id.clone(),
            platform: platform.as_str().into(),
            plan_id: plan.id.clone(),
            status: SubscriptionStatus::Trial,
            workspace_id: ws.id.clone(),
            period_start_ms: now,
            period_end_ms: now + i64::from(plan.trial_days) * MS_PER_DAY,
            created_at_ms: now,
            suspension_reason: None,
            suspended_from: None,
            cancelled_at_ms: None,
            next_plan_id: None,
            suspended_for: None,
        };
        if trial {
            tx.put_subscription(&subscription).await?;
            self.announce(
                &mut tx,
                &client.id,
                TrialActivated {
                    customer_id: client.id.clone(),
                    platform_id: platform_id(platform.as_str()),
                    expires_at: Timestamp(subscription.period_end_ms),
                },
            )
            .await?;
        } else {
            // The period starts with the payment; until then the
            // workspace exists but does not send.
            subscription.status = SubscriptionStatus::Pending;
            subscription.period_end_ms = now;
            self.accounts
                .set_suspended_in(&mut tx, &ws.id, Some(AWAITING_PAYMENT.into()))
                .await?;
            tx.put_subscription(&subscription).await?;
            let line = self.plan_line(&plan, now, month_after(now));
            self.issue_in(
                &mut tx,
                &client.id,
                Some(&subscription.id),
                InvoiceKind::Activation,
                vec![line],
            )
            .await?;
        }
        let committed = tx.commit().await;
        self.accounts.refresh_suspended(&ws.id).await?;
        committed?;
        self.events.kick();
        Ok(Started {
            subscription,
            api_key: key.key,
        })
    }

    /// The plan `plan_id` of `platform`, or why not.
    fn plan_of(&self, platform: &str, plan_id: &str) -> Result<&Plan, BillingError> {
        self.config
            .plan(plan_id)
            .filter(|p| p.platform == platform)
            .ok_or_else(|| invalid("plan", format!("no {platform} plan {plan_id}")))
    }

    /// The invoice line of a plan for a period.
    pub(crate) fn plan_line(&self, plan: &Plan, start_ms: i64, end_ms: i64) -> InvoiceLine {
        InvoiceLine {
            description: format!(
                "{} ({}), monthly",
                plan.name,
                platform_label(&plan.platform)
            ),
            sac: self.config.sac_code.clone(),
            period_start_ms: start_ms,
            period_end_ms: end_ms,
            amount_paise: plan.price_paise,
        }
    }

    /// Suspends a subscription and stops its workspace's sending at once
    /// (`service_suspended`, in the same commit). `Ok(None)` when there is
    /// no such subscription; a suspended or cancelled one stays as it is.
    pub async fn suspend(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<Option<Subscription>, BillingError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > 512 || reason.contains(char::is_control) {
            return Err(invalid("reason", "1 to 512 characters"));
        }
        let mut tx = self.store.begin().await?;
        let Some(mut s) = tx.subscription(id).await? else {
            return Ok(None);
        };
        let changed = self.suspend_in(&mut tx, &mut s, reason, None).await?;
        self.finish(tx, &s.workspace_id, changed).await?;
        Ok(Some(s))
    }

    /// Commits a change of a subscription's workspace, and makes its
    /// suspension (or its end) take effect whatever the commit's outcome
    /// (its write may have landed).
    pub(crate) async fn finish(
        &self,
        tx: Txn,
        workspace_id: &str,
        changed: bool,
    ) -> Result<(), BillingError> {
        if !changed {
            drop(tx);
            self.accounts.refresh_suspended(workspace_id).await?;
            return Ok(());
        }
        let committed = tx.commit().await;
        self.accounts.refresh_suspended(workspace_id).await?;
        committed?;
        self.events.kick();
        Ok(())
    }

    /// Suspends `s` in `tx` unless it is suspended or cancelled already
    /// (`for_invoice`: the unpaid invoice whose payment ends it); whether
    /// it changed.
    pub(crate) async fn suspend_in(
        &self,
        tx: &mut Txn,
        s: &mut Subscription,
        reason: &str,
        for_invoice: Option<&str>,
    ) -> Result<bool, BillingError> {
        if matches!(
            s.status,
            SubscriptionStatus::Suspended | SubscriptionStatus::Cancelled
        ) {
            return Ok(false);
        }
        s.suspended_from = Some(s.status);
        s.status = SubscriptionStatus::Suspended;
        s.suspension_reason = Some(reason.to_string());
        s.suspended_for = for_invoice.map(str::to_string);
        tx.put_subscription(s).await?;
        self.accounts
            .set_suspended_in(tx, &s.workspace_id, Some(reason.to_string()))
            .await?;
        self.announce(
            tx,
            &s.client_id,
            ServiceSuspended {
                customer_id: s.client_id.clone(),
                platform_id: platform_id(&s.platform),
                suspension_reason: reason.to_string(),
            },
        )
        .await?;
        Ok(true)
    }

    /// Ends a suspension: the subscription is what it was, its workspace
    /// sends again (`service_reactivated`). `Ok(None)` when there is no
    /// such subscription; one that is not suspended stays as it is. A
    /// trial whose time is up resumes as a trial and the next billing run
    /// converts it.
    pub async fn reactivate(&self, id: &str) -> Result<Option<Subscription>, BillingError> {
        let mut tx = self.store.begin().await?;
        let Some(mut s) = tx.subscription(id).await? else {
            return Ok(None);
        };
        let changed = self.reactivate_in(&mut tx, &mut s).await?;
        self.finish(tx, &s.workspace_id, changed).await?;
        Ok(Some(s))
    }

    /// [`reactivate`](Self::reactivate) in `tx`; whether it changed.
    pub(crate) async fn reactivate_in(
        &self,
        tx: &mut Txn,
        s: &mut Subscription,
    ) -> Result<bool, BillingError> {
        if s.status != SubscriptionStatus::Suspended {
            return Ok(false);
        }
        s.status = s.suspended_from.unwrap_or(SubscriptionStatus::Active);
        s.suspended_from = None;
        s.suspension_reason = None;
        s.suspended_for = None;
        tx.put_subscription(s).await?;
        let pending = s.status == SubscriptionStatus::Pending;
        self.accounts
            .set_suspended_in(
                tx,
                &s.workspace_id,
                pending.then(|| AWAITING_PAYMENT.into()),
            )
            .await?;
        self.announce(
            tx,
            &s.client_id,
            ServiceReactivated {
                customer_id: s.client_id.clone(),
                platform_id: platform_id(&s.platform),
                plan_name: self.plan_name(&s.plan_id),
            },
        )
        .await?;
        Ok(true)
    }

    /// Starts the paid service of `s` in `tx` (its first invoice was paid,
    /// or its trial ended): a period of a month from `start_ms`, the
    /// workspace sends (unless suspended for another reason), and
    /// `service_activated`.
    pub(crate) async fn activate_in(
        &self,
        tx: &mut Txn,
        s: &mut Subscription,
        start_ms: i64,
    ) -> Result<(), BillingError> {
        s.status = SubscriptionStatus::Active;
        s.period_start_ms = start_ms;
        s.period_end_ms = month_after(start_ms);
        tx.put_subscription(s).await?;
        self.accounts
            .set_suspended_in(tx, &s.workspace_id, None)
            .await?;
        self.announce(
            tx,
            &s.client_id,
            ServiceActivated {
                customer_id: s.client_id.clone(),
                platform_id: platform_id(&s.platform),
                plan_name: self.plan_name(&s.plan_id),
                expires_at: Timestamp(s.period_end_ms),
            },
        )
        .await
    }

    /// Moves one of `client_id`'s subscriptions to another plan of its
    /// platform. A dearer plan applies at once, with an invoice for the
    /// difference over the rest of a paid period (a trial or a pending
    /// start just changes plan); a cheaper one waits for the period's end.
    pub async fn change_plan(
        &self,
        client_id: &str,
        id: &str,
        plan_id: &str,
    ) -> Result<PlanChange, BillingError> {
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        let mut s = tx
            .subscription(id)
            .await?
            .filter(|s| s.client_id == client_id)
            .ok_or_else(|| BillingError::NotFound(format!("no subscription {id}")))?;
        let new = self.plan_of(&s.platform, plan_id)?.clone();
        if matches!(
            s.status,
            SubscriptionStatus::Suspended | SubscriptionStatus::Cancelled
        ) {
            return Err(BillingError::Conflict(format!(
                "a {} subscription keeps its plan",
                status_word(s.status)
            )));
        }
        if s.status == SubscriptionStatus::Pending {
            // Its unpaid first invoice is for the old plan: paying that
            // one starts the service on the plan it names, so a pending
            // start changes plan only by starting over.
            return Err(BillingError::Conflict(
                "a subscription waiting for its first payment keeps its plan".into(),
            ));
        }
        if new.id == s.plan_id {
            // Asking for the current plan drops a scheduled downgrade.
            let had = s.next_plan_id.take().is_some();
            if had {
                tx.put_subscription(&s).await?;
                tx.commit().await?;
            }
            return Ok(PlanChange {
                subscription: s,
                invoice_id: None,
                scheduled: false,
            });
        }
        let old_price = self.config.plan(&s.plan_id).map_or(0, |p| p.price_paise);
        if new.price_paise < old_price && s.status == SubscriptionStatus::Active {
            s.next_plan_id = Some(new.id.clone());
            tx.put_subscription(&s).await?;
            tx.commit().await?;
            return Ok(PlanChange {
                subscription: s,
                invoice_id: None,
                scheduled: true,
            });
        }
        let mut invoice_id = None;
        if s.status == SubscriptionStatus::Active && now < s.period_end_ms {
            let amount = prorate(
                new.price_paise - old_price,
                now - s.period_start_ms.min(now),
                s.period_end_ms - s.period_start_ms,
            );
            let line = InvoiceLine {
                description: format!(
                    "Upgrade from {} to {} ({}), rest of the period",
                    self.plan_name(&s.plan_id),
                    new.name,
                    platform_label(&new.platform)
                ),
                sac: self.config.sac_code.clone(),
                period_start_ms: now,
                period_end_ms: s.period_end_ms,
                amount_paise: amount,
            };
            let invoice = self
                .issue_in(
                    &mut tx,
                    client_id,
                    Some(&s.id),
                    InvoiceKind::Proration,
                    vec![line],
                )
                .await?;
            invoice_id = Some(invoice.id);
        }
        s.plan_id = new.id.clone();
        s.next_plan_id = None;
        tx.put_subscription(&s).await?;
        self.set_quota_in(&mut tx, &s.workspace_id, &new).await?;
        tx.commit().await?;
        self.events.kick();
        Ok(PlanChange {
            subscription: s,
            invoice_id,
            scheduled: false,
        })
    }

    /// Gives a workspace the quota of `plan`.
    pub(crate) async fn set_quota_in(
        &self,
        tx: &mut Txn,
        workspace_id: &str,
        plan: &Plan,
    ) -> Result<(), BillingError> {
        if let Some(mut ws) = tx.workspace(workspace_id).await? {
            if ws.daily_quota != plan.daily_quota {
                ws.daily_quota = plan.daily_quota;
                tx.put_workspace(&ws).await?;
            }
        }
        Ok(())
    }

    /// Cancels one of `client_id`'s subscriptions (any client's for
    /// `None`, an operator): its workspace stops sending for good, every
    /// record stays, invoices already issued are still owed
    /// (`service_cancelled`). Cancelling twice changes nothing.
    pub async fn cancel(
        &self,
        client_id: Option<&str>,
        id: &str,
    ) -> Result<Subscription, BillingError> {
        let now = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        let mut s = tx
            .subscription(id)
            .await?
            .filter(|s| client_id.is_none_or(|c| c == s.client_id))
            .ok_or_else(|| BillingError::NotFound(format!("no subscription {id}")))?;
        if s.status == SubscriptionStatus::Cancelled {
            return Ok(s);
        }
        s.status = SubscriptionStatus::Cancelled;
        s.cancelled_at_ms = Some(now);
        s.next_plan_id = None;
        s.suspended_from = None;
        s.suspended_for = None;
        tx.put_subscription(&s).await?;
        self.accounts
            .set_suspended_in(&mut tx, &s.workspace_id, Some(CANCELLED.into()))
            .await?;
        self.announce(
            &mut tx,
            &s.client_id,
            ServiceCancelled {
                customer_id: s.client_id.clone(),
                platform_id: platform_id(&s.platform),
                cancelled_at: Timestamp(now),
            },
        )
        .await?;
        self.finish(tx, &s.workspace_id.clone(), true).await?;
        Ok(s)
    }

    /// A client's subscriptions, oldest first.
    pub async fn of(&self, client_id: &str) -> Result<Vec<Subscription>, BillingError> {
        Ok(self.store.subscriptions_of(client_id).await?)
    }

    /// One of a client's subscriptions; another client's is `None`.
    pub async fn get(
        &self,
        client_id: &str,
        id: &str,
    ) -> Result<Option<Subscription>, BillingError> {
        Ok(self
            .store
            .subscription(id)
            .await?
            .filter(|s| s.client_id == client_id))
    }
}

/// `difference` for the part of a period still to run, in paise, rounded
/// half up: `used_ms` of `period_ms` are gone.
pub fn prorate(difference: i64, used_ms: i64, period_ms: i64) -> i64 {
    if period_ms <= 0 || difference <= 0 {
        return 0;
    }
    let left = i128::from((period_ms - used_ms).clamp(0, period_ms));
    let exact = i128::from(difference) * left;
    let period = i128::from(period_ms);
    i64::try_from((exact + period / 2) / period).unwrap_or(i64::MAX)
}

fn platform_label(platform: &str) -> &'static str {
    match platform {
        "telnxo" => "Telnxo",
        _ => "MigoSMTP",
    }
}

fn status_word(status: SubscriptionStatus) -> &'static str {
    match status {
        SubscriptionStatus::Trial => "trial",
        SubscriptionStatus::Pending => "pending",
        SubscriptionStatus::Active => "active",
        SubscriptionStatus::Suspended => "suspended",
        SubscriptionStatus::Cancelled => "cancelled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prorations_are_whole_paise() {
        // ₹1,000 more for 10 of 30 days left: ₹333.33.
        assert_eq!(prorate(100_000, 20 * MS_PER_DAY, 30 * MS_PER_DAY), 33_333);
        // Half a paisa rounds up.
        assert_eq!(prorate(1, 1, 2), 1);
        assert_eq!(prorate(100_000, 0, 30 * MS_PER_DAY), 100_000);
        assert_eq!(prorate(100_000, 31 * MS_PER_DAY, 30 * MS_PER_DAY), 0);
        assert_eq!(prorate(-5, 0, 10), 0);
        assert_eq!(prorate(i64::MAX, 0, i64::MAX), i64::MAX);
    }

    #[test]
    fn a_month_is_a_calendar_month_in_india() {
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_millis()
        };
        assert_eq!(
            month_after(at("2026-12-01T10:00:00+05:30")),
            at("2027-01-01T10:00:00+05:30")
        );
        assert_eq!(
            month_after(at("2027-01-31T10:00:00+05:30")),
            at("2027-02-28T10:00:00+05:30")
        );
    }
}
