//! Network safety and connection helpers.

pub mod policy;
