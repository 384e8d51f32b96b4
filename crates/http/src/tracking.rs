//! The endpoints of the links MigoSMTP puts in messages for their
//! recipients, under `[tracking] base_url`: no API key, the signed token
//! in the link is the whole authority (see `rackwave-tracking`).

pub(crate) mod unsubscribe;
