//! Enum names as they appear in JSON, the database and reports: the
//! snake_case serde name of each variant (for internally tagged enums,
//! the tag's value). One definition, used by every layer.

use serde::Serialize;
use serde_json::Value;

/// The snake_case name of one of our enums as it appears in the JSON
/// (for internally tagged enums, the tag's value; `-` for none).
pub fn label<T: Serialize>(v: T) -> String {
    match json(v) {
        Value::String(s) => s,
        Value::Null => "-".into(),
        Value::Object(m) => m
            .values()
            .next()
            .and_then(|x| x.as_str().map(str::to_string))
            .unwrap_or_default(),
        other => other.to_string(),
    }
}

/// Serialises a measured value; our types always serialise.
pub fn json<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}
