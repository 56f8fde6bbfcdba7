//! Stream negotiation as pure state machines (RFC 6120 §4.3, §5.4, §6).
//!
//! No socket in sight: a driver reads with the hardened
//! [`crate::xmpp::reader::StreamReader`] (byte budget per phase, depth cap,
//! RFC 6120 §11.1 restricted XML), feeds what it parsed as an [`Event`], and
//! carries out the [`Action`]s it gets back (write, start TLS, close, stop).
//! Every state is a type named for what it expects next, as in rustls'
//! `client/tls13.rs`; the driver asks [`Expect`] what to read.
//!
//! - [`client`]: the initiating entity (the prober, RFC 6120 §4.2): header,
//!   features, `<starttls/>`, `<proceed/>`, TLS, header and features again.
//! - [`exchange`]: the initiating server's exchanges after that (SASL
//!   EXTERNAL, the restart, dialback, an IQ round trip), each a request and
//!   a machine fed what arrives.
//! - [`server`]: the receiving entity of an s2s stream up to the post-TLS
//!   features (RFC 6120 §4.3.2, §5.4.3.3).
//!
//! Driver contract, shared by both machines:
//! - before every read the driver starts a new reader phase (a fresh byte
//!   budget, [`crate::xmpp::reader::StreamReader::new_phase`]): each state
//!   is one phase;
//! - a read that exceeded the phase timeout is fed as [`Event::Timeout`]
//!   (the reader is not cancel-safe: nothing more is read afterwards);
//! - a failed write is fed as [`Event::WriteFailed`];
//! - on [`Action::StartTls`] after `<proceed/>` the driver detaches the
//!   transport from the reader and feeds the count of bytes still buffered
//!   as [`Event::Buffered`] (RFC 6120 §5.4.3.3: plaintext the peer sent
//!   behind `<proceed/>`), then, unless that ended the machine, runs the
//!   handshake and feeds [`Event::TlsUp`] or [`Event::TlsFailed`].

pub mod client;
pub mod exchange;
pub mod server;

use crate::xmpp::element::Element;
use crate::xmpp::reader::ReadFault;
use crate::xmpp::stream::StreamHeader;

/// What the driver parsed or observed, fed to a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer's stream header (RFC 6120 §4.7).
    Header(StreamHeader),
    /// One whole top-level element (RFC 6120 §4.1).
    Element(Element),
    /// The reader stopped: over budget, depth cap, bad XML, closed, I/O.
    Fault(ReadFault),
    /// The current phase's timeout passed.
    Timeout,
    /// Writing to the peer failed; the text is the I/O error.
    WriteFailed(String),
    /// Bytes the peer had sent behind `<proceed/>` (RFC 6120 §5.4.3.3),
    /// counted when the transport was detached from the reader.
    Buffered(usize),
    /// The TLS handshake completed (RFC 6120 §5.4.3.3).
    TlsUp {
        /// The peer presented a certificate (the server side's
        /// XEP-0178 §3 step 5 question; the client ignores it).
        peer_chain: bool,
    },
    /// The TLS handshake failed (or could not start); `None` when it
    /// timed out.
    TlsFailed {
        /// The error's text.
        detail: Option<String>,
    },
}

/// What the driver must do next, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<O> {
    /// Write these bytes.
    Send(String),
    /// Start the TLS handshake on the transport (RFC 6120 §5.4.3.3; direct
    /// TLS, XEP-0368: at once).
    StartTls,
    /// Close the stream (RFC 6120 §4.4): `<stream:error/>` with this
    /// condition and text if any (RFC 6120 §4.9), `</stream:stream>`, then
    /// the transport (TLS close_notify).
    Close {
        /// The stream error condition (RFC 6120 §4.9.3), if any.
        condition: Option<&'static str>,
        /// The stream error's `<text/>`.
        text: Option<&'static str>,
    },
    /// The machine is finished; nothing more is read.
    Done(O),
}

impl<O> Action<O> {
    /// A polite close without a stream error.
    pub fn close() -> Self {
        Self::Close {
            condition: None,
            text: None,
        }
    }
}

/// What the driver must read next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A stream header ([`crate::xmpp::reader::StreamReader::read_header`]).
    Header,
    /// A top-level element ([`crate::xmpp::reader::StreamReader::read_element`]).
    Element,
    /// The TLS handshake's result (after [`Action::StartTls`]).
    Tls,
    /// Nothing: the machine is done.
    Nothing,
}

#[cfg(test)]
pub(crate) mod testing {
    //! Feeding machines from bytes through the real reader, no sockets.
    use crate::xmpp::reader::{ReadFault, ReaderLimits, StreamReader};
    use crate::xmpp::{element::Element, stream::StreamHeader};

    /// A reader over in-memory bytes with the given limits.
    pub struct Bytes(StreamReader<tokio::io::Join<&'static [u8], tokio::io::Sink>>);

    impl Bytes {
        pub fn new(bytes: &[u8], limits: ReaderLimits) -> Self {
            let bytes: &'static [u8] = Box::leak(bytes.to_vec().into_boxed_slice());
            Self(StreamReader::new(
                tokio::io::join(bytes, tokio::io::sink()),
                limits,
            ))
        }
        pub fn header(&mut self) -> Result<StreamHeader, ReadFault> {
            self.0.new_phase();
            futures::executor::block_on(self.0.read_header())
        }
        pub fn element(&mut self) -> Result<Element, ReadFault> {
            self.0.new_phase();
            futures::executor::block_on(self.0.read_element())
        }
        /// Bytes buffered but not consumed (behind `<proceed/>`).
        pub fn buffered(self) -> usize {
            self.0.into_inner().1
        }
    }
}
