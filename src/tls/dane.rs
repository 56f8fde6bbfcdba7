//! DANE for XMPP (RFC 7673, RFC 6698 §2.1): does the presented chain match
//! the TLSA records published at `_PORT._tcp.HOST`?

use crate::dns::TlsaRecord;
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256, Sha512};

/// The bytes a record's selector picks (RFC 6698 §2.1.2): the whole
/// certificate (0) or its SubjectPublicKeyInfo (1).
fn selected(selector: u8, der: &[u8]) -> Option<Vec<u8>> {
    match selector {
        0 => Some(der.to_vec()),
        1 => {
            let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
            Some(cert.tbs_certificate.subject_pki.raw.to_vec())
        }
        _ => None,
    }
}

/// Whether one record matches one certificate (RFC 6698 §2.1.3 matching types).
fn record_matches(r: &TlsaRecord, der: &[u8]) -> bool {
    let Some(data) = selected(r.selector, der) else {
        return false;
    };
    let digest = match r.matching {
        0 => data,
        1 => Sha256::digest(&data).to_vec(),
        2 => Sha512::digest(&data).to_vec(),
        _ => return false,
    };
    hex::encode(digest).eq_ignore_ascii_case(&r.data)
}

/// Matches a chain (end-entity first) against TLSA records.
///
/// Usages (RFC 6698 §2.1.1, RFC 7218 names): 3 DANE-EE and 1 PKIX-EE match
/// the end-entity; 2 DANE-TA and 0 PKIX-TA match any other certificate of
/// the chain. The PKIX usages additionally need `pkix_trusted` (the chain
/// verdict). `None` when there are no records: DANE does not apply.
pub fn matches(
    records: &[TlsaRecord],
    chain: &[CertificateDer<'_>],
    pkix_trusted: bool,
) -> Option<bool> {
    if records.is_empty() {
        return None;
    }
    let Some((ee, rest)) = chain.split_first() else {
        return Some(false);
    };
    Some(records.iter().any(|r| match r.usage {
        3 => record_matches(r, ee),
        1 => pkix_trusted && record_matches(r, ee),
        2 => rest.iter().any(|c| record_matches(r, c)),
        0 => pkix_trusted && rest.iter().any(|c| record_matches(r, c)),
        _ => false,
    }))
}

#[cfg(test)]
#[cfg(feature = "testnet")]
mod tests {
    use super::*;
    use crate::testnet::pki::{LeafSpec, TestCa};

    fn rec(usage: u8, selector: u8, matching: u8, data: &[u8]) -> TlsaRecord {
        TlsaRecord {
            usage,
            selector,
            matching,
            data: hex::encode(data),
        }
    }

    #[test]
    fn rfc6698_2_1_usages_selectors_and_matching_types() {
        crate::install_crypto_provider();
        let ca = TestCa::new("dane test root").unwrap();
        let int = ca
            .intermediate(
                "dane test int",
                None,
                crate::testnet::pki::CaEku::Unrestricted,
            )
            .unwrap();
        let c = int.issue(&LeafSpec::new("dane.test")).unwrap();
        let (ee, ic) = (c.chain[0].as_ref(), c.chain[1].as_ref());
        let spki = selected(1, ee).unwrap();
        let ee_spki_256 = Sha256::digest(&spki).to_vec();
        let ee_full_512 = Sha512::digest(ee).to_vec();
        let int_full_256 = Sha256::digest(ic).to_vec();

        assert_eq!(matches(&[], &c.chain, true), None);
        assert_eq!(
            matches(&[rec(3, 1, 1, &ee_spki_256)], &c.chain, false),
            Some(true)
        );
        assert_eq!(
            matches(&[rec(3, 0, 2, &ee_full_512)], &c.chain, false),
            Some(true)
        );
        assert_eq!(matches(&[rec(3, 0, 0, ee)], &c.chain, false), Some(true));
        assert_eq!(
            matches(&[rec(2, 0, 1, &int_full_256)], &c.chain, false),
            Some(true)
        );
        // DANE-TA never matches the end-entity; DANE-EE never the issuer.
        assert_eq!(
            matches(&[rec(2, 1, 1, &ee_spki_256)], &c.chain, false),
            Some(false)
        );
        assert_eq!(
            matches(&[rec(3, 0, 1, &int_full_256)], &c.chain, false),
            Some(false)
        );
        // PKIX usages need a trusted chain too.
        assert_eq!(
            matches(&[rec(1, 1, 1, &ee_spki_256)], &c.chain, false),
            Some(false)
        );
        assert_eq!(
            matches(&[rec(1, 1, 1, &ee_spki_256)], &c.chain, true),
            Some(true)
        );
        // Wrong data, unknown selector/matching types.
        assert_eq!(
            matches(&[rec(3, 1, 1, &[0u8; 32])], &c.chain, true),
            Some(false)
        );
        assert_eq!(
            matches(&[rec(3, 7, 1, &ee_spki_256)], &c.chain, true),
            Some(false)
        );
        assert_eq!(
            matches(&[rec(3, 1, 9, &ee_spki_256)], &c.chain, true),
            Some(false)
        );
        assert_eq!(
            matches(&[rec(3, 1, 1, &ee_spki_256)], &[], true),
            Some(false)
        );
    }
}
