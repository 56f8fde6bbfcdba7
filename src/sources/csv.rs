//! CSV exports: a header row names the domain column (by default the
//! first of [`CSV_DEFAULT_COLUMNS`]); a `jid` column is reduced to the
//! domainpart; every bad record is reported with its line.

use super::{SourceError, SourceProblem, read};
use crate::model::domain::{DomainError, DomainName};
use std::collections::HashSet;
use std::path::Path;

pub(super) async fn load_csv(
    path: &Path,
    column: Option<&str>,
    label: &str,
) -> (Vec<DomainName>, Vec<SourceProblem>) {
    match read(path).await {
        Ok(bytes) => match parse_csv(path, &bytes, column, label) {
            Ok(r) => r,
            Err(e) => (Vec::new(), vec![SourceProblem::failed(label, &e)]),
        },
        Err(e) => (Vec::new(), vec![SourceProblem::failed(label, &e)]),
    }
}

/// The columns tried, in order, when none is named.
pub const CSV_DEFAULT_COLUMNS: [&str; 3] = ["domain", "jid", "host"];

/// Parses a CSV domain list. The header row is required: the column is
/// found by name (exact, then case-insensitive), by default the first of
/// [`CSV_DEFAULT_COLUMNS`]. Only the `jid` column is reduced to the
/// domainpart: elsewhere `user@host` is more likely a mistake (an e-mail
/// address) and is reported. Empty cells are reported, not skipped: a
/// record without its domain is a broken record. Only the domain cell
/// must be UTF-8 (other columns are never decoded; header names are
/// decoded leniently): a cell that is not is reported with its line.
pub fn parse_csv(
    path: &Path,
    text: &[u8],
    column: Option<&str>,
    label: &str,
) -> Result<(Vec<DomainName>, Vec<SourceProblem>), SourceError> {
    let header_err = |why: String| SourceError::CsvHeader {
        path: path.to_path_buf(),
        why,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text));
    let headers: Vec<String> = rdr
        .byte_headers()
        .map_err(|e| header_err(format!("cannot read the header row: {e}")))?
        .iter()
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect();
    if headers.is_empty() || headers.iter().all(String::is_empty) {
        return Err(header_err(
            "empty; a header row naming the domain column is required".into(),
        ));
    }
    let shown = || format!("{headers:?}");
    let find = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .or_else(|| headers.iter().position(|h| h.eq_ignore_ascii_case(name)))
    };
    let (idx, col_name) = match column {
        Some(c) => (
            find(c).ok_or_else(|| header_err(format!("no column {c:?} in header {}", shown())))?,
            c.to_string(),
        ),
        None => CSV_DEFAULT_COLUMNS
            .iter()
            .find_map(|c| find(c).map(|i| (i, (*c).to_string())))
            .ok_or_else(|| {
                header_err(format!(
                    "no domain, jid or host column in header {} (the first row is the header; \
                     name the column with csv:FILE#COLUMN)",
                    shown()
                ))
            })?,
    };
    let is_jid = headers
        .get(idx)
        .is_some_and(|h| h.eq_ignore_ascii_case("jid"));
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut seen = HashSet::new();
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for result in rdr.byte_records() {
        let rec = match result {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize);
                bad.push(SourceProblem {
                    source: label.to_string(),
                    line,
                    entry: None,
                    text: String::new(),
                    error: format!("unreadable CSV record: {e}"),
                });
                if e.is_io_error() {
                    break;
                }
                continue;
            }
        };
        let line = rec.position().map(|p| p.line() as usize);
        let problem = |text: &str, error: String| SourceProblem {
            source: label.to_string(),
            line,
            entry: None,
            text: text.to_string(),
            error,
        };
        let Some(cell) = rec.get(idx) else {
            bad.push(problem(
                &rec.iter().map(lossy).collect::<Vec<_>>().join(","),
                format!("record has no {col_name:?} column"),
            ));
            continue;
        };
        let cell = match std::str::from_utf8(cell) {
            Ok(c) => c,
            Err(e) => {
                bad.push(problem(
                    &lossy(cell),
                    DomainError::not_utf8(cell, &e).to_string(),
                ));
                continue;
            }
        };
        let parsed = if is_jid {
            DomainName::from_jid(cell)
        } else {
            DomainName::parse(cell)
        };
        match parsed {
            Ok(d) => {
                if seen.insert(d.clone()) {
                    good.push(d);
                }
            }
            Err(DomainError::Empty) => {
                bad.push(problem(cell, format!("empty {col_name:?} cell")));
            }
            Err(e) => bad.push(problem(cell, e.to_string())),
        }
    }
    Ok((good, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(
        text: &str,
        column: Option<&str>,
    ) -> Result<(Vec<DomainName>, Vec<SourceProblem>), SourceError> {
        parse_csv(Path::new("s.csv"), text.as_bytes(), column, "s.csv")
    }

    #[test]
    fn csv_default_column_is_first_of_domain_jid_host() {
        let (good, bad) = csv("name,host,domain\nA,h.example,d.example\n", None).unwrap();
        assert_eq!(good, vec!["d.example"]);
        assert!(bad.is_empty());
        let (good, _) = csv("Host,JID\nh.example,u@j.example\n", None).unwrap();
        assert_eq!(good, vec!["j.example"], "jid wins over host");
        let (good, _) = csv("x,HOST\n1,Host.Example.\n", None).unwrap();
        assert_eq!(good, vec!["host.example"]);
    }

    #[test]
    fn csv_named_column_and_missing_column_errors() {
        let (good, _) = csv("addr,domain\na.example,b.example\n", Some("addr")).unwrap();
        assert_eq!(good, vec!["a.example"]);
        let e = csv("a,b\n1,2\n", Some("zone")).unwrap_err().to_string();
        assert!(e.starts_with("s.csv: no column \"zone\""), "{e}");
        assert!(e.contains("[\"a\", \"b\"]"), "{e}");
        let e = csv("example.org\nexample.net\n", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("s.csv") && e.contains("example.org"), "{e}");
        assert!(
            csv("", None)
                .unwrap_err()
                .to_string()
                .contains("header row")
        );
    }

    #[test]
    fn csv_reduces_jids_only_in_the_jid_column() {
        let text = "jid,note\nalice@Example.ORG/phone,x\nexample.net,y\nbob@example.org,z\n";
        let (good, bad) = csv(text, None).unwrap();
        assert_eq!(good, vec!["example.org", "example.net"]);
        assert!(bad.is_empty());
        let (good, bad) = csv("domain\nalice@example.org\nok.example\n", None).unwrap();
        assert_eq!(good, vec!["ok.example"]);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].line, Some(2));
    }

    #[test]
    fn csv_reports_bad_records_with_their_line() {
        let text =
            "domain,n\n\"multi\nline.example\",1\nbad_name.example,2\n,3\nshort\ngood.example,4\n";
        let (good, bad) = csv(text, None).unwrap();
        assert_eq!(good, vec!["good.example"]);
        let lines: Vec<_> = bad.iter().map(|p| p.line).collect();
        // The quoted multi-line record starts on line 2; "short" is a single label.
        assert_eq!(lines, vec![Some(2), Some(4), Some(5), Some(6)], "{bad:?}");
        assert!(
            bad[2].to_string().contains("empty \"domain\" cell"),
            "{}",
            bad[2]
        );
    }

    #[test]
    fn csv_cell_that_is_not_utf8_is_one_problem_with_its_line() {
        let text = b"domain,note\na.example,caf\xe9\nb\xe9.example,x\nc.example,y\n";
        let (good, bad) = parse_csv(Path::new("s.csv"), text, None, "s.csv").unwrap();
        assert_eq!(
            good,
            vec!["a.example", "c.example"],
            "other columns are not decoded"
        );
        assert_eq!(bad.len(), 1, "{bad:?}");
        let msg = bad[0].to_string();
        assert!(msg.starts_with("s.csv:3: "), "{msg}");
        assert!(msg.contains("not UTF-8"), "{msg}");
    }
}
