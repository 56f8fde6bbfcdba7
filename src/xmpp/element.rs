//! A minimal owned XML element: what a stream's top-level children are
//! parsed into before the pure feature/verdict functions look at them.

use serde::{Deserialize, Serialize};

/// One XML element with resolved namespace. Text of mixed content is
/// concatenated into `text`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Element {
    /// Resolved namespace URI ("" when unbound).
    pub ns: String,
    /// Local name (without prefix).
    pub name: String,
    /// Attributes as (qualified name, unescaped value), in document order.
    /// Namespace declarations (`xmlns`, `xmlns:*`) are not included.
    pub attrs: Vec<(String, String)>,
    /// Child elements in document order.
    pub children: Vec<Self>,
    /// Concatenated, unescaped character data directly inside this element.
    pub text: String,
}

impl Element {
    /// True when this element has the given namespace and local name.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// The value of an attribute by qualified name (`xml:lang`, `from`, …).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first child with the given namespace and local name.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Self> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    /// All children with the given namespace and local name.
    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Self> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }
}

impl Element {
    /// A new element with namespace and local name, no attributes or content.
    pub fn new(ns: &str, name: &str) -> Self {
        Self {
            ns: ns.to_owned(),
            name: name.to_owned(),
            ..Self::default()
        }
    }

    /// `{namespace}name`, the expanded name (XML Namespaces 1.0 §2.1).
    pub fn expanded_name(&self) -> String {
        format!("{{{}}}{}", self.ns, self.name)
    }

    /// Serialises as a standalone XML fragment: the root declares its
    /// namespace with `xmlns` unless it is unbound. See [`Self::to_xml_in`].
    pub fn to_xml(&self) -> String {
        self.to_xml_in("")
    }

    /// Serialises for sending inside a stream whose default namespace is
    /// `default_ns` (RFC 6120 §4.8.3): `xmlns` is written only where an
    /// element's namespace differs from its parent's (or `default_ns` at the
    /// root). Attribute values and text are escaped, including `\t`, `\n`,
    /// `\r` in attributes and `\r` in text, so parsing the output gives the
    /// same element back. Characters XML 1.0 cannot carry (§2.2 `Char`, e.g.
    /// U+0000) are replaced with U+FFFD. Text is written before the children
    /// (mixed-content order is not kept by [`Element`]); namespace
    /// declarations in `attrs` are skipped. Names are written as given: the
    /// caller must use valid XML names, and prefixed attribute names other
    /// than `xml:` need their prefix bound by the context.
    pub fn to_xml_in(&self, default_ns: &str) -> String {
        enum Step<'a> {
            Open(&'a Element, &'a str),
            Close(&'a Element),
        }
        let mut out = String::new();
        // Iterative, so arbitrarily deep trees cannot overflow the stack.
        let mut stack = vec![Step::Open(self, default_ns)];
        while let Some(step) = stack.pop() {
            match step {
                Step::Open(el, parent_ns) => {
                    out.push('<');
                    out.push_str(&el.name);
                    if el.ns != parent_ns {
                        out.push_str(" xmlns='");
                        push_escaped(&mut out, &el.ns, true);
                        out.push('\'');
                    }
                    for (k, v) in &el.attrs {
                        if k == "xmlns" || k.starts_with("xmlns:") {
                            continue;
                        }
                        out.push(' ');
                        out.push_str(k);
                        out.push_str("='");
                        push_escaped(&mut out, v, true);
                        out.push('\'');
                    }
                    if el.children.is_empty() && el.text.is_empty() {
                        out.push_str("/>");
                        continue;
                    }
                    out.push('>');
                    push_escaped(&mut out, &el.text, false);
                    stack.push(Step::Close(el));
                    for c in el.children.iter().rev() {
                        stack.push(Step::Open(c, &el.ns));
                    }
                }
                Step::Close(el) => {
                    out.push_str("</");
                    out.push_str(&el.name);
                    out.push('>');
                }
            }
        }
        out
    }
}

/// Appends `s` escaped for XML character data or a `'`/`"`-quoted
/// attribute value (XML 1.0 §2.4, §3.3.3).
fn push_escaped(out: &mut String, s: &str, attr: bool) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            '\n' if attr => out.push_str("&#10;"),
            '\t' if attr => out.push_str("&#9;"),
            c if super::reader::is_xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
}
