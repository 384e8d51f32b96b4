//! Subscriptions: a client's plan on a platform, and the workspace it
//! provisions there (Layer 1 driving Layer 2, as the seed says).
//!
//! Starting one creates, in ONE transaction, the client's workspace on the
//! platform with the plan's quota, a first API key of that platform (shown
//! once, so the client can create SMTP accounts and send), the
//! subscription and its event: all of them exist, or none. A trial sends
//! at once; a paid start is `pending` (its workspace exists but may not
//! send) with its first invoice, and becomes `active` when that invoice is
//! paid. A client has one live subscription per platform and one trial
//! per platform ever; a paid start after a cancellation takes back the
//! workspace the client had (its data and keys) and re-enables it with the
//! first payment. Both rules are checked inside the transaction, so two
//! requests at once cannot both win.
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
use rackwave_store::{
    Client, Invoice, InvoiceKind, InvoiceLine, InvoiceStatus, Subscription, SubscriptionStatus, Txn,
};

use crate::config::Plan;
use crate::error::{check_reason, invalid, BillingError};
use crate::service::{platform_id, Billing};

/// What a workspace waiting for its first payment is told when it sends.
const AWAITING_PAYMENT: &str = "awaiting the first payment";
/// What a cancelled subscription's workspace is told.
const CANCELLED: &str = "subscription cancelled";

/// A started subscription, with the API key of its new workspace (shown
/// once; none when it took back the workspace of a cancelled one).
#[derive(Debug, Clone)]
pub struct Started {
    pub subscription: Subscription,
    pub api_key: Option<String>,
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
        let on_platform: Vec<&Subscription> = mine
            .iter()
            .filter(|s| s.platform == platform.as_str())
            .collect();
        if let Some(s) = on_platform
            .iter()
            .find(|s| s.status != SubscriptionStatus::Cancelled)
        {
            return Err(BillingError::Conflict(format!(
                "you already have a {} subscription ({})",
                platform.as_str(),
                s.id
            )));
        }
        // A platform's trial is had once; a client who cancelled comes
        // back to the workspace they had, with its data and keys.
        let earlier = on_platform.last().map(|s| s.workspace_id.clone());
        if trial && earlier.is_some() {
            return Err(BillingError::Conflict(format!(
                "the {} trial was used: start a paid subscription",
                platform.as_str()
            )));
        }
        let (ws_id, api_key) = match earlier {
            Some(ws) => {
                self.set_quota_in(&mut tx, &ws, &plan).await?;
                (ws, None)
            }
            None => {
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
                (ws.id, Some(key.key))
            }
        };
        let mut subscription = Subscription {
            id: format!("sub_{}", random_hex(8)),
            client_id: client.id.clone(),
            platform: platform.as_str().into(),
            plan_id: plan.id.clone(),
            status: SubscriptionStatus::Trial,
            workspace_id: ws_id.clone(),
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
                .set_suspended_in(&mut tx, &ws_id, Some(AWAITING_PAYMENT.into()))
                .await?;
            tx.put_subscription(&subscription).await?;
            let line = self.plan_line(&plan, now, month_after(now));
            let first = self
                .issue_in(
                    &mut tx,
                    &client.id,
                    Some(&subscription.id),
                    InvoiceKind::Activation,
                    vec![line],
                )
                .await?;
            // Paid at once (the client's credit, a free plan): it starts.
            if first.status == InvoiceStatus::Paid {
                self.activate_in(&mut tx, &mut subscription, now).await?;
            }
        }
        self.finish(tx, Some(&ws_id), true).await?;
        Ok(Started {
            subscription,
            api_key,
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
            description: format!("{} ({}), monthly", plan.name, platform_name(&plan.platform)),
            sac: self.config.sac_code.clone(),
            period_start_ms: start_ms,
            period_end_ms: end_ms,
            amount_paise: plan.price_paise,
        }
    }

    /// Suspends a subscription and stops its workspace's sending at once
    /// (`service_suspended`, in the same commit). `Ok(None)` when there is
    /// no such subscription; a cancelled one, or one an operator suspended
    /// already, stays as it is. An operator's suspension takes over one
    /// for an unpaid invoice: paying it no longer ends it.
    pub async fn suspend(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<Option<Subscription>, BillingError> {
        let reason = check_reason(reason)?;
        let mut tx = self.store.begin().await?;
        let Some(mut s) = tx.subscription(id).await? else {
            return Ok(None);
        };
        let changed = self.suspend_in(&mut tx, &mut s, reason, None).await?;
        self.finish(tx, Some(&s.workspace_id), changed).await?;
        Ok(Some(s))
    }

    /// Commits a change that may touch `workspace_id`'s sending, and makes
    /// its suspension (or its end) take effect whatever the commit's
    /// outcome (its write may have landed). Unchanged: nothing committed.
    pub(crate) async fn finish(
        &self,
        tx: Txn,
        workspace_id: Option<&str>,
        changed: bool,
    ) -> Result<(), BillingError> {
        let committed = if changed {
            tx.commit().await
        } else {
            drop(tx);
            Ok(())
        };
        if let Some(ws) = workspace_id {
            self.accounts.refresh_suspended(ws).await?;
        }
        committed?;
        if changed {
            self.events.kick();
        }
        Ok(())
    }

    /// Suspends `s` in `tx` unless it is cancelled or suspended already
    /// (`for_invoice`: the unpaid invoice whose payment ends it; `None`:
    /// an operator's, which takes over a suspension for an invoice);
    /// whether it changed.
    pub(crate) async fn suspend_in(
        &self,
        tx: &mut Txn,
        s: &mut Subscription,
        reason: &str,
        for_invoice: Option<&str>,
    ) -> Result<bool, BillingError> {
        let take_over = s.status == SubscriptionStatus::Suspended
            && for_invoice.is_none()
            && s.suspended_for.is_some();
        if !take_over
            && matches!(
                s.status,
                SubscriptionStatus::Suspended | SubscriptionStatus::Cancelled
            )
        {
            return Ok(false);
        }
        if !take_over {
            s.suspended_from = Some(s.status);
        }
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
        let changed = self
            .reactivate_in(&mut tx, &mut s, self.clock.now_ms())
            .await?;
        self.finish(tx, Some(&s.workspace_id), changed).await?;
        Ok(Some(s))
    }

    /// [`reactivate`](Self::reactivate) in `tx`; whether it changed. An
    /// invoice of the subscription past its grace keeps it suspended, for
    /// that invoice.
    pub(crate) async fn reactivate_in(
        &self,
        tx: &mut Txn,
        s: &mut Subscription,
        now: i64,
    ) -> Result<bool, BillingError> {
        if s.status != SubscriptionStatus::Suspended {
            return Ok(false);
        }
        let unpaid = tx.invoices_of(&s.client_id).await?.into_iter().find(|i| {
            i.subscription_id.as_deref() == Some(&s.id)
                && i.status == InvoiceStatus::Overdue
                && self.grace_end(i) <= now
        });
        if let Some(unpaid) = unpaid {
            if s.suspended_for.as_deref() == Some(&unpaid.id) {
                return Ok(false);
            }
            let reason = unpaid_reason(&unpaid.number);
            s.suspension_reason = Some(reason.clone());
            s.suspended_for = Some(unpaid.id);
            tx.put_subscription(s).await?;
            self.accounts
                .set_suspended_in(tx, &s.workspace_id, Some(reason))
                .await?;
            return Ok(true);
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
    /// workspace sends, and `service_activated`. Under an operator's
    /// suspension the service starts suspended: it resumes as active.
    pub(crate) async fn activate_in(
        &self,
        tx: &mut Txn,
        s: &mut Subscription,
        start_ms: i64,
    ) -> Result<(), BillingError> {
        let by_operator = s.status == SubscriptionStatus::Suspended && s.suspended_for.is_none();
        if by_operator {
            s.suspended_from = Some(SubscriptionStatus::Active);
        } else {
            s.status = SubscriptionStatus::Active;
            s.suspended_from = None;
            s.suspension_reason = None;
            s.suspended_for = None;
        }
        s.period_start_ms = start_ms;
        s.period_end_ms = month_after(start_ms);
        tx.put_subscription(s).await?;
        if !by_operator {
            self.accounts
                .set_suspended_in(tx, &s.workspace_id, None)
                .await?;
        }
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
        let amount = prorate(
            new.price_paise - old_price,
            now - s.period_start_ms.min(now),
            s.period_end_ms - s.period_start_ms,
        );
        // (Nothing to charge: a plan of the same price, or a moment left.)
        if s.status == SubscriptionStatus::Active && now < s.period_end_ms && amount > 0 {
            let line = InvoiceLine {
                description: format!(
                    "Upgrade from {} to {} ({}), rest of the period",
                    self.plan_name(&s.plan_id),
                    new.name,
                    platform_name(&new.platform)
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
    /// (`service_cancelled`), but for the first invoice of a start that
    /// was never paid, which a credit note voids. Cancelling twice changes
    /// nothing.
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
        if is_pending(&s) {
            let unpaid = tx.invoices_of(&s.client_id).await?.into_iter().find(|i| {
                i.subscription_id.as_deref() == Some(&s.id)
                    && i.kind == InvoiceKind::Activation
                    && matches!(i.status, InvoiceStatus::Open | InvoiceStatus::Overdue)
            });
            if let Some(mut first) = unpaid {
                self.credit_note_in(&mut tx, &mut first, None, "cancelled before it started")
                    .await?;
                tx.put_invoice(&first).await?;
            }
        }
        self.cancel_in(&mut tx, &mut s, now).await?;
        self.finish(tx, Some(&s.workspace_id.clone()), true).await?;
        Ok(s)
    }

    /// Cancels `s` in `tx` (see [`cancel`](Self::cancel)).
    pub(crate) async fn cancel_in(
        &self,
        tx: &mut Txn,
        s: &mut Subscription,
        now: i64,
    ) -> Result<(), BillingError> {
        s.status = SubscriptionStatus::Cancelled;
        s.cancelled_at_ms = Some(now);
        s.next_plan_id = None;
        s.suspended_from = None;
        s.suspended_for = None;
        tx.put_subscription(s).await?;
        self.accounts
            .set_suspended_in(tx, &s.workspace_id, Some(CANCELLED.into()))
            .await?;
        self.announce(
            tx,
            &s.client_id,
            ServiceCancelled {
                customer_id: s.client_id.clone(),
                platform_id: platform_id(&s.platform),
                cancelled_at: Timestamp(now),
            },
        )
        .await
    }

    /// What a paid or voided invoice does to its subscription, in `tx`:
    /// the first invoice of a pending start starts it when paid (an
    /// operator's suspension stays, over the started service) and cancels
    /// it when voided; an invoice a suspension was for ends it (unless
    /// another past its grace keeps it). The workspace whose sending that
    /// may change.
    pub(crate) async fn invoice_settled_in(
        &self,
        tx: &mut Txn,
        invoice: &Invoice,
        now: i64,
    ) -> Result<Option<String>, BillingError> {
        let Some(sid) = &invoice.subscription_id else {
            return Ok(None);
        };
        let Some(mut s) = tx.subscription(sid).await? else {
            return Ok(None);
        };
        let void = invoice.status == InvoiceStatus::Void;
        let for_this = s.suspended_for.as_deref() == Some(&invoice.id);
        if is_pending(&s) && invoice.kind == InvoiceKind::Activation {
            if void {
                self.cancel_in(tx, &mut s, now).await?;
            } else {
                self.activate_in(tx, &mut s, now).await?;
            }
            return Ok(Some(s.workspace_id));
        }
        if s.status == SubscriptionStatus::Suspended && for_this {
            self.reactivate_in(tx, &mut s, now).await?;
            return Ok(Some(s.workspace_id));
        }
        Ok(None)
    }

    /// When an unpaid invoice suspends its subscription.
    pub(crate) fn grace_end(&self, invoice: &Invoice) -> i64 {
        invoice.due_at_ms + i64::from(self.config.grace_days) * MS_PER_DAY
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

/// A platform as people read it (`MigoSMTP`).
fn platform_name(platform: &str) -> &'static str {
    Platform::parse(platform).map_or("Rackwave", Platform::name)
}

/// Whether `s` waits for its first payment (suspended or not).
fn is_pending(s: &Subscription) -> bool {
    s.status == SubscriptionStatus::Pending
        || (s.status == SubscriptionStatus::Suspended
            && s.suspended_from == Some(SubscriptionStatus::Pending))
}

/// Why a subscription is suspended for an unpaid invoice.
pub(crate) fn unpaid_reason(number: &str) -> String {
    format!("invoice {number} unpaid")
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
