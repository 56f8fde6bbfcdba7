//! The testnet's certificates: one private PKI per testnet instance and a
//! certificate per domain shaped by its profile ([`CertShape`]), issued
//! lazily on first use so that 10,000 domains start in seconds.

use crate::testnet::layout::ZONE;
use crate::testnet::pki::{self, CaEku, EkuSpec, IssuedCert, LeafSpec, PkiError, TestCa};
use crate::testnet::profile::CertShape;
use time::{Duration, OffsetDateTime};

/// Validity of ordinary testnet leaves: from a day before start, 90 days.
pub const LEAF_DAYS: i64 = 89;
/// How much later a renewed testnet leaf ends, per certificate epoch.
pub const RENEWAL_DAYS: i64 = 30;

/// The CAs of one testnet.
pub struct Pki {
    /// The root the probe is told to trust (`--extra-ca`).
    pub root: TestCa,
    /// Ordinary issuing intermediate (no EKU restriction).
    issuing: TestCa,
    /// Intermediate whose own EKU is serverAuth only.
    issuing_server_only: TestCa,
    /// Intermediate named like Let's Encrypt's (O = "Let's Encrypt").
    lets_encrypt: TestCa,
    /// An intermediate under a root nobody trusts.
    foreign: TestCa,
    /// The testnet's start: all validity periods derive from it.
    pub start: OffsetDateTime,
}

impl Pki {
    /// Creates the CAs. `tag` makes the CNs unique per instance (two CAs
    /// with one DN confuse path building: crate notes G7).
    pub fn new(tag: &str) -> Result<Self, PkiError> {
        let root = TestCa::new(&format!("xmpp-survey testnet root {tag}"))?;
        let issuing = root.intermediate(
            &format!("xmpp-survey testnet issuing CA {tag}"),
            Some("xmpp-survey testnet"),
            CaEku::Unrestricted,
        )?;
        let issuing_server_only =
            root.intermediate_server_only(&format!("xmpp-survey testnet server-only CA {tag}"))?;
        let lets_encrypt = root.lets_encrypt_like(&format!("R13 testnet {tag}"))?;
        let foreign_root = TestCa::new(&format!("untrusted foreign root {tag}"))?;
        let foreign = foreign_root.intermediate(
            &format!("untrusted foreign issuing CA {tag}"),
            Some("Foreign"),
            CaEku::Unrestricted,
        )?;
        let now = OffsetDateTime::now_utc();
        Ok(Self {
            root,
            issuing,
            issuing_server_only,
            lets_encrypt,
            foreign,
            start: now.replace_nanosecond(0).unwrap_or(now),
        })
    }

    /// notAfter of an ordinary leaf (what "renews as server-only" reports).
    pub fn leaf_not_after(&self) -> OffsetDateTime {
        self.start + Duration::days(LEAF_DAYS)
    }

    /// Issues the certificate a domain presents.
    pub fn issue(&self, domain: &str, shape: CertShape) -> Result<IssuedCert, PkiError> {
        self.issue_at(domain, shape, 0)
    }

    /// notAfter of an ordinary leaf of certificate epoch `epoch` (a
    /// renewal in a later testnet generation lasts [`RENEWAL_DAYS`] longer).
    pub fn leaf_not_after_at(&self, epoch: u32) -> OffsetDateTime {
        self.leaf_not_after() + Duration::days(RENEWAL_DAYS * i64::from(epoch))
    }

    /// Issues the certificate a domain presents in certificate epoch
    /// `epoch` (0 first; each later one a renewal, ending later).
    pub fn issue_at(
        &self,
        domain: &str,
        shape: CertShape,
        epoch: u32,
    ) -> Result<IssuedCert, PkiError> {
        use CertShape::*;
        let mut spec = LeafSpec::new(domain);
        spec.common_name = Some("xmpp-survey testnet server".into());
        spec.eku = EkuSpec::ClientAndServer;
        spec.not_before = self.start - Duration::days(1);
        spec.not_after = self.leaf_not_after();
        match shape {
            ServerOnly | LetsEncryptServerOnly => spec.eku = EkuSpec::ServerOnly,
            ClientOnly => spec.eku = EkuSpec::ClientOnly,
            NoEku => spec.eku = EkuSpec::None,
            Expired => {
                spec.not_before = self.start - Duration::days(120);
                spec.not_after = self.start - Duration::days(30);
            }
            NotYetValid => {
                spec.not_before = self.start + Duration::days(30);
                spec.not_after = self.start + Duration::days(120);
            }
            XmppAddrOnly => {
                spec.dns.clear();
                spec.xmpp_addr = vec![domain.to_string()];
            }
            SrvIdOnly => {
                spec.dns.clear();
                spec.srv_id = vec![
                    format!("_xmpp-client.{domain}"),
                    format!("_xmpp-server.{domain}"),
                ];
            }
            Wildcard => spec.dns = vec![format!("*.{ZONE}")],
            WrongName => spec.dns = vec!["someone-else.example".into()],
            NulInSan => spec.dns.push(format!("nul\0.{domain}")),
            _ => {}
        }
        spec.not_after += Duration::days(RENEWAL_DAYS * i64::from(epoch));
        match shape {
            SelfSigned => pki::self_signed(&spec),
            UnknownIssuer => self.foreign.issue(&spec),
            MissingIntermediate => {
                let mut c = self.issuing.issue(&spec)?;
                c.chain.truncate(1);
                Ok(c)
            }
            IntermediateServerOnly => self.issuing_server_only.issue(&spec),
            OffsetTime => self.issuing.issue_with_offset_time(&spec),
            LetsEncryptClientAndServer | LetsEncryptServerOnly => self.lets_encrypt.issue(&spec),
            _ => self.issuing.issue(&spec),
        }
    }
}
