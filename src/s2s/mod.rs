//! Server-to-server machinery shared by the acceptance probe, the probe's
//! dialback listener and the testnet's simulated servers.
//!
//! - [`steps`]: what an initiating server does on an established stream:
//!   SASL EXTERNAL (XEP-0178), dialback (XEP-0220), stream restart, IQ.

pub mod steps;
