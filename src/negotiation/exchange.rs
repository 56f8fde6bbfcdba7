//! The initiating server's exchanges on a negotiated s2s stream, pure:
//! SASL EXTERNAL (XEP-0178 §3), the stream restart after it (RFC 6120
//! §4.3.3), dialback (XEP-0220 §2.1.1, §2.1.2) and an IQ round trip.
//!
//! Each exchange is a request to send and a machine fed what arrived
//! ([`feed`]): an element is the answer, or skipped (dialback and IQ
//! answers may follow unrelated stanzas), or a failure; a
//! `<stream:error/>` (RFC 6120 §4.9), a reader fault or the deadline ends
//! it with a [`StepError`]. The driver (`crate::s2s::steps`) writes the
//! request, reads with the hardened reader and a deadline, and feeds.
//!
//! It continues where [`super::client`] stops (the post-TLS features), on
//! the same [`Event`]s; unlike the client it never closes the stream
//! itself: what happens next (IQs, a second attempt) is the caller's.

use super::Event;
use crate::xmpp::dialback::{self, Answer, Dialback};
use crate::xmpp::element::Element;
use crate::xmpp::features::{self, Features};
use crate::xmpp::reader::ReadFault;
use crate::xmpp::sasl::{self, SaslOutcome};
use crate::xmpp::stream::{self, HeaderSpec, StreamError};
use crate::xmpp::{NS_STREAMS, Service, iq};
use thiserror::Error;

/// How an exchange failed (as opposed to what the peer answered).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StepError {
    /// No answer before the exchange's deadline.
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
    /// The peer sent something the exchange does not allow.
    #[error("unexpected {0}")]
    Unexpected(String),
}

/// The typed fault behind a failed exchange, for the acceptance evidence.
impl From<&StepError> for crate::model::acceptance::ExchangeFault {
    fn from(e: &StepError) -> Self {
        use ReadFault as R;
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

/// One request and the wait for its answer.
pub trait Exchange {
    /// What a complete exchange yields.
    type Answer;
    /// What to send first.
    fn request(&self) -> String;
    /// One element that is not a `<stream:error/>`: the answer, `None` to
    /// keep reading, or why the exchange failed.
    fn element(&mut self, el: Element) -> Result<Option<Self::Answer>, StepError>;
    /// The deadline passed without an answer: by default a failure.
    fn timeout(&mut self) -> Result<Self::Answer, StepError> {
        Err(StepError::Timeout)
    }
}

/// Feeds one event to an exchange: `Ok(None)` means keep reading.
pub fn feed<X: Exchange>(x: &mut X, ev: Event) -> Result<Option<X::Answer>, StepError> {
    match ev {
        Event::Element(el) if el.is(NS_STREAMS, "error") => {
            Err(StepError::Stream(stream::parse_error(&el)))
        }
        Event::Element(el) => x.element(el),
        Event::Fault(f) => Err(StepError::Read(f)),
        Event::Timeout => x.timeout().map(Some),
        Event::WriteFailed(m) => Err(StepError::Write(m)),
        Event::Header(_) => Err(StepError::Unexpected("a stream header".into())),
        Event::Buffered(_) | Event::TlsUp { .. } | Event::TlsFailed { .. } => {
            Err(StepError::Unexpected("a TLS event".into()))
        }
    }
}

/// XEP-0178 §3: `<auth mechanism='EXTERNAL'>` with our domain as
/// authorization identity; the first element is the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthExternal<'a> {
    /// Our domain.
    pub from: &'a str,
}

impl Exchange for AuthExternal<'_> {
    type Answer = SaslOutcome;
    fn request(&self) -> String {
        sasl::auth_external(self.from)
    }
    fn element(&mut self, el: Element) -> Result<Option<SaslOutcome>, StepError> {
        sasl::parse_outcome(&el)
            .map(Some)
            .ok_or_else(|| StepError::Unexpected(el.expanded_name()))
    }
}

/// RFC 6120 §4.3.3 stream restart (after SASL success): our header; the
/// driver reads the peer's header, then the first element must be its
/// features.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart<'a> {
    /// Our domain.
    pub from: &'a str,
    /// The peer's domain.
    pub to: &'a str,
}

impl Exchange for Restart<'_> {
    type Answer = Features;
    fn request(&self) -> String {
        stream::open_header(&HeaderSpec {
            service: Service::S2s,
            from: Some(self.from),
            to: Some(self.to),
            id: None,
            version: Some("1.0"),
            dialback: true,
        })
    }
    fn element(&mut self, el: Element) -> Result<Option<Features>, StepError> {
        if !features::is_features(&el) {
            return Err(StepError::Unexpected(el.expanded_name()));
        }
        Ok(Some(features::parse(&el)))
    }
}

/// XEP-0220 §2.1.1: `<db:result>` with our key; the answer is the
/// receiving server's verdict. Other elements are skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialbackResult<'a> {
    /// Our domain.
    pub from: &'a str,
    /// The peer's domain.
    pub to: &'a str,
    /// The dialback key.
    pub key: &'a str,
}

impl Exchange for DialbackResult<'_> {
    type Answer = Answer;
    fn request(&self) -> String {
        dialback::result_request(self.from, self.to, self.key)
    }
    fn element(&mut self, el: Element) -> Result<Option<Answer>, StepError> {
        Ok(match dialback::parse(&el) {
            Some(Dialback::ResultAnswer { answer, .. }) => Some(answer),
            _ => None,
        })
    }
}

/// XEP-0220 §2.1.2, the receiving server's side: `<db:verify>` to the
/// authoritative server; the answer is the `<db:verify type=…/>` for the
/// same stream id. Other elements are skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialbackVerify<'a> {
    /// The asking (receiving) domain.
    pub from: &'a str,
    /// The authoritative domain.
    pub to: &'a str,
    /// The stream id the originating server was given.
    pub id: &'a str,
    /// The key to check.
    pub key: &'a str,
}

impl Exchange for DialbackVerify<'_> {
    type Answer = Answer;
    fn request(&self) -> String {
        dialback::verify_request(self.from, self.to, self.id, self.key)
    }
    fn element(&mut self, el: Element) -> Result<Option<Answer>, StepError> {
        Ok(match dialback::parse(&el) {
            Some(Dialback::VerifyAnswer { id, answer, .. }) if id == self.id => Some(answer),
            _ => None,
        })
    }
}

/// An IQ and its answer (the IQ with the same id) on this stream; `None`
/// when the deadline passes without one. Other elements are skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IqRoundTrip<'a> {
    /// The IQ as sent.
    pub xml: &'a str,
    /// Its id.
    pub id: &'a str,
}

impl Exchange for IqRoundTrip<'_> {
    type Answer = Option<Element>;
    fn request(&self) -> String {
        self.xml.to_owned()
    }
    fn element(&mut self, el: Element) -> Result<Option<Option<Element>>, StepError> {
        let ours = iq::parse(&el).is_some_and(|q| q.id == self.id);
        Ok(ours.then_some(Some(el)))
    }
    fn timeout(&mut self) -> Result<Option<Element>, StepError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::negotiation::testing::Bytes;
    use crate::xmpp::reader::ReaderLimits;

    const HDR: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
        xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
        id='s1' from='b.test' version='1.0'>";

    /// Runs `x` over the elements after a stream header, as the driver
    /// does, until it ends; the end of the bytes is fed as the deadline
    /// passing (a live peer would keep the stream open).
    fn run<X: Exchange>(x: &mut X, body: &str) -> Result<X::Answer, StepError> {
        let mut b = Bytes::new(format!("{HDR}{body}").as_bytes(), ReaderLimits::default());
        b.header().unwrap();
        loop {
            let ev = match b.element() {
                Ok(el) => Event::Element(el),
                Err(ReadFault::Eof) => Event::Timeout,
                Err(f) => Event::Fault(f),
            };
            if let Some(a) = feed(x, ev)? {
                return Ok(a);
            }
        }
    }

    const ERR: &str = "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
        </stream:error>";
    const MSG: &str = "<message from='b.test' to='a.test'><body>hi</body></message>";

    #[test]
    fn auth_external_takes_the_first_element_as_the_outcome() {
        let x = AuthExternal { from: "a.test" };
        assert!(x.request().contains("EXTERNAL"));
        let ok = "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
        assert_eq!(run(&mut x.clone(), ok), Ok(SaslOutcome::Success));
        let challenge = "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
        assert_eq!(run(&mut x.clone(), challenge), Ok(SaslOutcome::Challenge));
        let failure =
            "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>";
        assert!(matches!(
            run(&mut x.clone(), failure),
            Ok(SaslOutcome::Failure { condition, .. }) if condition == "not-authorized"
        ));
        assert!(matches!(
            run(&mut x.clone(), MSG),
            Err(StepError::Unexpected(n)) if n.contains("message")
        ));
        assert!(
            matches!(run(&mut x.clone(), ERR), Err(StepError::Stream(e)) if e.condition == "host-unknown")
        );
        assert_eq!(run(&mut x.clone(), ""), Err(StepError::Timeout));
        assert!(matches!(
            run(&mut x.clone(), "<a></b>"),
            Err(StepError::Read(_))
        ));
    }

    #[test]
    fn restart_wants_features_first() {
        let x = Restart {
            from: "a.test",
            to: "b.test",
        };
        let req = x.request();
        assert!(
            req.contains("from='a.test'") && req.contains("to='b.test'"),
            "{req}"
        );
        let feats =
            "<stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>";
        assert!(run(&mut x.clone(), feats).is_ok());
        assert!(matches!(
            run(&mut x.clone(), MSG),
            Err(StepError::Unexpected(_))
        ));
        assert!(matches!(
            run(&mut x.clone(), ERR),
            Err(StepError::Stream(_))
        ));
    }

    #[test]
    fn dialback_skips_unrelated_elements_until_its_answer() {
        let mut x = DialbackResult {
            from: "a.test",
            to: "b.test",
            key: "k",
        };
        assert!(x.request().contains(">k<"));
        let answer = "<db:result from='b.test' to='a.test' type='valid'/>";
        assert_eq!(run(&mut x, &format!("{MSG}{answer}")), Ok(Answer::Valid));
        assert_eq!(run(&mut x, MSG), Err(StepError::Timeout));
        assert!(matches!(
            run(&mut x, &format!("{MSG}{ERR}")),
            Err(StepError::Stream(_))
        ));
    }

    #[test]
    fn verify_takes_only_the_answer_for_its_stream_id() {
        let mut x = DialbackVerify {
            from: "a.test",
            to: "b.test",
            id: "sid-2",
            key: "k",
        };
        let other = "<db:verify from='b.test' to='a.test' id='sid-1' type='valid'/>";
        let ours = "<db:verify from='b.test' to='a.test' id='sid-2' type='invalid'/>";
        assert_eq!(run(&mut x, &format!("{other}{ours}")), Ok(Answer::Invalid));
        assert_eq!(run(&mut x, other), Err(StepError::Timeout));
    }

    #[test]
    fn iq_round_trip_matches_the_id_and_a_timeout_is_no_answer() {
        let mut x = IqRoundTrip {
            xml: "<iq type='get' id='p1'/>",
            id: "p1",
        };
        assert_eq!(x.request(), "<iq type='get' id='p1'/>");
        let other = "<iq type='result' id='p0' from='b.test' to='a.test'/>";
        let ours = "<iq type='result' id='p1' from='b.test' to='a.test'/>";
        let got = run(&mut x, &format!("{other}{ours}")).unwrap().unwrap();
        assert_eq!(got.attr("id"), Some("p1"));
        assert_eq!(run(&mut x, other), Ok(None));
        assert!(matches!(
            run(&mut x, "<iq id='p1'></b>"),
            Err(StepError::Read(_))
        ));
        assert_eq!(
            feed(&mut x, Event::WriteFailed("reset".into())),
            Err(StepError::Write("reset".into()))
        );
    }
}
