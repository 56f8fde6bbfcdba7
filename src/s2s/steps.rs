//! Initiating-server steps on an established (TLS) stream: the driver of
//! the pure exchanges in [`crate::negotiation::exchange`]. Each step
//! writes its request, reads with the hardened reader until a deadline,
//! and feeds what arrived; it returns a typed error; what the peer
//! answered is data.

use crate::negotiation::Event;
pub use crate::negotiation::exchange::StepError;
use crate::negotiation::exchange::{
    AuthExternal, DialbackResult, DialbackVerify, Exchange, IqRoundTrip, Restart, feed,
};
use crate::xmpp::dialback::Answer;
use crate::xmpp::element::Element;
use crate::xmpp::features::Features;
use crate::xmpp::reader::StreamReader;
use crate::xmpp::sasl::{self, SaslOutcome};
use crate::xmpp::stream::StreamHeader;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout};

async fn write<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut StreamReader<S>,
    xml: &str,
) -> Result<(), StepError> {
    s.write_all(xml.as_bytes())
        .await
        .map_err(|e| StepError::Write(e.to_string()))
}

/// Reads and feeds elements until `x` answers or fails; every read is a
/// new reader phase, all within `limit` from now.
async fn answer<S: AsyncRead + AsyncWrite + Unpin, X: Exchange>(
    s: &mut StreamReader<S>,
    x: &mut X,
    limit: Duration,
) -> Result<X::Answer, StepError> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        s.new_phase();
        let ev = match timeout(left, s.read_element()).await {
            Err(_) => Event::Timeout,
            Ok(Err(fault)) => Event::Fault(fault),
            Ok(Ok(el)) => Event::Element(el),
        };
        if let Some(a) = feed(x, ev)? {
            return Ok(a);
        }
    }
}

/// Writes `x`'s request, then waits for its answer.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin, X: Exchange>(
    s: &mut StreamReader<S>,
    mut x: X,
    limit: Duration,
) -> Result<X::Answer, StepError> {
    write(s, &x.request()).await?;
    answer(s, &mut x, limit).await
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
    let mut x = Restart { from, to };
    write(s, &x.request()).await?;
    s.new_phase();
    let header = timeout(limit, s.read_header())
        .await
        .map_err(|_| StepError::Timeout)??;
    let features = answer(s, &mut x, limit).await?;
    Ok((header, features))
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
    match exchange(s, AuthExternal { from }, limit).await? {
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
    exchange(s, DialbackResult { from, to, key }, limit).await
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
    exchange(s, IqRoundTrip { xml, id }, limit).await
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
    exchange(s, DialbackVerify { from, to, id, key }, limit).await
}
