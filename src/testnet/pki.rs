//! A private test PKI for the local test federation and the tests
//! (TESTNET.md): root CAs, intermediates (one without clientAuth, one that
//! looks like Let's Encrypt), and leaf certificates with every EKU class and
//! every XMPP identifier form (dNSName, id-on-xmppAddr, id-on-dnsSRV;
//! RFC 6120 §13.7.1.2, RFC 7673).
//!
//! Every CA must get a unique CN (notes G7): webpki finds issuers by
//! name, so two CAs with the same DN turn "unknown issuer" into "bad
//! signature". [`TestCa::new`] takes the CN from the caller; [`wrong_issuer`]
//! makes a fresh one with a random suffix.
//!
//! rcgen cannot write an IA5String otherName (notes G8), so the whole
//! subjectAltName extension is encoded here ([`san_extension_der`]).

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P384_SHA384,
    PKCS_ED25519, PKCS_RSA_SHA256, RsaKeySize,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

/// Errors building test certificates (our own faults, never peer data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// rcgen refused the parameters or the key.
    #[error("test PKI: {0}")]
    Rcgen(String),
    /// A hand-made certificate shape could not be built.
    #[error("test PKI: {0}")]
    Shape(String),
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        Self::Rcgen(e.to_string())
    }
}

/// The EKU a test leaf carries (MEASUREMENTS §2 classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EkuSpec {
    /// serverAuth only: Let's Encrypt's default since 2026-02-11.
    #[default]
    ServerOnly,
    /// serverAuth and clientAuth: the pre-2026 Let's Encrypt profile.
    ClientAndServer,
    /// clientAuth only.
    ClientOnly,
    /// No EKU extension at all (class `any`).
    None,
    /// anyExtendedKeyUsage (2.5.29.37.0, class `any`).
    AnyPurpose,
    /// emailProtection only: neither TLS purpose (class `other`).
    Other,
}

impl EkuSpec {
    fn purposes(self) -> Vec<ExtendedKeyUsagePurpose> {
        use ExtendedKeyUsagePurpose as P;
        match self {
            Self::ServerOnly => vec![P::ServerAuth],
            Self::ClientAndServer => vec![P::ServerAuth, P::ClientAuth],
            Self::ClientOnly => vec![P::ClientAuth],
            Self::None => vec![],
            Self::AnyPurpose => vec![P::Any],
            Self::Other => vec![P::EmailProtection],
        }
    }
}

/// Key type of a test leaf. ECDSA P-256 is the default: fast to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeySpec {
    /// ECDSA P-256 with SHA-256.
    #[default]
    EcdsaP256,
    /// ECDSA P-384 with SHA-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
    /// RSA 2048 (slow to generate: use sparingly).
    Rsa2048,
}

impl KeySpec {
    fn generate(self) -> Result<KeyPair, PkiError> {
        Ok(match self {
            Self::EcdsaP256 => KeyPair::generate()?,
            Self::EcdsaP384 => KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)?,
            Self::Ed25519 => KeyPair::generate_for(&PKCS_ED25519)?,
            Self::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)?,
        })
    }
}

/// What to put into a test leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafSpec {
    /// dNSName SANs (may start with `*.`).
    pub dns: Vec<String>,
    /// id-on-xmppAddr SANs (UTF8String, RFC 6120 §13.7.1.4).
    pub xmpp_addr: Vec<String>,
    /// id-on-dnsSRV SANs (IA5String, e.g. `_xmpp-server.example.test`; RFC 4985).
    pub srv_id: Vec<String>,
    /// Subject CN; `None` gives the first name of any kind, or no CN.
    pub common_name: Option<String>,
    /// EKU.
    pub eku: EkuSpec,
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
    /// Key type.
    pub key: KeySpec,
}

impl LeafSpec {
    /// A server-only leaf for `domain` (dNSName), valid from a day ago for
    /// 90 days like a Let's Encrypt certificate.
    pub fn new(domain: &str) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            dns: vec![domain.to_string()],
            xmpp_addr: Vec::new(),
            srv_id: Vec::new(),
            common_name: None,
            eku: EkuSpec::ServerOnly,
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(89),
            key: KeySpec::EcdsaP256,
        }
    }

    /// A leaf with no names at all (set them afterwards).
    pub fn nameless() -> Self {
        Self {
            dns: Vec::new(),
            ..Self::new("")
        }
    }
}

/// A certificate with its chain and key, ready for a rustls server or as a
/// client certificate.
#[derive(Debug)]
pub struct IssuedCert {
    /// Leaf first, then intermediates; never the root.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key (PKCS#8).
    pub key: PrivateKeyDer<'static>,
}

impl Clone for IssuedCert {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl IssuedCert {
    /// The leaf certificate.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// The chain as PEM (for files handed to other programs).
    pub fn chain_pem(&self) -> String {
        self.chain.iter().map(|c| pem("CERTIFICATE", c)).collect()
    }

    /// The key as PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        pem("PRIVATE KEY", self.key.secret_der())
    }
}

/// A test certificate authority: a root, or an intermediate under one.
pub struct TestCa {
    cn: String,
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    /// The signing key again (PKCS#8): rcgen's `Issuer` does not lend it
    /// out, and [`TestCa::issue_with_offset_time`] signs by hand.
    key_der: Vec<u8>,
    /// Certificates to send after a leaf: this CA (if intermediate) and its
    /// intermediate parents, never the root.
    chain_above: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").field("cn", &self.cn).finish()
    }
}

/// EKU restriction on an intermediate CA certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaEku {
    /// No EKU extension (no restriction).
    #[default]
    Unrestricted,
    /// serverAuth only, like Let's Encrypt's Generation Y intermediates:
    /// leaves under it fail clientAuth checks that look at the whole chain.
    ServerOnly,
    /// serverAuth and clientAuth, like R10–R14 / E5–E9.
    ClientAndServer,
}

fn ca_params(
    cn: &str,
    organization: Option<&str>,
    eku: CaEku,
) -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    if let Some(o) = organization {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.extended_key_usages = match eku {
        CaEku::Unrestricted => vec![],
        CaEku::ServerOnly => vec![ExtendedKeyUsagePurpose::ServerAuth],
        CaEku::ClientAndServer => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    };
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(365);
    p.not_after = now + Duration::days(3650);
    Ok(p)
}

impl TestCa {
    /// A self-signed root CA with subject `CN=<cn>, O=xmpp-survey test`.
    /// `cn` must be unique among the CAs a test uses (notes G7).
    pub fn new(cn: &str) -> Result<Self, PkiError> {
        let params = ca_params(cn, Some("xmpp-survey test"), CaEku::Unrestricted)?;
        let key = KeyPair::generate()?;
        let der = params.self_signed(&key)?.der().clone();
        Ok(Self {
            cn: cn.to_string(),
            der,
            key_der: key.serialize_der(),
            issuer: Issuer::new(params, key),
            chain_above: Vec::new(),
        })
    }

    /// An intermediate CA under this one.
    pub fn intermediate(
        &self,
        cn: &str,
        organization: Option<&str>,
        eku: CaEku,
    ) -> Result<Self, PkiError> {
        let params = ca_params(cn, organization, eku)?;
        let key = KeyPair::generate()?;
        let der = params.signed_by(&key, &self.issuer)?.der().clone();
        let mut chain_above = vec![der.clone()];
        chain_above.extend(self.chain_above.iter().cloned());
        Ok(Self {
            cn: cn.to_string(),
            der,
            key_der: key.serialize_der(),
            issuer: Issuer::new(params, key),
            chain_above,
        })
    }

    /// An intermediate whose own EKU is serverAuth only (no clientAuth).
    pub fn intermediate_server_only(&self, cn: &str) -> Result<Self, PkiError> {
        self.intermediate(cn, Some("xmpp-survey test"), CaEku::ServerOnly)
    }

    /// A Let's Encrypt look-alike intermediate (`O=Let's Encrypt`, CN e.g.
    /// `R13-test`, EKU serverAuth+clientAuth like R10–R14), so that
    /// `lets_encrypt` and `renews_server_only` work on the testnet.
    pub fn lets_encrypt_like(&self, cn: &str) -> Result<Self, PkiError> {
        self.intermediate(cn, Some("Let's Encrypt"), CaEku::ClientAndServer)
    }

    /// This CA's CN.
    pub fn cn(&self) -> &str {
        &self.cn
    }

    /// This CA's certificate (DER), e.g. as an extra trust anchor.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// This CA's certificate as PEM, e.g. for an `--extra-ca` file.
    pub fn pem(&self) -> String {
        pem("CERTIFICATE", &self.der)
    }

    /// Issues a leaf. Chain: leaf, then this CA if it is an intermediate,
    /// then its intermediate parents.
    pub fn issue(&self, spec: &LeafSpec) -> Result<IssuedCert, PkiError> {
        let (params, key) = leaf_params(spec)?;
        let leaf = params.signed_by(&key, &self.issuer)?.der().clone();
        let mut chain = vec![leaf];
        chain.extend(self.chain_above.iter().cloned());
        Ok(IssuedCert {
            chain,
            key: private_key(&key),
        })
    }
}

impl TestCa {
    /// Issues a leaf whose notAfter is a UTCTime with a UTC offset
    /// (`YYMMDDHHMMSS+1600`), outside the RFC 5280 §4.1.2.5.1 profile
    /// ("MUST include seconds … MUST be expressed in Greenwich Mean Time
    /// (Zulu)"): rcgen writes only `Z` times, so the TBS is rewritten and
    /// signed again with this CA's key. The instant is the same as the
    /// spec's notAfter.
    pub fn issue_with_offset_time(&self, spec: &LeafSpec) -> Result<IssuedCert, PkiError> {
        let mut issued = self.issue(spec)?;
        let bad = |why: &str| PkiError::Shape(format!("offset-time certificate: {why}"));
        let (tbs, alg) = split_cert(issued.leaf()).ok_or_else(|| bad("cannot split"))?;
        let local = spec
            .not_after
            .to_offset(time::UtcOffset::from_hms(16, 0, 0).map_err(|e| bad(&e.to_string()))?);
        let text = format!(
            "{:02}{:02}{:02}{:02}{:02}{:02}+1600",
            local.year() % 100,
            u8::from(local.month()),
            local.day(),
            local.hour(),
            local.minute(),
            local.second()
        );
        // Walk the TBS: [0] version, serial, signature, issuer, then
        // validity (RFC 5280 §4.1); notAfter is validity's second element.
        let (_, content) = der_header(tbs).ok_or_else(|| bad("TBS header"))?;
        let mut pos = 0;
        for _ in 0..4 {
            let (h, c) = der_header(&content[pos..]).ok_or_else(|| bad("TBS field"))?;
            pos += h + c.len();
        }
        let (vh, validity) = der_header(&content[pos..]).ok_or_else(|| bad("validity"))?;
        let (nb_h, nb) = der_header(validity).ok_or_else(|| bad("notBefore"))?;
        let na = nb_h + nb.len();
        if validity.get(na..na + 2) != Some(&[0x17, 0x0d]) {
            return Err(bad("notAfter is not a 13-byte UTCTime"));
        }
        let mut new_validity = validity.to_vec();
        new_validity.splice(na..na + 15, der_tlv(0x17, text.as_bytes()));
        let mut body = content[..pos].to_vec();
        body.extend(der_tlv(0x30, &new_validity));
        body.extend_from_slice(&content[pos + vh + validity.len()..]);
        let new_tbs = der_tlv(0x30, &body);
        let key = KeyPair::try_from(self.key_der.as_slice())?;
        let sig = rcgen::SigningKey::sign(&key, &new_tbs)?;
        let mut bits = vec![0u8];
        bits.extend(sig);
        let mut cert = new_tbs;
        cert.extend_from_slice(alg);
        cert.extend(der_tlv(0x03, &bits));
        issued.chain[0] = CertificateDer::from(der_tlv(0x30, &cert));
        Ok(issued)
    }
}

/// A DER TLV with a definite length.
fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// The header length and content of the DER TLV at the start of `der`.
fn der_header(der: &[u8]) -> Option<(usize, &[u8])> {
    let first = *der.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        let len = der
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        (len, 2 + n)
    };
    Some((header, der.get(header..header + len)?))
}

/// `(tbsCertificate TLV, signatureAlgorithm TLV)` of a certificate.
fn split_cert(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (_, body) = der_header(der)?;
    let (h, c) = der_header(body)?;
    let tbs = &body[..h + c.len()];
    let rest = &body[tbs.len()..];
    let (h2, c2) = der_header(rest)?;
    Some((tbs, &rest[..h2 + c2.len()]))
}

/// A self-signed leaf (its own issuer; chain of one).
pub fn self_signed(spec: &LeafSpec) -> Result<IssuedCert, PkiError> {
    let (params, key) = leaf_params(spec)?;
    let leaf = params.self_signed(&key)?.der().clone();
    Ok(IssuedCert {
        chain: vec![leaf],
        key: private_key(&key),
    })
}

/// A leaf signed by a fresh CA that nobody trusts (unique CN, so the
/// verdict is "unknown issuer", not "bad signature").
pub fn wrong_issuer(spec: &LeafSpec) -> Result<IssuedCert, PkiError> {
    let ca = TestCa::new(&format!(
        "xmpp-survey untrusted CA {:016x}",
        rand::random::<u64>()
    ))?;
    ca.issue(spec)
}

fn leaf_params(spec: &LeafSpec) -> Result<(CertificateParams, KeyPair), PkiError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    let cn = spec.common_name.clone().or_else(|| {
        spec.dns
            .iter()
            .chain(&spec.xmpp_addr)
            .chain(&spec.srv_id)
            .next()
            .cloned()
    });
    if let Some(cn) = cn {
        dn.push(DnType::CommonName, cn);
    }
    p.distinguished_name = dn;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = spec.eku.purposes();
    p.not_before = spec.not_before;
    p.not_after = spec.not_after;
    if let Some(san) = san_extension_der(&spec.dns, &spec.xmpp_addr, &spec.srv_id) {
        p.custom_extensions
            .push(CustomExtension::from_oid_content(&[2, 5, 29, 17], san));
    }
    let key = spec.key.generate()?;
    Ok((p, key))
}

fn private_key(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivatePkcs8KeyDer::from(key.serialize_der()).into()
}

/// DER of a `GeneralNames` (RFC 5280 §4.2.1.6) holding dNSNames (`[2]`
/// IA5String), id-on-xmppAddr otherNames (UTF8String) and id-on-dnsSRV
/// otherNames (IA5String); `None` when there are no names.
pub fn san_extension_der(
    dns: &[String],
    xmpp_addr: &[String],
    srv_id: &[String],
) -> Option<Vec<u8>> {
    const ID_ON_XMPPADDR: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x05];
    const ID_ON_DNSSRV: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x07];
    let mut names = Vec::new();
    for d in dns {
        names.extend(tlv(0x82, d.as_bytes()));
    }
    let other = |oid: &[u8], string_tag: u8, value: &str| {
        let mut body = tlv(0x06, oid);
        body.extend(tlv(0xa0, &tlv(string_tag, value.as_bytes())));
        tlv(0xa0, &body)
    };
    for x in xmpp_addr {
        names.extend(other(ID_ON_XMPPADDR, 0x0c, x));
    }
    for s in srv_id {
        names.extend(other(ID_ON_DNSSRV, 0x16, s));
    }
    (!names.is_empty()).then(|| tlv(0x30, &names))
}

/// One DER TLV with a definite length (X.690 §8.1.3).
fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let len = value.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend(&bytes[skip..]);
    }
    out.extend(value);
    out
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_length_forms() {
        assert_eq!(tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = tlv(0x04, &[0; 200]);
        assert_eq!(&long[..3], &[0x04, 0x81, 200]);
        let longer = tlv(0x04, &[0; 300]);
        assert_eq!(&longer[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn chain_shape_and_pem() {
        crate::install_crypto_provider();
        let root = TestCa::new("pki-shape root").expect("root");
        let a = root
            .intermediate("pki-shape a", None, CaEku::Unrestricted)
            .expect("a");
        let b = a.intermediate_server_only("pki-shape b").expect("b");
        let leaf = b.issue(&LeafSpec::new("shape.example.test")).expect("leaf");
        assert_eq!(leaf.chain.len(), 3);
        assert_eq!(&leaf.chain[1], b.der());
        assert_eq!(&leaf.chain[2], a.der());
        assert!(!leaf.chain.contains(root.der()));
        assert!(root.pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert_eq!(leaf.chain_pem().matches("BEGIN CERTIFICATE").count(), 3);
        assert!(leaf.key_pem().starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let only_root = root
            .issue(&LeafSpec::new("shape.example.test"))
            .expect("leaf");
        assert_eq!(only_root.chain.len(), 1);
    }

    /// Measures leaf issuance (the testnet issues many lazily). Prints the
    /// mean; run with `--nocapture` to see it.
    #[test]
    fn leaf_issuance_time() {
        crate::install_crypto_provider();
        let ca = TestCa::new("pki-timing CA").expect("CA");
        let spec = LeafSpec {
            xmpp_addr: vec!["t.example.test".into()],
            srv_id: vec!["_xmpp-server.t.example.test".into()],
            ..LeafSpec::new("t.example.test")
        };
        const N: u32 = 200;
        let start = std::time::Instant::now();
        for _ in 0..N {
            ca.issue(&spec).expect("leaf");
        }
        let per = start.elapsed() / N;
        println!("leaf issuance (ECDSA P-256, with SANs): {per:?} per leaf over {N}");
        assert!(per < std::time::Duration::from_millis(50), "{per:?}");
    }
}

#[cfg(test)]
mod offset_time_tests {
    use super::*;

    /// The offset-time leaf parses, is flagged, and keeps its instant.
    #[test]
    fn rfc5280_4_1_2_5_1_offset_time_leaf_is_flagged_in_utc() {
        crate::install_crypto_provider();
        let ca = TestCa::new("offset-time CA").expect("CA");
        let spec = LeafSpec::new("offset.example.test");
        let issued = ca.issue_with_offset_time(&spec).expect("issue");
        let info = crate::tls::cert::analyze(issued.leaf()).expect("analyse");
        assert!(
            info.anomalies
                .contains(&crate::tls::CertAnomaly::TimeWithOffset),
            "{:?}",
            info.anomalies
        );
        assert_eq!(info.not_after.offset(), time::UtcOffset::UTC);
        assert_eq!(
            info.not_after.unix_timestamp(),
            spec.not_after.unix_timestamp()
        );
    }
}
