//! The text source format (one domain a line, `#` comments):
//! `model::domain::parse_list`, as `sources` loads `text:FILE` and opt-out files.
//!
//! Invariants: no panic; every kept name is normalised; each bad line is
//! reported with a line number inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use xmpp_survey::model::domain::{self, DomainName};

fuzz_target!(|data: &[u8]| {
    let (good, bad) = domain::parse_list(Path::new("fuzz.txt"), data);
    for g in &good {
        assert_eq!(DomainName::parse(g).as_deref(), Ok(g.as_str()));
    }
    let lines = data.split(|b| *b == b'\n').count().max(1);
    for b in &bad {
        assert!(b.line >= 1 && b.line <= lines, "{b:?} of {lines}");
        let _ = b.to_string();
    }
});
