//! The hostile acceptance profiles (`sasl_silent`, `sasl_garbage`,
//! `sasl_close`, TESTNET.md): s2s servers that break SASL on purpose, to
//! prove the prober survives it.
//!
//! The protocol engine ([`crate::s2s::inbound`]) only ever answers
//! properly, so these servers play their stream here, around the same
//! [`InboundPolicy`] the engine serves the other profiles with (features,
//! TLS config, dialback verification, IQs): the engine's path up to
//! `<auth/>` (header, STARTTLS, post-TLS header and features; `db:result`,
//! `db:verify` and IQs answered as the engine answers them), then the
//! fault instead of an answer to `<auth/>`.

use crate::model::domain::{fold, fold_jid, same_domain};
use crate::s2s::inbound::{
    InboundLimits, InboundPolicy, Stage, answer_verify, close, new_id, next,
};
use crate::xmpp::dialback::{self, Dialback};
use crate::xmpp::reader::StreamReader;
use crate::xmpp::stream::{self, HeaderSpec, StreamHeader};
use crate::xmpp::{NS_SASL, NS_SERVER, NS_TLS, Service};
use rustls_pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::server::TlsStream;

/// How a hostile server breaks SASL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostileSasl {
    /// Never answers `<auth/>`.
    Silence,
    /// Answers with XML that is not well-formed.
    Garbage,
    /// Closes the connection instead of answering.
    Close,
}

/// The bytes `Garbage` answers `<auth/>` with.
const GARBAGE: &[u8] = b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'<<&&>>";

/// A STARTTLS stream whose header (naming `local`) was read by the caller.
pub(super) async fn serve_after_header<P: InboundPolicy>(
    policy: &P,
    local: P::Local,
    mut rd: StreamReader<TcpStream>,
    header: StreamHeader,
    how: HostileSasl,
    limits: &InboundLimits,
) {
    let _ = timeout(limits.lifetime, async {
        let me = policy.domain(&local).to_owned();
        let peer = header.from.as_deref();
        let out = format!(
            "{}{}",
            our_header(&me, peer),
            policy.features(&local, Stage::BeforeTls)
        );
        if rd.write_all(out.as_bytes()).await.is_err() {
            return;
        }
        loop {
            let el = match next(&mut rd, limits.step).await {
                Ok(el) => el,
                Err(condition) => return close(rd, condition).await,
            };
            if el.is(NS_TLS, "starttls") {
                let Some(cfg) = policy.tls_config(&local) else {
                    let _ = rd
                        .write_all(format!("<failure xmlns='{NS_TLS}'/>").as_bytes())
                        .await;
                    return close(rd, None).await;
                };
                if rd
                    .write_all(format!("<proceed xmlns='{NS_TLS}'/>").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
                let (tcp, leftover) = rd.into_inner();
                if leftover > 0 {
                    return;
                }
                let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                let Ok(Ok(tls)) = timeout(limits.step, acceptor.accept(tcp)).await else {
                    return;
                };
                return secure(policy, local, tls, how, limits).await;
            }
            match dialback::parse(&el) {
                Some(Dialback::VerifyRequest { from, to, id, key }) => {
                    let out = answer_verify(policy, &local, &from, &to, &id, &key);
                    if rd.write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                }
                _ => return close(rd, Some("policy-violation")).await,
            }
        }
    })
    .await;
}

/// A direct TLS stream (XEP-0368) for `local`.
pub(super) async fn serve_tls<P: InboundPolicy>(
    policy: &P,
    local: P::Local,
    tls: TlsStream<TcpStream>,
    how: HostileSasl,
    limits: &InboundLimits,
) {
    let _ = timeout(limits.lifetime, secure(policy, local, tls, how, limits)).await;
}

/// After TLS: header and features, then elements until `<auth/>` meets
/// the fault.
async fn secure<P: InboundPolicy>(
    policy: &P,
    local: P::Local,
    tls: TlsStream<TcpStream>,
    how: HostileSasl,
    limits: &InboundLimits,
) {
    let chain: Vec<CertificateDer<'static>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    let mut rd = StreamReader::new(tls, limits.reader);
    let Ok(Ok(header)) = timeout(limits.step, rd.read_header()).await else {
        return;
    };
    let me = policy.domain(&local).to_owned();
    let peer = header.from.as_deref().map(fold);
    let id = new_id();
    let out = format!(
        "{}{}",
        stream::open_header(&HeaderSpec {
            service: Service::S2s,
            from: Some(&me),
            to: peer.as_deref(),
            id: Some(&id),
            version: Some("1.0"),
            dialback: true,
        }),
        policy.features(
            &local,
            Stage::AfterTls {
                peer_chain: !chain.is_empty()
            }
        )
    );
    if rd.write_all(out.as_bytes()).await.is_err() {
        return;
    }
    let mut authed: Vec<String> = Vec::new();
    loop {
        let el = match next(&mut rd, limits.step).await {
            Ok(el) => el,
            Err(condition) => return close(rd, condition).await,
        };
        if el.is(NS_SASL, "auth") {
            match how {
                HostileSasl::Silence => tokio::time::sleep(limits.lifetime).await,
                HostileSasl::Garbage => {
                    let _ = rd.write_all(GARBAGE).await;
                    tokio::time::sleep(limits.step).await;
                }
                HostileSasl::Close => {}
            }
            return close(rd, None).await;
        }
        let out = match dialback::parse(&el) {
            Some(Dialback::ResultRequest { from, to, key }) => {
                let from = fold(&from);
                let valid = same_domain(&to, &me)
                    && policy.dialback(&local)
                    && timeout(
                        limits.verify,
                        policy.verify_dialback(&local, &from, &id, &key),
                    )
                    .await
                    .unwrap_or(false);
                if valid && !authed.contains(&from) {
                    authed.push(from.clone());
                }
                Some(dialback::result_answer(&me, &from, valid))
            }
            Some(Dialback::VerifyRequest { from, to, id, key }) => {
                Some(answer_verify(policy, &local, &from, &to, &id, &key))
            }
            Some(_) => None,
            None if el.ns == NS_SERVER
                && matches!(el.name.as_str(), "iq" | "message" | "presence") =>
            {
                if authed.is_empty() {
                    return close(rd, Some("not-authorized")).await;
                }
                let from = el.attr("from").map(fold_jid).unwrap_or_default();
                if !authed.contains(&from) {
                    return close(rd, Some("invalid-from")).await;
                }
                if el.name == "iq" {
                    timeout(limits.verify, policy.iq(&local, &from, &el))
                        .await
                        .ok()
                        .flatten()
                } else {
                    None
                }
            }
            None => None,
        };
        if let Some(out) = out
            && rd.write_all(out.as_bytes()).await.is_err()
        {
            return;
        }
    }
}

fn our_header(me: &str, peer: Option<&str>) -> String {
    stream::open_header(&HeaderSpec {
        service: Service::S2s,
        from: Some(me),
        to: peer,
        id: Some(&new_id()),
        version: Some("1.0"),
        dialback: true,
    })
}
