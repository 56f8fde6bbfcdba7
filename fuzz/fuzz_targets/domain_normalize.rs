//! Domain names as untrusted input (`DomainName::parse`: UTS #46 / RFC 5891
//! A-labels, RFC 1035 §2.3.4 lengths, RFC 1123 §2.1 host-name syntax,
//! RFC 7622 §3.2 domainpart).
//!
//! Invariants: no panic; a normalised name is lowercase LDH A-labels within
//! the length limits and normalises to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xmpp_survey::model::domain::DomainName;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(n) = DomainName::parse(s) {
        assert!(n.len() <= 253, "{n:?}");
        assert!(
            n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'),
            "{n:?}"
        );
        assert!(
            n.split('.').all(|l| !l.is_empty() && l.len() <= 63),
            "{n:?}"
        );
        assert_eq!(
            DomainName::parse(&n).as_deref(),
            Ok(n.as_str()),
            "idempotent"
        );
    }
});
