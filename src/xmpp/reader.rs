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
//! Well-formedness beyond what the tokenizer checks, so that nothing a peer
//! sends can carry a character the report store refuses:
//! - every character of text, CDATA, comments, attribute values (after
//!   reference expansion) and namespace names is an XML 1.0 §2.2 `Char`
//!   (so U+0000 is refused, raw or as `&#0;`);
//! - element and attribute names are QNames (XML 1.0 §2.3 `Name`,
//!   Namespaces in XML 1.0 §3 `QName`): never empty, at most one colon;
//! - no raw `<` in an attribute value (XML 1.0 §3.1 `AttValue`);
//! - namespaces are resolved here (Namespaces in XML 1.0 §3, §6) from the
//!   *normalised* attribute value, so references in a namespace name are
//!   decoded (`urn:ietf:params:xml:ns:xmpp&#45;tls` is the TLS namespace);
//!   the reserved `xmlns` prefix is never declared nor used on an element,
//!   `xml` is bound only to its own namespace, and no other prefix (nor the
//!   default) to the `xml`/`xmlns` namespace names.
//!
//! Fault texts never contain U+0000: peer bytes quoted in a message are
//! escaped.
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
use quick_xml::{Reader, XmlVersion};
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
    /// An I/O error of kind `UnexpectedEof` (e.g. TLS closed without
    /// `close_notify`) is reported as this too.
    #[error("connection closed")]
    Eof,
    /// The peer closed its stream with `</stream:stream>` (RFC 6120 §4.4).
    #[error("peer closed the stream")]
    StreamClosed,
    /// The first element was not `{http://etherx.jabber.org/streams}stream`
    /// (RFC 6120 §4.8.1); the text is its `{ns}name`.
    #[error("not an XMPP stream: first element is {0}")]
    NotStream(String),
    /// An I/O error from the transport; the text is the error's message.
    #[error("I/O error: {0}")]
    Io(String),
    /// The peer's TLS layer sent a fatal alert (RFC 8446 §6.2), surfacing
    /// on read: in TLS 1.3 a server's rejection of our client certificate
    /// arrives after the handshake completed on our side. Typed, so no
    /// caller has to search the message for "alert".
    #[error("TLS alert: {0}")]
    TlsAlert(String),
}

/// The fault an I/O error from the transport stands for: a TLS alert the
/// peer sent ([`ReadFault::TlsAlert`], from the `rustls::Error` inside
/// the `io::Error` tokio-rustls returns), else [`ReadFault::Io`].
pub fn io_fault(e: &io::Error) -> ReadFault {
    let alert = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::AlertReceived(_)));
    if alert {
        ReadFault::TlsAlert(e.to_string())
    } else {
        ReadFault::Io(e.to_string())
    }
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
    /// The current stream header: its qualified name (to recognise its end
    /// tag) and the namespace scope it opened, which is in scope for every
    /// top-level element.
    header: Option<(String, Scope)>,
}

/// A parser over the buffered transport, borrowed for one read.
type Parser<'a, S> = Reader<&'a mut BufReader<Budget<S>>>;

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
        let mut scope = Scope::default();
        let (header, el) = loop {
            self.buf.clear();
            let ev = match xml.read_event_into_async(&mut self.buf).await {
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
                Event::Comment(c) => check_chars(&c.xml10_content(), "a comment")?,
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
                    if !{
                        let el = scope.open(&e)?;
                        scope.close();
                        el.is(NS_STREAMS, "stream")
                    } =>
                {
                    let el = scope.open(&e)?;
                    return Err(ReadFault::NotStream(el.expanded_name()));
                }
                Event::Empty(_) => return Err(ReadFault::StreamClosed),
                Event::Start(e) => {
                    let el = scope.open(&e)?;
                    break (e.into_owned(), el);
                }
            }
            seen_anything = true;
        };
        drop(xml);
        let mut out = StreamHeader::default();
        for (key, value) in el.attrs {
            match key.as_str() {
                "version" => out.version = Some(value),
                "id" => out.id = Some(value),
                "from" => out.from = Some(value),
                "to" => out.to = Some(value),
                _ => {}
            }
        }
        out.content_ns = scope.declared("").map(str::to_owned);
        out.declares_dialback = scope.declared("db") == Some(NS_DIALBACK);
        self.header = Some((header.name().as_ref().to_owned(), scope));
        Ok(out)
    }

    /// Reads one whole top-level child of the stream (a stanza, features,
    /// `<proceed/>`, `<stream:error/>`, …) with resolved namespaces
    /// (RFC 6120 §4.1). Whitespace and comments between elements are skipped.
    pub async fn read_element(&mut self) -> Result<Element, ReadFault> {
        let max_depth = self.limits.max_depth;
        let mut xml = new_parser(&mut self.io);
        let (header_name, mut scope) = match &self.header {
            Some((name, scope)) => (Some(name.as_str()), scope.clone()),
            None => (None, Scope::default()),
        };
        // Open elements, innermost last. Its length is the current depth.
        let mut stack: Vec<Element> = Vec::new();
        loop {
            self.buf.clear();
            let ev = match xml.read_event_into_async(&mut self.buf).await {
                Ok(x) => x,
                Err(e) => return Err(map_error(&e, exhausted(&xml))),
            };
            let done = match ev {
                Event::Start(e) => {
                    if stack.len() >= max_depth {
                        return Err(ReadFault::DepthLimit);
                    }
                    stack.push(scope.open(&e)?);
                    None
                }
                Event::Empty(e) => {
                    if stack.len() >= max_depth {
                        return Err(ReadFault::DepthLimit);
                    }
                    let el = scope.open(&e)?;
                    scope.close();
                    Some(el)
                }
                Event::End(e) => match stack.pop() {
                    Some(el) => {
                        scope.close();
                        Some(el)
                    }
                    None if header_name == Some(e.name().as_ref()) => {
                        return Err(ReadFault::StreamClosed);
                    }
                    None => {
                        return Err(invalid(format_args!(
                            "unexpected end tag </{}>",
                            e.name().as_ref()
                        )));
                    }
                },
                Event::Text(t) => {
                    // Whitespace keepalives (RFC 6120 §4.6.1) and other
                    // character data between stanzas are ignored, but must
                    // still be XML characters.
                    let text = t.xml10_content();
                    check_chars(&text, "character data")?;
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&text);
                    }
                    None
                }
                Event::CData(t) => {
                    let text = t.xml10_content();
                    check_chars(&text, "a CDATA section")?;
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&text);
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
                Event::Comment(c) => {
                    check_chars(&c.xml10_content(), "a comment")?;
                    None
                }
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
    let mut xml = Reader::from_reader(io);
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
        Error::Io(io) => io_fault(io),
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
        other => invalid(other),
    }
}

fn is_xml_whitespace(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// `http://www.w3.org/XML/1998/namespace`, bound to the `xml` prefix by
/// definition (Namespaces in XML 1.0 §3).
const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";
/// `http://www.w3.org/2000/xmlns/`, bound to the `xmlns` prefix by
/// definition (Namespaces in XML 1.0 §3).
const NS_XMLNS: &str = "http://www.w3.org/2000/xmlns/";

/// An [`ReadFault::InvalidXml`] whose text quotes peer bytes safely: any
/// character that is not an XML `Char` (U+0000 above all) is written as a
/// `\u{…}` escape, so a fault can always be stored.
fn invalid(msg: impl std::fmt::Display) -> ReadFault {
    let msg = msg.to_string();
    if msg.chars().all(is_xml_char) {
        return ReadFault::InvalidXml(msg);
    }
    let mut out = String::with_capacity(msg.len() + 8);
    for c in msg.chars() {
        if is_xml_char(c) {
            out.push(c);
        } else {
            out.extend(c.escape_unicode());
        }
    }
    ReadFault::InvalidXml(out)
}

/// Refuses any character outside XML 1.0 §2.2 `Char` in `s` (`what` names
/// where it was found).
fn check_chars(s: &str, what: &str) -> Result<(), ReadFault> {
    match s.chars().find(|&c| !is_xml_char(c)) {
        None => Ok(()),
        Some(c) => Err(ReadFault::InvalidXml(format!(
            "illegal character U+{:04X} in {what} (XML 1.0 §2.2 Char)",
            u32::from(c)
        ))),
    }
}

/// XML 1.0 (5th ed.) §2.3 `NameStartChar`, without `:` (Namespaces in
/// XML 1.0 §3 `NCName`).
fn is_name_start_char(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

/// XML 1.0 (5th ed.) §2.3 `NameChar`, without `:`.
fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// Namespaces in XML 1.0 §3 `NCName`: a non-empty XML name without colons.
fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(is_name_start_char) && chars.all(is_name_char)
}

/// Checks that an element or attribute name is a `QName` (Namespaces in
/// XML 1.0 §3; XML 1.0 §2.3 `Name`) and splits it into (prefix, local).
fn check_qname(s: &str) -> Result<(Option<&str>, &str), ReadFault> {
    let bad = || {
        invalid(format_args!(
            "{s:?} is not a valid XML name (XML 1.0 §2.3 Name, Namespaces in XML 1.0 §3 QName)"
        ))
    };
    match s.split_once(':') {
        None if is_ncname(s) => Ok((None, s)),
        Some((p, l)) if is_ncname(p) && is_ncname(l) => Ok((Some(p), l)),
        _ => Err(bad()),
    }
}

/// The namespace bindings in scope (Namespaces in XML 1.0 §6), resolved
/// here rather than by the tokenizer so that namespace names are the
/// *normalised* attribute values (references decoded, XML 1.0 §3.3.3).
#[derive(Debug, Clone, Default)]
struct Scope {
    /// (prefix, namespace name), outermost first; prefix "" is the default
    /// namespace, a default of "" undeclares it.
    bindings: Vec<(String, String)>,
    /// `bindings.len()` before each open element, innermost last.
    marks: Vec<usize>,
}

impl Scope {
    /// Opens an element's scope: checks its names and attribute values,
    /// declares its namespaces and resolves its name. The element comes back
    /// without children or text; namespace declarations are not in `attrs`.
    fn open(&mut self, e: &BytesStart<'_>) -> Result<Element, ReadFault> {
        let (prefix, local) = check_qname(e.name().into_inner())?;
        let mut attrs = Vec::new();
        let mut decls = Vec::new();
        for attr in e.attributes() {
            let attr = attr.map_err(invalid)?;
            let (a_prefix, a_local) = check_qname(attr.key.into_inner())?;
            if attr.value.contains('<') {
                return Err(invalid(format_args!(
                    "'<' in the value of attribute '{}' (XML 1.0 §3.1 AttValue)",
                    attr.key.as_ref()
                )));
            }
            let value = attr
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(invalid)?
                .into_owned();
            check_chars(&value, "an attribute value")?;
            match (a_prefix, a_local) {
                (None, "xmlns") => decls.push((String::new(), value)),
                (Some("xmlns"), p) => decls.push((p.to_owned(), value)),
                _ => attrs.push((a_prefix, a_local, value)),
            }
        }
        self.marks.push(self.bindings.len());
        for (p, ns) in decls {
            self.declare(p, ns)?;
        }
        let ns = match prefix {
            None => self.declared("").unwrap_or_default().to_owned(),
            Some("xmlns") => {
                return Err(ReadFault::InvalidXml(
                    "element name with the reserved prefix 'xmlns' \
                     (Namespaces in XML 1.0 §3)"
                        .into(),
                ));
            }
            Some(p) => self.prefix_ns(p)?.to_owned(),
        };
        let mut el = Element {
            ns,
            name: local.to_owned(),
            ..Element::default()
        };
        for (a_prefix, a_local, value) in attrs {
            let key = match a_prefix {
                Some(p) => {
                    self.prefix_ns(p)?;
                    format!("{p}:{a_local}")
                }
                None => a_local.to_owned(),
            };
            el.attrs.push((key, value));
        }
        Ok(el)
    }

    /// Closes the innermost open element's scope.
    fn close(&mut self) {
        if let Some(mark) = self.marks.pop() {
            self.bindings.truncate(mark);
        }
    }

    /// One namespace declaration (Namespaces in XML 1.0 §3 "Reserved
    /// Prefixes and Namespace Names"; a prefixed declaration must not be
    /// empty in 1.0).
    fn declare(&mut self, prefix: String, ns: String) -> Result<(), ReadFault> {
        let fault = |why: &str| {
            Err(invalid(format_args!(
                "namespace declaration of '{prefix}' as {ns:?}: {why} (Namespaces in XML 1.0 §3)"
            )))
        };
        match prefix.as_str() {
            "xmlns" => return fault("the prefix 'xmlns' must not be declared"),
            "xml" if ns == NS_XML => return Ok(()),
            "xml" => return fault("the prefix 'xml' is bound to its own namespace only"),
            _ if ns == NS_XML || ns == NS_XMLNS => {
                return fault("reserved namespace name");
            }
            "" => {}
            _ if ns.is_empty() => return fault("a prefix cannot be undeclared"),
            _ => {}
        }
        self.bindings.push((prefix, ns));
        Ok(())
    }

    /// The namespace name bound to `prefix` ("" = default) as declared in
    /// scope, if any.
    fn declared(&self, prefix: &str) -> Option<&str> {
        self.bindings
            .iter()
            .rev()
            .find(|(p, _)| p == prefix)
            .map(|(_, n)| n.as_str())
    }

    /// The namespace of a (non-default) prefix; an undeclared prefix is a
    /// namespace well-formedness error.
    fn prefix_ns(&self, prefix: &str) -> Result<&str, ReadFault> {
        if prefix == "xml" {
            return Ok(NS_XML);
        }
        self.declared(prefix)
            .ok_or_else(|| invalid(format_args!("undeclared namespace prefix '{prefix}'")))
    }
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
        Ok(None) => Err(invalid(format_args!(
            "reference to undefined entity &{};",
            &**r
        ))),
        Err(e) => Err(invalid(e)),
    }
}

/// XML 1.0 §2.2 `Char`.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Parses one element given as text, in the `jabber:server` default
/// namespace with the `db:` prefix bound (XEP-0220 §2.1), through the very
/// same reader and limits as the wire. Used by tests and fixtures.
pub fn parse_fragment(xml: &str) -> Result<Element, ReadFault> {
    use tokio::io::AsyncWriteExt;
    let doc = format!(
        "<stream:stream xmlns='{}' xmlns:stream='{}' xmlns:db='{}'>{xml}",
        crate::xmpp::NS_SERVER,
        NS_STREAMS,
        NS_DIALBACK
    );
    let (mut tx, rx) = tokio::io::duplex(doc.len() + 1);
    futures::executor::block_on(async move {
        tx.write_all(doc.as_bytes())
            .await
            .map_err(|e| ReadFault::Io(e.to_string()))?;
        drop(tx);
        let mut rd = StreamReader::new(rx, ReaderLimits::default());
        rd.read_header().await?;
        rd.read_element().await
    })
}

/// Everything [`read_all`] got from one byte string: the stream header (if
/// it was read), the whole top-level elements that followed, and the fault
/// that ended reading (at the latest [`ReadFault::Eof`] at the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// The stream header (RFC 6120 §4.7), `None` if reading it failed.
    pub header: Option<StreamHeader>,
    /// Top-level children of the stream, in order (RFC 6120 §4.1).
    pub elements: Vec<Element>,
    /// Why reading stopped.
    pub fault: ReadFault,
}

/// Reads a whole peer transcript from memory through the very same reader
/// and limits as the wire: the header, then elements until the first
/// fault. Pure (no sockets); used by the fuzz targets and the regression
/// tests.
pub fn read_all(bytes: &[u8], limits: ReaderLimits) -> Transcript {
    futures::executor::block_on(async move {
        let mut rd = StreamReader::new(tokio::io::join(bytes, tokio::io::sink()), limits);
        let mut out = Transcript {
            header: None,
            elements: Vec::new(),
            fault: ReadFault::Eof,
        };
        match rd.read_header().await {
            Ok(h) => out.header = Some(h),
            Err(e) => {
                out.fault = e;
                return out;
            }
        }
        loop {
            match rd.read_element().await {
                Ok(el) => out.elements.push(el),
                Err(e) => {
                    out.fault = e;
                    return out;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::features::{self, StarttlsOffer};
    use crate::xmpp::stream::{self, HeaderSpec};
    use crate::xmpp::{NS_CLIENT, NS_SERVER, NS_TLS, Service};

    /// A transport that yields its input in 1-, 2- and 3-byte chunks (or in
    /// one chunk), then either EOF or an I/O error; writes are recorded.
    struct Chunked {
        data: Vec<u8>,
        pos: usize,
        step: usize,
        whole: bool,
        error_at_end: Option<(io::ErrorKind, String)>,
        written: Vec<u8>,
    }

    impl Chunked {
        fn new(data: &[u8]) -> Self {
            Self {
                data: data.to_vec(),
                pos: 0,
                step: 0,
                whole: false,
                error_at_end: None,
                written: Vec::new(),
            }
        }
        fn whole(data: &[u8]) -> Self {
            Self {
                whole: true,
                ..Self::new(data)
            }
        }
    }

    impl AsyncRead for Chunked {
        fn poll_read(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            let left = this.data.len() - this.pos;
            if left == 0 {
                if let Some((kind, msg)) = this.error_at_end.take() {
                    return Poll::Ready(Err(io::Error::new(kind, msg)));
                }
                return Poll::Ready(Ok(()));
            }
            let want = if this.whole { left } else { 1 + this.step % 3 };
            this.step += 1;
            let n = want.min(left).min(buf.remaining());
            buf.put_slice(&this.data[this.pos..this.pos + n]);
            this.pos += n;
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Chunked {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().written.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    const LIMITS: ReaderLimits = ReaderLimits {
        max_phase_bytes: 64 * 1024,
        max_depth: 16,
    };

    const C2S_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' from='example.net' id='abc&amp;1' \
        version='1.0' xml:lang='en'>";

    fn chunked(input: &str) -> StreamReader<Chunked> {
        StreamReader::new(Chunked::new(input.as_bytes()), LIMITS)
    }

    /// Header, then the first element.
    async fn first_element(input: &str) -> Result<Element, ReadFault> {
        let mut r = chunked(input);
        r.read_header().await?;
        r.read_element().await
    }

    #[tokio::test]
    async fn c2s_header_and_features_in_small_chunks() {
        let input = format!(
            "{C2S_HEADER}\n  <stream:features>\
             <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>\
             <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
               <mechanism> PLAIN </mechanism><mechanism>SCRAM-SHA-1</mechanism></mechanisms>\
             <c xmlns='http://jabber.org/protocol/caps' hash='sha-1' \
               node='https://prosody.im' ver='abc='/>\
             </stream:features>"
        );
        let mut r = chunked(&input);
        let h = r.read_header().await.expect("header");
        assert_eq!(h.version.as_deref(), Some("1.0"));
        assert_eq!(h.from.as_deref(), Some("example.net"));
        assert_eq!(h.id.as_deref(), Some("abc&1"));
        assert_eq!(h.to, None);
        assert_eq!(h.content_ns.as_deref(), Some(NS_CLIENT));
        assert!(!h.declares_dialback);
        let el = r.read_element().await.expect("features");
        assert!(features::is_features(&el));
        let f = features::parse(&el);
        assert_eq!(f.starttls, StarttlsOffer::Required);
        assert_eq!(f.sasl_mechanisms, ["PLAIN", "SCRAM-SHA-1"]);
        let caps = f.caps.expect("caps");
        assert_eq!(caps.node.as_deref(), Some("https://prosody.im"));
        assert_eq!(caps.ver.as_deref(), Some("abc="));
        assert_eq!(caps.hash.as_deref(), Some("sha-1"));
        assert!(!f.dialback && !f.bidi && !f.iq_auth);
        assert_eq!(
            f.raw,
            [
                "{urn:ietf:params:xml:ns:xmpp-tls}starttls",
                "{urn:ietf:params:xml:ns:xmpp-sasl}mechanisms",
                "{http://jabber.org/protocol/caps}c",
            ]
        );
        assert_eq!(r.bytes_read(), input.len() as u64);
    }

    #[tokio::test]
    async fn s2s_features_dialback_bidi_and_db_prefix_in_scope() {
        let input = "<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' \
            xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>\
            <stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>\
            <bidi xmlns='urn:xmpp:features:bidi'/>\
            <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>\
            <db:result from='a.example' to='b.example'>key</db:result>";
        let mut r = chunked(input);
        let h = r.read_header().await.expect("header");
        assert_eq!(h.content_ns.as_deref(), Some(NS_SERVER));
        assert!(h.declares_dialback);
        let f = features::parse(&r.read_element().await.expect("features"));
        assert!(f.dialback);
        assert!(f.bidi);
        assert_eq!(f.starttls, StarttlsOffer::Optional);
        let db = r.read_element().await.expect("db:result");
        assert!(db.is(NS_DIALBACK, "result"));
        assert_eq!(db.attr("from"), Some("a.example"));
        assert_eq!(db.text, "key");
    }

    #[tokio::test]
    async fn missing_version_is_none() {
        let mut r = chunked(
            "<stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' id='x'>",
        );
        let h = r.read_header().await.expect("header");
        assert_eq!(h.version, None);
        assert_eq!(h.id.as_deref(), Some("x"));
    }

    #[tokio::test]
    async fn stream_error_host_unknown_with_text() {
        let el = first_element(&format!(
            "{C2S_HEADER}<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>no such &lt;host&gt;</text>\
             </stream:error>"
        ))
        .await
        .expect("error element");
        assert!(stream::is_error(&el));
        let e = stream::parse_error(&el);
        assert_eq!(e.condition, "host-unknown");
        assert_eq!(e.text.as_deref(), Some("no such <host>"));
        assert_eq!(e.see_other_host, None);
    }

    #[tokio::test]
    async fn stream_error_see_other_host() {
        let el = first_element(&format!(
            "{C2S_HEADER}<stream:error><see-other-host \
             xmlns='urn:ietf:params:xml:ns:xmpp-streams'>[2001:db8::1]:5222</see-other-host>\
             </stream:error>"
        ))
        .await
        .expect("error element");
        let e = stream::parse_error(&el);
        assert_eq!(e.condition, "see-other-host");
        assert_eq!(e.see_other_host.as_deref(), Some("[2001:db8::1]:5222"));
        assert_eq!(e.text, None);
    }

    #[tokio::test]
    async fn error_xml_round_trips() {
        let el = first_element(&format!(
            "{C2S_HEADER}{}",
            stream::error_xml("policy-violation", Some("a < b & 'c'"))
        ))
        .await
        .expect("error element");
        let e = stream::parse_error(&el);
        assert_eq!(e.condition, "policy-violation");
        assert_eq!(e.text.as_deref(), Some("a < b & 'c'"));
    }

    #[tokio::test]
    async fn byte_limit_on_huge_features() {
        let limits = ReaderLimits {
            max_phase_bytes: 1024,
            max_depth: 16,
        };
        let mut huge = format!("{C2S_HEADER}<stream:features>");
        for _ in 0..200 {
            huge.push_str("<x xmlns='urn:example:x'/>");
        }
        huge.push_str("</stream:features>");
        let mut r = StreamReader::new(Chunked::whole(huge.as_bytes()), limits);
        r.read_header().await.expect("header");
        assert_eq!(r.read_element().await, Err(ReadFault::ByteLimit));
        assert_eq!(r.bytes_read(), 1024);

        // One giant attribute value inside a tag: same outcome, not Eof.
        let giant = format!("{C2S_HEADER}<a b='{}'/>", "x".repeat(5000));
        let mut r = StreamReader::new(Chunked::new(giant.as_bytes()), limits);
        r.read_header().await.expect("header");
        assert_eq!(r.read_element().await, Err(ReadFault::ByteLimit));
    }

    #[tokio::test]
    async fn new_phase_resets_the_budget() {
        let limits = ReaderLimits {
            max_phase_bytes: 200,
            max_depth: 16,
        };
        let body = format!("<a xmlns='urn:x'>{}</a>", "y".repeat(150));
        let input = format!("{body}{body}{body}");
        let mut r = StreamReader::new(Chunked::new(input.as_bytes()), limits);
        // Byte-exact chunks never read ahead more than 3 bytes, so each
        // phase pays for roughly one element.
        for _ in 0..3 {
            r.new_phase();
            assert_eq!(r.read_element().await.expect("element").text.len(), 150);
        }
        // Without resets the same input hits the limit.
        let mut r = StreamReader::new(Chunked::new(input.as_bytes()), limits);
        r.read_element().await.expect("first");
        assert_eq!(r.read_element().await, Err(ReadFault::ByteLimit));
    }

    fn nested(depth: usize) -> String {
        let mut s = String::from(C2S_HEADER);
        for _ in 0..depth {
            s.push_str("<n xmlns='urn:x'>");
        }
        for _ in 0..depth {
            s.push_str("</n>");
        }
        s
    }

    #[tokio::test]
    async fn depth_limit() {
        assert_eq!(first_element(&nested(17)).await, Err(ReadFault::DepthLimit));
        let mut el = first_element(&nested(16))
            .await
            .expect("16 deep is allowed");
        let mut depth = 1;
        while let Some(c) = el.children.pop() {
            el = c;
            depth += 1;
        }
        assert_eq!(depth, 16);
        // An empty element one level too deep counts too.
        let mut s = String::from(C2S_HEADER);
        s.push_str(&"<n xmlns='urn:x'>".repeat(16));
        s.push_str("<e/>");
        assert_eq!(first_element(&s).await, Err(ReadFault::DepthLimit));
    }

    #[tokio::test]
    async fn doctype_with_entity_refused() {
        let before = "<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY xxe SYSTEM \
            'file:///etc/passwd'><!ENTITY lol 'lol'>]><stream:stream \
            xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
        assert_eq!(chunked(before).read_header().await, Err(ReadFault::Doctype));
        let inside = format!("{C2S_HEADER}<!DOCTYPE x [<!ENTITY a 'b'>]><a/>");
        assert_eq!(first_element(&inside).await, Err(ReadFault::Doctype));
    }

    #[tokio::test]
    async fn processing_instruction_refused() {
        let before = "<?xml version='1.0'?><?xml-stylesheet href='x'?><stream:stream \
            xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
        assert_eq!(
            chunked(before).read_header().await,
            Err(ReadFault::ProcessingInstruction)
        );
        let inside = format!("{C2S_HEADER}<a xmlns='urn:x'><?foo bar?></a>");
        assert_eq!(
            first_element(&inside).await,
            Err(ReadFault::ProcessingInstruction)
        );
    }

    #[tokio::test]
    async fn undefined_entity_is_invalid_xml() {
        let text = format!("{C2S_HEADER}<a xmlns='urn:x'>&xxe;</a>");
        assert!(matches!(
            first_element(&text).await,
            Err(ReadFault::InvalidXml(m)) if m.contains("xxe")
        ));
        let attr = format!("{C2S_HEADER}<a xmlns='urn:x' b='&xxe;'/>");
        assert!(matches!(
            first_element(&attr).await,
            Err(ReadFault::InvalidXml(_))
        ));
        let nul = format!("{C2S_HEADER}<a xmlns='urn:x'>&#0;</a>");
        assert!(matches!(
            first_element(&nul).await,
            Err(ReadFault::InvalidXml(_))
        ));
    }

    #[tokio::test]
    async fn predefined_entities_and_char_refs_resolve() {
        let el = first_element(&format!(
            "{C2S_HEADER}<a xmlns='urn:x' v='&lt;&#x41;&quot;'>&amp;&lt;&gt;&apos;&quot;&#65;&#x1F600;<![CDATA[<x>]]></a>"
        ))
        .await
        .expect("element");
        assert_eq!(el.text, "&<>'\"A\u{1F600}<x>");
        assert_eq!(el.attr("v"), Some("<A\""));
    }

    #[tokio::test]
    async fn invalid_xml_is_reported() {
        for bad in [
            "<a xmlns='urn:x'></b>",
            "<a xmlns='urn:x'><b></a></b>",
            "<p:a/>",
            "<a x='1' x='2'/>",
            "<a xmlns='urn:x'>&amp</a>",
            "</wrong>",
        ] {
            let got = first_element(&format!("{C2S_HEADER}{bad}")).await;
            assert!(
                matches!(got, Err(ReadFault::InvalidXml(_))),
                "{bad}: {got:?}"
            );
        }
        let bad_utf8 = [C2S_HEADER.as_bytes(), b"<a xmlns='urn:x'>\xff\xfe</a>"].concat();
        let mut r = StreamReader::new(Chunked::new(&bad_utf8), LIMITS);
        r.read_header().await.expect("header");
        assert!(matches!(
            r.read_element().await,
            Err(ReadFault::InvalidXml(_))
        ));
    }

    #[tokio::test]
    async fn not_a_stream() {
        assert_eq!(
            chunked("<html xmlns='http://www.w3.org/1999/xhtml'>")
                .read_header()
                .await,
            Err(ReadFault::NotStream(
                "{http://www.w3.org/1999/xhtml}html".into()
            ))
        );
        // Right local name, wrong namespace.
        assert_eq!(
            chunked("<stream:stream xmlns:stream='urn:nope'>")
                .read_header()
                .await,
            Err(ReadFault::NotStream("{urn:nope}stream".into()))
        );
        assert!(matches!(
            chunked("HTTP/1.1 400 Bad Request\r\n\r\n")
                .read_header()
                .await,
            Err(ReadFault::InvalidXml(_))
        ));
    }

    #[tokio::test]
    async fn eof_mid_element_and_between_elements() {
        assert_eq!(
            first_element(&format!("{C2S_HEADER}<stream:features><starttls xmlns")).await,
            Err(ReadFault::Eof)
        );
        assert_eq!(
            first_element(&format!("{C2S_HEADER}<stream:features><a/>")).await,
            Err(ReadFault::Eof)
        );
        assert_eq!(first_element(C2S_HEADER).await, Err(ReadFault::Eof));
        assert_eq!(
            chunked("<?xml version='1.0'?><stream:str")
                .read_header()
                .await,
            Err(ReadFault::Eof)
        );
        assert_eq!(chunked("").read_header().await, Err(ReadFault::Eof));
    }

    #[tokio::test]
    async fn io_error_text_is_kept() {
        let mut t = Chunked::new(C2S_HEADER.as_bytes());
        t.error_at_end = Some((
            io::ErrorKind::InvalidData,
            "received fatal alert: UnsupportedCertificate".into(),
        ));
        let mut r = StreamReader::new(t, LIMITS);
        r.read_header().await.expect("header");
        assert_eq!(
            r.read_element().await,
            Err(ReadFault::Io(
                "received fatal alert: UnsupportedCertificate".into()
            ))
        );
    }

    #[tokio::test]
    async fn unexpected_eof_io_error_is_eof() {
        let mut t = Chunked::new(format!("{C2S_HEADER}<a xmlns='urn:x'>").as_bytes());
        t.error_at_end = Some((io::ErrorKind::UnexpectedEof, "no close_notify".into()));
        let mut r = StreamReader::new(t, LIMITS);
        r.read_header().await.expect("header");
        assert_eq!(r.read_element().await, Err(ReadFault::Eof));
    }

    #[tokio::test]
    async fn stream_close_is_stream_closed() {
        let input = format!("{C2S_HEADER}<a xmlns='urn:x'/> \n</stream:stream>");
        let mut r = chunked(&input);
        r.read_header().await.expect("header");
        r.read_element().await.expect("a");
        assert_eq!(r.read_element().await, Err(ReadFault::StreamClosed));
        // Self-closing header: opened and closed at once.
        assert_eq!(
            chunked("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>")
                .read_header()
                .await,
            Err(ReadFault::StreamClosed)
        );
    }

    const PROCEED: &str = "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";

    #[tokio::test]
    async fn injection_after_proceed_is_counted_exactly() {
        let injected = "<stream:features>";
        let input = format!("{C2S_HEADER}{PROCEED}{injected}");
        let mut r = StreamReader::new(Chunked::whole(input.as_bytes()), LIMITS);
        r.read_header().await.expect("header");
        assert!(
            r.read_element()
                .await
                .expect("proceed")
                .is(NS_TLS, "proceed")
        );
        let (_, pending) = r.into_inner();
        assert_eq!(pending, injected.len());

        let input = format!("{C2S_HEADER}{PROCEED}");
        let mut r = StreamReader::new(Chunked::whole(input.as_bytes()), LIMITS);
        r.read_header().await.expect("header");
        r.read_element().await.expect("proceed");
        assert_eq!(r.into_inner().1, 0);
    }

    #[tokio::test]
    async fn injection_over_duplex_single_write() {
        let (client, mut server) = tokio::io::duplex(4096);
        let mut r = StreamReader::new(client, LIMITS);
        server
            .write_all(format!("{C2S_HEADER}<stream:features/>").as_bytes())
            .await
            .expect("write");
        r.read_header().await.expect("header");
        r.read_element().await.expect("features");
        r.write_all(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await
            .expect("client write");
        let mut got = [0u8; 51];
        tokio::io::AsyncReadExt::read_exact(&mut server, &mut got)
            .await
            .expect("server read");
        assert_eq!(
            &got[..],
            b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
        );
        server
            .write_all(format!("{PROCEED}<stream:features>").as_bytes())
            .await
            .expect("write");
        assert!(
            r.read_element()
                .await
                .expect("proceed")
                .is(NS_TLS, "proceed")
        );
        assert_eq!(r.into_inner().1, "<stream:features>".len());

        // Nothing after <proceed/>: exactly zero, connection still open.
        let (client, mut server) = tokio::io::duplex(4096);
        let mut r = StreamReader::new(client, LIMITS);
        server
            .write_all(format!("{C2S_HEADER}{PROCEED}").as_bytes())
            .await
            .expect("write");
        r.read_header().await.expect("header");
        r.read_element().await.expect("proceed");
        assert_eq!(r.into_inner().1, 0);
    }

    #[tokio::test]
    async fn restart_after_elements() {
        // Second header arrives in the same chunk as the first stream's
        // elements, and declares different prefixes.
        let input = format!(
            "{C2S_HEADER}<stream:features/><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>\
             <?xml version='1.0'?><s:stream xmlns='jabber:client' \
             xmlns:s='http://etherx.jabber.org/streams' id='second' version='1.0'>\
             <s:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></s:features></s:stream>"
        );
        let mut r = StreamReader::new(Chunked::whole(input.as_bytes()), LIMITS);
        assert_eq!(
            r.read_header().await.expect("h1").id.as_deref(),
            Some("abc&1")
        );
        assert!(features::is_features(&r.read_element().await.expect("f1")));
        r.read_element().await.expect("success");
        r.restart();
        r.new_phase();
        assert_eq!(
            r.read_header().await.expect("h2").id.as_deref(),
            Some("second")
        );
        let f = r.read_element().await.expect("f2");
        assert!(features::is_features(&f));
        assert_eq!(f.children[0].ns, "urn:ietf:params:xml:ns:xmpp-bind");
        // The old `stream:` prefix is no longer in scope; `s:` closes.
        assert_eq!(r.read_element().await, Err(ReadFault::StreamClosed));
    }

    #[tokio::test]
    async fn restart_forgets_the_old_stream() {
        let mut r = chunked(&format!("{C2S_HEADER}<a xmlns='urn:x'/></stream:stream>"));
        r.read_header().await.expect("header");
        r.read_element().await.expect("a");
        r.restart();
        // The old stream is gone: its end tag no longer closes anything.
        assert!(matches!(
            r.read_element().await,
            Err(ReadFault::InvalidXml(_))
        ));
    }

    #[tokio::test]
    async fn open_header_round_trips() {
        let spec = HeaderSpec {
            service: Service::S2s,
            from: Some("a.example"),
            to: Some("b'<&>\".example"),
            id: None,
            version: Some("1.0"),
            dialback: true,
        };
        let mut r = chunked(&stream::open_header(&spec));
        let h = r.read_header().await.expect("header");
        assert_eq!(h.from.as_deref(), Some("a.example"));
        assert_eq!(h.to.as_deref(), Some("b'<&>\".example"));
        assert_eq!(h.id, None);
        assert_eq!(h.version.as_deref(), Some("1.0"));
        assert_eq!(h.content_ns.as_deref(), Some(NS_SERVER));
        assert!(h.declares_dialback);

        let spec = HeaderSpec {
            service: Service::C2s,
            from: None,
            to: Some("example.org"),
            id: Some("i1"),
            version: None,
            dialback: false,
        };
        let h = chunked(&stream::open_header(&spec))
            .read_header()
            .await
            .expect("header");
        assert_eq!(h.content_ns.as_deref(), Some(NS_CLIENT));
        assert_eq!(h.version, None);
        assert_eq!(h.id.as_deref(), Some("i1"));
        assert!(!h.declares_dialback);
    }

    #[tokio::test]
    async fn to_xml_round_trips_with_escaping() {
        let mut msg = Element::new(NS_CLIENT, "message");
        msg.attrs.push(("to".into(), "a'b\"c<d>&e\tf\ng\rh".into()));
        msg.attrs.push(("xml:lang".into(), "en".into()));
        let mut body = Element::new(NS_CLIENT, "body");
        body.text = "1 < 2 && 3 > 2 ]]> 'q' \"d\"\r\nline\u{1F600}".into();
        msg.children.push(body);
        let mut x = Element::new("urn:example:x", "x");
        x.children.push(Element::new("", "unbound"));
        x.children.push(Element::new("urn:example:x", "same"));
        msg.children.push(x);

        for (xml, scope) in [(msg.to_xml(), ""), (msg.to_xml_in(NS_CLIENT), NS_CLIENT)] {
            let header = format!(
                "<stream:stream xmlns='{scope}' xmlns:stream='http://etherx.jabber.org/streams'>"
            );
            let got = first_element(&format!("{header}{xml}"))
                .await
                .unwrap_or_else(|e| panic!("{xml}: {e}"));
            assert_eq!(got, msg, "{xml}");
        }
        assert!(!msg.to_xml_in(NS_CLIENT).contains("jabber:client"));
        assert!(msg.to_xml().starts_with("<message xmlns='jabber:client'"));
    }

    /// Header, then the first element, from raw bytes.
    async fn first_element_bytes(body: &[u8]) -> Result<Element, ReadFault> {
        let input = [C2S_HEADER.as_bytes(), body].concat();
        let mut r = StreamReader::new(Chunked::new(&input), LIMITS);
        r.read_header().await?;
        r.read_element().await
    }

    fn assert_invalid(got: Result<Element, ReadFault>, case: &str) {
        match got {
            Err(ReadFault::InvalidXml(m)) => {
                assert!(!m.contains('\0'), "{case}: message carries U+0000: {m:?}");
            }
            other => panic!("{case}: expected InvalidXml, got {other:?}"),
        }
    }

    /// XML 1.0 §2.2: U+0000 is not a `Char`, raw or as a reference, in any
    /// position; the fault text never carries it.
    #[tokio::test]
    async fn xml10_2_2_nul_is_not_well_formed() {
        for bad in [
            &b"<a xmlns='urn:x'>x\0y</a>"[..],
            b"<a xmlns='urn:x' b='x\0y'/>",
            b"<a xmlns='urn:x' b='&#0;'/>",
            b"<a xmlns='urn:x' b='&#x0;'/>",
            b"<a\0 xmlns='urn:x'/>",
            b"<a xmlns='urn:x' b\0='1'/>",
            b"<a xmlns='urn:x'><![CDATA[\0]]></a>",
            b"<a xmlns='urn:x'><!--\0--></a>",
            b"<a xmlns='urn:x\0'/>",
            b"\0<a xmlns='urn:x'/>",
            b"<a xmlns='urn:x'>\x01</a>",
            b"<a xmlns='urn:x'>\xef\xbf\xbe</a>",
            b"<a xmlns='urn:x'></a\0>",
            b"</a\0>",
        ] {
            assert_invalid(
                first_element_bytes(bad).await,
                &String::from_utf8_lossy(bad),
            );
        }
        // In the stream header too.
        let header = b"<stream:stream xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams' from='a\0b'>";
        let mut r = StreamReader::new(Chunked::new(header), LIMITS);
        assert!(matches!(
            r.read_header().await,
            Err(ReadFault::InvalidXml(_))
        ));
    }

    /// XML 1.0 §2.3 `Name`, Namespaces in XML 1.0 §3 `QName`: no empty
    /// names, no empty prefix or local part, at most one colon.
    #[tokio::test]
    async fn xml10_2_3_names_must_be_qnames() {
        for bad in [
            "<>x</>",
            "< xmlns='urn:x'/>",
            "<:a xmlns='urn:x'/>",
            "<a: xmlns='urn:x'/>",
            "<a:b:c xmlns:a='urn:x'/>",
            "<1a xmlns='urn:x'/>",
            "<a xmlns='urn:x' :b='1'/>",
            "<a xmlns='urn:x' -b='1'/>",
        ] {
            assert_invalid(first_element_bytes(bad.as_bytes()).await, bad);
        }
        // Non-ASCII names are fine.
        let el = first_element_bytes("<échange xmlns='urn:x' ñ='1'/>".as_bytes())
            .await
            .expect("non-ASCII names");
        assert_eq!(el.name, "échange");
        assert_eq!(el.attr("ñ"), Some("1"));
    }

    /// Namespaces in XML 1.0 §3: `xmlns` is never an element prefix nor
    /// declared; `xml` is bound to its own namespace only; the reserved
    /// namespace names are not bound to other prefixes; prefixes in use
    /// (attributes included) are declared.
    #[tokio::test]
    async fn xmlns_reserved_prefix_and_namespace_names() {
        for bad in [
            "<xmlns:a xmlns='urn:x'/>",
            "<xmlns:a xmlns:a='urn:x'/>",
            "<a xmlns='urn:x' xmlns:xmlns='urn:y'/>",
            "<a xmlns='urn:x' xmlns:xml='urn:y'/>",
            "<a xmlns='urn:x' xmlns:p='http://www.w3.org/XML/1998/namespace'/>",
            "<a xmlns='http://www.w3.org/2000/xmlns/'/>",
            "<a xmlns='urn:x' xmlns:p=''/>",
            "<a xmlns='urn:x' p:b='1'/>",
        ] {
            assert_invalid(first_element_bytes(bad.as_bytes()).await, bad);
        }
        let el = first_element_bytes(
            b"<a xmlns='urn:x' xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:lang='en'/>",
        )
        .await
        .expect("xml prefix bound to its own namespace");
        assert_eq!(el.attr("xml:lang"), Some("en"));
    }

    /// XML 1.0 §3.1 `AttValue`: `[^<&"]*`: a raw `<` is not well-formed
    /// (escaped it is fine).
    #[tokio::test]
    async fn xml10_3_1_raw_lt_in_attribute_value() {
        for bad in ["<a xmlns='urn:x' b='<'/>", "<a xmlns='urn:x' b=\"x<y\"/>"] {
            assert_invalid(first_element_bytes(bad.as_bytes()).await, bad);
        }
        let el = first_element_bytes(b"<a xmlns='urn:x' b='&lt;&#60;>'/>")
            .await
            .expect("escaped");
        assert_eq!(el.attr("b"), Some("<<>"));
    }

    /// A namespace name is the normalised attribute value (XML 1.0 §3.3.3,
    /// Namespaces in XML 1.0 §2.2): references are decoded, so this is the
    /// STARTTLS namespace (RFC 6120 §5.4) and STARTTLS is offered.
    #[tokio::test]
    async fn references_in_namespace_names_are_decoded() {
        let input = "<stream:stream xmlns='jabber:&#99;lient' \
            xmlns:stream='http://etherx.jabber.org/stre&#x61;ms'>\
            <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp&#45;tls'>\
            <required/></starttls></stream:features>";
        let mut r = chunked(input);
        let h = r.read_header().await.expect("header");
        assert_eq!(h.content_ns.as_deref(), Some(NS_CLIENT));
        let el = r.read_element().await.expect("features");
        assert!(features::is_features(&el));
        assert_eq!(features::parse(&el).starttls, StarttlsOffer::Required);
        // `&amp;` in a namespace name stays a literal `&`.
        let el = first_element_bytes(b"<a xmlns='urn:a&amp;b'/>")
            .await
            .expect("a");
        assert_eq!(el.ns, "urn:a&b");
    }

    #[test]
    fn read_all_collects_elements_until_the_fault() {
        let input = format!("{C2S_HEADER}<a xmlns='urn:x'/><b xmlns='urn:x'>t</b>\0");
        let t = read_all(input.as_bytes(), LIMITS);
        assert_eq!(t.header.and_then(|h| h.id).as_deref(), Some("abc&1"));
        assert_eq!(t.elements.len(), 2);
        assert!(matches!(t.fault, ReadFault::InvalidXml(_)));
        let t = read_all(format!("{C2S_HEADER}<a xmlns='urn:x'/>").as_bytes(), LIMITS);
        assert_eq!((t.elements.len(), t.fault), (1, ReadFault::Eof));
        let t = read_all(b"", LIMITS);
        assert_eq!((t.header, t.fault), (None, ReadFault::Eof));
    }

    #[tokio::test]
    async fn write_all_reaches_the_transport() {
        let mut r = chunked("");
        r.write_all(b"<presence/>").await.expect("write");
        assert_eq!(r.get_mut().written, b"<presence/>");
    }
}
