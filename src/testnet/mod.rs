//! The local test federation (TESTNET.md).
