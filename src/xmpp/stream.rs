//! Stream headers and stream errors (RFC 6120 §4.7, §4.9).

use serde::{Deserialize, Serialize};

/// The attributes of a received `<stream:stream>` open tag (RFC 6120 §4.7).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamHeader {
    /// `version` attribute; `None` when absent (a pre-RFC 3920 server, which
    /// RFC 6120 §4.7.5 says must be treated as version 0.9: no features).
    pub version: Option<String>,
    /// `id` attribute.
    pub id: Option<String>,
    /// `from` attribute.
    pub from: Option<String>,
    /// `to` attribute.
    pub to: Option<String>,
    /// Default content namespace declared on the header.
    pub content_ns: Option<String>,
    /// Whether the dialback namespace prefix `db` was declared (XEP-0220 §2.1).
    pub declares_dialback: bool,
}

/// A received `<stream:error/>` (RFC 6120 §4.9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamError {
    /// Defined condition element name, e.g. `host-unknown` (RFC 6120 §4.9.3).
    pub condition: String,
    /// Optional `<text/>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Character data of `<see-other-host/>` (RFC 6120 §4.9.3.19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub see_other_host: Option<String>,
}
