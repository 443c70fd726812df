//! A row's fields checked against a model's field rules: JSON objects and
//! CSV records, with buffers reused from row to row.

use super::cell::{Cell, Reason};
use super::field::{check_field, nested};
use super::number::ExactInterval;
use crate::decl::{FieldRule, RecordFormat};
use crate::model::json::{Member, Value, parse_object_into};
use std::borrow::Cow;

/// Checks one raw bronze value against the field rules, in order; the
/// first failing rule is the reason.
pub fn check_row<'a>(
    raw: Option<&'a [u8]>,
    ingested_at_micros: i64,
    fields: &[FieldRule],
) -> Result<Vec<Cell<'a>>, Reason> {
    RowChecker::new(fields).check(raw, ingested_at_micros)
}

/// The field rules of a model, prepared once for checking many rows.
pub struct RowChecker<'r> {
    fields: &'r [FieldRule],
    ranges: Vec<Option<ExactInterval>>,
    /// CSV cells are text: a number rule reads the text as its token.
    text_numbers: bool,
}

/// Buffers one thread reuses from row to row: checking a row allocates
/// nothing unless a string has escapes (allocation was a fifth of the
/// checking time).
pub struct Scratch<'a> {
    members: Vec<Member<'a>>,
    /// The last checked row's cells, in field order.
    pub cells: Vec<Cell<'a>>,
    /// Where each field's member was in the last row that had it: rows of
    /// one producer put their members in one order (not necessarily the
    /// fields' order: serde_json writes keys sorted), so looking there
    /// first finds a member with one compare.
    seen_at: Vec<usize>,
}

impl Default for Scratch<'_> {
    fn default() -> Self {
        Self {
            members: Vec::with_capacity(16),
            cells: Vec::with_capacity(16),
            seen_at: Vec::with_capacity(16),
        }
    }
}

impl<'r> RowChecker<'r> {
    pub fn new(fields: &'r [FieldRule]) -> Self {
        Self {
            fields,
            ranges: fields
                .iter()
                .map(|f| f.range.as_ref().map(ExactInterval::of))
                .collect(),
            text_numbers: false,
        }
    }

    /// A checker of values written in `format`.
    pub fn for_format(fields: &'r [FieldRule], format: RecordFormat) -> Self {
        Self {
            text_numbers: format == RecordFormat::Csv,
            ..Self::new(fields)
        }
    }

    /// One row's cells in field order, or the first failing rule's reason.
    pub fn check<'a>(
        &self,
        raw: Option<&'a [u8]>,
        ingested_at_micros: i64,
    ) -> Result<Vec<Cell<'a>>, Reason> {
        let mut scratch = Scratch::default();
        self.check_into(raw, ingested_at_micros, &mut scratch)?;
        Ok(scratch.cells)
    }

    /// [`RowChecker::check`] into `scratch.cells`.
    pub fn check_into<'a>(
        &self,
        raw: Option<&'a [u8]>,
        ingested_at_micros: i64,
        scratch: &mut Scratch<'a>,
    ) -> Result<(), Reason> {
        scratch.cells.clear();
        let raw = match raw {
            None | Some([]) => return Err(Reason::EmptyValue),
            Some(r) => r,
        };
        parse_object_into(raw, &mut scratch.members).ok_or(Reason::MalformedJson)?;
        self.check_members(ingested_at_micros, scratch)
    }

    /// One CSV row (`raw`) under its file's `header` (column names, in
    /// order): empty cells are nulls, number rules read the cell's text.
    pub fn check_csv_into<'a>(
        &self,
        header: &[String],
        raw: Option<&'a [u8]>,
        ingested_at_micros: i64,
        scratch: &mut Scratch<'a>,
    ) -> Result<(), Reason> {
        scratch.cells.clear();
        scratch.members.clear();
        let raw = match raw {
            None | Some([]) => return Err(Reason::EmptyValue),
            Some(r) => r,
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(raw);
        let mut record = csv::StringRecord::new();
        match reader.read_record(&mut record) {
            Ok(true) if record.len() == header.len() => {}
            _ => return Err(Reason::MalformedCsv),
        }
        // One record per row: anything after it is not this row's.
        if reader
            .read_record(&mut csv::StringRecord::new())
            .unwrap_or(true)
        {
            return Err(Reason::MalformedCsv);
        }
        for (name, cell) in header.iter().zip(record.iter()) {
            // A name the header repeats is read from its first column (as
            // pandas and DuckDB read it); members stay unique, as the JSON
            // parser leaves them, which `check_members` relies on.
            if scratch.members.iter().any(|(k, _)| k == name) {
                continue;
            }
            let value = if cell.is_empty() {
                Value::Null
            } else {
                Value::String(Cow::Owned(cell.to_string()))
            };
            scratch.members.push((Cow::Owned(name.clone()), value));
        }
        self.check_members(ingested_at_micros, scratch)
    }

    /// The rules over a row's members (`scratch.members`), into
    /// `scratch.cells`.
    fn check_members<'a>(
        &self,
        ingested_at_micros: i64,
        scratch: &mut Scratch<'a>,
    ) -> Result<(), Reason> {
        let members = &mut scratch.members;
        let seen_at = &mut scratch.seen_at;
        seen_at.resize(self.fields.len(), 0);
        for ((rule, range), last) in self.fields.iter().zip(&self.ranges).zip(seen_at) {
            let top = rule.path.first().unwrap_or(&rule.name).as_str();
            // Members are unique (the JSON parser refuses duplicate keys,
            // a CSV header's repeated name keeps its first column), so
            // the member where the last row had it, if it is this one, is
            // the one a search would find.
            let found = match members.get(*last) {
                Some(m) if m.0 == top => Some(*last),
                _ => members.iter().position(|m| m.0 == top),
            };
            if let Some(at) = found {
                *last = at;
            }
            let value = match found {
                None => None,
                // A member of a nested object: the object stays for the
                // other rules that read into it.
                Some(at) if rule.path.len() > 1 => nested(&members[at].1, rule)?,
                // Copied, not taken: two rules may read one member (a
                // `path` alias, a nested rule under a plain one). A
                // borrowed value copies two words.
                Some(at) => Some(members[at].1.clone()),
            };
            scratch.cells.push(check_field(
                rule,
                range.as_ref(),
                value,
                ingested_at_micros,
                self.text_numbers,
            )?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decl::FieldKind;

    fn rule(name: &str, path: &str, kind: FieldKind, required: bool) -> FieldRule {
        FieldRule {
            name: name.into(),
            path: path.split('.').map(str::to_string).collect(),
            kind,
            required,
            range: None,
            max_decimals: None,
            max_ahead_of_ingest: None,
            column: kind.default_column(),
        }
    }

    #[test]
    fn nested_members_are_read_by_path_and_judged_by_their_rule() {
        let fields = [
            rule("id", "id", FieldKind::String, true),
            rule("lat", "location.lat", FieldKind::Number, true),
            rule("lon", "location.lon", FieldKind::Number, false),
            rule("deep", "a.b.c", FieldKind::String, false),
        ];
        let c = RowChecker::new(&fields);
        let cells = c
            .check(
                Some(br#"{"id":"x","location":{"lon":2.5,"lat":-1},"a":{"b":{"c":"d"}}}"#),
                0,
            )
            .expect("test value");
        assert_eq!(
            cells,
            vec![
                Cell::Text("x".into()),
                Cell::Float(-1.0),
                Cell::Float(2.5),
                Cell::Text("d".into())
            ]
        );
        // Missing on the way, null on the way, not an object on the way.
        let reason = |raw: &[u8]| c.check(Some(raw), 0).expect_err("test value").to_string();
        assert_eq!(reason(br#"{"id":"x","location":{}}"#), "missing:lat");
        assert_eq!(reason(br#"{"id":"x","location":null}"#), "missing:lat");
        assert_eq!(reason(br#"{"id":"x","location":[1]}"#), "type:lat");
        assert_eq!(reason(br#"{"id":"x","location":{"lat":"1"}}"#), "type:lat");
        // Two rules may read one member.
        let alias = [
            rule("loc", "location", FieldKind::String, false),
            rule("raw", "id", FieldKind::String, true),
            rule("id", "id", FieldKind::String, true),
        ];
        let cells = RowChecker::new(&alias)
            .check(Some(br#"{"id":"x","location":"here"}"#), 0)
            .expect("test value");
        assert_eq!(
            cells,
            vec![
                Cell::Text("here".into()),
                Cell::Text("x".into()),
                Cell::Text("x".into())
            ]
        );
        // Strictness still covers nested objects.
        assert_eq!(
            reason(br#"{"id":"x","location":{"lat":1,"lat":2}}"#),
            "malformed_json"
        );
    }

    #[test]
    fn csv_cells_are_text_read_by_their_rules() {
        let fields = [
            rule("id", "id", FieldKind::String, true),
            rule("n", "n", FieldKind::Integer, true),
            rule("note", "note", FieldKind::String, false),
        ];
        let c = RowChecker::for_format(&fields, RecordFormat::Csv);
        let header: Vec<String> = ["n", "id", "note"].map(String::from).to_vec();
        let check = |raw: &'static [u8]| {
            let mut scratch = Scratch::default();
            c.check_csv_into(&header, Some(raw), 0, &mut scratch)
                .map(|()| scratch.cells)
                .map_err(|r| r.to_string())
        };
        assert_eq!(
            check(b" 42 ,a,\"x, \"\"y\"\"\"").expect("test value"),
            vec![
                Cell::Text("a".into()),
                Cell::Int(42),
                Cell::Text("x, \"y\"".into())
            ]
        );
        assert_eq!(check(b"7,b,").expect("test value")[2], Cell::Null);
        assert_eq!(check(b"x,a,").expect_err("test value"), "type:n");
        assert_eq!(check(b"1.5,a,").expect_err("test value"), "type:n");
        for bad in ["0e", "0eabc", "5e", "01", "1.", ".5", "+1", "1e+"] {
            let row = format!("{bad},a,");
            let row: &'static [u8] = Box::leak(row.into_bytes().into_boxed_slice());
            assert_eq!(check(row).expect_err("test value"), "type:n", "{bad}");
        }
        assert_eq!(check(b"-0,a,").expect("test value")[1], Cell::Int(0));
        assert_eq!(check(b"2E+1,a,").expect("test value")[1], Cell::Int(20));
        assert_eq!(check(b"1,,z").expect_err("test value"), "missing:id");
        assert_eq!(check(b"1,a").expect_err("test value"), "malformed_csv");
        assert_eq!(
            check(b"1,a,b\n2,c,d").expect_err("test value"),
            "malformed_csv"
        );
    }

    /// A name a CSV header repeats is read from its first column, whatever
    /// the headers of the rows checked before on the same thread.
    #[test]
    fn a_repeated_csv_column_is_read_from_its_first_place() {
        let fields = [rule("n", "n", FieldKind::Integer, true)];
        let c = RowChecker::for_format(&fields, RecordFormat::Csv);
        let headers: [&[&str]; 3] = [&["x", "y", "n", "n"], &["n", "y", "n"], &["n", "n"]];
        let rows: [&[u8]; 3] = [b"0,0,1,2", b"3,0,4", b"5,6"];
        let mut scratch = Scratch::default();
        for round in 0..2 {
            for (header, raw) in headers.iter().zip(rows) {
                let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
                c.check_csv_into(&header, Some(raw), 0, &mut scratch)
                    .expect("a valid row");
                let first = raw
                    .split(|b| *b == b',')
                    .nth(header.iter().position(|h| h == "n").expect("n"));
                let want: i64 = std::str::from_utf8(first.expect("cell"))
                    .expect("utf8")
                    .parse()
                    .expect("int");
                assert_eq!(
                    scratch.cells,
                    vec![Cell::Int(want)],
                    "round {round}, {header:?}"
                );
            }
        }
    }
}
