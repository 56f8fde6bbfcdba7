//! The initiating entity's negotiation (RFC 6120 §4.2–§5.4): the prober's
//! side, up to the post-TLS features.
//!
//! ```text
//!  STARTTLS:   ExpectHeader → ExpectFeatures → ExpectProceed → TlsHandshake
//!  direct TLS:                                                 TlsHandshake
//!              TlsHandshake → ExpectHeaderAfterTls → ExpectFeaturesAfterTls → Done
//! ```
//!
//! Every way out is a typed [`Outcome`] (an [`EndpointOutcome`] and the
//! [`Phase`] it happened in); what was learned on the way is in the
//! [`Record`], the facts the endpoint report keeps.

use super::{Action, Event, Expect};
use crate::model::report::{EndpointOutcome, Phase, Transport};
use crate::xmpp::element::Element;
use crate::xmpp::features::{self, Features, StarttlsOffer};
use crate::xmpp::reader::ReadFault;
use crate::xmpp::stream::{self, HeaderSpec, StreamError, StreamHeader};
use crate::xmpp::{NS_STREAMS, NS_TLS, Service};

/// Detail of [`EndpointOutcome::NoVersion`] (RFC 6120 §4.7.5).
pub const NO_VERSION: &str = "stream header has no version attribute (pre-XMPP 1.0)";

/// What the client is negotiating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// c2s or s2s (the content namespace, RFC 6120 §4.8.3).
    pub service: Service,
    /// STARTTLS (RFC 6120 §5) or direct TLS (XEP-0368).
    pub transport: Transport,
    /// The XMPP domain: our header's `to` (RFC 6120 §4.7.2).
    pub to: String,
    /// Our domain: the header's `from` on s2s streams (RFC 6120 §4.7.1).
    pub from: Option<String>,
}

impl Config {
    /// Our stream header: `to` is the XMPP domain (RFC 6120 §4.7.2); on s2s
    /// `from` is our own domain when one is configured.
    pub fn header(&self) -> String {
        let from = match self.service {
            Service::S2s => self.from.as_deref(),
            Service::C2s => None,
        };
        stream::open_header(&HeaderSpec {
            service: self.service,
            from,
            to: Some(&self.to),
            id: None,
            version: Some("1.0"),
            dialback: self.service == Service::S2s,
        })
    }
}

/// What the negotiation learned (the endpoint report's stream facts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The stream header before TLS (RFC 6120 §4.7).
    pub header: Option<StreamHeader>,
    /// The features before TLS (RFC 6120 §4.3.2).
    pub pre_tls: Option<Features>,
    /// A `<stream:error/>` received in any phase (RFC 6120 §4.9).
    pub stream_error: Option<StreamError>,
    /// Plaintext bytes behind `<proceed/>`, discarded (RFC 6120 §5.4.3.3).
    pub starttls_injected_bytes: Option<u64>,
    /// The stream header after TLS (RFC 6120 §5.4.3.3 step 4).
    pub header_after_tls: Option<StreamHeader>,
    /// The features after TLS.
    pub post_tls: Option<Features>,
}

/// How the negotiation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The report's outcome; `Complete` when the post-TLS features arrived.
    pub outcome: EndpointOutcome,
    /// Where it stopped (`None` when complete).
    pub phase: Option<Phase>,
    /// Free text (parser message, I/O error, stream error text).
    pub detail: Option<String>,
    /// The first read after the handshake failed with a TLS alert: TLS 1.3
    /// reports a rejected session there, so it is a TLS failure
    /// (`TlsFailure::Alert`), not a stream one.
    pub tls_alert: bool,
}

/// The client's actions.
pub type ClientAction = Action<Outcome>;

type Step = (State, Vec<ClientAction>);

/// Waiting for the server's stream header (RFC 6120 §4.7), before TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectHeader;
/// Waiting for `<stream:features/>` before TLS (RFC 6120 §4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectFeatures;
/// `<starttls/>` sent, waiting for `<proceed/>` (RFC 6120 §5.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectProceed;
/// The driver runs the TLS handshake (RFC 6120 §5.4.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsHandshake;
/// Our header sent over TLS, waiting for the server's (RFC 6120 §5.4.3.3
/// step 4: the stream is restarted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectHeaderAfterTls;
/// Waiting for the post-TLS features (RFC 6120 §5.4.3.3 step 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectFeaturesAfterTls;
/// Finished; the outcome was returned in [`Action::Done`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done(pub Outcome);

/// The client's state: one type per thing it expects next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// See [`ExpectHeader`].
    ExpectHeader(ExpectHeader),
    /// See [`ExpectFeatures`].
    ExpectFeatures(ExpectFeatures),
    /// See [`ExpectProceed`].
    ExpectProceed(ExpectProceed),
    /// See [`TlsHandshake`].
    TlsHandshake(TlsHandshake),
    /// See [`ExpectHeaderAfterTls`].
    ExpectHeaderAfterTls(ExpectHeaderAfterTls),
    /// See [`ExpectFeaturesAfterTls`].
    ExpectFeaturesAfterTls(ExpectFeaturesAfterTls),
    /// See [`Done`].
    Done(Done),
}

/// The initiating entity's negotiation machine.
#[derive(Debug, Clone)]
pub struct Client {
    cfg: Config,
    state: State,
    record: Record,
}

impl Client {
    /// A machine for `cfg` and the actions to start with: our header on a
    /// STARTTLS transport, the handshake at once on direct TLS (XEP-0368).
    pub fn new(cfg: Config) -> (Self, Vec<ClientAction>) {
        let (state, actions) = match cfg.transport {
            Transport::Starttls => (
                State::ExpectHeader(ExpectHeader),
                vec![Action::Send(cfg.header())],
            ),
            Transport::DirectTls => (State::TlsHandshake(TlsHandshake), vec![Action::StartTls]),
        };
        let me = Self {
            cfg,
            state,
            record: Record::default(),
        };
        (me, actions)
    }

    /// Feeds one event; returns what to do, in order.
    pub fn handle(&mut self, ev: Event) -> Vec<ClientAction> {
        let state = std::mem::replace(&mut self.state, State::TlsHandshake(TlsHandshake));
        let mut cx = Cx {
            cfg: &self.cfg,
            record: &mut self.record,
        };
        let (next, actions) = match state {
            State::ExpectHeader(s) => s.handle(&mut cx, ev),
            State::ExpectFeatures(s) => s.handle(&mut cx, ev),
            State::ExpectProceed(s) => s.handle(&mut cx, ev),
            State::TlsHandshake(s) => s.handle(&mut cx, ev),
            State::ExpectHeaderAfterTls(s) => s.handle(&mut cx, ev),
            State::ExpectFeaturesAfterTls(s) => s.handle(&mut cx, ev),
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
            State::ExpectFeatures(_)
            | State::ExpectProceed(_)
            | State::ExpectFeaturesAfterTls(_) => Expect::Element,
            State::TlsHandshake(_) => Expect::Tls,
            State::Done(_) => Expect::Nothing,
        }
    }

    /// The phase the machine is in (`None` once done).
    pub fn phase(&self) -> Option<Phase> {
        match self.state {
            State::ExpectHeader(_) => Some(Phase::StreamHeader),
            State::ExpectFeatures(_) => Some(Phase::Features),
            State::ExpectProceed(_) => Some(Phase::Starttls),
            State::TlsHandshake(_) => Some(Phase::TlsHandshake),
            State::ExpectHeaderAfterTls(_) => Some(Phase::StreamHeaderAfterTls),
            State::ExpectFeaturesAfterTls(_) => Some(Phase::FeaturesAfterTls),
            State::Done(_) => None,
        }
    }

    /// What was learned so far.
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// The outcome, once done.
    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.state {
            State::Done(Done(o)) => Some(o),
            _ => None,
        }
    }

    /// The record, consuming the machine.
    pub fn into_record(self) -> Record {
        self.record
    }
}

struct Cx<'a> {
    cfg: &'a Config,
    record: &'a mut Record,
}

/// Maps a reader fault to an outcome and its detail.
pub fn fault_outcome(fault: ReadFault) -> (EndpointOutcome, Option<String>) {
    match fault {
        ReadFault::ByteLimit => (EndpointOutcome::ByteLimit, None),
        ReadFault::DepthLimit => (EndpointOutcome::DepthLimit, None),
        ReadFault::InvalidXml(m) => (EndpointOutcome::InvalidXml, Some(m)),
        ReadFault::NotStream(m) => (EndpointOutcome::InvalidXml, Some(m)),
        ReadFault::Doctype => (EndpointOutcome::ForbiddenXml, Some("DOCTYPE".into())),
        ReadFault::ProcessingInstruction => (
            EndpointOutcome::ForbiddenXml,
            Some("processing instruction".into()),
        ),
        ReadFault::Eof => (EndpointOutcome::Closed, Some("connection closed".into())),
        ReadFault::StreamClosed => (EndpointOutcome::Closed, Some("</stream:stream>".into())),
        ReadFault::Io(m) | ReadFault::TlsAlert(m) => (EndpointOutcome::Closed, Some(m)),
    }
}

/// Ends the machine: an optional polite close, then the outcome.
fn stop(outcome: EndpointOutcome, phase: Phase, detail: Option<String>, close: bool) -> Step {
    finish(
        Outcome {
            outcome,
            phase: Some(phase),
            detail,
            tls_alert: false,
        },
        close,
    )
}

fn finish(o: Outcome, close: bool) -> Step {
    let mut actions = Vec::new();
    if close {
        actions.push(Action::close());
    }
    actions.push(Action::Done(o.clone()));
    (State::Done(Done(o)), actions)
}

/// The events every reading state handles alike: faults, timeouts, failed
/// writes, and events that cannot happen in this state.
fn common(ev: Event, phase: Phase, close: bool, expected: &str) -> Step {
    match ev {
        Event::Fault(f) => {
            let (outcome, detail) = fault_outcome(f);
            stop(outcome, phase, detail, close)
        }
        Event::WriteFailed(m) => stop(EndpointOutcome::Closed, phase, Some(m), close),
        Event::Timeout => stop(EndpointOutcome::Timeout, phase, None, close),
        other => stop(
            EndpointOutcome::UnexpectedElement,
            phase,
            Some(format!("expected {expected}, got {}", describe(&other))),
            close,
        ),
    }
}

fn describe(ev: &Event) -> String {
    match ev {
        Event::Header(_) => "a stream header".into(),
        Event::Element(el) => format!("{{{}}}{}", el.ns, el.name),
        Event::Fault(f) => f.to_string(),
        Event::Timeout => "a timeout".into(),
        Event::WriteFailed(m) => format!("a write failure: {m}"),
        Event::Buffered(n) => format!("{n} buffered bytes"),
        Event::TlsUp { .. } => "TLS up".into(),
        Event::TlsFailed { .. } => "a TLS failure".into(),
    }
}

/// A stream header: recorded; without `version` (RFC 6120 §4.7.5: a
/// pre-1.0 server, no features, no TLS) the probe stops with `NoVersion`.
fn header(h: StreamHeader, phase: Phase, slot: &mut Option<StreamHeader>) -> Option<Step> {
    let versionless = h.version.is_none();
    *slot = Some(h);
    versionless.then(|| {
        stop(
            EndpointOutcome::NoVersion,
            phase,
            Some(NO_VERSION.into()),
            true,
        )
    })
}

/// An element where features are expected: `<stream:error/>` is recorded
/// (RFC 6120 §4.9), anything but `<stream:features/>` is unexpected.
fn features_element(
    el: &Element,
    phase: Phase,
    record: &mut Record,
    close: bool,
) -> Result<Features, Step> {
    if let Some(step) = stream_error(el, phase, record, close) {
        return Err(step);
    }
    if !features::is_features(el) {
        return Err(stop(
            EndpointOutcome::UnexpectedElement,
            phase,
            Some(format!(
                "expected <stream:features/>, got {{{}}}{}",
                el.ns, el.name
            )),
            close,
        ));
    }
    Ok(features::parse(el))
}

/// `<stream:error/>` in any phase (RFC 6120 §4.9): recorded, and the
/// probe stops with `StreamError`.
fn stream_error(el: &Element, phase: Phase, record: &mut Record, close: bool) -> Option<Step> {
    if !el.is(NS_STREAMS, "error") {
        return None;
    }
    let err = stream::parse_error(el);
    let detail = err.text.clone();
    record.stream_error = Some(err);
    Some(stop(EndpointOutcome::StreamError, phase, detail, close))
}

impl ExpectHeader {
    fn handle(self, cx: &mut Cx<'_>, ev: Event) -> Step {
        match ev {
            Event::Header(h) => match header(h, Phase::StreamHeader, &mut cx.record.header) {
                Some(step) => step,
                None => (State::ExpectFeatures(ExpectFeatures), Vec::new()),
            },
            ev => common(ev, Phase::StreamHeader, true, "a stream header"),
        }
    }
}

impl ExpectFeatures {
    /// RFC 6120 §5.3.1: without `<starttls/>` in the features TLS cannot
    /// be negotiated (`NoStarttls`); offered (optional or required,
    /// §5.4.1), we send `<starttls/>` (§5.4.2.1).
    fn handle(self, cx: &mut Cx<'_>, ev: Event) -> Step {
        match ev {
            Event::Element(el) => {
                let feats = match features_element(&el, Phase::Features, cx.record, true) {
                    Ok(f) => f,
                    Err(step) => return step,
                };
                let offer = feats.starttls;
                cx.record.pre_tls = Some(feats);
                if offer == StarttlsOffer::Absent {
                    return stop(EndpointOutcome::NoStarttls, Phase::Features, None, true);
                }
                (
                    State::ExpectProceed(ExpectProceed),
                    vec![Action::Send(format!("<starttls xmlns='{NS_TLS}'/>"))],
                )
            }
            ev => common(ev, Phase::Features, true, "<stream:features/>"),
        }
    }
}

impl ExpectProceed {
    /// RFC 6120 §5.4.2.2: `<failure/>` ends it (`StarttlsFailure`);
    /// §5.4.2.3: `<proceed/>` starts TLS. The stream is not closed by us
    /// here (after `<failure/>` the server closes it, §5.4.2.2).
    fn handle(self, cx: &mut Cx<'_>, ev: Event) -> Step {
        match ev {
            Event::Element(el) => {
                if let Some(step) = stream_error(&el, Phase::Starttls, cx.record, false) {
                    return step;
                }
                if el.is(NS_TLS, "failure") {
                    return stop(
                        EndpointOutcome::StarttlsFailure,
                        Phase::Starttls,
                        None,
                        false,
                    );
                }
                if !el.is(NS_TLS, "proceed") {
                    return stop(
                        EndpointOutcome::UnexpectedElement,
                        Phase::Starttls,
                        Some(format!("expected <proceed/>, got {{{}}}{}", el.ns, el.name)),
                        false,
                    );
                }
                (State::TlsHandshake(TlsHandshake), vec![Action::StartTls])
            }
            ev => common(ev, Phase::Starttls, false, "<proceed/>"),
        }
    }
}

impl TlsHandshake {
    /// RFC 6120 §5.4.3.3: bytes behind `<proceed/>` are plaintext injected
    /// before TLS; they are discarded, counted, and the measurement goes
    /// on over TLS. Once TLS is up our header opens the new stream.
    fn handle(self, cx: &mut Cx<'_>, ev: Event) -> Step {
        match ev {
            Event::Buffered(n) => {
                if n > 0 {
                    cx.record.starttls_injected_bytes = Some(n as u64);
                }
                (State::TlsHandshake(self), Vec::new())
            }
            Event::TlsUp { .. } => (
                State::ExpectHeaderAfterTls(ExpectHeaderAfterTls),
                vec![Action::Send(cx.cfg.header())],
            ),
            Event::TlsFailed { detail } => stop(
                EndpointOutcome::TlsFailed,
                Phase::TlsHandshake,
                detail,
                false,
            ),
            Event::Timeout => stop(EndpointOutcome::TlsFailed, Phase::TlsHandshake, None, false),
            ev => common(ev, Phase::TlsHandshake, false, "the TLS handshake"),
        }
    }
}

impl ExpectHeaderAfterTls {
    /// The first read after the handshake is where TLS 1.3 reports a
    /// rejected session (RFC 8446 §4.4.2.4: the server's alert follows our
    /// Finished): an alert here is a TLS failure, not a stream one.
    fn handle(self, cx: &mut Cx<'_>, ev: Event) -> Step {
        const PHASE: Phase = Phase::StreamHeaderAfterTls;
        match ev {
            Event::Header(h) => match header(h, PHASE, &mut cx.record.header_after_tls) {
                Some(step) => step,
                None => (
                    State::ExpectFeaturesAfterTls(ExpectFeaturesAfterTls),
                    Vec::new(),
                ),
            },
            Event::Fault(ReadFault::TlsAlert(m)) => finish(
                Outcome {
                    outcome: EndpointOutcome::TlsFailed,
                    phase: Some(PHASE),
                    detail: Some(m),
                    tls_alert: true,
                },
                false,
            ),
            ev => common(ev, PHASE, true, "a stream header"),
        }
    }
}

impl ExpectFeaturesAfterTls {
    /// RFC 6120 §5.4.3.3 step 5: the post-TLS features complete the probe.
    fn handle(self, cx: &mut Cx<'_>, ev: Event) -> Step {
        const PHASE: Phase = Phase::FeaturesAfterTls;
        match ev {
            Event::Element(el) => match features_element(&el, PHASE, cx.record, true) {
                Ok(feats) => {
                    cx.record.post_tls = Some(feats);
                    finish(
                        Outcome {
                            outcome: EndpointOutcome::Complete,
                            phase: None,
                            detail: None,
                            tls_alert: false,
                        },
                        false,
                    )
                }
                Err(step) => step,
            },
            ev => common(ev, PHASE, true, "<stream:features/>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::negotiation::testing::Bytes;
    use crate::xmpp::reader::ReaderLimits;

    const HDR: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='a.test' version='1.0'>";
    const HDR_09: &str = "<stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='a.test'>";
    const REQUIRED: &str = "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>\
        <required/></starttls></stream:features>";
    const OPTIONAL: &str =
        "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>";
    const NO_TLS: &str = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
        <mechanism>PLAIN</mechanism></mechanisms></stream:features>";
    const PROCEED: &str = "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
    const FAILURE: &str = "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
    const POST: &str = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
        <mechanism>EXTERNAL</mechanism></mechanisms></stream:features>";
    const ERR: &str = "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
        <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>nope</text></stream:error>";

    fn cfg(transport: Transport) -> Config {
        Config {
            service: Service::C2s,
            transport,
            to: "a.test".into(),
            from: None,
        }
    }

    /// Runs the client over `pre` (plain) and `post` (after TLS) bytes
    /// through the real reader; `tls` is what the handshake yields.
    /// Returns the machine and every action it produced.
    fn run_with(
        transport: Transport,
        pre: &str,
        post: &str,
        tls: Event,
        limits: ReaderLimits,
    ) -> (Client, Vec<ClientAction>) {
        let (mut m, mut pending) = Client::new(cfg(transport));
        let mut all = Vec::new();
        let mut rd = Some(Bytes::new(pre.as_bytes(), limits));
        loop {
            all.extend(pending.iter().cloned());
            if matches!(pending.last(), Some(Action::Done(_))) {
                return (m, all);
            }
            if pending.contains(&Action::StartTls) {
                if transport == Transport::Starttls {
                    let n = rd.take().map_or(0, Bytes::buffered);
                    let more = m.handle(Event::Buffered(n));
                    assert!(more.is_empty());
                }
                pending = m.handle(tls.clone());
                rd = Some(Bytes::new(post.as_bytes(), limits));
                continue;
            }
            let r = rd.as_mut().unwrap();
            pending = match m.expects() {
                Expect::Header => m.handle(r.header().map_or_else(Event::Fault, Event::Header)),
                Expect::Element => m.handle(r.element().map_or_else(Event::Fault, Event::Element)),
                Expect::Tls | Expect::Nothing => panic!("stuck in {:?}", m.state()),
            };
        }
    }

    fn run(pre: &str, post: &str) -> (Client, Vec<ClientAction>) {
        run_with(
            Transport::Starttls,
            pre,
            post,
            Event::TlsUp { peer_chain: false },
            ReaderLimits::default(),
        )
    }

    fn ok(pre: &str) -> String {
        format!("{HDR}{REQUIRED}{PROCEED}{pre}")
    }

    fn out(m: &Client) -> (EndpointOutcome, Option<Phase>) {
        let o = m.outcome().expect("done");
        (o.outcome, o.phase)
    }

    fn closes(actions: &[ClientAction]) -> bool {
        actions.iter().any(|a| matches!(a, Action::Close { .. }))
    }

    /// The machine advanced to `phase` by canned events.
    fn at(phase: Phase) -> Client {
        let (mut m, _) = Client::new(cfg(Transport::Starttls));
        let h = || StreamHeader {
            version: Some("1.0".into()),
            ..StreamHeader::default()
        };
        let el = |x: &str| crate::xmpp::reader::parse_fragment(x).unwrap();
        let script = [
            Event::Header(h()),
            Event::Element(el(REQUIRED)),
            Event::Element(el(PROCEED)),
            Event::TlsUp { peer_chain: false },
            Event::Header(h()),
        ];
        for ev in script {
            if m.phase() == Some(phase) {
                break;
            }
            m.handle(ev);
        }
        assert_eq!(m.phase(), Some(phase));
        m
    }

    #[test]
    fn rfc6120_5_4_starttls_required_negotiates_to_post_tls_features() {
        let (m, actions) = run(&ok(""), &format!("{HDR}{POST}"));
        assert_eq!(out(&m), (EndpointOutcome::Complete, None));
        assert!(!closes(&actions));
        let sends: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(s) => Some(s.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(sends.len(), 3);
        assert!(sends[0].contains("to='a.test'") && sends[0].contains("version='1.0'"));
        assert_eq!(
            sends[1],
            "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
        );
        assert_eq!(sends[0], sends[2]);
        let r = m.record();
        assert_eq!(r.header.as_ref().unwrap().id.as_deref(), Some("s1"));
        assert_eq!(
            r.pre_tls.as_ref().unwrap().starttls,
            StarttlsOffer::Required
        );
        assert!(r.header_after_tls.is_some());
        assert_eq!(r.post_tls.as_ref().unwrap().sasl_mechanisms, ["EXTERNAL"]);
        assert_eq!(r.starttls_injected_bytes, None);
        assert_eq!(r.stream_error, None);
    }

    #[test]
    fn rfc6120_5_4_1_starttls_optional_is_negotiated_too() {
        let (m, _) = run(
            &format!("{HDR}{OPTIONAL}{PROCEED}"),
            &format!("{HDR}{POST}"),
        );
        assert_eq!(out(&m), (EndpointOutcome::Complete, None));
        let offer = m.record().pre_tls.as_ref().unwrap().starttls;
        assert_eq!(offer, StarttlsOffer::Optional);
    }

    #[test]
    fn rfc6120_5_3_1_starttls_absent_is_no_starttls() {
        let (m, actions) = run(&format!("{HDR}{NO_TLS}"), "");
        assert_eq!(
            out(&m),
            (EndpointOutcome::NoStarttls, Some(Phase::Features))
        );
        assert!(closes(&actions));
        assert!(m.record().pre_tls.is_some());
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, Action::Send(s) if s.contains("starttls")))
        );
    }

    #[test]
    fn rfc6120_5_4_2_2_failure_is_starttls_failure() {
        let (m, actions) = run(&format!("{HDR}{REQUIRED}{FAILURE}"), "");
        let want = (EndpointOutcome::StarttlsFailure, Some(Phase::Starttls));
        assert_eq!(out(&m), want);
        assert!(!closes(&actions));
    }

    #[test]
    fn rfc6120_5_4_2_3_anything_but_proceed_is_unexpected() {
        let (m, _) = run(&format!("{HDR}{REQUIRED}<message/>"), "");
        assert_eq!(
            out(&m),
            (EndpointOutcome::UnexpectedElement, Some(Phase::Starttls))
        );
        let d = m.outcome().unwrap().detail.clone().unwrap();
        assert_eq!(d, "expected <proceed/>, got {jabber:client}message");
    }

    #[test]
    fn rfc6120_4_3_2_anything_but_features_is_unexpected() {
        let (m, actions) = run(&format!("{HDR}{PROCEED}"), "");
        assert_eq!(
            out(&m),
            (EndpointOutcome::UnexpectedElement, Some(Phase::Features))
        );
        assert!(closes(&actions));
        let (m, _) = run(&ok(""), &format!("{HDR}<iq type='get' id='x'/>"));
        let want = (
            EndpointOutcome::UnexpectedElement,
            Some(Phase::FeaturesAfterTls),
        );
        assert_eq!(out(&m), want);
        assert!(
            m.outcome()
                .unwrap()
                .detail
                .as_deref()
                .unwrap()
                .starts_with("expected <stream:features/>")
        );
    }

    #[test]
    fn rfc6120_4_7_5_no_version_before_and_after_tls() {
        let (m, actions) = run(&format!("{HDR_09}{REQUIRED}"), "");
        assert_eq!(
            out(&m),
            (EndpointOutcome::NoVersion, Some(Phase::StreamHeader))
        );
        assert_eq!(m.outcome().unwrap().detail.as_deref(), Some(NO_VERSION));
        assert!(m.record().header.is_some(), "the header is still recorded");
        assert!(closes(&actions));
        let (m, _) = run(&ok(""), &format!("{HDR_09}{POST}"));
        let want = (
            EndpointOutcome::NoVersion,
            Some(Phase::StreamHeaderAfterTls),
        );
        assert_eq!(out(&m), want);
        assert!(m.record().header_after_tls.is_some());
    }

    #[test]
    fn rfc6120_4_9_stream_error_is_captured_at_every_phase() {
        let cases = [
            (format!("{HDR}{ERR}"), String::new(), Phase::Features, true),
            (
                format!("{HDR}{REQUIRED}{ERR}"),
                String::new(),
                Phase::Starttls,
                false,
            ),
            (ok(""), format!("{HDR}{ERR}"), Phase::FeaturesAfterTls, true),
        ];
        for (pre, post, phase, close) in cases {
            let (m, actions) = run(&pre, &post);
            assert_eq!(out(&m), (EndpointOutcome::StreamError, Some(phase)));
            assert_eq!(m.outcome().unwrap().detail.as_deref(), Some("nope"));
            let e = m.record().stream_error.as_ref().unwrap();
            assert_eq!(e.condition, "host-unknown");
            assert_eq!(closes(&actions), close, "{phase:?}");
        }
        // Before the header, a stream error is not a stream at all.
        let (m, _) = run(ERR, "");
        assert_eq!(
            out(&m),
            (EndpointOutcome::InvalidXml, Some(Phase::StreamHeader))
        );
    }

    #[test]
    fn rfc6120_5_4_3_3_injection_after_proceed_is_counted_discarded_and_measured_over() {
        let injected = "<message to='victim'>injected</message>";
        let (m, _) = run(&ok(injected), &format!("{HDR}{POST}"));
        assert_eq!(out(&m), (EndpointOutcome::Complete, None));
        let n = m.record().starttls_injected_bytes;
        assert_eq!(n, Some(injected.len() as u64));
        assert!(m.record().post_tls.is_some());
    }

    #[test]
    fn rfc6120_5_4_3_3_injection_is_kept_when_tls_then_fails() {
        let failed = Event::TlsFailed {
            detail: Some("bad certificate".into()),
        };
        let limits = ReaderLimits::default();
        let (m, actions) = run_with(Transport::Starttls, &ok("xyz"), "", failed, limits);
        assert_eq!(
            out(&m),
            (EndpointOutcome::TlsFailed, Some(Phase::TlsHandshake))
        );
        assert_eq!(
            m.outcome().unwrap().detail.as_deref(),
            Some("bad certificate")
        );
        assert_eq!(m.record().starttls_injected_bytes, Some(3));
        assert!(!closes(&actions));
    }

    #[test]
    fn xep0368_direct_tls_starts_with_the_handshake() {
        let (m, actions) = run_with(
            Transport::DirectTls,
            "",
            &format!("{HDR}{POST}"),
            Event::TlsUp { peer_chain: false },
            ReaderLimits::default(),
        );
        assert_eq!(actions[0], Action::StartTls);
        assert_eq!(out(&m), (EndpointOutcome::Complete, None));
        assert_eq!(m.record().header, None);
        assert_eq!(m.record().pre_tls, None);
        assert_eq!(m.record().starttls_injected_bytes, None);
    }

    #[test]
    fn rfc8446_alert_on_first_read_after_handshake_is_a_tls_failure() {
        let mut m = at(Phase::StreamHeaderAfterTls);
        let alert = "received fatal alert: CertificateRequired".to_owned();
        let actions = m.handle(Event::Fault(ReadFault::TlsAlert(alert.clone())));
        let o = m.outcome().unwrap();
        assert_eq!(
            (o.outcome, o.phase),
            (
                EndpointOutcome::TlsFailed,
                Some(Phase::StreamHeaderAfterTls)
            )
        );
        assert!(o.tls_alert);
        assert_eq!(o.detail.as_deref(), Some(alert.as_str()));
        assert!(!closes(&actions));
        // Any other I/O error there is a close, even one whose text says
        // "alert": the class is typed, never searched in the text.
        let mut m = at(Phase::StreamHeaderAfterTls);
        m.handle(Event::Fault(ReadFault::Io("reset".into())));
        let o = m.outcome().unwrap();
        assert_eq!((o.outcome, o.tls_alert), (EndpointOutcome::Closed, false));
        let mut m = at(Phase::StreamHeaderAfterTls);
        m.handle(Event::Fault(ReadFault::Io("alert-ish text".into())));
        let o = m.outcome().unwrap();
        assert_eq!((o.outcome, o.tls_alert), (EndpointOutcome::Closed, false));
        // An alert in a later phase is a close too.
        let mut m = at(Phase::FeaturesAfterTls);
        m.handle(Event::Fault(ReadFault::TlsAlert(alert)));
        assert_eq!(m.outcome().unwrap().outcome, EndpointOutcome::Closed);
    }

    #[test]
    fn timeout_at_each_phase() {
        let phases = [
            (Phase::StreamHeader, EndpointOutcome::Timeout, true),
            (Phase::Features, EndpointOutcome::Timeout, true),
            (Phase::Starttls, EndpointOutcome::Timeout, false),
            (Phase::TlsHandshake, EndpointOutcome::TlsFailed, false),
            (Phase::StreamHeaderAfterTls, EndpointOutcome::Timeout, true),
            (Phase::FeaturesAfterTls, EndpointOutcome::Timeout, true),
        ];
        for (phase, want, close) in phases {
            let mut m = at(phase);
            let actions = m.handle(Event::Timeout);
            assert_eq!(out(&m), (want, Some(phase)));
            assert_eq!(m.outcome().unwrap().detail, None);
            assert_eq!(closes(&actions), close, "{phase:?}");
            assert_eq!(m.expects(), Expect::Nothing);
        }
    }

    #[test]
    fn rfc6120_13_12_byte_budget_is_per_phase() {
        let limits = ReaderLimits {
            max_phase_bytes: 200,
            max_depth: 16,
        };
        // Every phase fits, the whole does not: completes.
        let pre = ok("");
        assert!(pre.len() > 200);
        let (m, _) = run_with(
            Transport::Starttls,
            &pre,
            &format!("{HDR}{POST}"),
            Event::TlsUp { peer_chain: false },
            limits,
        );
        assert_eq!(out(&m), (EndpointOutcome::Complete, None));
        // One phase over budget, in each reading phase.
        let big = format!("<stream:features>{}</stream:features>", " ".repeat(300));
        let long_hdr = HDR.replace("id='s1'", &format!("id='{}'", "x".repeat(300)));
        let cases = [
            (long_hdr.clone(), String::new(), Phase::StreamHeader),
            (format!("{HDR}{big}"), String::new(), Phase::Features),
            (
                format!(
                    "{HDR}{REQUIRED}<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'>{}</proceed>",
                    " ".repeat(300)
                ),
                String::new(),
                Phase::Starttls,
            ),
            (ok(""), long_hdr, Phase::StreamHeaderAfterTls),
            (ok(""), format!("{HDR}{big}"), Phase::FeaturesAfterTls),
        ];
        for (pre, post, phase) in cases {
            let tls = Event::TlsUp { peer_chain: false };
            let (m, _) = run_with(Transport::Starttls, &pre, &post, tls, limits);
            assert_eq!(out(&m), (EndpointOutcome::ByteLimit, Some(phase)));
        }
    }

    #[test]
    fn depth_cap_before_and_after_tls() {
        let limits = ReaderLimits {
            max_phase_bytes: 10_000,
            max_depth: 4,
        };
        let deep = "<stream:features><a><b><c><d/></c></b></a></stream:features>";
        for (pre, post, phase) in [
            (format!("{HDR}{deep}"), String::new(), Phase::Features),
            (ok(""), format!("{HDR}{deep}"), Phase::FeaturesAfterTls),
        ] {
            let tls = Event::TlsUp { peer_chain: false };
            let (m, actions) = run_with(Transport::Starttls, &pre, &post, tls, limits);
            assert_eq!(out(&m), (EndpointOutcome::DepthLimit, Some(phase)));
            assert!(closes(&actions));
        }
    }

    #[test]
    fn rfc6120_11_1_malformed_and_restricted_xml() {
        let cases = [
            (
                format!("{HDR}<stream:features><a></b></stream:features>"),
                EndpointOutcome::InvalidXml,
                Phase::Features,
            ),
            (
                format!("<!DOCTYPE x [<!ENTITY a 'b'>]>{HDR}"),
                EndpointOutcome::ForbiddenXml,
                Phase::StreamHeader,
            ),
            (
                format!("{HDR}<?evil?>{REQUIRED}"),
                EndpointOutcome::ForbiddenXml,
                Phase::Features,
            ),
            (
                format!("{HDR}<stream:features>\u{0}</stream:features>"),
                EndpointOutcome::InvalidXml,
                Phase::Features,
            ),
            (
                format!("{HDR}<stream:features>&#0;</stream:features>"),
                EndpointOutcome::InvalidXml,
                Phase::Features,
            ),
            (
                "<html>".to_owned(),
                EndpointOutcome::InvalidXml,
                Phase::StreamHeader,
            ),
        ];
        for (pre, want, phase) in cases {
            let (m, actions) = run(&pre, "");
            assert_eq!(out(&m), (want, Some(phase)), "{pre}");
            assert!(closes(&actions));
        }
        let (m, _) = run(&format!("<!DOCTYPE x>{HDR}"), "");
        assert_eq!(m.outcome().unwrap().detail.as_deref(), Some("DOCTYPE"));
    }

    #[test]
    fn rfc6120_4_4_peer_closes_early() {
        let (m, _) = run(HDR, "");
        assert_eq!(out(&m), (EndpointOutcome::Closed, Some(Phase::Features)));
        assert_eq!(
            m.outcome().unwrap().detail.as_deref(),
            Some("connection closed")
        );
        let (m, _) = run(&format!("{HDR}</stream:stream>"), "");
        assert_eq!(
            m.outcome().unwrap().detail.as_deref(),
            Some("</stream:stream>")
        );
        let (m, _) = run(&format!("{HDR}{REQUIRED}"), "");
        assert_eq!(out(&m), (EndpointOutcome::Closed, Some(Phase::Starttls)));
        let (m, _) = run(&ok(""), "");
        let want = (EndpointOutcome::Closed, Some(Phase::StreamHeaderAfterTls));
        assert_eq!(out(&m), want);
    }

    #[test]
    fn failed_write_is_a_close_of_that_phase() {
        let (mut m, _) = Client::new(cfg(Transport::Starttls));
        let actions = m.handle(Event::WriteFailed("broken pipe".into()));
        assert_eq!(
            out(&m),
            (EndpointOutcome::Closed, Some(Phase::StreamHeader))
        );
        assert_eq!(m.outcome().unwrap().detail.as_deref(), Some("broken pipe"));
        assert!(closes(&actions));
        let mut m = at(Phase::Starttls);
        let actions = m.handle(Event::WriteFailed("broken pipe".into()));
        assert_eq!(out(&m), (EndpointOutcome::Closed, Some(Phase::Starttls)));
        assert!(!closes(&actions));
    }

    #[test]
    fn events_out_of_place_are_unexpected_and_done_is_final() {
        let mut m = at(Phase::Features);
        m.handle(Event::TlsUp { peer_chain: true });
        assert_eq!(
            out(&m),
            (EndpointOutcome::UnexpectedElement, Some(Phase::Features))
        );
        assert!(m.handle(Event::Timeout).is_empty());
        let mut m = at(Phase::TlsHandshake);
        let el = crate::xmpp::reader::parse_fragment(POST).unwrap();
        m.handle(Event::Element(el));
        assert_eq!(
            m.outcome().unwrap().outcome,
            EndpointOutcome::UnexpectedElement
        );
    }

    #[test]
    fn rfc6120_4_7_s2s_header_carries_from_and_dialback() {
        let c = Config {
            service: Service::S2s,
            transport: Transport::Starttls,
            to: "b.test".into(),
            from: Some("probe.test".into()),
        };
        let h = c.header();
        assert!(h.contains("from='probe.test'") && h.contains("to='b.test'"));
        assert!(h.contains("xmlns:db='jabber:server:dialback'"));
        let c = Config {
            service: Service::C2s,
            ..c
        };
        assert!(!c.header().contains("from="));
    }
}
