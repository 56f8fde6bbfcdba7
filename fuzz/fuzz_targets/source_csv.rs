//! The CSV source format (`sources::parse_csv`, RFC 4180 with a header
//! row): the first input byte picks the column argument, the rest is the
//! file.
//!
//! Invariants: no panic; every kept name is normalised.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use xmpp_survey::model::domain::DomainName;
use xmpp_survey::sources;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let column = match pick % 4 {
        0 => None,
        1 => Some("jid"),
        2 => Some("Domain"),
        _ => Some("host"),
    };
    if let Ok((good, problems)) =
        sources::parse_csv(Path::new("fuzz.csv"), rest, column, "csv:fuzz.csv")
    {
        for g in &good {
            assert_eq!(DomainName::parse(g).as_deref(), Ok(g.as_str()));
        }
        for p in &problems {
            let _ = p.to_string();
        }
    }
});
