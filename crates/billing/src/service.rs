//! The billing service: one handle on the store, the clock, the platforms'
//! accounts and the event emitter, shared by subscriptions, invoices,
//! payments and the billing run (each in its own module, as `impl`
//! blocks).

use std::sync::Arc;

use rackwave_accounts::Accounts;
use rackwave_core::event::EventData;
use rackwave_core::{Clock, Platform, Product};
use rackwave_events::Events;
use rackwave_store::{Notice, Store, Txn};

use crate::config::BillingConfig;
use crate::error::BillingError;

/// The portal's billing (cheap to clone).
#[derive(Clone)]
pub struct Billing {
    pub(crate) store: Store,
    pub(crate) clock: Clock,
    pub(crate) accounts: Accounts,
    pub(crate) events: Events,
    pub(crate) config: Arc<BillingConfig>,
    /// `[node] id`: who holds the billing cycle's lease.
    pub(crate) node_id: String,
}

impl Billing {
    pub fn new(
        store: Store,
        clock: Clock,
        accounts: Accounts,
        events: Events,
        config: Arc<BillingConfig>,
        node_id: &str,
    ) -> Billing {
        Billing {
            store,
            clock,
            accounts,
            events,
            config,
            node_id: node_id.to_string(),
        }
    }

    /// The `[billing]` settings it runs on.
    pub fn config(&self) -> &BillingConfig {
        &self.config
    }

    /// The name of a plan as configured now (its id if it was removed).
    pub fn plan_name(&self, plan_id: &str) -> String {
        self.config
            .plan(plan_id)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| plan_id.to_string())
    }

    /// Records a lifecycle event of `client_id` in `tx` (its webhooks go
    /// out after the commit and [`Events::kick`]) and queues the email
    /// that tells the client's contacts: both exist once `tx` commits, or
    /// neither.
    pub(crate) async fn announce(
        &self,
        tx: &mut Txn,
        client_id: &str,
        data: impl Into<EventData>,
    ) -> Result<(), BillingError> {
        let data = data.into();
        // The template sees exactly the data the webhook carries.
        let kind = data.event_type().as_str();
        let json = serde_json::to_value(&data).unwrap_or_default();
        self.events.emit_in(tx, client_id, data).await?;
        self.notify_in(tx, client_id, kind, json).await
    }

    /// Queues an email to `client_id`'s contacts in `tx` (`kind` picks
    /// the template).
    pub(crate) async fn notify_in(
        &self,
        tx: &mut Txn,
        client_id: &str,
        kind: &str,
        data: serde_json::Value,
    ) -> Result<(), BillingError> {
        tx.queue_notice(&Notice {
            client_id: client_id.to_string(),
            kind: kind.to_string(),
            data,
            created_at_ms: self.clock.now_ms(),
        })
        .await?;
        Ok(())
    }
}

/// The `platform_id` of lifecycle events: `"1"` MigoSMTP, `"2"` Telnxo.
pub(crate) fn platform_id(platform: &str) -> String {
    Platform::parse(platform)
        .map(|p| Product::of_platform(p).platform_id())
        .unwrap_or("0")
        .to_string()
}
