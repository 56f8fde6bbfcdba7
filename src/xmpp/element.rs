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
    pub children: Vec<Element>,
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
