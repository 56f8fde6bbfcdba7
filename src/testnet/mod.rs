//! The local test federation (TESTNET.md).

pub mod pki;
