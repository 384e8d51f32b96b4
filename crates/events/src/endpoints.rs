//! Webhook endpoints: per workspace and per platform, each with its URL,
//! the event types it wants, an enabled flag, a description and its
//! signing secrets. Rotating the secret keeps the previous one signing
//! alongside for [`ROTATION_GRACE_MS`] (Standard Webhooks allows several
//! signatures in one header), so receivers can switch without losing a
//! delivery.

use rackwave_core::event::EventType;
use rackwave_core::{random_hex, Product};
use rackwave_store::{Endpoint, Secret};

use crate::signing::new_secret;
use crate::{targets, Events, EventsError};

/// How long a rotated-out secret keeps signing.
pub const ROTATION_GRACE_MS: i64 = 24 * 3600 * 1000;
/// Endpoints per workspace and platform.
pub const MAX_ENDPOINTS: usize = 50;
const MAX_DESCRIPTION: usize = 500;
/// Secrets signing at once at most (the current one and rotated-out ones
/// still in their grace period).
const MAX_SECRETS: usize = 5;

/// A new endpoint as asked for.
#[derive(Debug, Clone, Default)]
pub struct NewEndpoint {
    pub url: String,
    /// `None` or `["*"]`: every type.
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub description: Option<String>,
}

/// Changes to an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
}

fn parse_types(product: Product, raw: Vec<String>) -> Result<Vec<EventType>, EventsError> {
    if raw.iter().any(|t| t == "*") {
        return Ok(Vec::new());
    }
    if raw.is_empty() {
        return Err(EventsError::Invalid(
            "event_types must name at least one type, or \"*\" for all".into(),
        ));
    }
    let mut out = Vec::new();
    for name in raw {
        let t = EventType::parse(&name)
            .filter(|t| *t != EventType::Ping)
            .ok_or_else(|| EventsError::Invalid(format!("unknown event type `{name}`")))?;
        if !t.visible_to(product) {
            return Err(EventsError::Invalid(format!(
                "`{name}` is not an event of {}",
                product.as_str()
            )));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

fn check_description(d: Option<String>) -> Result<Option<String>, EventsError> {
    match d {
        Some(d) if d.chars().count() > MAX_DESCRIPTION || d.chars().any(char::is_control) => {
            Err(EventsError::Invalid(format!(
                "description must be at most {MAX_DESCRIPTION} characters without control characters"
            )))
        }
        Some(d) if d.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}

impl Events {
    async fn check_url(&self, url: &str) -> Result<String, EventsError> {
        targets::check_url(url, self.inner.config.allow_private_targets)
            .await
            .map(|u| u.to_string())
            .map_err(|e| EventsError::Invalid(format!("url refused: {e}")))
    }

    /// Creates an endpoint; returns it with its secret (shown once here).
    pub async fn create_endpoint(
        &self,
        ws: &str,
        product: Product,
        new: NewEndpoint,
    ) -> Result<Endpoint, EventsError> {
        let url = self.check_url(&new.url).await?;
        let event_types = parse_types(
            product,
            new.event_types.unwrap_or_else(|| vec!["*".to_string()]),
        )?;
        let description = check_description(new.description)?;
        let now = self.inner.clock.now_ms();
        let ep = Endpoint {
            id: format!("ep_{}", random_hex(10)),
            workspace_id: ws.to_string(),
            product,
            url,
            event_types,
            enabled: new.enabled.unwrap_or(true),
            description,
            secrets: vec![Secret {
                secret: new_secret(),
                created_at_ms: now,
                expires_at_ms: None,
            }],
            created_at_ms: now,
            updated_at_ms: now,
        };
        let mut tx = self.inner.store.begin().await?;
        let existing = tx.endpoints_of(ws).await?;
        if existing.iter().filter(|e| e.product == product).count() >= MAX_ENDPOINTS {
            return Err(EventsError::Conflict(format!(
                "a workspace (or client) may have at most {MAX_ENDPOINTS} endpoints per product"
            )));
        }
        tx.put_endpoint(&ep).await?;
        tx.commit().await?;
        Ok(ep)
    }

    /// The endpoint if it belongs to this workspace and platform; another
    /// tenant's endpoint is indistinguishable from a missing one.
    pub async fn endpoint(
        &self,
        ws: &str,
        product: Product,
        id: &str,
    ) -> Result<Endpoint, EventsError> {
        self.inner
            .store
            .endpoint(id)
            .await?
            .filter(|e| e.workspace_id == ws && e.product == product)
            .ok_or_else(|| EventsError::NotFound(format!("webhook endpoint {id}")))
    }

    /// The endpoints of one workspace and platform, oldest first.
    pub async fn endpoints(
        &self,
        ws: &str,
        product: Product,
    ) -> Result<Vec<Endpoint>, EventsError> {
        let mut all = self.inner.store.endpoints_of(ws).await?;
        all.retain(|e| e.product == product);
        Ok(all)
    }

    pub async fn update_endpoint(
        &self,
        ws: &str,
        product: Product,
        id: &str,
        patch: EndpointPatch,
    ) -> Result<Endpoint, EventsError> {
        self.endpoint(ws, product, id).await?;
        let url = match patch.url {
            Some(u) => Some(self.check_url(&u).await?),
            None => None,
        };
        let types = patch
            .event_types
            .map(|t| parse_types(product, t))
            .transpose()?;
        let description = patch.description.map(check_description).transpose()?;
        // Read again in the transaction, after the (slow) URL check, so a
        // concurrent change is not undone.
        let mut tx = self.inner.store.begin().await?;
        let mut ep = tx
            .endpoint(id)
            .await?
            .filter(|e| e.workspace_id == ws && e.product == product)
            .ok_or_else(|| EventsError::NotFound(format!("webhook endpoint {id}")))?;
        if let Some(u) = url {
            ep.url = u;
        }
        if let Some(t) = types {
            ep.event_types = t;
        }
        if let Some(e) = patch.enabled {
            ep.enabled = e;
        }
        if let Some(d) = description {
            ep.description = d;
        }
        ep.updated_at_ms = self.inner.clock.now_ms();
        tx.put_endpoint(&ep).await?;
        tx.commit().await?;
        if ep.enabled {
            self.kick();
        }
        Ok(ep)
    }

    /// A new current secret; the previous ones keep signing for 24 hours.
    pub async fn rotate_secret(
        &self,
        ws: &str,
        product: Product,
        id: &str,
    ) -> Result<Endpoint, EventsError> {
        let mut tx = self.inner.store.begin().await?;
        let mut ep = tx
            .endpoint(id)
            .await?
            .filter(|e| e.workspace_id == ws && e.product == product)
            .ok_or_else(|| EventsError::NotFound(format!("webhook endpoint {id}")))?;
        let now = self.inner.clock.now_ms();
        for s in &mut ep.secrets {
            if s.expires_at_ms.is_none() {
                s.expires_at_ms = Some(now + ROTATION_GRACE_MS);
            }
        }
        ep.secrets
            .retain(|s| s.expires_at_ms.is_none_or(|e| e > now));
        ep.secrets.insert(
            0,
            Secret {
                secret: new_secret(),
                created_at_ms: now,
                expires_at_ms: None,
            },
        );
        ep.secrets.truncate(MAX_SECRETS);
        ep.updated_at_ms = now;
        tx.put_endpoint(&ep).await?;
        tx.commit().await?;
        Ok(ep)
    }

    /// Deletes an endpoint and its deliveries (pending ones are dropped).
    pub async fn delete_endpoint(
        &self,
        ws: &str,
        product: Product,
        id: &str,
    ) -> Result<(), EventsError> {
        self.endpoint(ws, product, id).await?;
        let mut tx = self.inner.store.begin().await?;
        tx.delete_endpoint(id).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rackwave_core::Clock;

    fn events() -> (tempfile::TempDir, Events, Clock) {
        let dir = tempfile::tempdir().unwrap();
        let database = rackwave_store::Database::open(&dir.path().join("db"), 8).unwrap();
        let store = database.store().unwrap();
        let spool = rackwave_queue::Spool::open_in(
            &database,
            &dir.path().join("bodies"),
            rackwave_queue::SpoolConfig::default(),
        )
        .unwrap();
        let clock = Clock::manual(1_000_000);
        let config = crate::WebhooksConfig {
            allow_private_targets: true,
            ..Default::default()
        };
        let mut registry = prometheus_client::registry::Registry::default();
        let events = Events::open(
            store,
            spool,
            clock.clone(),
            config,
            crate::Node {
                id: "test",
                feed: "feed",
                keep_messages_ms: 0,
                keep_pending_ms: 0,
            },
            &mut registry,
        );
        (dir, events, clock)
    }

    #[tokio::test]
    async fn tenancy_subscriptions_and_rotation() {
        let (_dir, eps, clock) = events();
        let new = |types: Option<Vec<&str>>| NewEndpoint {
            url: "http://127.0.0.1:9/hook".into(),
            event_types: types.map(|t| t.into_iter().map(String::from).collect()),
            ..Default::default()
        };
        let all = eps
            .create_endpoint("ws_a", Product::Migosmtp, new(None))
            .await
            .unwrap();
        assert!(all.wants(EventType::EmailBounced));
        assert!(all.wants(EventType::InvoicePaid));
        assert!(!all.wants(EventType::SmsSent));
        let some = eps
            .create_endpoint(
                "ws_a",
                Product::Migosmtp,
                new(Some(vec!["email.delivered"])),
            )
            .await
            .unwrap();
        assert!(some.wants(EventType::EmailDelivered));
        assert!(!some.wants(EventType::EmailQueued));
        assert!(eps
            .create_endpoint("ws_a", Product::Migosmtp, new(Some(vec!["sms.sent"])))
            .await
            .is_err());
        assert!(eps
            .create_endpoint("ws_a", Product::Migosmtp, new(Some(vec!["email.nope"])))
            .await
            .is_err());

        assert!(eps
            .endpoint("ws_b", Product::Migosmtp, &all.id)
            .await
            .is_err());
        assert!(eps
            .endpoint("ws_a", Product::Telnxo, &all.id)
            .await
            .is_err());
        assert_eq!(
            eps.endpoints("ws_a", Product::Migosmtp)
                .await
                .unwrap()
                .len(),
            2
        );
        assert!(eps
            .endpoints("ws_a", Product::Telnxo)
            .await
            .unwrap()
            .is_empty());

        let first = all.secrets[0].secret.clone();
        let rotated = eps
            .rotate_secret("ws_a", Product::Migosmtp, &all.id)
            .await
            .unwrap();
        let now = clock.now_ms();
        let signing: Vec<&str> = rotated.signing_secrets(now).collect();
        assert_eq!(signing.len(), 2);
        assert_eq!(signing[1], first);
        assert_ne!(signing[0], first);
        clock.advance_ms(ROTATION_GRACE_MS);
        assert_eq!(rotated.signing_secrets(clock.now_ms()).count(), 1);

        let off = eps
            .update_endpoint(
                "ws_a",
                Product::Migosmtp,
                &all.id,
                EndpointPatch {
                    enabled: Some(false),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(!off.wants(EventType::EmailBounced));
    }
}
