//! SRV record ordering and the "decidedly not available" rule (RFC 2782,
//! RFC 6120 §3.2.1, XEP-0368 §3).
//!
//! Pure functions, no I/O: the resolver hands over the records it got and
//! gets back the order a client would try them in.
//!
//! RFC 2782 orders by priority and then picks among equal priorities at
//! random, weighted by `weight`. A survey must be reproducible (two probes of
//! one domain must agree), so the weighted draw is replaced by a fixed order:
//! heavier first, then by target name.

use super::SrvRecord;

/// Normalises a DNS name as the survey stores it: lowercase, no trailing
/// dot; the root name stays `"."` (RFC 2782: "A Target of '.' means that
/// the service is decidedly not available at this domain").
///
/// Not [`crate::model::domain::DomainName::parse`], on purpose: these are
/// DNS names as answers carry them (SRV targets, CNAME chains, owner
/// names we build), where `"."` is a value, a single label is legal and
/// no IDNA mapping applies; rejecting them would lose what DNS said.
pub fn normalize_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if lower == "." || lower.is_empty() {
        return ".".to_owned();
    }
    lower.trim_end_matches('.').to_owned()
}

/// The SRV records among DNS answers (other record types, e.g. a CNAME
/// on the way, are skipped), as the resolver takes them; the one place
/// the resolver, the fuzz target and the regression test read SRV data.
pub fn records_from_answers(answers: &[hickory_proto::rr::Record]) -> Vec<SrvRecord> {
    answers
        .iter()
        .filter_map(|r| match &r.data {
            hickory_proto::rr::RData::SRV(s) => Some(SrvRecord {
                priority: s.priority,
                weight: s.weight,
                port: s.port,
                target: s.target.to_ascii(),
            }),
            _ => None,
        })
        .collect()
}

/// Puts SRV records in the order a client tries them and tells whether the
/// service is "decidedly not available".
///
/// Order: priority ascending (RFC 2782 "A client MUST attempt to contact the
/// target host with the lowest-numbered priority it can reach"), then weight
/// descending (a deterministic stand-in for RFC 2782's weighted random
/// selection, so repeated probes agree), then target, then port. Targets are
/// lowercased and lose their trailing dot.
///
/// The returned flag is `true` when the answer is exactly one record whose
/// target is `.` (root): RFC 2782 and RFC 6120 §3.2.1 say the service is
/// then decidedly not offered, and a client must not fall back to A/AAAA.
/// A `.` among other records is kept as-is and does not set the flag (the
/// RFC only defines the lone-record case).
pub fn order(records: Vec<SrvRecord>) -> (Vec<SrvRecord>, bool) {
    let mut records: Vec<SrvRecord> = records
        .into_iter()
        .map(|r| SrvRecord {
            target: normalize_name(&r.target),
            ..r
        })
        .collect();
    records.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then(b.weight.cmp(&a.weight))
            .then_with(|| a.target.cmp(&b.target))
            .then(a.port.cmp(&b.port))
    });
    let unavailable = records.len() == 1 && records[0].target == ".";
    (records, unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(priority: u16, weight: u16, port: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port,
            target: target.to_owned(),
        }
    }

    #[test]
    fn rfc2782_priority_ascending_then_weight_descending() {
        let (ordered, unavailable) = order(vec![
            rec(20, 0, 5269, "c.example."),
            rec(10, 5, 5269, "b.example."),
            rec(10, 60, 5269, "a2.example."),
            rec(10, 60, 5269, "a1.example."),
            rec(0, 0, 5270, "first.example."),
        ]);
        let targets: Vec<&str> = ordered.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(
            targets,
            [
                "first.example",
                "a1.example",
                "a2.example",
                "b.example",
                "c.example"
            ]
        );
        assert!(!unavailable);
    }

    #[test]
    fn order_is_independent_of_input_order() {
        let a = vec![
            rec(1, 1, 1, "x."),
            rec(1, 2, 1, "y."),
            rec(0, 0, 2, "z."),
            rec(1, 1, 0, "x."),
        ];
        let mut b = a.clone();
        b.reverse();
        assert_eq!(order(a).0, order(b).0);
    }

    #[test]
    fn targets_are_lowercased_without_trailing_dot() {
        let (ordered, _) = order(vec![rec(0, 0, 5222, "XMPP.Example.ORG.")]);
        assert_eq!(ordered[0].target, "xmpp.example.org");
    }

    #[test]
    fn rfc2782_lone_root_target_is_decidedly_unavailable() {
        let (ordered, unavailable) = order(vec![rec(0, 0, 0, ".")]);
        assert!(unavailable);
        assert_eq!(ordered[0].target, ".");
    }

    #[test]
    fn root_target_among_others_is_not_the_lone_record_rule() {
        let (_, unavailable) = order(vec![rec(0, 0, 0, "."), rec(1, 0, 5269, "x.example.")]);
        assert!(!unavailable);
    }

    #[test]
    fn empty_answer_is_not_decidedly_unavailable() {
        let (ordered, unavailable) = order(vec![]);
        assert!(ordered.is_empty());
        assert!(!unavailable);
    }

    #[test]
    fn normalize_root_and_empty() {
        assert_eq!(normalize_name("."), ".");
        assert_eq!(normalize_name(""), ".");
        assert_eq!(normalize_name("A.B."), "a.b");
    }
}
