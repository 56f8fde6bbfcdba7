//! Probing one domain: DNS discovery, then every endpoint (I/O lives here).

pub mod report;
