//! The MigoSMTP API proper, `/migosmtp/v1`: what only the email platform
//! has (sending, message logs, sending domains, credentials, the
//! suppression list), each route
//! authenticated by a MigoSMTP key of the workspace (the `MigoSmtp`
//! extractor). Another workspace's records answer 404.

pub(crate) mod credentials_v1;
pub(crate) mod domains_v1;
pub(crate) mod messages_v1;
pub(crate) mod stats_v1;
pub(crate) mod suppressions_v1;
