//! The XMPP stream reader on arbitrary peer bytes (RFC 6120 §4, §11.1;
//! XML 1.0; Namespaces in XML 1.0): header, then top-level elements until
//! the first fault, then the pure feature / stream-error parsers.
//!
//! Invariants: no panic; whatever was read (header, elements, parsed
//! features, the fault's text) serialises to JSON without U+0000, which
//! PostgreSQL refuses in `jsonb`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xmpp_survey::xmpp::reader::{ReaderLimits, read_all};
use xmpp_survey::xmpp::{features, stream};

fn no_nul(what: &str, json: &str) {
    assert!(
        !json.contains('\0') && !json.contains("\\u0000"),
        "{what} carries U+0000: {json}"
    );
}

fuzz_target!(|data: &[u8]| {
    // Small limits so the budget and depth paths are reached too.
    let limits = ReaderLimits {
        max_phase_bytes: 16 * 1024,
        max_depth: 8,
    };
    let t = read_all(data, limits);
    if let Some(h) = &t.header {
        no_nul("header", &serde_json::to_string(h).expect("header json"));
    }
    no_nul("fault", &t.fault.to_string());
    for el in &t.elements {
        no_nul("element", &serde_json::to_string(el).expect("element json"));
        if features::is_features(el) {
            let f = features::parse(el);
            no_nul(
                "features",
                &serde_json::to_string(&f).expect("features json"),
            );
        }
        if stream::is_error(el) {
            let e = stream::parse_error(el);
            no_nul(
                "stream error",
                &serde_json::to_string(&e).expect("error json"),
            );
        }
        // What we send back must be well-formed for our own reader.
        let _ = el.to_xml();
    }
});
