//! Rows in PostgreSQL's COPY text format, for the write path
//! ([`Store::record`](super::Store::record)): a batch of rows goes to a
//! staging table with one `COPY … FROM STDIN` and is merged with set-based
//! `INSERT … SELECT`, instead of being sent as one JSON document that the
//! server parses, re-serialises per element (`x || jsonb_build_object(…)`)
//! and maps column by column (`jsonb_populate_record`). Measured on this
//! machine's PostgreSQL: that JSON route cost ~1.5× the server CPU of COPY
//! per result row (docs/benchmarks.md, issue 13 step 3).
//!
//! Pure: rows (any `Serialize` struct whose fields are the table's
//! columns, as the JSON route used them) in, bytes out. The format is the
//! one of the PostgreSQL manual, "COPY, File Formats, Text Format": one line
//! per row, columns separated by a tab, `\N` for NULL, and backslash,
//! newline, carriage return and tab escaped with a backslash.

use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Why a batch could not be encoded. Our row types always serialise to
/// JSON objects with plain keys; these errors name the table and the
/// column if one ever does not.
#[derive(Debug, thiserror::Error)]
pub enum CopyEncodeError {
    /// A row did not serialise to a JSON object of columns.
    #[error("a row for {table} is not a JSON object of columns")]
    NotAnObject {
        /// The table.
        table: &'static str,
        /// What serde_json reported.
        #[source]
        source: serde_json::Error,
    },
    /// An array column held something other than strings.
    #[error("column {table}.{column} is an array column but holds {value}")]
    NotATextArray {
        /// The table.
        table: &'static str,
        /// The column.
        column: String,
        /// The JSON value (truncated).
        value: String,
    },
}

/// One staged batch: the column list for `COPY table (columns)` and the
/// rows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopyBatch {
    /// Column names, `crawl_id` and `domain_id` first, then the rows' own
    /// columns in name order.
    pub columns: Vec<String>,
    /// The rows in COPY text format.
    pub data: Vec<u8>,
    /// How many rows.
    pub rows: usize,
}

impl CopyBatch {
    /// `COPY <table> (<columns>) FROM STDIN` for this batch. Column names
    /// come from our own row structs (serde field names), never from
    /// input; they are quoted anyway.
    pub fn statement(&self, table: &str) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| format!("\"{c}\"")).collect();
        format!("COPY {table} ({}) FROM STDIN", cols.join(", "))
    }
}

/// Encodes `rows` (each with its domain id) for `table`: every row gets the
/// `crawl_id` and its `domain_id`, then its serialised fields. A column
/// missing from some rows (a field skipped when empty) is `\N` there.
/// `array_columns` are the table's PostgreSQL array columns (`TEXT[]`): a
/// JSON array there becomes an array literal; everywhere else objects and
/// arrays are JSON text (the JSONB columns).
pub fn encode<'r, T: Serialize + 'r>(
    table: &'static str,
    array_columns: &HashSet<String>,
    crawl_id: i64,
    rows: impl IntoIterator<Item = (i64, &'r T)>,
) -> Result<CopyBatch, CopyEncodeError> {
    let texts: Vec<(i64, String)> = rows
        .into_iter()
        .map(|(id, row)| {
            serde_json::to_string(row)
                .map(|t| (id, t))
                .map_err(|source| CopyEncodeError::NotAnObject { table, source })
        })
        .collect::<Result<_, _>>()?;
    let mut fields: Vec<(i64, BTreeMap<&str, &RawValue>)> = Vec::with_capacity(texts.len());
    for (id, text) in &texts {
        let map: BTreeMap<&str, &RawValue> = serde_json::from_str(text)
            .map_err(|source| CopyEncodeError::NotAnObject { table, source })?;
        fields.push((*id, map));
    }
    let own: BTreeSet<&str> = fields
        .iter()
        .flat_map(|(_, m)| m.keys().copied())
        .filter(|k| *k != "crawl_id" && *k != "domain_id")
        .collect();
    let mut out = CopyBatch {
        columns: ["crawl_id", "domain_id"]
            .into_iter()
            .chain(own.iter().copied())
            .map(String::from)
            .collect(),
        data: Vec::with_capacity(texts.iter().map(|(_, t)| t.len() + 32).sum()),
        rows: fields.len(),
    };
    let crawl = crawl_id.to_string();
    for (id, map) in &fields {
        out.data.extend_from_slice(crawl.as_bytes());
        out.data.push(b'\t');
        out.data.extend_from_slice(id.to_string().as_bytes());
        for column in &own {
            out.data.push(b'\t');
            match map.get(column) {
                None => out.data.extend_from_slice(b"\\N"),
                Some(v) => value(
                    &mut out.data,
                    table,
                    column,
                    v.get(),
                    array_columns.contains(*column),
                )?,
            }
        }
        out.data.push(b'\n');
    }
    Ok(out)
}

/// One column value from its JSON text.
fn value(
    out: &mut Vec<u8>,
    table: &'static str,
    column: &str,
    json: &str,
    array: bool,
) -> Result<(), CopyEncodeError> {
    match json.as_bytes().first() {
        None => out.extend_from_slice(b"\\N"),
        Some(b'n') => out.extend_from_slice(b"\\N"),
        Some(b't') if json == "true" => out.push(b't'),
        Some(b'f') if json == "false" => out.push(b'f'),
        Some(b'"') => match serde_json::from_str::<String>(json) {
            Ok(s) => escape(out, &s),
            Err(_) => escape(out, json),
        },
        Some(b'[') if array => {
            let items: Vec<Option<String>> =
                serde_json::from_str(json).map_err(|_| CopyEncodeError::NotATextArray {
                    table,
                    column: column.to_string(),
                    value: json.chars().take(80).collect(),
                })?;
            escape(out, &array_literal(&items));
        }
        // Numbers as they are; objects and arrays as JSON text (JSONB).
        Some(_) => escape(out, json),
    }
    Ok(())
}

/// A PostgreSQL array literal (manual, "Arrays, Array Value Input"): every
/// element double-quoted with `"` and `\` backslash-escaped; `NULL` bare.
fn array_literal(items: &[Option<String>]) -> String {
    let mut s = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        match item {
            None => s.push_str("NULL"),
            Some(v) => {
                s.push('"');
                for c in v.chars() {
                    if c == '"' || c == '\\' {
                        s.push('\\');
                    }
                    s.push(c);
                }
                s.push('"');
            }
        }
    }
    s.push('}');
    s
}

/// COPY text escaping of one value. U+0000 cannot be stored in a
/// PostgreSQL text value at all; the XML reader never lets one through,
/// and should one come, it becomes U+FFFD rather than failing the batch.
fn escape(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let special = |b: &u8| matches!(b, b'\\' | b'\n' | b'\r' | b'\t' | 0);
    // Runs without a special byte (nearly all of a report's JSON) are
    // copied whole: escaping byte by byte was the write path's top cost.
    let mut rest = bytes;
    while let Some(at) = rest.iter().position(special) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(match rest[at] {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ => "\u{FFFD}".as_bytes(),
        });
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn arrays(cols: &[&str]) -> HashSet<String> {
        cols.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn columns_are_ids_then_the_union_of_fields_in_name_order() {
        let rows = [
            json!({"b": 1, "a": "x"}),
            json!({"a": "y", "c": true, "crawl_id": 99}),
        ];
        let batch = encode("t", &arrays(&[]), 7, [(1, &rows[0]), (2, &rows[1])]).unwrap();
        assert_eq!(batch.columns, ["crawl_id", "domain_id", "a", "b", "c"]);
        assert_eq!(batch.rows, 2);
        assert_eq!(
            String::from_utf8(batch.data).unwrap(),
            "7\t1\tx\t1\t\\N\n7\t2\ty\t\\N\tt\n"
        );
        assert_eq!(
            CopyBatch {
                columns: vec!["crawl_id".into(), "a".into()],
                ..Default::default()
            }
            .statement("stage_results"),
            "COPY stage_results (\"crawl_id\", \"a\") FROM STDIN"
        );
    }

    #[test]
    fn text_is_escaped_and_null_false_and_numbers_kept() {
        let row = json!({"s": "tab\there\nnew\\back\r\u{0}end", "n": null, "f": false, "x": -1.5});
        let batch = encode("t", &arrays(&[]), 1, [(3, &row)]).unwrap();
        assert_eq!(
            String::from_utf8(batch.data).unwrap(),
            "1\t3\tf\t\\N\ttab\\there\\nnew\\\\back\\r\u{FFFD}end\t-1.5\n"
        );
    }

    #[test]
    fn json_columns_stay_json_with_backslashes_doubled() {
        let row = json!({"evidence": {"k": "a\"b\\c\n", "l": [1, 2]}});
        let batch = encode("t", &arrays(&[]), 1, [(3, &row)]).unwrap();
        let text = String::from_utf8(batch.data).unwrap();
        // COPY undoes the doubling; what reaches jsonb_in is the JSON text.
        let field = text.trim_end().split('\t').nth(2).unwrap();
        let unescaped = field.replace("\\\\", "\\");
        let back: serde_json::Value = serde_json::from_str(&unescaped).unwrap();
        assert_eq!(back, row["evidence"]);
    }

    #[test]
    fn array_columns_become_array_literals() {
        let row = json!({"sasl": ["PLAIN", "X\"Y", "A\\B"], "list": ["j"]});
        let batch = encode("t", &arrays(&["sasl"]), 1, [(3, &row)]).unwrap();
        assert_eq!(
            String::from_utf8(batch.data).unwrap(),
            "1\t3\t[\"j\"]\t{\"PLAIN\",\"X\\\\\"Y\",\"A\\\\\\\\B\"}\n"
        );
        let bad = json!({"sasl": [{"not": "text"}]});
        let err = encode("t", &arrays(&["sasl"]), 1, [(3, &bad)]).unwrap_err();
        assert!(err.to_string().contains("t.sasl"), "{err}");
    }

    #[test]
    fn a_row_that_is_not_an_object_is_an_error_naming_the_table() {
        let err = encode("endpoints", &arrays(&[]), 1, [(3, &json!([1]))]).unwrap_err();
        assert!(err.to_string().contains("endpoints"), "{err}");
    }
}
