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

/// An outcome enum whose variants have fixed names: the snake_case name
/// (`as_str`, the same string serde writes, the database's CHECK lists
/// hold and reports print) and the list of every variant (`VARIANTS`), so
/// that schemas and tests derive from the code instead of restating it.
pub trait Named: Copy + Into<&'static str> + strum::VariantArray + 'static {
    /// The variant's name, e.g. `accepts_server_only`.
    fn as_str(self) -> &'static str {
        self.into()
    }

    /// Every variant's name, in declaration order.
    fn names() -> Vec<&'static str> {
        Self::VARIANTS.iter().map(|v| (*v).into()).collect()
    }
}

impl<T: Copy + Into<&'static str> + strum::VariantArray + 'static> Named for T {}

#[cfg(test)]
mod tests {
    use super::*;

    /// serde's name and strum's name agree for every variant of every
    /// named enum: what JSON says is what SQL and reports say.
    fn agree<T: Named + Serialize>() {
        for v in T::VARIANTS {
            assert_eq!(label(v), v.as_str(), "{}", std::any::type_name::<T>());
        }
        assert!(!T::names().is_empty());
    }

    #[test]
    fn serde_and_code_names_agree() {
        use crate::dns::{DnsOutcome, Dnssec, SrvService};
        use crate::model::acceptance::{
            AcceptanceReason, AcceptanceVerdict, ExchangeFault, ProbeCertKind,
        };
        use crate::model::report::{
            ConnectOutcome, EndpointOutcome, EndpointSource, Phase, Transport,
        };
        use crate::model::summary::ServiceStatus;
        use crate::tls::{
            CertAnomaly, ChainVerdict, ClientPurpose, EkuClass, NameMatch, TlsFailure,
        };
        agree::<ProbeCertKind>();
        agree::<ExchangeFault>();
        agree::<AcceptanceVerdict>();
        agree::<AcceptanceReason>();
        agree::<ServiceStatus>();
        agree::<Transport>();
        agree::<EndpointSource>();
        agree::<ConnectOutcome>();
        agree::<Phase>();
        agree::<EndpointOutcome>();
        agree::<crate::net::policy::AddressClass>();
        agree::<crate::xmpp::features::StarttlsOffer>();
        agree::<crate::xmpp::Service>();
        agree::<SrvService>();
        agree::<DnsOutcome>();
        agree::<Dnssec>();
        agree::<EkuClass>();
        agree::<ClientPurpose>();
        agree::<CertAnomaly>();
        agree::<ChainVerdict>();
        agree::<NameMatch>();
        agree::<TlsFailure>();
    }
}
