//! SRV handling (RFC 2782, RFC 6120 §3.2.1) on arbitrary DNS responses:
//! the records are taken out of a decoded message exactly as the resolver
//! does (`dns::resolve`: priority, weight, port, `target.to_ascii()`), then
//! ordered by `dns::srv::order`.
//!
//! Invariants: no panic; the order is sorted by (priority, -weight, target,
//! port) and stable under re-ordering; targets are normalised; the "decidedly
//! not available" flag is exactly "one record, target `.`"; the lookup
//! serialises to JSON without U+0000.
#![no_main]

use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;
use xmpp_survey::dns::{SrvRecord, srv};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Message::from_vec(data) else {
        return;
    };
    let records = srv::records_from_answers(&msg.answers);
    let n = records.len();
    let mut reversed = records.clone();
    reversed.reverse();
    let (ordered, unavailable) = srv::order(records);
    assert_eq!(ordered.len(), n);
    for w in ordered.windows(2) {
        let key = |r: &SrvRecord| (r.priority, u16::MAX - r.weight, r.target.clone(), r.port);
        assert!(key(&w[0]) <= key(&w[1]), "{w:?}");
    }
    for r in &ordered {
        assert_eq!(srv::normalize_name(&r.target), r.target);
    }
    assert_eq!(unavailable, n == 1 && ordered[0].target == ".");
    assert_eq!(srv::order(reversed).0, ordered);
    let json = serde_json::to_string(&ordered).expect("json");
    assert!(!json.contains('\0') && !json.contains("\\u0000"), "{json}");
});
