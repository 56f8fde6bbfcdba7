//! An async reader for XMPP streams (RFC 6120 §4) with hostile-peer limits.
//!
//! [`StreamReader`] turns bytes from any `AsyncRead + AsyncWrite` transport
//! into a [`StreamHeader`] and whole top-level [`Element`]s. It is used by
//! the probe (client side) and by the simulated test servers (server side).
//!
//! Limits enforced (see [`crate::limits`]):
//! - a byte budget per protocol phase ([`StreamReader::new_phase`]);
//! - a nesting depth below `<stream:stream>`;
//! - RFC 6120 §11.1 restricted XML: no DOCTYPE (and so no entity
//!   declarations), no processing instructions, no entity references other
//!   than the five predefined ones and character references.
//!
//! Exactness for STARTTLS (RFC 6120 §5.4.3.3): the XML parser only consumes
//! bytes up to the end of the event it returns, so after `<proceed/>`
//! [`StreamReader::into_inner`] reports exactly how many bytes the peer had
//! already sent behind it (a plaintext-injection attempt).
//!
//! The read methods are **not cancel-safe**: dropping a read future (e.g. on
//! a phase timeout) loses a partially read element. After a timeout the
//! stream must be abandoned.

use super::NS_DIALBACK;
use super::NS_STREAMS;
use super::element::Element;
use super::stream::StreamHeader;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::{NsReader, XmlVersion};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};

/// Limits one [`StreamReader`] enforces (defaults in [`crate::limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderLimits {
    /// Bytes the peer may send per protocol phase (reset by
    /// [`StreamReader::new_phase`]); see [`crate::limits::MAX_PHASE_BYTES`].
    pub max_phase_bytes: u64,
    /// Maximum element nesting below `<stream:stream>`: a top-level child
    /// is depth 1; see [`crate::limits::MAX_XML_DEPTH`].
    pub max_depth: usize,
}

impl Default for ReaderLimits {
    fn default() -> Self {
        Self {
            max_phase_bytes: crate::limits::MAX_PHASE_BYTES,
            max_depth: crate::limits::MAX_XML_DEPTH,
        }
    }
}

/// Why a read from the stream did not produce a header or an element.
/// Every variant is a measured outcome, not a bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadFault {
    /// The peer exhausted the byte budget of the current phase.
    #[error("phase byte limit exceeded")]
    ByteLimit,
    /// Elements nested deeper than the depth limit below `<stream:stream>`.
    #[error("XML nesting depth limit exceeded")]
    DepthLimit,
    /// Not well-formed (or not namespace-well-formed) XML, including
    /// references to undefined entities; the text is the parser's message.
    #[error("invalid XML: {0}")]
    InvalidXml(String),
    /// A `<!DOCTYPE …>`: forbidden by RFC 6120 §11.1; this also covers
    /// entity-declaration tricks (billion laughs, XXE).
    #[error("DOCTYPE is forbidden (RFC 6120 §11.1)")]
    Doctype,
    /// A processing instruction other than the XML declaration
    /// (RFC 6120 §11.1).
    #[error("processing instruction is forbidden (RFC 6120 §11.1)")]
    ProcessingInstruction,
    /// The connection was closed, between elements or in the middle of one.
    #[error("connection closed")]
    Eof,
    /// The peer closed its stream with `</stream:stream>` (RFC 6120 §4.4).
    #[error("peer closed the stream")]
    StreamClosed,
    /// The first element was not `{http://etherx.jabber.org/streams}stream`
    /// (RFC 6120 §4.8.1); the text is its `{ns}name`.
    #[error("not an XMPP stream: first element is {0}")]
    NotStream(String),
    /// An I/O error from the transport (for example a TLS alert surfacing
    /// on read); the text is the error's message.
    #[error("I/O error: {0}")]
    Io(String),
}

/// The transport wrapped with a per-phase byte budget. When the budget is
/// used up, reads return end-of-file and `exhausted` is set so the reader
/// can report [`ReadFault::ByteLimit`] instead of [`ReadFault::Eof`].
#[derive(Debug)]
struct Budget<S> {
    io: S,
    remaining: u64,
    exhausted: bool,
    total: u64,
}

impl<S: AsyncRead + Unpin> AsyncRead for Budget<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.remaining == 0 {
            this.exhausted = true;
            return Poll::Ready(Ok(()));
        }
        let max = usize::try_from(this.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.remaining());
        let n = {
            let mut sub = ReadBuf::new(buf.initialize_unfilled_to(max));
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut sub))?;
            sub.filled().len().min(max)
        };
        buf.advance(n);
        let n = n as u64;
        this.remaining = this.remaining.saturating_sub(n);
        this.total = this.total.saturating_add(n);
        Poll::Ready(Ok(()))
    }
}

/// An XMPP stream reader over any transport (RFC 6120 §4).
///
/// Each read builds a fresh XML parser over the shared buffered transport
/// and re-enters the namespace scope of the stream header; the parser only
/// consumes bytes up to the end of the returned event, so nothing is lost
/// between calls, and [`Self::restart`] (RFC 6120 §4.3.3) is just "expect a
/// new header next".
#[derive(Debug)]
pub struct StreamReader<S> {
    io: BufReader<Budget<S>>,
    limits: ReaderLimits,
    buf: Vec<u8>,
    /// The open tag of the current stream header (owned), whose namespace
    /// declarations are in scope for every top-level element.
    header: Option<BytesStart<'static>>,
}

/// A parser over the buffered transport, borrowed for one read.
type Parser<'a, S> = NsReader<&'a mut BufReader<Budget<S>>>;

impl<S: AsyncRead + AsyncWrite + Unpin> StreamReader<S> {
    /// Wraps a transport; the first phase's byte budget starts now.
    pub fn new(io: S, limits: ReaderLimits) -> Self {
        let budget = Budget {
            io,
            remaining: limits.max_phase_bytes,
            exhausted: false,
            total: 0,
        };
        Self {
            io: BufReader::new(budget),
            limits,
            buf: Vec::new(),
            header: None,
        }
    }

    /// Reads the peer's stream header (RFC 6120 §4.7): skips an optional XML
    /// declaration, whitespace and comments, and returns the attributes of
    /// the `<stream:stream>` open tag.
    pub async fn read_header(&mut self) -> Result<StreamHeader, ReadFault> {
        let mut xml = new_parser(&mut self.io);
        let mut seen_anything = false;
        let header = loop {
            self.buf.clear();
            let (res, ev) = match xml.read_resolved_event_into_async(&mut self.buf).await {
                Ok(x) => x,
                Err(e) => return Err(map_error(&e, exhausted(&xml))),
            };
            match ev {
                Event::Decl(_) if !seen_anything => {}
                Event::Decl(_) => {
                    return Err(ReadFault::InvalidXml(
                        "XML declaration not at the start of the stream".into(),
                    ));
                }
                Event::Text(t) if is_xml_whitespace(&t) => {}
                Event::Comment(_) => {}
                Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) => {
                    return Err(ReadFault::InvalidXml(
                        "character data before the stream header".into(),
                    ));
                }
                Event::DocType(_) => return Err(ReadFault::Doctype),
                Event::PI(_) => return Err(ReadFault::ProcessingInstruction),
                Event::End(_) => {
                    return Err(ReadFault::InvalidXml(
                        "end tag before the stream header".into(),
                    ));
                }
                Event::Eof => return Err(eof(exhausted(&xml))),
                Event::Start(e) | Event::Empty(e)
                    if !(is_bound(&res, NS_STREAMS) && e.local_name().as_ref() == "stream") =>
                {
                    return Err(ReadFault::NotStream(expanded_name(&res, &e)?));
                }
                Event::Empty(_) => return Err(ReadFault::StreamClosed),
                Event::Start(e) => break e.into_owned(),
            }
            seen_anything = true;
        };
        drop(xml);
        let mut out = StreamHeader::default();
        for attr in header.attributes() {
            let attr = attr.map_err(|e| ReadFault::InvalidXml(e.to_string()))?;
            let value = attr
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| ReadFault::InvalidXml(e.to_string()))?
                .into_owned();
            match attr.key.as_ref() {
                "version" => out.version = Some(value),
                "id" => out.id = Some(value),
                "from" => out.from = Some(value),
                "to" => out.to = Some(value),
                "xmlns" => out.content_ns = Some(value),
                "xmlns:db" => out.declares_dialback = value == NS_DIALBACK,
                _ => {}
            }
        }
        self.header = Some(header);
        Ok(out)
    }

    /// Reads one whole top-level child of the stream (a stanza, features,
    /// `<proceed/>`, `<stream:error/>`, …) with resolved namespaces
    /// (RFC 6120 §4.1). Whitespace and comments between elements are skipped.
    pub async fn read_element(&mut self) -> Result<Element, ReadFault> {
        let max_depth = self.limits.max_depth;
        let mut xml = new_parser(&mut self.io);
        let header_name = match &self.header {
            Some(h) => {
                xml.resolver_mut()
                    .push(h)
                    .map_err(|e| ReadFault::InvalidXml(e.to_string()))?;
                Some(h.name().as_ref().to_owned())
            }
            None => None,
        };
        // Open elements, innermost last. Its length is the current depth.
        let mut stack: Vec<Element> = Vec::new();
        loop {
            self.buf.clear();
            let (res, ev) = match xml.read_resolved_event_into_async(&mut self.buf).await {
                Ok(x) => x,
                Err(e) => return Err(map_error(&e, exhausted(&xml))),
            };
            let done = match ev {
                Event::Start(e) => {
                    if stack.len() >= max_depth {
                        return Err(ReadFault::DepthLimit);
                    }
                    stack.push(build_element(&res, &e)?);
                    None
                }
                Event::Empty(e) => {
                    if stack.len() >= max_depth {
                        return Err(ReadFault::DepthLimit);
                    }
                    Some(build_element(&res, &e)?)
                }
                Event::End(e) => match stack.pop() {
                    Some(el) => Some(el),
                    None if header_name.as_deref() == Some(e.name().as_ref()) => {
                        return Err(ReadFault::StreamClosed);
                    }
                    None => {
                        return Err(ReadFault::InvalidXml(format!(
                            "unexpected end tag </{}>",
                            e.name().as_ref()
                        )));
                    }
                },
                Event::Text(t) => {
                    match stack.last_mut() {
                        Some(top) => top.text.push_str(&t.xml10_content()),
                        // Whitespace keepalives (RFC 6120 §4.6.1) and other
                        // character data between stanzas are ignored.
                        None => {}
                    }
                    None
                }
                Event::CData(t) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&t.xml10_content());
                    }
                    None
                }
                Event::GeneralRef(r) => {
                    let ch = resolve_reference(&r)?;
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&ch);
                    }
                    None
                }
                Event::Comment(_) => None,
                Event::DocType(_) => return Err(ReadFault::Doctype),
                Event::PI(_) => return Err(ReadFault::ProcessingInstruction),
                Event::Decl(_) => {
                    return Err(ReadFault::InvalidXml(
                        "XML declaration inside the stream".into(),
                    ));
                }
                Event::Eof => return Err(eof(exhausted(&xml))),
            };
            if let Some(el) = done {
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
        }
    }

    /// Starts a new protocol phase: the peer gets a fresh byte budget
    /// (bytes already buffered do not count against it).
    pub fn new_phase(&mut self) {
        let b = self.io.get_mut();
        b.remaining = self.limits.max_phase_bytes;
        b.exhausted = false;
    }

    /// Stream restart (RFC 6120 §4.3.3, after STARTTLS on the same transport
    /// or after SASL): the next [`Self::read_header`] expects a fresh stream
    /// header. Already-buffered bytes are kept.
    pub fn restart(&mut self) {
        self.header = None;
    }

    /// Writes `bytes` to the transport and flushes.
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let io = &mut self.io.get_mut().io;
        io.write_all(bytes).await?;
        io.flush().await
    }

    /// The transport, for direct use. Reading from it directly bypasses the
    /// buffer and the limits.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io.get_mut().io
    }

    /// Gives back the transport and the number of bytes buffered but not yet
    /// consumed. After `<proceed/>` (RFC 6120 §5.4.3.3) a non-zero count
    /// means the peer sent plaintext behind it: an injection attempt; the
    /// caller decides what to do.
    pub fn into_inner(self) -> (S, usize) {
        let pending = self.io.buffer().len();
        (self.io.into_inner().io, pending)
    }

    /// Total bytes read from the transport so far, in all phases.
    pub fn bytes_read(&self) -> u64 {
        self.io.get_ref().total
    }
}

/// Whether the byte budget ran out (the parser saw a budget end-of-file).
fn exhausted<S: AsyncRead + Unpin>(xml: &Parser<'_, S>) -> bool {
    xml.get_ref().get_ref().exhausted
}

/// A strict parser for one read over the buffered transport.
fn new_parser<S>(io: &mut BufReader<Budget<S>>) -> Parser<'_, S> {
    let mut xml = NsReader::from_reader(io);
    let cfg = xml.config_mut();
    // Strictness: well-formedness checks on, nothing that hides input.
    cfg.enable_all_checks(true); // end names + comment syntax
    cfg.allow_dangling_amp = false;
    cfg.expand_empty_elements = false;
    cfg.trim_text(false);
    // The parser is fresh per read, so the stream's own end tag arrives
    // with no open element; it is matched against the header here.
    cfg.allow_unmatched_ends = true;
    xml
}

fn eof(exhausted: bool) -> ReadFault {
    if exhausted {
        ReadFault::ByteLimit
    } else {
        ReadFault::Eof
    }
}

/// Maps a parser error; `exhausted` means the input was cut by the budget.
fn map_error(e: &quick_xml::Error, exhausted: bool) -> ReadFault {
    use quick_xml::errors::{Error, IllFormedError, SyntaxError};
    if exhausted {
        return ReadFault::ByteLimit;
    }
    match e {
        Error::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof => ReadFault::Eof,
        Error::Io(io) => ReadFault::Io(io.to_string()),
        // Every `Unclosed*` syntax error means the input ended inside markup.
        Error::Syntax(
            SyntaxError::UnclosedPI
            | SyntaxError::UnclosedXmlDecl
            | SyntaxError::UnclosedComment
            | SyntaxError::UnclosedDoctype
            | SyntaxError::UnclosedCData
            | SyntaxError::UnclosedTag
            | SyntaxError::UnclosedSingleQuotedAttributeValue
            | SyntaxError::UnclosedDoubleQuotedAttributeValue,
        ) => ReadFault::Eof,
        Error::IllFormed(IllFormedError::MissingEndTag(_)) => ReadFault::Eof,
        other => ReadFault::InvalidXml(other.to_string()),
    }
}

fn is_xml_whitespace(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn is_bound(res: &ResolveResult<'_>, ns: &str) -> bool {
    matches!(res, ResolveResult::Bound(n) if n.as_ref() == ns)
}

/// The resolved namespace of an element ("" when unbound); an undeclared
/// prefix is a namespace well-formedness error.
fn resolved_ns(res: &ResolveResult<'_>) -> Result<String, ReadFault> {
    match res {
        ResolveResult::Bound(n) => Ok(n.as_ref().to_owned()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(p) => Err(ReadFault::InvalidXml(format!(
            "undeclared namespace prefix '{p}'"
        ))),
    }
}

fn expanded_name(res: &ResolveResult<'_>, e: &BytesStart<'_>) -> Result<String, ReadFault> {
    Ok(format!(
        "{{{}}}{}",
        resolved_ns(res)?,
        e.local_name().as_ref()
    ))
}

/// Builds an element (without children or text) from an open tag.
fn build_element(res: &ResolveResult<'_>, e: &BytesStart<'_>) -> Result<Element, ReadFault> {
    let mut el = Element {
        ns: resolved_ns(res)?,
        name: e.local_name().as_ref().to_owned(),
        ..Element::default()
    };
    for attr in e.attributes() {
        let attr = attr.map_err(|e| ReadFault::InvalidXml(e.to_string()))?;
        if attr.key.as_namespace_binding().is_some() {
            continue;
        }
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| ReadFault::InvalidXml(e.to_string()))?;
        el.attrs
            .push((attr.key.as_ref().to_owned(), value.into_owned()));
    }
    Ok(el)
}

/// Resolves `&name;` in character data: the five predefined entities and
/// character references to legal XML characters only (RFC 6120 §11.1: no
/// other entity references; XML 1.0 §2.2 `Char`).
fn resolve_reference(r: &BytesRef<'_>) -> Result<String, ReadFault> {
    if let Some(s) = quick_xml::escape::resolve_predefined_entity(r) {
        return Ok(s.to_owned());
    }
    match r.resolve_char_ref() {
        Ok(Some(c)) if is_xml_char(c) => Ok(c.to_string()),
        Ok(Some(c)) => Err(ReadFault::InvalidXml(format!(
            "character reference to illegal character U+{:04X}",
            u32::from(c)
        ))),
        Ok(None) => Err(ReadFault::InvalidXml(format!(
            "reference to undefined entity &{};",
            &**r
        ))),
        Err(e) => Err(ReadFault::InvalidXml(e.to_string())),
    }
}

/// XML 1.0 §2.2 `Char`.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}
