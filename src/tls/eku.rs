//! Extended Key Usage classification (RFC 5280 §4.2.1.12, MEASUREMENTS §2).
//!
//! Why this matters: since 2026-02-11 Let's Encrypt's default profile issues
//! certificates with serverAuth only. XMPP servers that present their server
//! certificate as a *client* certificate on s2s (XEP-0178) then fail at peers
//! that insist on clientAuth. The class of the end-entity certificate is the
//! key fact of the survey.

use x509_parser::asn1_rs::oid;
use x509_parser::certificate::X509Certificate;

use super::{CertInfo, ClientPurpose, Eku, EkuClass};

/// Derives [`ClientPurpose`] from a chain as presented (leaf first).
/// A self-signed last certificate is the trust anchor and is not checked,
/// as OpenSSL does not check the anchor's purpose by default. `None` for an
/// empty chain.
pub fn client_purpose(chain: &[CertInfo]) -> Option<ClientPurpose> {
    let (leaf, rest) = chain.split_first()?;
    let lacks = |c: &CertInfo| c.eku.present && !c.eku.client_auth;
    if lacks(leaf) {
        return Some(ClientPurpose::LeafLacksClientAuth);
    }
    let below_anchor = rest.iter().filter(|c| !c.self_signed);
    if below_anchor.into_iter().any(lacks) {
        return Some(ClientPurpose::IntermediateLacksClientAuth);
    }
    Some(ClientPurpose::Ok)
}

/// Classifies an EKU extension by its purpose flags, per the MEASUREMENTS §2 table.
///
/// `present == false` (no extension) or `any == true` (anyExtendedKeyUsage,
/// 2.5.29.37.0) mean "no restriction" (RFC 5280 §4.2.1.12) and give
/// [`EkuClass::Any`]; otherwise serverAuth/clientAuth decide the class.
pub fn classify(present: bool, server_auth: bool, client_auth: bool, any: bool) -> EkuClass {
    if !present || any {
        return EkuClass::Any;
    }
    match (server_auth, client_auth) {
        (true, false) => EkuClass::ServerOnly,
        (true, true) => EkuClass::ClientAndServer,
        (false, true) => EkuClass::ClientOnly,
        (false, false) => EkuClass::Other,
    }
}

/// Errors reading the EKU extension.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EkuError {
    /// The extension is present but does not parse, or appears twice
    /// (RFC 5280 §4.2: "MUST NOT include more than one instance").
    #[error("malformed or duplicate extendedKeyUsage extension: {0}")]
    Malformed(String),
}

/// Reads the EKU extension of a parsed certificate into an [`Eku`]
/// (RFC 5280 §4.2.1.12), keeping every purpose OID in certificate order.
pub fn from_cert(cert: &X509Certificate<'_>) -> Result<Eku, EkuError> {
    let ext = cert
        .extended_key_usage()
        .map_err(|e| EkuError::Malformed(e.to_string()))?;
    let Some(ext) = ext else {
        return Ok(Eku {
            present: false,
            server_auth: false,
            client_auth: false,
            any: false,
            oids: Vec::new(),
            class: EkuClass::Any,
        });
    };
    let v = ext.value;
    // x509-parser folds the well-known purposes into flags and loses their
    // order; re-read the raw extension value to keep the OIDs in order.
    let oids = raw_oids(cert).unwrap_or_else(|| {
        let mut o = Vec::new();
        let flags = [
            (v.any, "2.5.29.37.0"),
            (v.server_auth, "1.3.6.1.5.5.7.3.1"),
            (v.client_auth, "1.3.6.1.5.5.7.3.2"),
            (v.code_signing, "1.3.6.1.5.5.7.3.3"),
            (v.email_protection, "1.3.6.1.5.5.7.3.4"),
            (v.time_stamping, "1.3.6.1.5.5.7.3.8"),
            (v.ocsp_signing, "1.3.6.1.5.5.7.3.9"),
        ];
        o.extend(flags.iter().filter(|f| f.0).map(|f| f.1.to_string()));
        o.extend(v.other.iter().map(|x| x.to_id_string()));
        o
    });
    Ok(Eku {
        present: true,
        server_auth: v.server_auth,
        client_auth: v.client_auth,
        any: v.any,
        oids,
        class: classify(true, v.server_auth, v.client_auth, v.any),
    })
}

/// The EKU purpose OIDs in certificate order, from the raw extension value
/// (`ExtKeyUsageSyntax ::= SEQUENCE SIZE (1..MAX) OF KeyPurposeId`).
fn raw_oids(cert: &X509Certificate<'_>) -> Option<Vec<String>> {
    use x509_parser::asn1_rs::{Any, FromDer, Oid};
    let ext = cert.get_extension_unique(&oid!(2.5.29.37)).ok()??;
    let (_, seq) = Any::from_der(ext.value).ok()?;
    let mut rest: &[u8] = seq.data;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (r, o) = Oid::from_der(rest).ok()?;
        out.push(o.to_id_string());
        rest = r;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_table_measurements_2() {
        assert_eq!(classify(false, false, false, false), EkuClass::Any);
        assert_eq!(classify(true, true, true, true), EkuClass::Any);
        assert_eq!(classify(true, true, false, false), EkuClass::ServerOnly);
        assert_eq!(classify(true, true, true, false), EkuClass::ClientAndServer);
        assert_eq!(classify(true, false, true, false), EkuClass::ClientOnly);
        assert_eq!(classify(true, false, false, false), EkuClass::Other);
    }
}
