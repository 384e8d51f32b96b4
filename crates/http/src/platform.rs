//! The platform APIs, `/{platform}/v1` for `migosmtp` and `telnxo`: the
//! same webhook and event resources under both, each authenticated by a
//! workspace API key of its own platform (the [`Tenant`] extractor).
//! Another workspace's records answer 404, as if they did not exist.
//!
//! [`Tenant`]: crate::extract::Tenant

pub(crate) mod events_v1;
pub(crate) mod webhooks_v1;

use serde::Deserialize;

/// The path of one resource, `/{platform}/v1/…/{id}` (the platform is the
/// tenant's, read by its extractor).
#[derive(Deserialize)]
pub(crate) struct ById {
    pub(crate) id: String,
}

/// The path of one delivery of an endpoint.
#[derive(Deserialize)]
pub(crate) struct ByDelivery {
    pub(crate) id: String,
    pub(crate) delivery_id: String,
}
