//! Reply delivery: a simulated domain answers the probe domain's IQs over
//! its own authenticated outbound stream (RFC 6120 §8.1.1, no XEP-0288
//! bidi), one [`Link`] per domain, reused while it lives.

use super::Shared;
use crate::s2s::inbound;
use crate::s2s::steps;
use crate::testnet::layout::Placed;
use futures::FutureExt;

impl Shared {
    /// Sends `xml` to the probe domain over `p`'s own authenticated
    /// outbound stream (XEP-0178 EXTERNAL with `p`'s certificate, else
    /// XEP-0220 dialback), opening it on first use and reusing it while it
    /// lives; one reconnect if the old one turns out dead.
    pub(super) async fn deliver(&self, p: &Placed, xml: &str) -> bool {
        let Ok(m) = self.material(p) else {
            return false;
        };
        let link = {
            let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
            links.entry(p.domain.clone()).or_default().clone()
        };
        let mut guard = link.lock().await;
        for _ in 0..2 {
            if guard.as_mut().is_some_and(|s| !alive(&mut s.stream)) {
                *guard = None;
            }
            if guard.is_none() {
                let fed = &self.federation;
                let plan = inbound::direct_plan(&fed.probe_domain, fed.probe_addr);
                match inbound::connect(
                    &self.ctx.leaving_from(p.ip),
                    &p.domain,
                    &fed.probe_domain,
                    &[plan],
                    Some(m.client_key.clone()),
                    &fed.secret,
                )
                .await
                {
                    Ok(o) => *guard = Some(o.session),
                    Err(e) => {
                        tracing::debug!(domain = %p.domain, "reply delivery: {e}");
                        return false;
                    }
                }
            }
            if let Some(s) = guard.as_mut()
                && steps::send(&mut s.stream, xml).await.is_ok()
            {
                return true;
            }
            *guard = None;
        }
        false
    }
}

/// Whether an idle outbound stream still stands: nothing at all is
/// expected from the probe's listener on our stream, so anything that
/// reads at once means it is over: a close, or an element such as the
/// `<stream:error><connection-timeout/>` the listener sends when it closes
/// an idle link (RFC 6120 §4.9.3.4; [`crate::listener::IDLE_TIMEOUT`]).
/// Taking such a link for alive lost the reply sent over it: the write
/// succeeds, the peer has gone.
fn alive<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    rd: &mut crate::xmpp::reader::StreamReader<S>,
) -> bool {
    rd.new_phase();
    rd.read_element().now_or_never().is_none()
}

#[cfg(test)]
mod tests {
    use super::alive;
    use crate::xmpp::reader::{ReaderLimits, StreamReader};
    use tokio::io::AsyncWriteExt;

    const HEADER: &str = "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='probe.xs.test' to='a.xs.test' id='s1' version='1.0'>";

    async fn link() -> (
        StreamReader<tokio::io::DuplexStream>,
        tokio::io::DuplexStream,
    ) {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        theirs.write_all(HEADER.as_bytes()).await.expect("header");
        let mut rd = StreamReader::new(ours, ReaderLimits::default());
        rd.read_header().await.expect("reads the header");
        (rd, theirs)
    }

    /// Whether a link still stands once the listener sent `bytes`
    /// (`None`: it closed the connection).
    async fn alive_after(bytes: Option<&[u8]>) -> bool {
        let (mut rd, mut theirs) = link().await;
        match bytes {
            Some(b) => theirs.write_all(b).await.expect("listener writes"),
            None => drop(theirs),
        }
        alive(&mut rd)
    }

    #[tokio::test]
    async fn a_silent_link_is_alive_and_an_error_or_a_close_ends_it() {
        let (mut rd, _theirs) = link().await;
        assert!(alive(&mut rd), "silence: the link stands");
        assert!(alive(&mut rd), "still silent");
        // The listener's idle close: a stream error, then the close tag.
        let idle_close = b"<stream:error><connection-timeout xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>";
        assert!(
            !alive_after(Some(idle_close)).await,
            "a stream error ends the link"
        );
        // Any element at all: nothing is expected on our outbound stream.
        assert!(
            !alive_after(Some(b"<iq type='get' id='x'/>")).await,
            "an unexpected element ends the link"
        );
        assert!(
            !alive_after(None).await,
            "a closed connection ends the link"
        );
    }
}
