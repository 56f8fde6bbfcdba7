//! Network safety and connection helpers.

pub mod policy;
pub mod politeness;
