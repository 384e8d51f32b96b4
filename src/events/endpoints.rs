//! Webhook endpoints: per workspace and per platform, each with its URL,
//! the event types it wants, an enabled flag, a description and its
//! signing secrets. Rotating the secret keeps the previous one signing
//! alongside for [`ROTATION_GRACE_MS`] (Standard Webhooks allows several
//! signatures in one header), so receivers can switch without losing a
//! delivery.
//!
//! Keys (in the events tree):
//! - `p/<endpoint id>` → [`Endpoint`]
//! - `w/<ws>\0<endpoint id>` → empty (endpoints of a workspace)

use serde::{Deserialize, Serialize};

use super::model::EventType;
use super::signing::new_secret;
use super::targets;
use super::{cat, decode, EventsError};
use crate::accounts::Platform;
use crate::clock::{rfc3339, Clock};
use crate::ids::random_hex;

const ENDPOINT: &[u8] = b"p/";
const OF_WORKSPACE: &[u8] = b"w/";

/// How long a rotated-out secret keeps signing.
pub const ROTATION_GRACE_MS: i64 = 24 * 3600 * 1000;
/// Endpoints per workspace and platform.
pub const MAX_ENDPOINTS: usize = 50;
const MAX_DESCRIPTION: usize = 500;
/// Secrets signing at once at most (the current one and rotated-out ones
/// still in their grace period).
const MAX_SECRETS: usize = 5;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Secret {
    pub secret: String,
    pub created_at_ms: i64,
    /// When a rotated-out secret stops signing; `None` for the current one.
    pub expires_at_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub workspace_id: String,
    pub platform: Platform,
    pub url: String,
    /// The types it wants; empty means every type its platform sees.
    pub event_types: Vec<EventType>,
    pub enabled: bool,
    pub description: Option<String>,
    /// The current secret first, then rotated-out ones.
    pub secrets: Vec<Secret>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl Endpoint {
    /// The secrets that sign at `now_ms`, current first.
    pub fn signing_secrets(&self, now_ms: i64) -> impl Iterator<Item = &str> {
        self.secrets
            .iter()
            .filter(move |s| s.expires_at_ms.is_none_or(|e| e > now_ms))
            .map(|s| s.secret.as_str())
    }

    /// Whether an event of this type goes to this endpoint.
    pub fn wants(&self, t: EventType) -> bool {
        self.enabled
            && t != EventType::Ping
            && t.visible_to(self.platform)
            && (self.event_types.is_empty() || self.event_types.contains(&t))
    }

    pub fn created_at(&self) -> String {
        rfc3339(self.created_at_ms)
    }

    pub fn updated_at(&self) -> String {
        rfc3339(self.updated_at_ms)
    }

    /// When the oldest rotated-out secret still signing stops, if any.
    pub fn previous_secret_expires_at_ms(&self, now_ms: i64) -> Option<i64> {
        self.secrets
            .iter()
            .filter_map(|s| s.expires_at_ms)
            .filter(|e| *e > now_ms)
            .max()
    }
}

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

#[derive(Clone)]
pub struct Endpoints {
    tree: sled::Tree,
    clock: Clock,
    allow_private: bool,
}

fn endpoint_key(id: &str) -> Vec<u8> {
    cat(&[ENDPOINT, id.as_bytes()])
}

fn workspace_key(ws: &str, id: &str) -> Vec<u8> {
    cat(&[OF_WORKSPACE, ws.as_bytes(), b"\0", id.as_bytes()])
}

fn parse_types(platform: Platform, raw: Vec<String>) -> Result<Vec<EventType>, EventsError> {
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
        if !t.visible_to(platform) {
            return Err(EventsError::Invalid(format!(
                "`{name}` is not an event of {}",
                platform.as_str()
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

impl Endpoints {
    pub fn new(tree: sled::Tree, clock: Clock, allow_private: bool) -> Endpoints {
        Endpoints {
            tree,
            clock,
            allow_private,
        }
    }

    async fn check_url(&self, url: &str) -> Result<String, EventsError> {
        targets::check_url(url, self.allow_private)
            .await
            .map(|u| u.to_string())
            .map_err(|e| EventsError::Invalid(format!("url refused: {e}")))
    }

    /// Creates an endpoint; returns it with its secret (shown once here).
    pub async fn create(
        &self,
        ws: &str,
        platform: Platform,
        new: NewEndpoint,
    ) -> Result<Endpoint, EventsError> {
        let url = self.check_url(&new.url).await?;
        let event_types = parse_types(
            platform,
            new.event_types.unwrap_or_else(|| vec!["*".to_string()]),
        )?;
        let description = check_description(new.description)?;
        if self.list(ws, platform)?.len() >= MAX_ENDPOINTS {
            return Err(EventsError::Conflict(format!(
                "a workspace may have at most {MAX_ENDPOINTS} endpoints per platform"
            )));
        }
        let now = self.clock.now_ms();
        let ep = Endpoint {
            id: format!("ep_{}", random_hex(10)),
            workspace_id: ws.to_string(),
            platform,
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
        let mut batch = sled::Batch::default();
        batch.insert(
            endpoint_key(&ep.id),
            serde_json::to_vec(&ep).map_err(EventsError::encode)?,
        );
        batch.insert(workspace_key(ws, &ep.id), Vec::<u8>::new());
        self.tree.apply_batch(batch)?;
        Ok(ep)
    }

    /// Any endpoint by id, whatever its workspace (the emitter's view).
    pub fn get_any(&self, id: &str) -> Result<Option<Endpoint>, EventsError> {
        match self.tree.get(endpoint_key(id))? {
            Some(raw) => decode(&raw, "endpoint").map(Some),
            None => Ok(None),
        }
    }

    /// The endpoint if it belongs to this workspace and platform; another
    /// tenant's endpoint is indistinguishable from a missing one.
    pub fn get(
        &self,
        ws: &str,
        platform: Platform,
        id: &str,
    ) -> Result<Option<Endpoint>, EventsError> {
        Ok(self
            .get_any(id)?
            .filter(|e| e.workspace_id == ws && e.platform == platform))
    }

    fn require(&self, ws: &str, platform: Platform, id: &str) -> Result<Endpoint, EventsError> {
        self.get(ws, platform, id)?
            .ok_or_else(|| EventsError::NotFound(format!("webhook endpoint {id}")))
    }

    /// All endpoints of a workspace, every platform.
    pub fn of_workspace(&self, ws: &str) -> Result<Vec<Endpoint>, EventsError> {
        let prefix = cat(&[OF_WORKSPACE, ws.as_bytes(), b"\0"]);
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(&prefix) {
            let (key, _) = item?;
            let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            if let Some(ep) = self.get_any(&id)? {
                out.push(ep);
            }
        }
        out.sort_by_key(|e| e.created_at_ms);
        Ok(out)
    }

    /// The endpoints of one workspace and platform, oldest first.
    pub fn list(&self, ws: &str, platform: Platform) -> Result<Vec<Endpoint>, EventsError> {
        let mut all = self.of_workspace(ws)?;
        all.retain(|e| e.platform == platform);
        Ok(all)
    }

    fn save(&self, ep: &Endpoint) -> Result<(), EventsError> {
        self.tree.insert(
            endpoint_key(&ep.id),
            serde_json::to_vec(ep).map_err(EventsError::encode)?,
        )?;
        Ok(())
    }

    pub async fn update(
        &self,
        ws: &str,
        platform: Platform,
        id: &str,
        patch: EndpointPatch,
    ) -> Result<Endpoint, EventsError> {
        self.require(ws, platform, id)?;
        let url = match patch.url {
            Some(u) => Some(self.check_url(&u).await?),
            None => None,
        };
        let types = patch
            .event_types
            .map(|t| parse_types(platform, t))
            .transpose()?;
        let description = patch.description.map(check_description).transpose()?;
        // Read again after the (slow) URL check, so a concurrent change is
        // not undone.
        let mut ep = self.require(ws, platform, id)?;
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
        ep.updated_at_ms = self.clock.now_ms();
        self.save(&ep)?;
        Ok(ep)
    }

    /// A new current secret; the previous ones keep signing for 24 hours.
    pub fn rotate(&self, ws: &str, platform: Platform, id: &str) -> Result<Endpoint, EventsError> {
        let mut ep = self.require(ws, platform, id)?;
        let now = self.clock.now_ms();
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
        self.save(&ep)?;
        Ok(ep)
    }

    /// Removes the endpoint record; stages nothing else (the caller purges
    /// its deliveries in the same batch).
    pub fn stage_delete(
        &self,
        batch: &mut sled::Batch,
        ws: &str,
        platform: Platform,
        id: &str,
    ) -> Result<Endpoint, EventsError> {
        let ep = self.require(ws, platform, id)?;
        batch.remove(endpoint_key(id));
        batch.remove(workspace_key(ws, id));
        Ok(ep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (Endpoints, Clock) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let clock = Clock::manual(1_000_000);
        (
            Endpoints::new(db.open_tree("events").unwrap(), clock.clone(), true),
            clock,
        )
    }

    #[tokio::test]
    async fn tenancy_subscriptions_and_rotation() {
        let (eps, clock) = store();
        let new = |types: Option<Vec<&str>>| NewEndpoint {
            url: "http://127.0.0.1:9/hook".into(),
            event_types: types.map(|t| t.into_iter().map(String::from).collect()),
            ..Default::default()
        };
        let all = eps
            .create("ws_a", Platform::Migosmtp, new(None))
            .await
            .unwrap();
        assert!(all.wants(EventType::EmailBounced));
        assert!(all.wants(EventType::InvoicePaid));
        assert!(!all.wants(EventType::SmsSent));
        let some = eps
            .create(
                "ws_a",
                Platform::Migosmtp,
                new(Some(vec!["email.delivered"])),
            )
            .await
            .unwrap();
        assert!(some.wants(EventType::EmailDelivered));
        assert!(!some.wants(EventType::EmailQueued));
        assert!(eps
            .create("ws_a", Platform::Migosmtp, new(Some(vec!["sms.sent"])))
            .await
            .is_err());
        assert!(eps
            .create("ws_a", Platform::Migosmtp, new(Some(vec!["email.nope"])))
            .await
            .is_err());

        assert!(eps
            .get("ws_b", Platform::Migosmtp, &all.id)
            .unwrap()
            .is_none());
        assert!(eps
            .get("ws_a", Platform::Telnxo, &all.id)
            .unwrap()
            .is_none());
        assert_eq!(eps.list("ws_a", Platform::Migosmtp).unwrap().len(), 2);
        assert!(eps.list("ws_a", Platform::Telnxo).unwrap().is_empty());

        let first = all.secrets[0].secret.clone();
        let rotated = eps.rotate("ws_a", Platform::Migosmtp, &all.id).unwrap();
        let now = clock.now_ms();
        let signing: Vec<&str> = rotated.signing_secrets(now).collect();
        assert_eq!(signing.len(), 2);
        assert_eq!(signing[1], first);
        assert_ne!(signing[0], first);
        clock.advance_ms(ROTATION_GRACE_MS);
        assert_eq!(rotated.signing_secrets(clock.now_ms()).count(), 1);

        let off = eps
            .update(
                "ws_a",
                Platform::Migosmtp,
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
