//! The XMPP Providers list format (`sources::parse_providers`, JSON).
//!
//! Invariants: no panic; consenting domains are normalised; an error is a
//! typed `SourceError` with a message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xmpp_survey::model::domain::DomainName;
use xmpp_survey::sources;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match sources::parse_providers(&text, "providers:fuzz.json") {
        Ok(list) => {
            for d in &list.domains {
                assert_eq!(DomainName::parse(d).as_deref(), Ok(d.as_str()));
            }
            for p in &list.problems {
                let _ = p.to_string();
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
        }
    }
});
