//! Reply delivery: a simulated domain answers the probe domain's IQs over
//! its own authenticated outbound stream (RFC 6120 §8.1.1, no XEP-0288
//! bidi), one [`Link`] per domain, reused while it lives.

use super::Shared;
use crate::probe::endpoint::Session;
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
            if guard.as_mut().is_some_and(|s| !alive(s)) {
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

/// Whether an idle outbound stream still stands: a read that completes at
/// once means the peer closed it (or sent a stream error); nothing else is
/// expected from the probe's listener on our stream.
fn alive(s: &mut Session) -> bool {
    s.stream.new_phase();
    !matches!(s.stream.read_element().now_or_never(), Some(Err(_)))
}
