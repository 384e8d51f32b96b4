//! Load testing: `rackwave bench smtp` drives any ESMTP server.

pub mod sink;
pub mod smtp;
