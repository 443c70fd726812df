//! What checking one field gives: a typed cell, or the reason its row is
//! quarantined.

use std::borrow::Cow;

/// A checked field value, ready for its output column.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell<'a> {
    Null,
    /// Borrowed from the raw value unless it had escapes.
    Text(Cow<'a, str>),
    Float(f64),
    Int(i64),
    /// Scaled by the column's scale.
    Decimal(i128),
    /// UTC microseconds.
    Micros(i64),
}

/// Why a row is quarantined (`Display` gives the machine-readable code).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    EmptyValue,
    MalformedJson,
    /// A CSV row that is not one record of the header's width.
    MalformedCsv,
    /// A file of a `file_source` that could not be read (bronze keeps one
    /// row for it, at offset -1, with the reason as its value).
    UnreadableFile,
    Missing(String),
    Type(String),
    Range(String),
    FutureEventTime,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::EmptyValue => f.write_str("empty_value"),
            Reason::MalformedJson => f.write_str("malformed_json"),
            Reason::MalformedCsv => f.write_str("malformed_csv"),
            Reason::UnreadableFile => f.write_str("unreadable_file"),
            Reason::Missing(c) => write!(f, "missing:{c}"),
            Reason::Type(c) => write!(f, "type:{c}"),
            Reason::Range(c) => write!(f, "range:{c}"),
            Reason::FutureEventTime => f.write_str("future_event_time"),
        }
    }
}
