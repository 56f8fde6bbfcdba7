//! The streams as the simulated servers serve them: STARTTLS (header
//! dispatch on `to`) and direct TLS (XEP-0368, dispatch on SNI), each
//! played from the profile's shape for c2s; s2s streams of well-behaved
//! shapes are handed to the inbound engine with the [`S2sPolicy`].

use super::s2s::S2sPolicy;
use super::{
    DEEP_FEATURES_LEVELS, HUGE_FEATURES_BYTES, Listener, S2S_LIMITS, SERVER_READER,
    SERVER_STEP_TIMEOUT, Shared, drain, reset, shape_of, tenant,
};
use crate::s2s::inbound;
use crate::testnet::hostile;
use crate::testnet::layout::Placed;
use crate::testnet::profile::{PreTls, StreamShape, Tcp};
use crate::xmpp::features::StarttlsOffer;
use crate::xmpp::reader::StreamReader;
use crate::xmpp::stream::{self, HeaderSpec};
use crate::xmpp::{
    NS_BIDI_FEATURE, NS_CAPS, NS_DIALBACK_FEATURE, NS_IQ_AUTH_FEATURE, NS_SASL, NS_TLS, Service,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

fn header(p: &Placed, service: Service, version: bool) -> String {
    stream::open_header(&HeaderSpec {
        service,
        from: Some(&p.domain),
        to: None,
        id: Some(&format!("{:016x}", rand::random::<u64>())),
        version: version.then_some("1.0"),
        dialback: service == Service::S2s,
    })
}

fn mechanisms(list: &[&str]) -> String {
    if list.is_empty() {
        return String::new();
    }
    let mut s = format!("<mechanisms xmlns='{NS_SASL}'>");
    for m in list {
        s.push_str(&format!("<mechanism>{m}</mechanism>"));
    }
    s.push_str("</mechanisms>");
    s
}

/// The `<stream:features/>` a shape advertises before or after TLS.
pub fn features_xml(shape: &StreamShape, service: Service, after_tls: bool) -> String {
    let mut s = String::from("<stream:features>");
    if !after_tls {
        match shape.starttls {
            StarttlsOffer::Required => s.push_str(&format!(
                "<starttls xmlns='{NS_TLS}'><required/></starttls>"
            )),
            StarttlsOffer::Optional => s.push_str(&format!("<starttls xmlns='{NS_TLS}'/>")),
            StarttlsOffer::Absent => {}
        }
        s.push_str(&mechanisms(shape.sasl_before));
        if shape.iq_auth {
            s.push_str(&format!("<auth xmlns='{NS_IQ_AUTH_FEATURE}'/>"));
        }
    } else {
        s.push_str(&mechanisms(shape.sasl_after));
        if service == Service::S2s && shape.bidi {
            s.push_str(&format!("<bidi xmlns='{NS_BIDI_FEATURE}'/>"));
        }
    }
    if service == Service::S2s && shape.dialback {
        s.push_str(&format!(
            "<dialback xmlns='{NS_DIALBACK_FEATURE}'><errors/></dialback>"
        ));
    }
    if let Some(node) = shape.caps_node {
        s.push_str(&format!(
            "<c xmlns='{NS_CAPS}' hash='sha-1' node='{node}' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>"
        ));
    }
    s.push_str("</stream:features>");
    s
}

/// Writes `bytes` in 1–3-byte segments (features split across segments).
async fn write_split<S: AsyncWrite + Unpin>(s: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    let mut i = 0;
    let mut k = 0usize;
    while i < bytes.len() {
        let n = 1 + (k % 3);
        let end = (i + n).min(bytes.len());
        s.write_all(&bytes[i..end]).await?;
        s.flush().await?;
        tokio::task::yield_now().await;
        i = end;
        k += 1;
    }
    Ok(())
}

pub(super) async fn starttls(sh: &Shared, tcp: TcpStream, what: &Listener) {
    let service = what.service;
    let mut rd = StreamReader::new(tcp, SERVER_READER);
    let Ok(Ok(h)) = tokio::time::timeout(SERVER_STEP_TIMEOUT, rd.read_header()).await else {
        return;
    };
    let Some(p) = tenant(what, h.to.as_deref()).cloned() else {
        let any = what.tenants[0].clone();
        let mut out = header(&any, service, true);
        out.push_str(&stream::error_xml(
            "host-unknown",
            Some("no such domain here"),
        ));
        out.push_str(stream::CLOSE);
        let _ = rd.write_all(out.as_bytes()).await;
        return;
    };
    let Some(shape) = shape_of(&p, service) else {
        return;
    };
    if service == Service::S2s && shape.pre_tls == PreTls::Normal && shape.tcp == Tcp::Serve {
        let policy = S2sPolicy { sh, what };
        if let Some(how) = shape.hostile_sasl {
            let local = (p, shape);
            hostile::serve_after_header(&policy, local, rd, h, how, &S2S_LIMITS).await;
            return;
        }
        inbound::serve_after_header(&policy, rd, h, &S2S_LIMITS).await;
        return;
    }
    let hdr = header(&p, service, shape.pre_tls != PreTls::NoVersion);
    let feats = features_xml(&shape, service, false);
    let first: String = match shape.pre_tls {
        PreTls::NoVersion => hdr,
        PreTls::HostUnknown => format!(
            "{hdr}{}{}",
            stream::error_xml(
                "host-unknown",
                Some("this server does not serve that domain")
            ),
            stream::CLOSE
        ),
        PreTls::Huge => {
            let pad = "x".repeat(HUGE_FEATURES_BYTES);
            format!(
                "{hdr}<stream:features><padding xmlns='urn:xmpp-survey:test'>{pad}</padding></stream:features>"
            )
        }
        PreTls::Deep => {
            let open = "<n xmlns='urn:xmpp-survey:test'>".repeat(DEEP_FEATURES_LEVELS);
            let close = "</n>".repeat(DEEP_FEATURES_LEVELS);
            format!("{hdr}<stream:features>{open}{close}</stream:features>")
        }
        PreTls::InvalidXml => format!(
            "{hdr}<stream:features><starttls xmlns='{NS_TLS}'><required></starttls></stream:features>"
        ),
        PreTls::NulInFeatures => format!(
            "{hdr}<stream:features><starttls xmlns='{NS_TLS}'><required/></starttls>\
             <c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='evil\u{0}node' ver='x'/>\
             </stream:features>"
        ),
        _ => format!("{hdr}{feats}"),
    };
    let written = if shape.pre_tls == PreTls::Split {
        write_split(rd.get_mut(), first.as_bytes()).await
    } else {
        rd.write_all(first.as_bytes()).await
    };
    if written.is_err() {
        return;
    }
    match shape.pre_tls {
        PreTls::NoVersion
        | PreTls::HostUnknown
        | PreTls::Huge
        | PreTls::Deep
        | PreTls::InvalidXml
        | PreTls::NulInFeatures => {
            let _ = tokio::time::timeout(SERVER_STEP_TIMEOUT, drain(rd.get_mut())).await;
            return;
        }
        _ => {}
    }
    rd.new_phase();
    let Ok(Ok(el)) = tokio::time::timeout(SERVER_STEP_TIMEOUT, rd.read_element()).await else {
        return;
    };
    if !el.is(NS_TLS, "starttls") || shape.starttls == StarttlsOffer::Absent {
        let _ = rd
            .write_all(
                format!(
                    "{}{}",
                    stream::error_xml("policy-violation", None),
                    stream::CLOSE
                )
                .as_bytes(),
            )
            .await;
        return;
    }
    if shape.pre_tls == PreTls::StarttlsFailure {
        let _ = rd
            .write_all(format!("<failure xmlns='{NS_TLS}'/>{}", stream::CLOSE).as_bytes())
            .await;
        return;
    }
    // The injection profile puts forged post-TLS features behind
    // `<proceed/>` in the same segment, then goes on with TLS as an
    // attacker relaying the real server would.
    let injected = match shape.pre_tls {
        PreTls::InjectAfterProceed => features_xml(&shape, service, true),
        _ => String::new(),
    };
    if rd
        .write_all(format!("<proceed xmlns='{NS_TLS}'/>{injected}").as_bytes())
        .await
        .is_err()
    {
        return;
    }
    let (tcp, _) = rd.into_inner();
    if shape.tcp == Tcp::ResetAtTls {
        reset(tcp);
        return;
    }
    let Ok(cfg) = sh.config(&p, service, false) else {
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let Ok(Ok(tls)) = tokio::time::timeout(SERVER_STEP_TIMEOUT, acceptor.accept(tcp)).await else {
        return;
    };
    after_tls(tls, &p, &shape, service).await;
}

pub(super) async fn direct_tls(sh: &Shared, tcp: TcpStream, what: &Listener) {
    let acceptor = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
    let Ok(Ok(start)) = tokio::time::timeout(SERVER_STEP_TIMEOUT, acceptor).await else {
        return;
    };
    let sni = start.client_hello().server_name().map(str::to_string);
    let Some(p) = tenant(what, sni.as_deref()).cloned() else {
        return;
    };
    let Some(shape) = shape_of(&p, what.service) else {
        return;
    };
    let Ok(cfg) = sh.config(&p, what.service, true) else {
        return;
    };
    let Ok(Ok(tls)) = tokio::time::timeout(SERVER_STEP_TIMEOUT, start.into_stream(cfg)).await
    else {
        return;
    };
    if what.service == Service::S2s && shape.pre_tls == PreTls::Normal {
        let policy = S2sPolicy { sh, what };
        if let Some(how) = shape.hostile_sasl {
            hostile::serve_tls(&policy, (p, shape), tls, how, &S2S_LIMITS).await;
            return;
        }
        inbound::serve_tls(&policy, tls, (p, shape), &S2S_LIMITS).await;
        return;
    }
    after_tls(tls, &p, &shape, what.service).await;
}

/// The stream over TLS: header, post-TLS features, then wait for the
/// client to close (answering `</stream:stream>` politely).
async fn after_tls<S: AsyncRead + AsyncWrite + Unpin>(
    tls: S,
    p: &Placed,
    shape: &StreamShape,
    service: Service,
) {
    let mut rd = StreamReader::new(tls, SERVER_READER);
    let Ok(Ok(_)) = tokio::time::timeout(SERVER_STEP_TIMEOUT, rd.read_header()).await else {
        return;
    };
    let out = format!(
        "{}{}",
        header(p, service, true),
        features_xml(shape, service, true)
    );
    if rd.write_all(out.as_bytes()).await.is_err() {
        return;
    }
    loop {
        rd.new_phase();
        match tokio::time::timeout(SERVER_STEP_TIMEOUT, rd.read_element()).await {
            Ok(Ok(_)) => continue,
            _ => break,
        }
    }
    let _ = rd.write_all(stream::CLOSE.as_bytes()).await;
    let _ = rd.get_mut().shutdown().await;
}
