//! The active probe (MEASUREMENTS §3): does a server accept federation
//! from a peer holding a server-only certificate?
//!
//! Types here are the evidence kept beside each verdict (so a reader can
//! re-derive it); [`crate::verdict::acceptance`] derives the verdict;
//! the driver in [`probe`] does the I/O, with [`crate::listener`] acting as
//! the probe domain's authoritative server for dialback and receiving the
//! target's replies.

pub mod probe;

pub use crate::model::acceptance::*;
