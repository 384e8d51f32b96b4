//! Load testing: `rackwave bench smtp` drives any ESMTP server.

pub mod percentiles;
pub mod sink;
pub mod sink_cmd;
pub mod smtp;
