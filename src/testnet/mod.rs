//! The local test federation (TESTNET.md): a private CA, an authoritative
//! DNS server and many simulated XMPP servers in one process, with a
//! manifest of the expected value of every measured fact.
//!
//! - [`profile`]: the behaviours, one declaration each.
//! - [`layout`]: which domain lives where, and its DNS records.
//! - [`expect`]: the ground truth derived from a placed profile.

pub mod expect;
pub mod layout;
pub mod profile;
