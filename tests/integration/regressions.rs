//! Replays every input that ever failed (kept under `tests/regressions/<fuzz
//! target>/`) through the same entry points as the fuzz targets in `fuzz/`,
//! asserting no panic, the targets' invariants (above all: nothing that
//! reaches a report carries U+0000, which PostgreSQL refuses in `jsonb`),
//! and, for the inputs listed here, the expected typed error or flag.
//! A new file dropped into a folder is replayed with the invariants alone.
//! Pure: no sockets, no database.

use std::path::{Path, PathBuf};

use hickory_proto::op::Message;
use time::UtcOffset;
use time::macros::datetime;
use xmpp_survey::dns::srv;
use xmpp_survey::model::domain::{self, DomainName};
use xmpp_survey::sources;
use xmpp_survey::tls::{CertAnomaly, CertInfo, cert};
use xmpp_survey::xmpp::features::{self, StarttlsOffer};
use xmpp_survey::xmpp::reader::{ReadFault, ReaderLimits, read_all};
use xmpp_survey::xmpp::stream;

/// The files of one target's folder, sorted; the folder must not be empty.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/regressions")
        .join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "{} is empty", dir.display());
    paths
        .into_iter()
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read"))
        })
        .collect()
}

fn assert_no_nul(what: &str, text: &str) {
    assert!(
        !text.contains('\0') && !text.contains("\\u0000"),
        "{what}: U+0000 in {text:?}"
    );
}

/// Same limits as the `stream_reader` fuzz target.
const READER_LIMITS: ReaderLimits = ReaderLimits {
    max_phase_bytes: 16 * 1024,
    max_depth: 8,
};

#[test]
fn stream_reader_regressions() {
    for (name, bytes) in inputs("stream_reader") {
        let t = read_all(&bytes, READER_LIMITS);
        if let Some(h) = &t.header {
            assert_no_nul(&name, &serde_json::to_string(h).expect("json"));
        }
        assert_no_nul(&name, &t.fault.to_string());
        for el in &t.elements {
            assert_no_nul(&name, &serde_json::to_string(el).expect("json"));
            if features::is_features(el) {
                let f = features::parse(el);
                assert_no_nul(&name, &serde_json::to_string(&f).expect("json"));
            }
            if stream::is_error(el) {
                let e = stream::parse_error(el);
                assert_no_nul(&name, &serde_json::to_string(&e).expect("json"));
            }
        }
        match name.as_str() {
            // Namespace names are normalised attribute values: the
            // reference-spelt TLS namespace is STARTTLS (RFC 6120 §5.4).
            "char-ref-in-tls-namespace.xml" => {
                assert!(t.header.is_some(), "{name}");
                assert_eq!(t.elements.len(), 1, "{name}");
                assert!(features::is_features(&t.elements[0]), "{name}");
                assert_eq!(
                    features::parse(&t.elements[0]).starttls,
                    StarttlsOffer::Required,
                    "{name}"
                );
                assert_eq!(t.fault, ReadFault::Eof, "{name}");
            }
            "nul-in-header-attribute.xml" => {
                assert_eq!(t.header, None, "{name}");
                assert!(matches!(t.fault, ReadFault::InvalidXml(_)), "{name}");
            }
            // Every other kept input is not well-formed XML (XML 1.0 §2.2
            // Char, §2.3 Name, §3.1 AttValue; Namespaces in XML 1.0 §3).
            _ => {
                assert!(t.header.is_some(), "{name}: header");
                assert!(t.elements.is_empty(), "{name}: {:?}", t.elements);
                assert!(
                    matches!(t.fault, ReadFault::InvalidXml(_)),
                    "{name}: {:?}",
                    t.fault
                );
            }
        }
    }
}

/// What a kept certificate analyses to.
enum CertExpect {
    Anomalies(&'static [CertAnomaly]),
    ParseError,
    /// A file found by fuzzing without a stated expectation: invariants only.
    Any,
}

fn cert_expectation(name: &str) -> CertExpect {
    use CertAnomaly::*;
    match name {
        "baseline.der" => CertExpect::Anomalies(&[]),
        "nul-in-dns-san.der"
        | "nul-in-xmppaddr.der"
        | "nul-in-srvid.der"
        | "nul-in-subject-cn.der"
        | "nul-in-issuer-cn.der" => CertExpect::Anomalies(&[NulInName]),
        "utctime-offset-plus1600.der" | "utctime-offset-plus2400.der" => {
            CertExpect::Anomalies(&[TimeWithOffset, TimeOutsideRfc5280Profile])
        }
        "generalized-before-2050.der" => CertExpect::Anomalies(&[TimeOutsideRfc5280Profile]),
        "generalized-with-offset.der" => CertExpect::ParseError,
        "nul-san-and-offset-time.der" => {
            CertExpect::Anomalies(&[NulInName, TimeWithOffset, TimeOutsideRfc5280Profile])
        }
        _ => CertExpect::Any,
    }
}

#[test]
fn cert_analyze_regressions() {
    for (name, der) in inputs("cert_analyze") {
        let _ = cert::subject_common_names(&der);
        let got = cert::analyze(&der);
        if let Ok(info) = &got {
            assert_eq!(info.not_before.offset(), UtcOffset::UTC, "{name}");
            assert_eq!(info.not_after.offset(), UtcOffset::UTC, "{name}");
            let json = serde_json::to_string(info).expect("CertInfo serialises");
            assert_no_nul(&name, &json);
            let back: CertInfo = serde_json::from_str(&json).expect("round trip");
            assert_eq!(&back, info, "{name}");
        }
        match (cert_expectation(&name), &got) {
            (CertExpect::Anomalies(want), Ok(info)) => {
                assert_eq!(info.anomalies, want, "{name}");
            }
            (CertExpect::ParseError, Err(cert::CertError::Parse(_))) | (CertExpect::Any, _) => {}
            (_, other) => panic!("{name}: unexpected {other:?}"),
        }
        match name.as_str() {
            "utctime-offset-plus1600.der" => {
                let info = got.expect("analysed");
                assert_eq!(info.not_before, datetime!(2025-12-31 8:00 UTC));
            }
            "utctime-offset-plus2400.der" => {
                let info = got.expect("analysed");
                assert_eq!(info.not_after, datetime!(2026-03-31 0:00 UTC));
            }
            "nul-in-dns-san.der" => {
                let info = got.expect("analysed");
                assert_eq!(info.sans.dns, ["good.test\\00.evil.test"]);
            }
            _ => {}
        }
    }
}

#[test]
fn srv_order_regressions() {
    for (name, bytes) in inputs("srv_order") {
        let Ok(msg) = Message::from_vec(&bytes) else {
            continue;
        };
        // Exactly as the resolver takes SRV answers.
        let records = srv::records_from_answers(&msg.answers);
        let n = records.len();
        let (ordered, unavailable) = srv::order(records);
        assert_eq!(ordered.len(), n, "{name}");
        assert_eq!(unavailable, n == 1 && ordered[0].target == ".", "{name}");
        assert_no_nul(&name, &serde_json::to_string(&ordered).expect("json"));
        match name.as_str() {
            "nul-and-binary-in-target.bin" => {
                assert_eq!(n, 3, "{name}");
                assert_eq!(ordered[0].target, "xmpp.example.net", "{name}");
                assert!(
                    ordered.iter().any(|r| r.target.contains("\\000")),
                    "{name}: {ordered:?}"
                );
            }
            "root-target-decidedly-unavailable.bin" => assert!(unavailable, "{name}"),
            _ => {}
        }
    }
}

#[test]
fn domain_normalize_regressions() {
    for (name, bytes) in inputs("domain_normalize") {
        let text = String::from_utf8_lossy(&bytes);
        match DomainName::parse(&text) {
            Ok(n) => assert_eq!(DomainName::parse(&n).as_deref(), Ok(n.as_str()), "{name}"),
            Err(e) => assert_no_nul(&name, &e.to_string()),
        }
        if name == "nul-in-label.txt" {
            assert!(DomainName::parse(&text).is_err(), "{name}");
        }
    }
}

#[test]
fn source_text_regressions() {
    for (name, bytes) in inputs("source_text") {
        let (good, bad) = domain::parse_list(Path::new(&name), &bytes);
        for g in &good {
            assert_eq!(DomainName::parse(g).as_deref(), Ok(g.as_str()), "{name}");
        }
        for b in &bad {
            assert_no_nul(&name, &b.to_string());
        }
        if name == "nul-and-garbage-lines.txt" {
            assert_eq!(good, ["example.net"], "{name}");
            assert_eq!(bad.len(), 3, "{name}: {bad:?}");
        }
    }
}

#[test]
fn source_csv_regressions() {
    for (name, bytes) in inputs("source_csv") {
        let Some((&pick, rest)) = bytes.split_first() else {
            continue;
        };
        let column = [None, Some("jid"), Some("Domain"), Some("host")][usize::from(pick % 4)];
        let got = sources::parse_csv(Path::new(&name), rest, column, "csv:regression");
        if let Ok((good, problems)) = &got {
            for g in good {
                assert_eq!(DomainName::parse(g).as_deref(), Ok(g.as_str()), "{name}");
            }
            for p in problems {
                assert_no_nul(&name, &p.to_string());
            }
        }
        if name == "nul-in-cell.csv" {
            let (good, problems) = got.expect("parsed");
            assert!(good.is_empty(), "{name}: {good:?}");
            assert!(!problems.is_empty(), "{name}");
        }
    }
}

#[test]
fn source_providers_regressions() {
    for (name, bytes) in inputs("source_providers") {
        let text = String::from_utf8_lossy(&bytes);
        let got = sources::parse_providers(&text, "providers:regression");
        match &got {
            Ok(list) => {
                for d in &list.domains {
                    assert_eq!(DomainName::parse(d).as_deref(), Ok(d.as_str()), "{name}");
                }
                for p in &list.problems {
                    assert_no_nul(&name, &p.to_string());
                }
            }
            Err(e) => assert_no_nul(&name, &e.to_string()),
        }
        if name == "nul-in-jid.json" {
            let list = got.expect("parsed");
            assert_eq!(list.domains, ["ok.example.net"], "{name}");
            assert_eq!(list.problems.len(), 1, "{name}");
        }
    }
}
