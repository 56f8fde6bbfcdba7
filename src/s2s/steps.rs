//! Initiating-server steps on an established (TLS) stream. Each step has a
//! timeout and returns a typed error; what the peer answered is data.

use crate::xmpp::Service;
use crate::xmpp::dialback::{self, Answer, Dialback};
use crate::xmpp::element::Element;
use crate::xmpp::features::{self, Features};
use crate::xmpp::reader::{ReadFault, StreamReader};
use crate::xmpp::sasl::{self, SaslOutcome};
use crate::xmpp::stream::{self, HeaderSpec, StreamError, StreamHeader};
use crate::xmpp::{NS_STREAMS, iq};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::timeout;

/// How a step failed (as opposed to what the peer answered).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StepError {
    /// No answer before the step's timeout.
    #[error("timed out")]
    Timeout,
    /// The stream broke or carried bad XML.
    #[error("stream: {0}")]
    Read(#[from] ReadFault),
    /// The peer sent `<stream:error/>`.
    #[error("stream error <{}/>{}", .0.condition, .0.text.as_deref().map(|t| format!(": {t}")).unwrap_or_default())]
    Stream(StreamError),
    /// Writing failed.
    #[error("write: {0}")]
    Write(String),
    /// The peer sent something the step does not allow.
    #[error("unexpected {0}")]
    Unexpected(String),
}

async fn read<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut StreamReader<S>,
    limit: Duration,
) -> Result<Element, StepError> {
    s.new_phase();
    let el = timeout(limit, s.read_element())
        .await
        .map_err(|_| StepError::Timeout)??;
    if el.is(NS_STREAMS, "error") {
        return Err(StepError::Stream(stream::parse_error(&el)));
    }
    Ok(el)
}

async fn write<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut StreamReader<S>,
    xml: &str,
) -> Result<(), StepError> {
    s.write_all(xml.as_bytes())
        .await
        .map_err(|e| StepError::Write(e.to_string()))
}

/// RFC 6120 §4.3.3 stream restart (after SASL success): our header, then
/// the peer's header and features.
pub async fn restart<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut StreamReader<S>,
    from: &str,
    to: &str,
    limit: Duration,
) -> Result<(StreamHeader, Features), StepError> {
    s.restart();
    write(
        s,
        &stream::open_header(&HeaderSpec {
            service: Service::S2s,
            from: Some(from),
            to: Some(to),
            id: None,
            version: Some("1.0"),
            dialback: true,
        }),
    )
    .await?;
    s.new_phase();
    let header = timeout(limit, s.read_header())
        .await
        .map_err(|_| StepError::Timeout)??;
    let el = read(s, limit).await?;
    if !features::is_features(&el) {
        return Err(StepError::Unexpected(el.expanded_name()));
    }
    Ok((header, features::parse(&el)))
}

/// XEP-0178 §3: `<auth mechanism='EXTERNAL'>` with our domain as
/// authorization identity. On success the stream is restarted and the new
/// features are returned with the outcome.
pub async fn auth_external<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut StreamReader<S>,
    from: &str,
    to: &str,
    limit: Duration,
) -> Result<(SaslOutcome, Option<Features>), StepError> {
    write(s, &sasl::auth_external(from)).await?;
    let el = read(s, limit).await?;
    let outcome =
        sasl::parse_outcome(&el).ok_or_else(|| StepError::Unexpected(el.expanded_name()))?;
    match outcome {
        SaslOutcome::Success => {
            let (_, feats) = restart(s, from, to, limit).await?;
            Ok((SaslOutcome::Success, Some(feats)))
        }
        SaslOutcome::Challenge => {
            write(s, &sasl::abort()).await?;
            Ok((SaslOutcome::Challenge, None))
        }
        failure => Ok((failure, None)),
    }
}

/// XEP-0220 §2.1.1: sends `<db:result>` with `key` and waits for the
/// receiving server's verdict (which arrives after it asked our
/// authoritative server). Unrelated stanzas in between are skipped.
pub async fn dialback<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut StreamReader<S>,
    from: &str,
    to: &str,
    key: &str,
    limit: Duration,
) -> Result<Answer, StepError> {
    write(s, &dialback::result_request(from, to, key)).await?;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let el = read(s, left).await?;
        if let Some(Dialback::ResultAnswer { answer, .. }) = dialback::parse(&el) {
            return Ok(answer);
        }
    }
}

/// Sends an IQ and waits for the answer with the same id on this stream
/// (the bidi case, or a peer that answers on the incoming stream);
/// `Ok(None)` when the deadline passes without one. Other elements are skipped.
pub async fn iq_on_stream<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut StreamReader<S>,
    xml: &str,
    id: &str,
    limit: Duration,
) -> Result<Option<Element>, StepError> {
    write(s, xml).await?;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match read(s, left).await {
            Ok(el) => {
                if iq::parse(&el).is_some_and(|q| q.id == id) {
                    return Ok(Some(el));
                }
            }
            Err(StepError::Timeout) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// Writes raw XML (a stanza) to the stream.
pub async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut StreamReader<S>,
    xml: &str,
) -> Result<(), StepError> {
    write(s, xml).await
}

/// XEP-0220 §2.1.2, the receiving server's side: asks the authoritative
/// server (on a stream to it) whether `key` is genuine for the stream `id`
/// the originating server was given, and waits for the matching
/// `<db:verify type=…/>`. Unrelated elements in between are skipped.
pub async fn verify<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut StreamReader<S>,
    from: &str,
    to: &str,
    id: &str,
    key: &str,
    limit: Duration,
) -> Result<Answer, StepError> {
    write(s, &dialback::verify_request(from, to, id, key)).await?;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let el = read(s, left).await?;
        if let Some(Dialback::VerifyAnswer {
            id: got, answer, ..
        }) = dialback::parse(&el)
            && got == id
        {
            return Ok(answer);
        }
    }
}

/// The typed fault behind a failed step, for the acceptance evidence.
impl From<&StepError> for crate::model::acceptance::ExchangeFault {
    fn from(e: &StepError) -> Self {
        use crate::xmpp::reader::ReadFault as R;
        use StepError as E;
        match e {
            E::Timeout => Self::Timeout,
            E::Read(R::ByteLimit | R::DepthLimit) => Self::Limit,
            E::Read(R::InvalidXml(_) | R::NotStream(_) | R::Doctype | R::ProcessingInstruction) => {
                Self::InvalidXml
            }
            E::Read(R::Eof | R::StreamClosed | R::Io(_) | R::TlsAlert(_)) => Self::Closed,
            E::Stream(_) => Self::StreamError,
            E::Write(_) => Self::Write,
            E::Unexpected(_) => Self::Unexpected,
        }
    }
}
