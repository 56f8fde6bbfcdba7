//! The receiving entity's negotiation of a server-to-server stream, up to
//! the post-TLS features (RFC 6120 §4.3.2, §5.4.3.3; XEP-0220 §2.1.2 before
//! TLS).
//!
//! ```text
//!  STARTTLS:   ExpectHeader → ExpectStarttls → TlsHandshake
//!  direct TLS:                                 TlsHandshake
//!              TlsHandshake → ExpectHeaderAfterTls → Done
//! ```
//!
//! What differs between receiving servers (which domains are served, which
//! features, whether TLS is available, how a `db:verify` is answered) is
//! asked of a [`Host`]; the machine owns the protocol. Authentication
//! (SASL EXTERNAL, dialback, stanzas) happens after [`Outcome::Secured`],
//! in the caller's element loop.

use super::{Action, Event, Expect};
use crate::model::domain::{fold, same_domain};
use crate::xmpp::dialback::{self, Dialback};
use crate::xmpp::reader::ReadFault;
use crate::xmpp::stream::{self, HeaderSpec, StreamHeader};
use crate::xmpp::{NS_STREAMS, NS_TLS, Service};

/// The `<text/>` of a certificate-less stream's refusal, as Prosody words it.
pub const SECURE_AUTH_REFUSAL: &str = "Your server's certificate could not be validated";

/// Which feature list the host is asked for (RFC 6120 §4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Before TLS: STARTTLS (RFC 6120 §5.4.1) and dialback (XEP-0220 §2.4).
    BeforeTls,
    /// After TLS; `peer_chain` says whether the peer presented a
    /// certificate (EXTERNAL is only meaningful then, XEP-0178 §3 step 5).
    AfterTls {
        /// The peer sent a TLS client certificate.
        peer_chain: bool,
    },
    /// After a successful SASL exchange and stream restart (RFC 6120 §6.4.6).
    Authenticated,
}

/// The receiving server's decisions, asked by the machine.
pub trait Host {
    /// The domain we serve under the peer's `to` (RFC 6120 §4.7.2), or
    /// `None`: the stream is refused with `host-unknown` (§4.9.3.6).
    fn serve(&mut self, to: Option<&str>) -> Option<String>;
    /// Whether a stream whose header names `peer` as `from` is served;
    /// refused ones get `<not-authorized/>` before TLS.
    fn admits(&mut self, peer: Option<&str>) -> bool;
    /// The `<stream:features/>` element for `stage`.
    fn features(&mut self, stage: Stage) -> String;
    /// Whether TLS can be negotiated (RFC 6120 §5.4.3.3); when not,
    /// `<starttls/>` is answered with `<failure/>` (§5.4.2.2).
    fn tls(&mut self) -> bool;
    /// The `<db:verify/>` answer to a key we issued (XEP-0220 §2.1.2).
    fn verify(&mut self, from: &str, to: &str, id: &str, key: &str) -> String;
    /// Whether a peer without a TLS client certificate is refused after
    /// TLS with `<not-authorized/>` (Prosody's `s2s_secure_auth`).
    fn requires_peer_certificate(&mut self) -> bool;
    /// A fresh, unpredictable stream id (RFC 6120 §4.7.3).
    fn new_id(&mut self) -> String;
}

/// The stream as negotiated, handed to the element loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secured {
    /// Our domain.
    pub me: String,
    /// The post-TLS header's `from`, normalised (lower case, no trailing dot).
    pub peer: Option<String>,
    /// Our stream id after TLS (dialback keys are bound to it).
    pub id: String,
    /// The peer presented a TLS client certificate.
    pub peer_chain: bool,
}

/// Why the stream ended before [`Secured`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The header's `to` is not served (RFC 6120 §4.9.3.6), before or
    /// after TLS.
    HostUnknown,
    /// The host does not admit the header's `from`.
    NotAdmitted,
    /// `<starttls/>` answered `<failure/>` (RFC 6120 §5.4.2.2).
    StarttlsRefused,
    /// Something other than `<starttls/>` or `db:verify` before TLS
    /// (RFC 6120 §5.3.1: TLS is mandatory-to-negotiate).
    PolicyViolation,
    /// Plaintext behind `<starttls/>` (RFC 6120 §5.4.3.3): dropped, no TLS.
    Injection(usize),
    /// The TLS handshake failed or timed out.
    TlsFailed,
    /// No certificate, and the host requires one.
    PeerCertificateRequired,
    /// The peer sent `<stream:error/>` (RFC 6120 §4.9).
    PeerError,
    /// The reader stopped.
    Fault(ReadFault),
    /// A step's timeout passed (RFC 6120 §4.9.3.4 `connection-timeout`).
    Timeout,
    /// Writing failed.
    WriteFailed,
    /// An event that cannot happen in the state it arrived in.
    Unexpected,
}

/// How the negotiation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Our post-TLS header and features are sent: the element loop goes on.
    Secured(Secured),
    /// The stream is over.
    Ended(Ended),
}

/// The server's actions.
pub type ServerAction = Action<Outcome>;

type Step = (State, Vec<ServerAction>);

/// Waiting for the peer's stream header (RFC 6120 §4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectHeader;
/// Our header and pre-TLS features sent; waiting for `<starttls/>`
/// (RFC 6120 §5.4.2.1) or a `db:verify` (XEP-0220 §2.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectStarttls {
    me: String,
}
/// `<proceed/>` sent (or direct TLS): the driver runs the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsHandshake {
    me: String,
}
/// Waiting for the peer's header over TLS (RFC 6120 §5.4.3.3 step 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectHeaderAfterTls {
    me: String,
    peer_chain: bool,
}
/// Finished; the outcome was returned in [`Action::Done`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done(pub Outcome);

/// The server's state: one type per thing it expects next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// See [`ExpectHeader`].
    ExpectHeader(ExpectHeader),
    /// See [`ExpectStarttls`].
    ExpectStarttls(ExpectStarttls),
    /// See [`TlsHandshake`].
    TlsHandshake(TlsHandshake),
    /// See [`ExpectHeaderAfterTls`].
    ExpectHeaderAfterTls(ExpectHeaderAfterTls),
    /// See [`Done`].
    Done(Done),
}

/// The receiving entity's negotiation machine.
#[derive(Debug, Clone)]
pub struct Server {
    state: State,
    header: Option<StreamHeader>,
    header_after_tls: Option<StreamHeader>,
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

impl Server {
    /// A plain TCP stream: the peer's header comes first.
    pub fn new() -> Self {
        Self {
            state: State::ExpectHeader(ExpectHeader),
            header: None,
            header_after_tls: None,
        }
    }

    /// A direct TLS stream (XEP-0368) for `me` (chosen by SNI): the driver
    /// feeds the accepted handshake as [`Event::TlsUp`].
    pub fn direct_tls(me: String) -> Self {
        Self {
            state: State::TlsHandshake(TlsHandshake { me }),
            ..Self::new()
        }
    }

    /// Feeds one event; returns what to do, in order.
    pub fn handle(&mut self, ev: Event, host: &mut impl Host) -> Vec<ServerAction> {
        let state = std::mem::replace(&mut self.state, State::ExpectHeader(ExpectHeader));
        let (next, actions) = match state {
            State::ExpectHeader(s) => {
                if let Event::Header(h) = &ev {
                    self.header = Some(h.clone());
                }
                s.handle(ev, host)
            }
            State::ExpectStarttls(s) => s.handle(ev, host),
            State::TlsHandshake(s) => s.handle(ev),
            State::ExpectHeaderAfterTls(s) => {
                if let Event::Header(h) = &ev {
                    self.header_after_tls = Some(h.clone());
                }
                s.handle(ev, host)
            }
            State::Done(d) => (State::Done(d), Vec::new()),
        };
        self.state = next;
        actions
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// What the driver reads next.
    pub fn expects(&self) -> Expect {
        match self.state {
            State::ExpectHeader(_) | State::ExpectHeaderAfterTls(_) => Expect::Header,
            State::ExpectStarttls(_) => Expect::Element,
            State::TlsHandshake(_) => Expect::Tls,
            State::Done(_) => Expect::Nothing,
        }
    }

    /// The outcome, once done.
    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.state {
            State::Done(Done(o)) => Some(o),
            _ => None,
        }
    }

    /// The peer's header before TLS, once received.
    pub fn header(&self) -> Option<&StreamHeader> {
        self.header.as_ref()
    }

    /// The peer's header after TLS, once received.
    pub fn header_after_tls(&self) -> Option<&StreamHeader> {
        self.header_after_tls.as_ref()
    }
}

/// Our s2s stream header (RFC 6120 §4.7) with a stream id (§4.7.3).
pub fn our_header(from: Option<&str>, to: Option<&str>, id: &str) -> String {
    stream::open_header(&HeaderSpec {
        service: Service::S2s,
        from,
        to,
        id: Some(id),
        version: Some("1.0"),
        dialback: true,
    })
}

/// The stream error (if any) for a read that failed.
pub fn fault_condition(fault: &ReadFault) -> Option<&'static str> {
    match fault {
        // RFC 6120 §4.9.3.13 (policy-violation): "size limits … exceeded".
        ReadFault::ByteLimit | ReadFault::DepthLimit => Some("policy-violation"),
        // RFC 6120 §4.9.3.11 / §4.9.3.18.
        ReadFault::InvalidXml(_) | ReadFault::NotStream(_) => Some("not-well-formed"),
        ReadFault::Doctype | ReadFault::ProcessingInstruction => Some("restricted-xml"),
        ReadFault::Eof | ReadFault::StreamClosed | ReadFault::Io(_) | ReadFault::TlsAlert(_) => {
            None
        }
    }
}

fn end(why: Ended, close: Option<ServerAction>) -> Step {
    let o = Outcome::Ended(why);
    let mut actions: Vec<ServerAction> = close.into_iter().collect();
    actions.push(Action::Done(o.clone()));
    (State::Done(Done(o)), actions)
}

fn close_with(condition: Option<&'static str>) -> Option<ServerAction> {
    Some(Action::Close {
        condition,
        text: None,
    })
}

/// Faults, timeouts and failed writes while the stream is not yet ours to
/// close (before our header, while TLS is unsettled): the transport is
/// dropped without a word.
fn silent(ev: Event) -> Step {
    end(
        match ev {
            Event::Fault(f) => Ended::Fault(f),
            Event::Timeout => Ended::Timeout,
            Event::WriteFailed(_) => Ended::WriteFailed,
            Event::TlsFailed { .. } => Ended::TlsFailed,
            _ => Ended::Unexpected,
        },
        None,
    )
}

impl ExpectHeader {
    /// RFC 6120 §4.7.2: the peer's `to` picks the domain; we answer with
    /// our header (fresh id, §4.7.3) and the pre-TLS features (§4.3.2), or
    /// with `host-unknown` (§4.9.3.6) / `not-authorized`.
    fn handle(self, ev: Event, host: &mut impl Host) -> Step {
        let Event::Header(h) = ev else {
            return silent(ev);
        };
        let peer = h.from.as_deref();
        let Some(me) = host.serve(h.to.as_deref()) else {
            let out = format!(
                "{}{}",
                our_header(None, peer, &host.new_id()),
                stream::error_xml(
                    "host-unknown",
                    Some("this server does not serve that domain")
                )
            );
            let (s, mut a) = end(Ended::HostUnknown, Some(Action::close()));
            a.insert(0, Action::Send(out));
            return (s, a);
        };
        if !host.admits(peer) {
            let out = format!(
                "{}{}",
                our_header(Some(&me), peer, &host.new_id()),
                stream::error_xml("not-authorized", Some("not expecting a stream from you"))
            );
            let (s, mut a) = end(Ended::NotAdmitted, Some(Action::close()));
            a.insert(0, Action::Send(out));
            return (s, a);
        }
        let out = format!(
            "{}{}",
            our_header(Some(&me), peer, &host.new_id()),
            host.features(Stage::BeforeTls)
        );
        (
            State::ExpectStarttls(ExpectStarttls { me }),
            vec![Action::Send(out)],
        )
    }
}

impl ExpectStarttls {
    /// RFC 6120 §5.4.2: `<starttls/>` gets `<proceed/>` (or `<failure/>`
    /// when TLS is unavailable, §5.4.2.2); a `db:verify` is answered
    /// (XEP-0220 §2.1.2); anything else is a `policy-violation` (§5.3.1:
    /// TLS is mandatory-to-negotiate here). A fault closes the stream with
    /// the matching error (§4.9.3), a timeout with `connection-timeout`.
    fn handle(self, ev: Event, host: &mut impl Host) -> Step {
        let el = match ev {
            Event::Element(el) => el,
            Event::Fault(f) => {
                let condition = fault_condition(&f);
                return end(Ended::Fault(f), close_with(condition));
            }
            Event::Timeout => return end(Ended::Timeout, close_with(Some("connection-timeout"))),
            ev => return silent(ev),
        };
        if el.is(NS_TLS, "starttls") {
            if !host.tls() {
                let (s, mut a) = end(Ended::StarttlsRefused, Some(Action::close()));
                a.insert(0, Action::Send(format!("<failure xmlns='{NS_TLS}'/>")));
                return (s, a);
            }
            return (
                State::TlsHandshake(TlsHandshake { me: self.me }),
                vec![
                    Action::Send(format!("<proceed xmlns='{NS_TLS}'/>")),
                    Action::StartTls,
                ],
            );
        }
        if el.is(NS_STREAMS, "error") {
            return end(Ended::PeerError, Some(Action::close()));
        }
        match dialback::parse(&el) {
            Some(Dialback::VerifyRequest { from, to, id, key }) => {
                let out = host.verify(&from, &to, &id, &key);
                (State::ExpectStarttls(self), vec![Action::Send(out)])
            }
            _ => end(Ended::PolicyViolation, close_with(Some("policy-violation"))),
        }
    }
}

impl TlsHandshake {
    /// RFC 6120 §5.4.3.3: plaintext behind `<starttls/>` would be processed
    /// as if it came over TLS (the STARTTLS injection class): the stream
    /// is dropped without TLS.
    fn handle(self, ev: Event) -> Step {
        match ev {
            Event::Buffered(0) => (State::TlsHandshake(self), Vec::new()),
            Event::Buffered(n) => end(Ended::Injection(n), None),
            Event::TlsUp { peer_chain } => (
                State::ExpectHeaderAfterTls(ExpectHeaderAfterTls {
                    me: self.me,
                    peer_chain,
                }),
                Vec::new(),
            ),
            ev => silent(ev),
        }
    }
}

impl ExpectHeaderAfterTls {
    /// RFC 6120 §5.4.3.3 step 4: the peer restarts the stream over TLS; a
    /// `to` naming another domain is `host-unknown` (§4.9.3.6). We answer
    /// with a fresh id and the post-TLS features, or refuse a peer without
    /// a certificate when the host requires one.
    fn handle(self, ev: Event, host: &mut impl Host) -> Step {
        let Event::Header(h) = ev else {
            return silent(ev);
        };
        let me = self.me;
        if h.to.as_deref().is_some_and(|to| !same_domain(to, &me)) {
            return end(Ended::HostUnknown, close_with(Some("host-unknown")));
        }
        let peer = h.from.as_deref().map(fold);
        let id = host.new_id();
        let header = our_header(Some(&me), peer.as_deref(), &id);
        if !self.peer_chain && host.requires_peer_certificate() {
            let (s, mut a) = end(
                Ended::PeerCertificateRequired,
                Some(Action::Close {
                    condition: Some("not-authorized"),
                    text: Some(SECURE_AUTH_REFUSAL),
                }),
            );
            a.insert(0, Action::Send(header));
            return (s, a);
        }
        let out = format!(
            "{header}{}",
            host.features(Stage::AfterTls {
                peer_chain: self.peer_chain
            })
        );
        let o = Outcome::Secured(Secured {
            me,
            peer,
            id,
            peer_chain: self.peer_chain,
        });
        (
            State::Done(Done(o.clone())),
            vec![Action::Send(out), Action::Done(o)],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::negotiation::testing::Bytes;
    use crate::xmpp::reader::ReaderLimits;

    const HDR: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
        xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
        from='Peer.Test.' to='me.test' version='1.0'>";
    const STARTTLS: &str = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
    const VERIFY: &str = "<db:verify from='peer.test' to='me.test' id='sid'>k</db:verify>";

    struct Mock {
        admits: bool,
        tls: bool,
        requires_cert: bool,
        ids: u32,
        verified: Vec<String>,
    }

    impl Default for Mock {
        fn default() -> Self {
            Self {
                admits: true,
                tls: true,
                requires_cert: false,
                ids: 0,
                verified: Vec::new(),
            }
        }
    }

    impl Host for Mock {
        fn serve(&mut self, to: Option<&str>) -> Option<String> {
            (to == Some("me.test")).then(|| "me.test".to_owned())
        }
        fn admits(&mut self, _: Option<&str>) -> bool {
            self.admits
        }
        fn features(&mut self, stage: Stage) -> String {
            format!("<stream:features stage='{stage:?}'/>")
        }
        fn tls(&mut self) -> bool {
            self.tls
        }
        fn verify(&mut self, from: &str, _: &str, id: &str, _: &str) -> String {
            self.verified.push(id.to_owned());
            format!("<db:verify from='me.test' to='{from}' id='{id}' type='valid'/>")
        }
        fn requires_peer_certificate(&mut self) -> bool {
            self.requires_cert
        }
        fn new_id(&mut self) -> String {
            self.ids += 1;
            format!("id{}", self.ids)
        }
    }

    fn up(peer_chain: bool) -> Event {
        Event::TlsUp { peer_chain }
    }

    /// Runs the server over `pre` (plain) and `post` (after TLS) bytes
    /// through the real reader; returns the machine and all its actions.
    fn run_with(
        host: &mut Mock,
        pre: &str,
        post: &str,
        tls: Event,
        limits: ReaderLimits,
    ) -> (Server, Vec<ServerAction>) {
        let mut m = Server::new();
        let mut rd = Bytes::new(pre.as_bytes(), limits);
        let mut pending = m.handle(rd.header().map_or_else(Event::Fault, Event::Header), host);
        let mut all = Vec::new();
        loop {
            all.extend(pending.iter().cloned());
            if matches!(pending.last(), Some(Action::Done(_))) {
                return (m, all);
            }
            if pending.contains(&Action::StartTls) {
                let more = m.handle(Event::Buffered(rd.buffered()), host);
                if !more.is_empty() {
                    all.extend(more);
                    return (m, all);
                }
                pending = m.handle(tls.clone(), host);
                rd = Bytes::new(post.as_bytes(), limits);
                continue;
            }
            pending = match m.expects() {
                Expect::Header => {
                    m.handle(rd.header().map_or_else(Event::Fault, Event::Header), host)
                }
                Expect::Element => {
                    m.handle(rd.element().map_or_else(Event::Fault, Event::Element), host)
                }
                Expect::Tls | Expect::Nothing => panic!("stuck in {:?}", m.state()),
            };
        }
    }

    fn run(host: &mut Mock, pre: &str, post: &str) -> (Server, Vec<ServerAction>) {
        run_with(host, pre, post, up(true), ReaderLimits::default())
    }

    fn ended(m: &Server) -> Ended {
        match m.outcome() {
            Some(Outcome::Ended(e)) => e.clone(),
            o => panic!("not ended: {o:?}"),
        }
    }

    fn closed_with(actions: &[ServerAction]) -> Option<Option<&'static str>> {
        actions.iter().find_map(|a| match a {
            Action::Close { condition, .. } => Some(*condition),
            _ => None,
        })
    }

    fn sent(actions: &[ServerAction]) -> String {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(s) => Some(s.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The machine advanced to the state named by `n` (0 header, 1
    /// starttls, 2 handshake, 3 header after TLS) by canned events.
    fn at(n: usize) -> (Server, Mock) {
        let mut host = Mock::default();
        let mut m = Server::new();
        let h = StreamHeader {
            to: Some("me.test".into()),
            ..StreamHeader::default()
        };
        let el = crate::xmpp::reader::parse_fragment(STARTTLS).unwrap();
        let script = [Event::Header(h), Event::Element(el), up(false)];
        for ev in script.into_iter().take(n) {
            m.handle(ev, &mut host);
        }
        (m, host)
    }

    #[test]
    fn rfc6120_5_4_3_3_starttls_negotiated_to_post_tls_features() {
        let mut host = Mock::default();
        let (m, actions) = run(&mut host, &format!("{HDR}{STARTTLS}"), HDR);
        let Some(Outcome::Secured(s)) = m.outcome() else {
            panic!("{:?}", m.outcome())
        };
        assert_eq!(s.me, "me.test");
        assert_eq!(s.peer.as_deref(), Some("peer.test"), "normalised");
        assert_eq!(s.id, "id2", "a fresh id after TLS (RFC 6120 §4.7.3)");
        assert!(s.peer_chain);
        assert_eq!(closed_with(&actions), None);
        let out = sent(&actions);
        assert!(
            out.contains("from='me.test' to='Peer.Test.' id='id1'"),
            "{out}"
        );
        assert!(out.contains("stage='BeforeTls'"));
        assert!(out.contains("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"));
        assert!(
            out.contains("from='me.test' to='peer.test' id='id2'"),
            "{out}"
        );
        assert!(out.contains("stage='AfterTls { peer_chain: true }'"));
        assert!(m.header().is_some() && m.header_after_tls().is_some());
    }

    #[test]
    fn rfc6120_4_9_3_6_host_unknown_before_and_after_tls() {
        let mut host = Mock::default();
        let hdr = HDR.replace("to='me.test'", "to='other.test'");
        let (m, actions) = run(&mut host, &hdr, "");
        assert_eq!(ended(&m), Ended::HostUnknown);
        assert!(sent(&actions).contains("<host-unknown"));
        assert!(!sent(&actions).contains("from="), "no domain to speak for");
        assert_eq!(closed_with(&actions), Some(None));
        let (m, actions) = run(&mut host, &format!("{HDR}{STARTTLS}"), &hdr);
        assert_eq!(ended(&m), Ended::HostUnknown);
        assert_eq!(closed_with(&actions), Some(Some("host-unknown")));
    }

    #[test]
    fn rfc6120_4_9_3_12_stream_not_admitted_is_not_authorized_before_tls() {
        let mut host = Mock {
            admits: false,
            ..Mock::default()
        };
        let (m, actions) = run(&mut host, &format!("{HDR}{STARTTLS}"), "");
        assert_eq!(ended(&m), Ended::NotAdmitted);
        assert!(sent(&actions).contains("<not-authorized"));
        assert!(!actions.contains(&Action::StartTls));
    }

    #[test]
    fn rfc6120_5_4_2_2_no_tls_answers_failure() {
        let mut host = Mock {
            tls: false,
            ..Mock::default()
        };
        let (m, actions) = run(&mut host, &format!("{HDR}{STARTTLS}"), "");
        assert_eq!(ended(&m), Ended::StarttlsRefused);
        assert!(sent(&actions).ends_with("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"));
        assert_eq!(closed_with(&actions), Some(None));
    }

    #[test]
    fn rfc6120_5_3_1_anything_but_starttls_is_a_policy_violation() {
        for el in [
            "<message to='x'/>",
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'/>",
            "<db:result from='peer.test' to='me.test'>k</db:result>",
        ] {
            let (m, actions) = run(&mut Mock::default(), &format!("{HDR}{el}"), "");
            assert_eq!(ended(&m), Ended::PolicyViolation, "{el}");
            assert_eq!(closed_with(&actions), Some(Some("policy-violation")));
        }
    }

    #[test]
    fn xep0220_2_1_2_db_verify_is_answered_before_tls() {
        let mut host = Mock::default();
        let (m, actions) = run(&mut host, &format!("{HDR}{VERIFY}{VERIFY}{STARTTLS}"), HDR);
        assert!(matches!(m.outcome(), Some(Outcome::Secured(_))));
        assert_eq!(host.verified, ["sid", "sid"]);
        assert_eq!(sent(&actions).matches("type='valid'").count(), 2);
    }

    #[test]
    fn rfc6120_4_9_peer_stream_error_before_tls_closes() {
        let err =
            "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>";
        let (m, actions) = run(&mut Mock::default(), &format!("{HDR}{err}"), "");
        assert_eq!(ended(&m), Ended::PeerError);
        assert_eq!(closed_with(&actions), Some(None));
    }

    #[test]
    fn rfc6120_5_4_3_3_plaintext_behind_starttls_drops_the_stream() {
        let inj = "<message to='victim'/>";
        let (m, actions) = run(&mut Mock::default(), &format!("{HDR}{STARTTLS}{inj}"), HDR);
        assert_eq!(ended(&m), Ended::Injection(inj.len()));
        assert_eq!(closed_with(&actions), None, "no word over plaintext");
    }

    #[test]
    fn rfc6120_4_9_3_faults_close_with_their_condition() {
        let small = ReaderLimits {
            max_phase_bytes: 400,
            max_depth: 3,
        };
        let cases: [(String, ReaderLimits, Option<&str>); 8] = [
            (
                format!("{HDR}<a>{}</a>", " ".repeat(2000)),
                small,
                Some("policy-violation"),
            ),
            (
                format!("{HDR}<a><b><c><d/></c></b></a>"),
                small,
                Some("policy-violation"),
            ),
            (format!("{HDR}<a></b>"), small, Some("not-well-formed")),
            (format!("{HDR}<a>\u{0}</a>"), small, Some("not-well-formed")),
            (format!("{HDR}<?pi?>"), small, Some("restricted-xml")),
            (format!("{HDR}<!DOCTYPE x>"), small, Some("restricted-xml")),
            (HDR.to_owned(), small, None),
            (format!("{HDR}</stream:stream>"), small, None),
        ];
        for (pre, limits, condition) in cases {
            let (m, actions) = run_with(&mut Mock::default(), &pre, "", up(true), limits);
            assert!(matches!(ended(&m), Ended::Fault(_)), "{pre}");
            assert_eq!(closed_with(&actions), Some(condition), "{pre}");
        }
    }

    #[test]
    fn faults_before_our_header_or_over_unsettled_tls_drop_silently() {
        let (m, actions) = run(&mut Mock::default(), "<html>", "");
        assert_eq!(
            ended(&m),
            Ended::Fault(ReadFault::NotStream("{}html".into()))
        );
        assert!(actions.iter().all(|a| matches!(a, Action::Done(_))));
        let (m, actions) = run(&mut Mock::default(), &format!("{HDR}{STARTTLS}"), "<a>");
        assert!(matches!(ended(&m), Ended::Fault(_)));
        assert_eq!(closed_with(&actions), None);
    }

    #[test]
    fn timeout_at_each_phase() {
        let want = [
            (0, None),
            (1, Some(Some("connection-timeout"))),
            (2, None),
            (3, None),
        ];
        for (n, close) in want {
            let (mut m, mut host) = at(n);
            let actions = m.handle(Event::Timeout, &mut host);
            assert_eq!(ended(&m), Ended::Timeout, "state {n}");
            assert_eq!(closed_with(&actions), close, "state {n}");
            assert_eq!(m.expects(), Expect::Nothing);
        }
    }

    #[test]
    fn tls_failure_and_failed_writes_end_silently() {
        let (mut m, mut host) = at(2);
        let actions = m.handle(Event::TlsFailed { detail: None }, &mut host);
        assert_eq!(ended(&m), Ended::TlsFailed);
        assert_eq!(closed_with(&actions), None);
        let (mut m, mut host) = at(1);
        m.handle(Event::WriteFailed("broken pipe".into()), &mut host);
        assert_eq!(ended(&m), Ended::WriteFailed);
        let (mut m, mut host) = at(0);
        m.handle(Event::TlsUp { peer_chain: true }, &mut host);
        assert_eq!(ended(&m), Ended::Unexpected);
        assert!(
            m.handle(Event::Timeout, &mut host).is_empty(),
            "done is final"
        );
    }

    #[test]
    fn xep0178_peer_without_certificate_refused_when_required() {
        let mut host = Mock {
            requires_cert: true,
            ..Mock::default()
        };
        let pre = format!("{HDR}{STARTTLS}");
        let (m, actions) = run_with(&mut host, &pre, HDR, up(false), ReaderLimits::default());
        assert_eq!(ended(&m), Ended::PeerCertificateRequired);
        assert!(sent(&actions).contains("id='id2'"), "our header first");
        let close = Action::Close {
            condition: Some("not-authorized"),
            text: Some(SECURE_AUTH_REFUSAL),
        };
        assert!(actions.contains(&close));
        let (m, _) = run_with(&mut host, &pre, HDR, up(true), ReaderLimits::default());
        assert!(matches!(m.outcome(), Some(Outcome::Secured(_))));
    }

    #[test]
    fn xep0368_direct_tls_starts_at_the_handshake() {
        let mut host = Mock::default();
        let mut m = Server::direct_tls("me.test".into());
        assert_eq!(m.expects(), Expect::Tls);
        assert!(m.handle(up(false), &mut host).is_empty());
        let h = Bytes::new(HDR.as_bytes(), ReaderLimits::default())
            .header()
            .unwrap();
        let actions = m.handle(Event::Header(h), &mut host);
        assert!(sent(&actions).contains("stage='AfterTls { peer_chain: false }'"));
        let Some(Outcome::Secured(s)) = m.outcome() else {
            panic!()
        };
        assert_eq!((s.id.as_str(), s.peer_chain), ("id1", false));
        assert_eq!(m.header(), None);
    }
}
