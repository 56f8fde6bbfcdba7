//! The XMPP Providers list: fetched over HTTP(S) within
//! [`PROVIDERS_TIMEOUT`] and [`PROVIDERS_MAX_BYTES`] or read from a file,
//! parsed in both published shapes, and split by the providers' consent to
//! server testing (see [`parse_providers`]).

use super::{SourceError, SourceProblem};
use crate::limits::{PROVIDERS_MAX_BYTES, PROVIDERS_TIMEOUT};
use crate::model::domain::{self, DomainError, DomainName};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::collections::HashSet;
use std::fmt;

/// Fetches a providers list with [`PROVIDERS_TIMEOUT`] and
/// [`PROVIDERS_MAX_BYTES`], streaming so that a lying or absent
/// `Content-Length` cannot make us buffer more than the cap.
pub(super) async fn fetch(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, SourceError> {
    let fetch_err = |e: reqwest::Error| SourceError::Fetch {
        url: url.to_string(),
        why: describe(&e),
    };
    let mut resp = http
        .get(url)
        .timeout(PROVIDERS_TIMEOUT)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(fetch_err)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(SourceError::HttpStatus {
            url: url.to_string(),
            status: status.to_string(),
        });
    }
    if resp
        .content_length()
        .is_some_and(|n| n > PROVIDERS_MAX_BYTES)
    {
        return Err(SourceError::TooLarge {
            url: url.to_string(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(fetch_err)? {
        if (body.len() + chunk.len()) as u64 > PROVIDERS_MAX_BYTES {
            return Err(SourceError::TooLarge {
                url: url.to_string(),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A reqwest error with its causes ("connection refused" is two levels
/// down), and a plain word for the common cases.
fn describe(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        format!("timed out after {} s", PROVIDERS_TIMEOUT.as_secs())
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        e.to_string()
    };
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = c.source();
    }
    s
}

/// A parsed providers document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProvidersList {
    /// Providers that consent to server testing, normalised, in order.
    pub domains: Vec<DomainName>,
    /// Providers whose `serverTesting` is not `true`.
    pub no_consent: Vec<DomainName>,
    /// The subset of `no_consent` that refused explicitly: `false` with a
    /// non-empty `source`, i.e. stated in the provider's own provider file.
    pub refused: Vec<DomainName>,
    /// Bad entries, by index.
    pub problems: Vec<SourceProblem>,
}

/// The two shapes a providers document comes in, entries in document order.
enum ProvidersDoc {
    /// `[{"jid": "...", ...}, ...]`
    List(Vec<Value>),
    /// `{"example.org": {...}, ...}`
    Map(Vec<(String, Value)>),
}

impl<'de> Deserialize<'de> for ProvidersDoc {
    /// By hand rather than via `serde_json::Map`, which (without the
    /// `preserve_order` feature) sorts keys: entry indices in problems must
    /// match the document.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ProvidersDoc;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON array of provider objects or an object keyed by JID")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element()? {
                    v.push(x);
                }
                Ok(ProvidersDoc::List(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(kv) = map.next_entry()? {
                    v.push(kv);
                }
                Ok(ProvidersDoc::Map(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// What an entry's `serverTesting` says.
enum Consent {
    Yes,
    /// Absent, `null`, or `false` without a source: never stated.
    NotGiven,
    /// `false` with a source: the provider said no.
    Refused,
}

fn consent(v: Option<&Value>) -> Result<Consent, String> {
    match v {
        None | Some(Value::Null) => Ok(Consent::NotGiven),
        Some(Value::Bool(true)) => Ok(Consent::Yes),
        Some(Value::Bool(false)) => Ok(Consent::NotGiven),
        Some(Value::Object(o)) => match o.get("content") {
            Some(Value::Bool(true)) => Ok(Consent::Yes),
            Some(Value::Bool(false)) => {
                let stated = o
                    .get("source")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.trim().is_empty());
                Ok(if stated {
                    Consent::Refused
                } else {
                    Consent::NotGiven
                })
            }
            None | Some(Value::Null) => Ok(Consent::NotGiven),
            Some(other) => Err(format!(
                "serverTesting.content must be true or false, not {other}"
            )),
        },
        Some(other) => Err(format!(
            "serverTesting must be a boolean or {{\"content\": boolean}}, not {other}"
        )),
    }
}

/// Parses an XMPP Providers document (`label` names it in problems).
///
/// # Format
///
/// The XMPP Providers project (<https://invent.kde.org/melvo/xmpp-providers>,
/// served at `https://data.xmpp.net/providers/v2/providers.json`) publishes:
///
/// - `providers.json`: a JSON **object keyed by the provider's JID** (its
///   domain), each value an object of properties, each property wrapped as
///   `{"content": …, "source": "…"}` where `source` is where the value came
///   from. The website's statistics code reads it exactly so
///   (`for provider_jid, provider_data in providers_data.items()`,
///   `provider_data["serverTesting"]["content"]`, xsf/xmpp-providers-website
///   `src/statistics.py`).
/// - the filtered lists `providers-A.json` … `providers-D.json`: a JSON
///   **array** of flat objects with a `"jid"` key and plain property values
///   (the website's templates select `where … ".jid"`).
///
/// Both shapes are accepted; `serverTesting` may be a plain boolean or the
/// wrapped form.
///
/// # Consent
///
/// API v2 added `serverTesting`: "Whether tests against the provider's
/// server are allowed (e.g., certificate checks and uptime monitoring)"
/// (providers.xmpp.net blog, 2023-12-29, "XMPP Providers fully automated").
/// Its default is `false`: the statistics code counts `false` with an empty
/// `source` as "No provider file", `false` with a source as "not allowing
/// server testing". So only `true` is consent; `false`, `null` or a missing
/// property is **no consent** and the entry goes to `no_consent`. The
/// project documents no other default, and a survey should not read
/// silence as permission.
///
/// Most `false` values only mean the provider never published a provider
/// file, so they withhold the domain from *this source* only; another list
/// the operator chose may still name it. A `false` with a non-empty
/// `source` is the provider's own statement: it is also listed in
/// [`ProvidersList::refused`] and [`load`](super::load) removes it from every source,
/// like an opt-out. `alternativeJids` are not crawled: consent is given for
/// the provider's server under its main JID.
pub fn parse_providers(text: &str, label: &str) -> Result<ProvidersList, SourceError> {
    parse_providers_doc(text, label, false)
}

/// [`parse_providers`] on bytes as read or fetched. Each line holding bytes
/// that are not UTF-8 is a problem naming that line (JSON strings must be
/// UTF-8, RFC 8259 §8.1); those bytes are read as U+FFFD so the rest of the
/// document still loads, and the entry they fall in is not crawled (it is
/// not reported a second time). Bytes that break the JSON structure make
/// the document unusable, as any other syntax error does.
pub fn parse_providers_bytes(bytes: &[u8], label: &str) -> Result<ProvidersList, SourceError> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return parse_providers(text, label);
    }
    let mut bad_lines = Vec::new();
    for (i, line) in domain::lines(bytes).enumerate() {
        if let Err(e) = std::str::from_utf8(line) {
            bad_lines.push(SourceProblem {
                source: label.to_string(),
                line: Some(i + 1),
                entry: None,
                text: String::from_utf8_lossy(line).trim().to_string(),
                error: format!(
                    "{}; the entry there is not crawled",
                    DomainError::not_utf8(line, &e)
                ),
            });
        }
    }
    let mut list = parse_providers_doc(&String::from_utf8_lossy(bytes), label, true)?;
    bad_lines.append(&mut list.problems);
    list.problems = bad_lines;
    Ok(list)
}

/// Parses a providers document; with `lossy`, entries holding U+FFFD (a
/// replaced byte, already reported by line) are dropped without a problem.
fn parse_providers_doc(text: &str, label: &str, lossy: bool) -> Result<ProvidersList, SourceError> {
    let doc: ProvidersDoc = serde_json::from_str(text).map_err(|e| SourceError::BadJson {
        origin: label.to_string(),
        why: e.to_string(),
    })?;
    let entries: Vec<(Option<String>, Value)> = match doc {
        ProvidersDoc::List(v) => v.into_iter().map(|e| (None, e)).collect(),
        ProvidersDoc::Map(v) => v.into_iter().map(|(k, e)| (Some(k), e)).collect(),
    };
    let mut out = ProvidersList::default();
    let mut seen = HashSet::new();
    for (i, (key, entry)) in entries.into_iter().enumerate() {
        if lossy
            && (key.as_deref().is_some_and(|k| k.contains('\u{FFFD}'))
                || entry.to_string().contains('\u{FFFD}'))
        {
            continue;
        }
        let problem = |text: &str, error: String| SourceProblem {
            source: label.to_string(),
            line: None,
            entry: Some(i),
            text: text.to_string(),
            error,
        };
        let Value::Object(obj) = &entry else {
            let shown = key.clone().unwrap_or_else(|| entry.to_string());
            out.problems
                .push(problem(&shown, "provider entry is not an object".into()));
            continue;
        };
        let jid = match (&key, obj.get("jid")) {
            (Some(k), _) => k.clone(),
            (None, Some(Value::String(s))) => s.clone(),
            (None, Some(other)) => {
                out.problems.push(problem(
                    &other.to_string(),
                    "\"jid\" is not a string".into(),
                ));
                continue;
            }
            (None, None) => {
                out.problems
                    .push(problem("", "provider entry has no \"jid\"".into()));
                continue;
            }
        };
        let d = match DomainName::parse(&jid) {
            Ok(d) => d,
            Err(e) => {
                out.problems.push(problem(&jid, e.to_string()));
                continue;
            }
        };
        if !seen.insert(d.clone()) {
            continue;
        }
        match consent(obj.get("serverTesting")) {
            Ok(Consent::Yes) => out.domains.push(d),
            Ok(Consent::NotGiven) => out.no_consent.push(d),
            Ok(Consent::Refused) => {
                out.refused.push(d.clone());
                out.no_consent.push(d);
            }
            Err(why) => {
                out.problems
                    .push(problem(&jid, format!("{why}; not crawled")));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_map_form_with_wrapped_consent() {
        let json = r#"{
          "yes.example": {"serverTesting": {"content": true, "source": "https://yes.example/.well-known/xmpp-provider-v2.json"}},
          "default.example": {"serverTesting": {"content": false, "source": ""}},
          "refused.example": {"serverTesting": {"content": false, "source": "https://refused.example/.well-known/xmpp-provider-v2.json"}},
          "missing.example": {"busFactor": {"content": 2, "source": ""}},
          "bad name.example": {"serverTesting": {"content": true}},
          "weird.example": {"serverTesting": "yes"},
          "Aa.example": {"serverTesting": {"content": true}}
        }"#;
        let p = parse_providers(json, "p.json").unwrap();
        assert_eq!(p.domains, vec!["yes.example", "aa.example"]);
        assert_eq!(
            p.no_consent,
            vec!["default.example", "refused.example", "missing.example"]
        );
        assert_eq!(p.refused, vec!["refused.example"]);
        let at: Vec<_> = p.problems.iter().map(|x| x.entry).collect();
        assert_eq!(at, vec![Some(4), Some(5)], "document order, not sorted");
        assert!(
            p.problems[0]
                .to_string()
                .starts_with("p.json[4]: \"bad name.example\"")
        );
    }

    #[test]
    fn providers_list_form_with_flat_consent() {
        let json = r#"[
          {"jid": "a.example", "serverTesting": true},
          {"jid": "b.example", "serverTesting": false},
          {"jid": "c.example"},
          {"jid": "d.example", "serverTesting": null},
          {"serverTesting": true},
          {"jid": 5, "serverTesting": true},
          "e.example",
          {"jid": "http://f.example", "serverTesting": true},
          {"jid": "a.example", "serverTesting": true}
        ]"#;
        let p = parse_providers(json, "p.json").unwrap();
        assert_eq!(p.domains, vec!["a.example"]);
        assert_eq!(p.no_consent, vec!["b.example", "c.example", "d.example"]);
        assert!(
            p.refused.is_empty(),
            "a flat false cannot tell default from refusal"
        );
        let at: Vec<_> = p.problems.iter().map(|x| x.entry).collect();
        assert_eq!(at, vec![Some(4), Some(5), Some(6), Some(7)]);
    }

    #[test]
    fn providers_broken_json_is_one_error() {
        for bad in ["{", "[1,", "\"just a string\"", "42", ""] {
            let e = parse_providers(bad, "p.json").unwrap_err();
            assert!(matches!(e, SourceError::BadJson { .. }), "{bad}: {e}");
            assert!(
                e.to_string().starts_with("p.json: not a providers list"),
                "{e}"
            );
        }
    }

    #[test]
    fn providers_line_that_is_not_utf8_is_named_and_the_rest_loads() {
        let json = b"{\n  \"a.example\": {\"serverTesting\": true},\n  \"b\xe9.example\": {\"serverTesting\": true},\n  \"c.example\": {\"serverTesting\": true}\n}\n";
        let p = parse_providers_bytes(json, "p.json").unwrap();
        assert_eq!(p.domains, vec!["a.example", "c.example"]);
        assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
        let msg = p.problems[0].to_string();
        assert!(msg.starts_with("p.json:3: "), "{msg}");
        assert!(msg.contains("not UTF-8"), "{msg}");
    }
}
