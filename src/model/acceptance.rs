//! The acceptance probe's evidence (MEASUREMENTS §3): what is kept beside
//! each verdict so a reader can re-derive it. The verdict is
//! [`crate::verdict::acceptance`]; the I/O is [`crate::acceptance`].

use crate::model::report::EndpointReport;
use crate::tls::{CertInfo, ClientPurpose, EkuClass};
use crate::xmpp::dialback::Answer;
use crate::xmpp::iq::SoftwareVersion;
use crate::xmpp::sasl::SaslOutcome;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Which of the probe's certificates an attempt presented.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ProbeCertKind {
    /// EKU serverAuth only (what Let's Encrypt issues since 2026).
    ServerOnly,
    /// EKU serverAuth + clientAuth (control: tells EKU from trust).
    ClientAndServer,
}

/// The answer to an IQ the probe sent once authenticated (XEP-0199 ping,
/// XEP-0092 version). A refusal is evidence too: a server answering
/// `service-unavailable` to the version query hides its software on purpose.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum IqOutcome {
    /// Not sent: the stream never authenticated, or it died before.
    #[default]
    NotAttempted,
    /// `type='result'`.
    Result,
    /// `type='error'` with its condition.
    Error {
        /// RFC 6120 §8.3.3 condition.
        condition: String,
    },
    /// No answer in time (neither on our stream nor via the listener).
    Timeout,
}

/// How an exchange after the post-TLS features broke (as opposed to what
/// the peer answered): the typed cause behind `detail`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ExchangeFault {
    /// No answer before the phase timeout.
    Timeout,
    /// The peer closed the connection or the stream.
    Closed,
    /// The answer was not well-formed XML, or forbidden XML.
    InvalidXml,
    /// The answer exceeded a byte or depth cap.
    Limit,
    /// The peer sent `<stream:error/>`.
    StreamError,
    /// Writing to the peer failed.
    Write,
    /// The peer sent an element the exchange does not allow.
    Unexpected,
}

/// One acceptance attempt: STARTTLS presenting one probe certificate, then
/// SASL EXTERNAL (XEP-0178), then ping and version if authenticated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptReport {
    /// Which certificate was presented.
    pub cert: ProbeCertKind,
    /// The connection up to the post-TLS features (TLS facts include
    /// `client_cert_requested`; a TLS 1.3 rejection of our certificate
    /// shows as `tls.failure = alert` in phase `stream_header_after_tls`).
    pub connection: EndpointReport,
    /// We answered the CertificateRequest with our certificate.
    pub client_cert_sent: bool,
    /// EXTERNAL was in the post-TLS mechanisms.
    pub external_offered: Option<bool>,
    /// The answer to `<auth mechanism='EXTERNAL'/>`, when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<SaslOutcome>,
    /// Dialback was offered (feature or `xmlns:db` on the header).
    pub dialback_offered: Option<bool>,
    /// Ping (XEP-0199) after authentication.
    #[serde(default)]
    pub ping: IqOutcome,
    /// How the software-version query (XEP-0092) was answered.
    #[serde(default)]
    pub version_query: IqOutcome,
    /// Software version (XEP-0092) after authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<SoftwareVersion>,
    /// How the EXTERNAL exchange broke, when it did (no answer to judge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_fault: Option<ExchangeFault>,
    /// What went wrong after the connection was up, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// How a dialback attempt (XEP-0220 §2.1) ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum DialbackOutcome {
    /// The target answered `<db:result type='valid'/>`.
    Valid,
    /// `type='invalid'`.
    Invalid,
    /// `type='error'`.
    Error {
        /// The error condition.
        condition: String,
    },
    /// The target offered no dialback.
    NotOffered,
    /// The connection did not reach post-TLS features (see `connection`).
    ConnectionFailed,
    /// No answer in time.
    Timeout,
}

impl From<Answer> for DialbackOutcome {
    fn from(a: Answer) -> Self {
        match a {
            Answer::Valid => Self::Valid,
            Answer::Invalid => Self::Invalid,
            Answer::Error { condition } => Self::Error { condition },
        }
    }
}

/// A dialback attempt on its own connection, presenting the server-only
/// certificate as a real Let's Encrypt-equipped peer would.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DialbackReport {
    /// The connection.
    pub connection: EndpointReport,
    /// The outcome.
    pub outcome: DialbackOutcome,
    /// The target called our listener with `db:verify` for this attempt.
    pub verify_received: bool,
    /// Ping after dialback succeeded.
    #[serde(default)]
    pub ping: IqOutcome,
    /// How the version query after dialback was answered.
    #[serde(default)]
    pub version_query: IqOutcome,
    /// Version after dialback succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<SoftwareVersion>,
}

/// How an inbound stream from the target authenticated at our listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum InboundAuth {
    /// SASL EXTERNAL with the outcome we gave.
    External {
        /// Success or our failure answer.
        outcome: SaslOutcome,
    },
    /// Dialback; `valid` is what the target's authoritative server said.
    Dialback {
        /// Verified valid.
        valid: bool,
    },
    /// Only `db:verify` (the target checking *our* dialback key).
    VerifyOnly,
    /// Nothing (closed before authenticating).
    None,
}

/// One stream the target opened to our listener (MEASUREMENTS §3.3: the
/// certificate *the target* presents as TLS client, with its EKU).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundReport {
    /// The `from` of its stream header.
    pub peer: String,
    /// When it connected.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// TLS was negotiated.
    pub tls: bool,
    /// The chain it presented as TLS client (empty: none).
    pub client_chain: Vec<CertInfo>,
    /// EKU class of its end-entity certificate.
    pub client_eku: Option<EkuClass>,
    /// Whether its chain passes OpenSSL's TLS-client purpose check: the
    /// "will strict peers refuse *this* server" side of federation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_purpose: Option<ClientPurpose>,
    /// How it authenticated.
    pub auth: InboundAuth,
    /// IQ replies it delivered to us on this stream.
    pub replies: usize,
}

/// The acceptance verdicts of MEASUREMENTS §3 (also the API's schema of
/// a verdict: one list for the code, the database and the OpenAPI document).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AcceptanceVerdict {
    /// EXTERNAL succeeded with the server-only certificate.
    AcceptsServerOnly,
    /// EXTERNAL refused or not offered with server-only, dialback available.
    RejectsServerOnlyDialback,
    /// As above, and dialback not offered or failed: federation with
    /// server-only peers fails.
    RejectsServerOnlyNoFallback,
    /// Never asks for / offers certificate authentication, even with a
    /// client-and-server certificate: dialback alone.
    NoCertAuth,
    /// Cannot tell (e.g. our certificate is not trusted); see `reason`.
    Inconclusive,
    /// No s2s endpoint could be reached.
    Unreachable,
    /// No TLS session with any s2s endpoint.
    TlsFailed,
    /// No probe identity configured: the acceptance test was not run.
    NotRun,
}

/// Why a verdict was reached, as a stable code (its snake_case name is the
/// value in JSON and in the database). The human text beside it adds the
/// details (conditions, alert names) and is never matched on.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AcceptanceReason {
    /// No probe identity configured.
    NoProbeIdentity,
    /// DNS gave no s2s address, or the address policy forbade them all.
    NoS2sAddress,
    /// No s2s endpoint accepted a TCP connection.
    S2sUnreachable,
    /// Endpoints answered, but no TLS handshake completed on any of them.
    NoTlsSession,
    /// SASL EXTERNAL succeeded with the server-only certificate.
    ExternalSucceeded,
    /// Neither certificate was asked for (no CertificateRequest).
    NoCertificateRequest,
    /// The server-only attempt stopped for a reason unrelated to our
    /// certificate (timeout, stream error, closed).
    AttemptIncomplete,
    /// Both certificates were refused: a trust problem, not an EKU one.
    BothCertificatesRefused,
    /// TLS aborted with an alert after we presented the server-only certificate.
    TlsAlertOnServerOnly,
    /// EXTERNAL answered `<failure/>` to the server-only certificate.
    ExternalRefused,
    /// EXTERNAL was not offered to the server-only certificate (but was
    /// asked for a certificate).
    ExternalNotOffered,
}

/// Everything the active probe learnt about one domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceptanceReport {
    /// Our domain.
    pub probe_domain: String,
    /// One attempt per probe certificate (server-only first).
    pub attempts: Vec<AttemptReport>,
    /// The separate dialback attempt, when dialback was offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialback: Option<DialbackReport>,
    /// Streams the target opened to our listener during the probe.
    pub inbound: Vec<InboundReport>,
    /// The server software (XEP-0092), from whichever attempt authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software: Option<SoftwareVersion>,
    /// The verdict.
    pub verdict: AcceptanceVerdict,
    /// Why, as a stable code (what reports group by and tests match on).
    pub reason_code: AcceptanceReason,
    /// The s2s endpoint the attempts ran against (`ip:port`, transport).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Why, in words (always set for `inconclusive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
