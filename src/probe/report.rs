//! What one probe of one domain produced: defined in the model layer
//! ([`crate::model::report`]), re-exported here where the prober fills it.

pub use crate::model::report::*;
