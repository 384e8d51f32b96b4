//! The billing run, on the injectable clock: every subscription whose
//! period has ended moves on (a trial becomes the paid service with its
//! first invoice; an active subscription renews for another month with
//! its renewal invoice, taking a scheduled downgrade), and every unpaid
//! invoice goes through the dunning (a reminder
//! [`REMINDER_DAYS`](crate::REMINDER_DAYS) before
//! its due date, `invoice_overdue` the day after it, the subscription
//! suspended `[billing] grace_days` later).
//!
//! Each step reads its subscription or invoice again in the transaction
//! that makes it, and moves its period or next step forward there: a run
//! repeated, or two runs at once, do nothing twice. A subscription whose
//! step fails is logged and left for the next run.

use rackwave_core::event::InvoiceOverdue;
use rackwave_core::MS_PER_DAY;
use rackwave_store::{InvoiceKind, InvoiceStatus, SubscriptionStatus};
use serde::Serialize;

use crate::error::BillingError;
use crate::numbering::ist_date;
use crate::service::Billing;
use crate::subscriptions::{month_after, unpaid_reason};

/// How many index entries one read takes.
const BATCH: usize = 1000;
/// Steps of one batch in flight at once. Each step is its own durable
/// transaction; transactions take turns, but steps in flight share their
/// flushes (the store's group commit), so a run is not one disk flush per
/// subscription.
const LANES: usize = 32;

/// What a billing run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// Trials that became paid subscriptions.
    pub converted: u64,
    /// Paid periods renewed.
    pub renewed: u64,
    /// Invoices issued (conversions and renewals).
    pub invoiced: u64,
    pub reminded: u64,
    pub overdue: u64,
    pub suspended: u64,
    /// Steps that failed and wait for the next run.
    pub failed: u64,
}

/// What one step did.
enum Step {
    Nothing,
    Converted,
    Renewed,
    Reminded,
    Overdue,
    Suspended,
}

/// The store's lease naming the node that runs the billing cycle.
const LEASE: &str = "billing-cycle";

impl Billing {
    /// A billing run now on this node, if it holds the billing cycle's
    /// lease (taken when free or ended, renewed by each run): with several
    /// nodes on one database one runs the cycle, and another takes over
    /// once that one's lease has run out (two cycles, at least a minute,
    /// after its last run). `None`: another node holds it. A store no
    /// other node shares needs no lease (nor waits for one a previous
    /// `[node] id` took).
    pub async fn run_held(&self) -> Result<Option<RunReport>, BillingError> {
        let now = self.clock.now_ms();
        if !self.store.is_shared() {
            return self.run(now).await.map(Some);
        }
        let hold_ms = i64::try_from(self.config.cycle_secs)
            .unwrap_or(i64::MAX)
            .saturating_mul(2_000)
            .max(60_000)
            .saturating_add(1_000);
        let until = now.saturating_add(hold_ms);
        if !self
            .store
            .hold_lease(LEASE, &self.node_id, now, until)
            .await?
        {
            return Ok(None);
        }
        self.run(now).await.map(Some)
    }

    /// One billing run at `now_ms` (see the module docs), whichever node
    /// holds the lease.
    pub async fn run(&self, now_ms: i64) -> Result<RunReport, BillingError> {
        let mut report = RunReport::default();
        let mut after = None;
        loop {
            let due = self
                .store
                .subscriptions_ending(now_ms, after.clone(), BATCH)
                .await?;
            let Some(last) = due.last().cloned() else {
                break;
            };
            after = Some(last);
            report.add(self.in_lanes(due, now_ms, false).await);
        }
        let mut after = None;
        loop {
            let due = self
                .store
                .invoices_due(now_ms, after.clone(), BATCH)
                .await?;
            let Some(last) = due.last().cloned() else {
                break;
            };
            after = Some(last);
            report.add(self.in_lanes(due, now_ms, true).await);
        }
        Ok(report)
    }

    /// The steps of one batch (`dunning`: of invoices, else of
    /// subscriptions), [`LANES`] at a time; each id is in one lane only.
    async fn in_lanes(&self, due: Vec<(i64, String)>, now: i64, dunning: bool) -> RunReport {
        let mut lanes = tokio::task::JoinSet::new();
        for lane in due.chunks(due.len().div_ceil(LANES).max(1)) {
            let (me, ids) = (self.clone(), lane.to_vec());
            lanes.spawn(async move {
                let mut report = RunReport::default();
                for (_, id) in ids {
                    let step = if dunning {
                        me.dun(&id, now).await
                    } else {
                        me.next_period(&id, now).await
                    };
                    report.count(&id, step);
                }
                report
            });
        }
        let mut report = RunReport::default();
        while let Some(lane) = lanes.join_next().await {
            match lane {
                Ok(r) => report.add(r),
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(error = %e, "billing run: a lane stopped");
                }
            }
        }
        report
    }

    /// Moves a subscription whose period ended into its next one.
    async fn next_period(&self, id: &str, now: i64) -> Result<Step, BillingError> {
        let mut tx = self.store.begin().await?;
        let Some(mut s) = tx.subscription(id).await? else {
            return Ok(Step::Nothing);
        };
        if s.period_end_ms > now
            || !matches!(
                s.status,
                SubscriptionStatus::Trial | SubscriptionStatus::Active
            )
        {
            return Ok(Step::Nothing);
        }
        if let Some(next) = s.next_plan_id.take() {
            if let Some(plan) = self.config.plan(&next).cloned() {
                s.plan_id = plan.id.clone();
                self.set_quota_in(&mut tx, &s.workspace_id, &plan).await?;
            }
        }
        let Some(plan) = self.config.plan(&s.plan_id).cloned() else {
            return Err(BillingError::NotFound(format!(
                "plan {} of {} is no longer configured",
                s.plan_id, s.id
            )));
        };
        // A period that ended long ago (the service was suspended, the
        // server was down) starts again now rather than billing the gap.
        let start = if now - s.period_end_ms > MS_PER_DAY {
            now
        } else {
            s.period_end_ms
        };
        let end = month_after(start);
        let (step, kind) = if s.status == SubscriptionStatus::Trial {
            self.activate_in(&mut tx, &mut s, start).await?;
            (Step::Converted, InvoiceKind::Activation)
        } else {
            s.period_start_ms = start;
            s.period_end_ms = end;
            tx.put_subscription(&s).await?;
            (Step::Renewed, InvoiceKind::Renewal)
        };
        let line = self.plan_line(&plan, start, end);
        self.issue_in(&mut tx, &s.client_id, Some(&s.id), kind, vec![line])
            .await?;
        self.finish(tx, Some(&s.workspace_id), true).await?;
        Ok(step)
    }

    /// Takes an unpaid invoice's next dunning step.
    async fn dun(&self, id: &str, now: i64) -> Result<Step, BillingError> {
        let mut tx = self.store.begin().await?;
        let Some(mut invoice) = tx.invoice(id).await? else {
            return Ok(Step::Nothing);
        };
        if invoice.next_action_ms.is_none_or(|at| at > now) {
            return Ok(Step::Nothing);
        }
        let grace_end = self.grace_end(&invoice);
        let step = match invoice.status {
            InvoiceStatus::Open if now < invoice.due_at_ms => {
                // Only the reminder is left before the due date.
                if !invoice.reminded {
                    invoice.reminded = true;
                    let data = serde_json::json!({
                        "invoice_id": invoice.id,
                        "invoice_number": invoice.number,
                        "customer_id": invoice.client_id,
                        "total": invoice.total_paise,
                        "balance": invoice.balance_paise(),
                        "due_date": ist_date(invoice.due_at_ms).to_string(),
                    });
                    self.notify_in(&mut tx, &invoice.client_id, "invoice_reminder", data)
                        .await?;
                }
                invoice.next_action_ms = Some(invoice.due_at_ms);
                Step::Reminded
            }
            InvoiceStatus::Open => {
                invoice.status = InvoiceStatus::Overdue;
                invoice.overdue_since_ms = Some(invoice.due_at_ms);
                invoice.next_action_ms = Some(grace_end);
                self.announce(
                    &mut tx,
                    &invoice.client_id.clone(),
                    InvoiceOverdue {
                        invoice_id: invoice.id.clone(),
                        invoice_number: invoice.number.clone(),
                        customer_id: invoice.client_id.clone(),
                        total: invoice.total_paise,
                        overdue_since: ist_date(invoice.due_at_ms + MS_PER_DAY).to_string(),
                    },
                )
                .await?;
                Step::Overdue
            }
            InvoiceStatus::Overdue if now >= grace_end => {
                invoice.next_action_ms = None;
                tx.put_invoice(&invoice).await?;
                let sub = match &invoice.subscription_id {
                    Some(sid) => tx.subscription(sid).await?,
                    None => None,
                };
                let Some(mut s) = sub else {
                    tx.commit().await?;
                    return Ok(Step::Nothing);
                };
                let reason = unpaid_reason(&invoice.number);
                let changed = self
                    .suspend_in(&mut tx, &mut s, &reason, Some(&invoice.id))
                    .await?;
                self.finish(tx, Some(&s.workspace_id), true).await?;
                return Ok(if changed {
                    Step::Suspended
                } else {
                    Step::Nothing
                });
            }
            InvoiceStatus::Overdue => {
                invoice.next_action_ms = Some(grace_end);
                Step::Nothing
            }
            // Settled: nothing left to chase.
            InvoiceStatus::Paid | InvoiceStatus::Void => {
                invoice.next_action_ms = None;
                Step::Nothing
            }
        };
        tx.put_invoice(&invoice).await?;
        tx.commit().await?;
        self.events.kick();
        Ok(step)
    }
}

impl RunReport {
    fn count(&mut self, id: &str, step: Result<Step, BillingError>) {
        match step {
            Ok(Step::Nothing) => {}
            Ok(Step::Converted) => {
                self.converted += 1;
                self.invoiced += 1;
            }
            Ok(Step::Renewed) => {
                self.renewed += 1;
                self.invoiced += 1;
            }
            Ok(Step::Reminded) => self.reminded += 1,
            Ok(Step::Overdue) => self.overdue += 1,
            Ok(Step::Suspended) => self.suspended += 1,
            Err(e) => {
                self.failed += 1;
                tracing::warn!(id, error = %e, "billing run: left for the next run");
            }
        }
    }

    fn add(&mut self, other: RunReport) {
        self.converted += other.converted;
        self.renewed += other.renewed;
        self.invoiced += other.invoiced;
        self.reminded += other.reminded;
        self.overdue += other.overdue;
        self.suspended += other.suspended;
        self.failed += other.failed;
    }

    /// Whether the run changed anything.
    pub fn is_empty(&self) -> bool {
        *self == RunReport::default()
    }
}
