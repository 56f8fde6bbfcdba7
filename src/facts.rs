//! Flattened facts (in progress).
