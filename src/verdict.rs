//! Per-domain verdicts derived from a probe report (MEASUREMENTS §2, §4).

use serde::{Deserialize, Serialize};

/// Per-domain summary (in progress).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DomainSummary {}
