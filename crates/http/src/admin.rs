//! The admin API, `/admin/v1`, guarded by the admin bearer token. One file
//! per resource, so the surface reads as this directory's listing.

pub(crate) mod api_keys_v1;
pub(crate) mod clients_v1;
pub(crate) mod destinations_v1;
pub(crate) mod domains_v1;
pub(crate) mod invoices_v1;
pub(crate) mod messages_v1;
pub(crate) mod queue_v1;
pub(crate) mod smtp_accounts_v1;
pub(crate) mod subscriptions_v1;
pub(crate) mod suppressions_v1;
pub(crate) mod workspaces_v1;
