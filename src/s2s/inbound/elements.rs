//! The element loop after TLS ([`super::secure`]): what the receiving
//! engine does with each top-level element once the stream is secured —
//! `<auth/>` (SASL EXTERNAL, XEP-0178), dialback elements (XEP-0220) and
//! stanzas from an authenticated peer (RFC 6120 §8).

use super::{
    InboundLimits, InboundPolicy, Secure, Stage, answer_verify, new_id, our_header, update,
};
use crate::model::acceptance::{InboundAuth, InboundReport};
use crate::model::domain::{fold, fold_jid, same_domain};
use crate::xmpp::dialback::{self, Dialback};
use crate::xmpp::element::Element;
use crate::xmpp::iq;
use crate::xmpp::reader::StreamReader;
use crate::xmpp::sasl::{self, SaslOutcome};
use rustls_pki_types::CertificateDer;
use std::sync::{Arc, Mutex};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::server::TlsStream;

/// `db:result` requests served per stream: each costs an outbound
/// verification connection, so a stranger cannot turn one stream into a
/// scan. One, as XEP-0220 §8 allows more only when multiplexing is
/// negotiated, which we never offer.
const MAX_DIALBACK_PER_STREAM: usize = 1;

/// `<auth/>` (RFC 6120 §6.4.2, XEP-0178 §3). On success the answer and the
/// restart (RFC 6120 §6.4.6) are done here.
#[allow(clippy::too_many_arguments)]
pub(super) async fn auth<P: InboundPolicy>(
    policy: &P,
    local: &P::Local,
    rd: &mut StreamReader<TlsStream<TcpStream>>,
    st: &mut Secure,
    el: &Element,
    chain: &[CertificateDer<'static>],
    report: &Arc<Mutex<InboundReport>>,
    limits: &InboundLimits,
) -> Result<Option<String>, Option<&'static str>> {
    let fail = |c: &str, t: &str| Ok(Some(sasl::failure_xml(c, Some(t))));
    if st.sasl_done {
        return fail("not-authorized", "already authenticated");
    }
    if el.attr("mechanism") != Some("EXTERNAL") {
        // RFC 6120 §6.5.6.
        return fail("invalid-mechanism", "only EXTERNAL is offered");
    }
    let Some(peer) = st.peer.clone() else {
        return fail("not-authorized", "no 'from' in the stream header");
    };
    // XEP-0178 §3 step 7: an authzid, if given, must be the header's `from`.
    match sasl::authzid(el) {
        None => {}
        Some(Ok(a)) if same_domain(&a, &peer) => {}
        Some(Ok(_)) => return fail("invalid-authzid", "authzid differs from stream 'from'"),
        Some(Err(_)) => return fail("incorrect-encoding", "authzid is not base64 UTF-8"),
    }
    let outcome = policy.external(local, &peer, chain);
    update(report, |r| {
        r.auth = InboundAuth::External {
            outcome: outcome.clone(),
        }
    });
    let SaslOutcome::Success = outcome else {
        return Ok(Some(match outcome {
            SaslOutcome::Failure { condition, text } => {
                sasl::failure_xml(&condition, text.as_deref())
            }
            _ => sasl::failure_xml("not-authorized", None),
        }));
    };
    if rd.write_all(sasl::success_xml().as_bytes()).await.is_err() {
        return Err(None);
    }
    rd.restart();
    rd.new_phase();
    let Ok(Ok(_)) = timeout(limits.step, rd.read_header()).await else {
        return Err(None);
    };
    st.sasl_done = true;
    st.id = new_id();
    publish(policy, local, st, report, &peer);
    st.authed.push(peer);
    Ok(Some(format!(
        "{}{}",
        our_header(&st.me, st.peer.as_deref(), &st.id),
        policy.features(local, Stage::Authenticated)
    )))
}

/// Tells the policy, once per stream, that the peer authenticated as
/// `domain`: the report is evidence from now on, keyed on that domain.
fn publish<P: InboundPolicy>(
    policy: &P,
    local: &P::Local,
    st: &mut Secure,
    report: &Arc<Mutex<InboundReport>>,
    domain: &str,
) {
    update(report, |r| domain.clone_into(&mut r.peer));
    if !st.published {
        st.published = true;
        policy.authenticated(local, report);
    }
}

/// A dialback element after TLS (XEP-0220 §2.1).
pub(super) async fn dialback_element<P: InboundPolicy>(
    policy: &P,
    local: &P::Local,
    st: &mut Secure,
    db: Dialback,
    report: &Arc<Mutex<InboundReport>>,
    limits: &InboundLimits,
) -> Result<Option<String>, Option<&'static str>> {
    match db {
        Dialback::ResultRequest { from, to, key } => {
            st.dialbacks += 1;
            if st.dialbacks > MAX_DIALBACK_PER_STREAM {
                return Err(Some("policy-violation"));
            }
            let from = fold(&from);
            let valid = same_domain(&to, &st.me)
                && policy.dialback(local)
                && timeout(
                    limits.verify,
                    policy.verify_dialback(local, &from, &st.id, &key),
                )
                .await
                .unwrap_or(false);
            update(report, |r| {
                let external_ok = matches!(
                    &r.auth,
                    InboundAuth::External {
                        outcome: SaslOutcome::Success
                    }
                );
                if !external_ok {
                    r.auth = InboundAuth::Dialback { valid };
                }
            });
            if valid && !st.authed.contains(&from) {
                publish(policy, local, st, report, &from);
                st.authed.push(from.clone());
            }
            Ok(Some(dialback::result_answer(&st.me, &from, valid)))
        }
        Dialback::VerifyRequest { from, to, id, key } => {
            update(report, |r| {
                if r.auth == InboundAuth::None {
                    r.auth = InboundAuth::VerifyOnly;
                }
            });
            Ok(Some(answer_verify(policy, local, &from, &to, &id, &key)))
        }
        // Answers to questions we never asked on this stream.
        Dialback::ResultAnswer { .. } | Dialback::VerifyAnswer { .. } => Ok(None),
    }
}

/// A stanza (RFC 6120 §8): only from an authenticated domain; IQs go to the
/// policy, messages and presence are dropped.
pub(super) async fn stanza<P: InboundPolicy>(
    policy: &P,
    local: &P::Local,
    st: &Secure,
    el: &Element,
    report: &Mutex<InboundReport>,
    limits: &InboundLimits,
) -> Result<Option<String>, Option<&'static str>> {
    if st.authed.is_empty() {
        // RFC 6120 §4.9.3.12: stanzas before authentication.
        return Err(Some("not-authorized"));
    }
    let from = el.attr("from").map(fold_jid).unwrap_or_default();
    if !st.authed.contains(&from) {
        // RFC 6120 §4.9.3.9: a `from` this stream did not authenticate.
        return Err(Some("invalid-from"));
    }
    if el.name != "iq" {
        return Ok(None);
    }
    if iq::parse(el)
        .is_some_and(|q| matches!(q.kind, iq::IqKind::Result | iq::IqKind::Error { .. }))
    {
        update(report, |r| r.replies += 1);
    }
    Ok(timeout(limits.verify, policy.iq(local, &from, el))
        .await
        .ok()
        .flatten())
}
