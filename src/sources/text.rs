//! Lists of names: text files (one domain a line, `#` comments, see
//! [`domain::parse_list`]) and the database's known domains, each name
//! normalised and de-duplicated within its source.

use super::{SourceProblem, read};
use crate::model::domain::{self, DomainName};
use std::collections::HashSet;
use std::path::Path;

pub(super) async fn load_text(path: &Path, label: &str) -> (Vec<DomainName>, Vec<SourceProblem>) {
    match read(path).await {
        Ok(bytes) => {
            let (good, bad) = domain::parse_list(path, &bytes);
            let bad = bad
                .into_iter()
                .map(|b| SourceProblem::from_bad_line(label, b))
                .collect();
            (good, bad)
        }
        Err(e) => (Vec::new(), vec![SourceProblem::failed(label, &e)]),
    }
}

/// Parses each name (the database's known domains), de-duplicated.
pub(super) fn parse_all(names: Vec<String>, label: &str) -> (Vec<DomainName>, Vec<SourceProblem>) {
    let mut seen = HashSet::new();
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for name in names {
        match DomainName::parse(&name) {
            Ok(d) => {
                if seen.insert(d.clone()) {
                    good.push(d);
                }
            }
            Err(e) => bad.push(SourceProblem {
                source: label.to_string(),
                line: None,
                entry: None,
                text: name,
                error: e.to_string(),
            }),
        }
    }
    (good, bad)
}
