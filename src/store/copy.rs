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
use serde::ser::Impossible;
use std::collections::{HashMap, HashSet};
use std::ops::Range;

/// Why a batch could not be encoded. Our row types always serialise to
/// structs or maps of columns; these errors name the table and the column
/// if one ever does not.
#[derive(Debug, thiserror::Error)]
pub enum CopyEncodeError {
    /// A row did not serialise to a struct or map of columns.
    #[error("a row for {table} is not a struct or map of columns")]
    NotAnObject {
        /// The table.
        table: &'static str,
        /// What the row serialised to instead.
        #[source]
        source: RowShapeError,
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

/// What a row or a column value serialised to where the encoder could not
/// take it (serde's error type of the encoder's serialisers).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RowShapeError(String);

impl serde::ser::Error for RowShapeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
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
/// sequence there becomes an array literal; everywhere else objects and
/// sequences are JSON text (the JSONB columns).
///
/// Each field is written straight from serde into COPY text (a serde
/// `Serializer` for rows and one for column values); only JSONB columns go
/// through serde_json, written through the escaper. The first version
/// serialised every row to JSON and parsed it back into a map of raw
/// values, which scanned each report's JSON twice more (issue 13 step 10).
pub fn encode<'r, T: Serialize + 'r>(
    table: &'static str,
    array_columns: &HashSet<String>,
    crawl_id: i64,
    rows: impl IntoIterator<Item = (i64, &'r T)>,
) -> Result<CopyBatch, CopyEncodeError> {
    let mut staged = Staged {
        table,
        array_columns,
        names: Vec::new(),
        index: HashMap::new(),
        values: Vec::new(),
        fields: Vec::new(),
        rows: Vec::new(),
        pending_key: None,
        failure: None,
    };
    for (id, row) in rows {
        let first = staged.fields.len();
        if let Err(source) = row.serialize(RowSerializer(&mut staged)) {
            return Err(staged
                .failure
                .take()
                .unwrap_or(CopyEncodeError::NotAnObject { table, source }));
        }
        staged.rows.push((id, first..staged.fields.len()));
    }
    Ok(staged.finish(crawl_id))
}

/// A batch's column values as they are serialised: every value already in
/// COPY text in one buffer, each row a run of (column, value range).
struct Staged<'a> {
    table: &'static str,
    array_columns: &'a HashSet<String>,
    /// Column names in order of first appearance.
    names: Vec<String>,
    index: HashMap<String, usize>,
    values: Vec<u8>,
    /// (column index, range in `values`) of every field of every row.
    fields: Vec<(usize, Range<usize>)>,
    /// Each row's domain id and its range in `fields`.
    rows: Vec<(i64, Range<usize>)>,
    /// A map row's key, between `serialize_key` and `serialize_value`.
    pending_key: Option<String>,
    /// An encoding error that is not about the row's shape.
    failure: Option<CopyEncodeError>,
}

impl Staged<'_> {
    /// Encodes one field of the current row; `crawl_id` and `domain_id`
    /// fields are the encoder's own and skipped.
    fn field<V: Serialize + ?Sized>(&mut self, name: &str, value: &V) -> Result<(), RowShapeError> {
        if name == "crawl_id" || name == "domain_id" {
            return Ok(());
        }
        let column = match self.index.get(name) {
            Some(&i) => i,
            None => {
                self.names.push(name.to_string());
                self.index.insert(name.to_string(), self.names.len() - 1);
                self.names.len() - 1
            }
        };
        let start = self.values.len();
        if let Err(e) = self.value(name, value) {
            self.failure = Some(e);
            return Err(RowShapeError(format!("column {name}")));
        }
        self.fields.push((column, start..self.values.len()));
        Ok(())
    }

    /// One column value: a scalar as text, a sequence in an array column
    /// as an array literal, anything else as JSON text.
    fn value<V: Serialize + ?Sized>(
        &mut self,
        name: &str,
        value: &V,
    ) -> Result<(), CopyEncodeError> {
        let start = self.values.len();
        if value.serialize(ScalarSerializer(&mut self.values)).is_ok() {
            return Ok(());
        }
        self.values.truncate(start);
        if self.array_columns.contains(name) {
            let not_text = |json: &str| CopyEncodeError::NotATextArray {
                table: self.table,
                column: name.to_string(),
                value: json.chars().take(80).collect(),
            };
            let json = serde_json::to_string(value).map_err(|_| not_text(""))?;
            let items: Vec<Option<String>> =
                serde_json::from_str(&json).map_err(|_| not_text(&json))?;
            escape(&mut self.values, &array_literal(&items));
            return Ok(());
        }
        serde_json::to_writer(Escaping(&mut self.values), value).map_err(|e| {
            CopyEncodeError::NotAnObject {
                table: self.table,
                source: RowShapeError(format!("column {name}: {e}")),
            }
        })
    }

    /// The COPY text: columns in name order after the two ids.
    fn finish(self, crawl_id: i64) -> CopyBatch {
        let mut order: Vec<usize> = (0..self.names.len()).collect();
        order.sort_by(|a, b| self.names[*a].cmp(&self.names[*b]));
        let mut out = CopyBatch {
            columns: ["crawl_id", "domain_id"]
                .into_iter()
                .map(String::from)
                .chain(order.iter().map(|i| self.names[*i].clone()))
                .collect(),
            data: Vec::with_capacity(self.values.len() + self.rows.len() * (24 + 3 * order.len())),
            rows: self.rows.len(),
        };
        let crawl = crawl_id.to_string();
        let mut slots: Vec<Option<Range<usize>>> = vec![None; self.names.len()];
        for (id, fields) in &self.rows {
            slots.iter_mut().for_each(|s| *s = None);
            for (column, range) in &self.fields[fields.clone()] {
                slots[*column] = Some(range.clone());
            }
            out.data.extend_from_slice(crawl.as_bytes());
            out.data.push(b'\t');
            out.data.extend_from_slice(id.to_string().as_bytes());
            for column in &order {
                out.data.push(b'\t');
                match &slots[*column] {
                    Some(r) => out.data.extend_from_slice(&self.values[r.clone()]),
                    None => out.data.extend_from_slice(b"\\N"),
                }
            }
            out.data.push(b'\n');
        }
        out
    }
}

/// COPY-escapes everything written through it (for JSON text).
struct Escaping<'a>(&'a mut Vec<u8>);

impl std::io::Write for Escaping<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        escape_bytes(self.0, buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `Serializer` methods of a row for scalars: a row is never one.
macro_rules! refuse_scalars {
    ($($method:ident: $t:ty => $what:literal),* $(,)?) => {
        $(fn $method(self, _: $t) -> Result<(), RowShapeError> {
            not_a_row($what)
        })*
    };
}

/// `Serializer` methods for sequences, tuples and enum variants with data,
/// which neither a row nor a scalar column value is: `$array` and
/// `$variant` are the refusals.
macro_rules! refuse_compounds {
    ($array:expr, $variant:expr) => {
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<(), RowShapeError> {
            $variant
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, RowShapeError> {
            $array
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, RowShapeError> {
            $array
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, RowShapeError> {
            $array
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, RowShapeError> {
            $variant
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, RowShapeError> {
            $variant
        }
    };
}

/// A `Serializer`'s compound types that its shape never produces (their
/// `serialize_*` methods refuse before one is made).
macro_rules! impossible {
    ($($t:ident),* $(,)?) => {
        $(type $t = Impossible<(), RowShapeError>;)*
    };
}

/// `Serializer` methods for `Some(v)` and newtype structs: they are `v`
/// (as serde_json writes them).
macro_rules! see_through {
    () => {
        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            value: &T,
        ) -> Result<(), RowShapeError> {
            value.serialize(self)
        }
        fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), RowShapeError> {
            value.serialize(self)
        }
    };
}

/// `Serializer` methods of a column value for integers: as JSON writes them.
macro_rules! numbers {
    ($($method:ident: $t:ty),* $(,)?) => {
        $(fn $method(self, v: $t) -> Result<(), RowShapeError> {
            self.number(v)
        })*
    };
}

/// The row serialiser: a struct's fields or a map's entries are the row's
/// columns (serde's `flatten` turns a struct into a map).
struct RowSerializer<'s, 'a>(&'s mut Staged<'a>);

fn not_a_row<T>(what: &str) -> Result<T, RowShapeError> {
    Err(RowShapeError(format!("a row serialised to {what}")))
}

impl<'s, 'a> serde::Serializer for RowSerializer<'s, 'a> {
    type Ok = ();
    type Error = RowShapeError;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    impossible!(
        SerializeSeq,
        SerializeTuple,
        SerializeTupleStruct,
        SerializeTupleVariant,
        SerializeStructVariant
    );

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, RowShapeError> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, RowShapeError> {
        Ok(self)
    }
    see_through!();
    refuse_scalars! {
        serialize_bool: bool => "a boolean",
        serialize_i8: i8 => "a number",
        serialize_i16: i16 => "a number",
        serialize_i32: i32 => "a number",
        serialize_i64: i64 => "a number",
        serialize_u8: u8 => "a number",
        serialize_u16: u16 => "a number",
        serialize_u32: u32 => "a number",
        serialize_u64: u64 => "a number",
        serialize_f32: f32 => "a number",
        serialize_f64: f64 => "a number",
        serialize_char: char => "a string",
        serialize_str: &str => "a string",
        serialize_bytes: &[u8] => "bytes",
    }
    fn serialize_none(self) -> Result<(), RowShapeError> {
        not_a_row("null")
    }
    fn serialize_unit(self) -> Result<(), RowShapeError> {
        not_a_row("null")
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), RowShapeError> {
        not_a_row("null")
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), RowShapeError> {
        not_a_row("a string")
    }
    refuse_compounds!(not_a_row("an array"), not_a_row("an enum variant"));
}

impl serde::ser::SerializeStruct for RowSerializer<'_, '_> {
    type Ok = ();
    type Error = RowShapeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), RowShapeError> {
        self.0.field(key, value)
    }
    fn end(self) -> Result<(), RowShapeError> {
        Ok(())
    }
}

impl serde::ser::SerializeMap for RowSerializer<'_, '_> {
    type Ok = ();
    type Error = RowShapeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), RowShapeError> {
        let mut name = Vec::new();
        key.serialize(ScalarSerializer(&mut name))
            .map_err(|_| RowShapeError("a row's column name is not a string".into()))?;
        // Column names are ours (serde field names), plain text: the
        // scalar serialiser's escaping leaves them unchanged.
        self.0.pending_key = Some(String::from_utf8_lossy(&name).into_owned());
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), RowShapeError> {
        let key = self
            .0
            .pending_key
            .take()
            .ok_or_else(|| RowShapeError("a map value without a key".into()))?;
        self.0.field(&key, value)
    }
    fn end(self) -> Result<(), RowShapeError> {
        Ok(())
    }
}

/// A column value that is a scalar, written as COPY text: strings escaped,
/// `t`/`f`, numbers as JSON writes them, `\N` for none. Fails on anything
/// compound, which the caller then writes as JSON text or an array literal.
struct ScalarSerializer<'a>(&'a mut Vec<u8>);

fn compound<T>() -> Result<T, RowShapeError> {
    Err(RowShapeError("not a scalar".into()))
}

impl ScalarSerializer<'_> {
    fn number(self, n: impl Serialize) -> Result<(), RowShapeError> {
        serde_json::to_writer(&mut *self.0, &n).map_err(|e| RowShapeError(e.to_string()))
    }
}

impl serde::Serializer for ScalarSerializer<'_> {
    type Ok = ();
    type Error = RowShapeError;
    impossible!(
        SerializeSeq,
        SerializeTuple,
        SerializeTupleStruct,
        SerializeTupleVariant,
        SerializeMap,
        SerializeStruct,
        SerializeStructVariant
    );

    fn serialize_bool(self, v: bool) -> Result<(), RowShapeError> {
        self.0.push(if v { b't' } else { b'f' });
        Ok(())
    }
    numbers! {
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_i128: i128,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64,
        serialize_u128: u128,
    }
    /// A float as JSON writes it; JSON has no NaN or infinity (null).
    fn serialize_f32(self, v: f32) -> Result<(), RowShapeError> {
        if !v.is_finite() {
            return self.serialize_none();
        }
        self.number(v)
    }
    fn serialize_f64(self, v: f64) -> Result<(), RowShapeError> {
        if !v.is_finite() {
            return self.serialize_none();
        }
        self.number(v)
    }
    fn serialize_char(self, v: char) -> Result<(), RowShapeError> {
        escape(self.0, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), RowShapeError> {
        escape(self.0, v);
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), RowShapeError> {
        compound()
    }
    fn serialize_none(self) -> Result<(), RowShapeError> {
        self.0.extend_from_slice(b"\\N");
        Ok(())
    }
    fn serialize_unit(self) -> Result<(), RowShapeError> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), RowShapeError> {
        self.serialize_none()
    }
    /// A unit enum variant is its (renamed) name, as in JSON.
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), RowShapeError> {
        self.serialize_str(variant)
    }
    see_through!();
    refuse_compounds!(compound(), compound());
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, RowShapeError> {
        compound()
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, RowShapeError> {
        compound()
    }
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
    escape_bytes(out, s.as_bytes());
}

/// Below this length [`escape_bytes`] looks for special bytes one by one.
const SHORT: usize = 64;

/// [`escape`] on bytes of UTF-8 text, in any pieces: the special bytes are
/// single ASCII bytes, never part of a longer character. The runs between
/// them (nearly all of a report's JSON) are found with `memchr` and copied
/// whole: a byte-by-byte search was 15 % of the write path's instructions
/// (callgrind, issue 13 step 10).
fn escape_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let special = |b: &u8| matches!(b, b'\\' | b'\n' | b'\r' | b'\t' | 0);
    // Most values are short (names, codes, numbers): a plain search costs
    // less there than starting two SIMD searches.
    if bytes.len() < SHORT && !bytes.iter().any(special) {
        out.extend_from_slice(bytes);
        return;
    }
    // The next special byte of each group, as an offset into `rest`; each
    // search runs again only once its hit has been passed, so the text is
    // scanned once per group.
    let find_a = |r: &[u8]| memchr::memchr3(b'\\', b'\n', b'\r', r);
    let find_b = |r: &[u8]| memchr::memchr2(b'\t', 0, r);
    let mut rest = bytes;
    let (mut next_a, mut next_b) = (find_a(rest), find_b(rest));
    loop {
        let at = match (next_a, next_b) {
            (None, None) => break,
            (a, b) => a.unwrap_or(usize::MAX).min(b.unwrap_or(usize::MAX)),
        };
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(match rest[at] {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ => "\u{FFFD}".as_bytes(),
        });
        rest = &rest[at + 1..];
        let shift = |next: Option<usize>, find: &dyn Fn(&[u8]) -> Option<usize>| match next {
            Some(p) if p > at => Some(p - at - 1),
            Some(_) => find(rest),
            None => None,
        };
        next_a = shift(next_a, &find_a);
        next_b = shift(next_b, &find_b);
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

    #[test]
    fn every_special_byte_is_escaped_wherever_it_falls() {
        let specials = ["\\", "\n", "\r", "\t", "\u{0}"];
        let escaped = ["\\\\", "\\n", "\\r", "\\t", "\u{FFFD}"];
        // Every ordered pair of specials, adjacent and apart, at the start,
        // in the middle and at the end.
        for (i, a) in specials.iter().enumerate() {
            for (j, b) in specials.iter().enumerate() {
                let long = "plain text ".repeat(10);
                for gap in ["", "x", long.as_str()] {
                    let text = format!("{a}{gap}{b}mid{b}{gap}{a}");
                    let want = format!(
                        "{}{gap}{}mid{}{gap}{}",
                        escaped[i], escaped[j], escaped[j], escaped[i]
                    );
                    let mut out = Vec::new();
                    escape(&mut out, &text);
                    assert_eq!(String::from_utf8(out).unwrap(), want, "{text:?}");
                }
            }
        }
        for plain in ["plain", &"long plain text ".repeat(10)] {
            let mut out = Vec::new();
            escape(&mut out, plain);
            assert_eq!(out, plain.as_bytes());
        }
    }
}
