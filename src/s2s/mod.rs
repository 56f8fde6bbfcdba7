//! Server-to-server machinery shared by the acceptance probe, the probe's
//! dialback listener and the testnet's simulated servers.
//!
//! - [`inbound`]: the receiving side of an s2s stream (RFC 6120 §4–§6,
//!   XEP-0178, XEP-0220), parameterised by a policy; it re-exports the
//!   outbound helpers.
//! - [`outbound`]: the initiating side (authenticated stream, `db:verify`)
//!   both receiving users call to deliver replies and verify keys.
//! - [`steps`]: what an initiating server does on an established stream:
//!   SASL EXTERNAL (XEP-0178), dialback (XEP-0220), stream restart, IQ.

pub mod inbound;
pub mod outbound;
pub mod steps;
