//! Certificate analysis on arbitrary DER (RFC 5280): `tls::cert::analyze`.
//!
//! Invariants: no panic; an analysed certificate serialises to JSON, holds
//! no U+0000 (escaped and flagged instead), and its validity times are UTC
//! (RFC 5280 §4.1.2.5) within what RFC 3339 can carry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use time::UtcOffset;
use xmpp_survey::tls::cert;

fuzz_target!(|data: &[u8]| {
    let _ = cert::subject_common_names(data);
    let Ok(info) = cert::analyze(data) else {
        return;
    };
    assert_eq!(info.not_before.offset(), UtcOffset::UTC);
    assert_eq!(info.not_after.offset(), UtcOffset::UTC);
    let json = serde_json::to_string(&info).expect("CertInfo serialises");
    assert!(
        !json.contains('\0') && !json.contains("\\u0000"),
        "U+0000 in {json}"
    );
    let back: xmpp_survey::tls::CertInfo = serde_json::from_str(&json).expect("round trip");
    assert_eq!(back, info);
});
