//! Probing one domain: DNS discovery, then every endpoint.
//!
//! This is the I/O layer: sockets, timeouts and the TLS handshake live
//! here; what to probe ([`plan`]), how to read the stream
//! ([`crate::xmpp`]), how to judge certificates ([`crate::tls`]) and the
//! verdicts ([`crate::verdict`]) are pure and tested on their own.

// pub mod endpoint;
pub mod plan;
pub mod report;
