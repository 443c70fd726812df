//! What a silver `clean` model does to a bronze value: the field rules it
//! checks, the key it dedupes on and the columns it derives.

use super::{ColumnType, Interval};
use std::time::Duration;

/// A JSON field rule of a silver cleaning model, checked in declaration
/// order: the first failing rule names the quarantine reason.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldRule {
    pub name: String,
    /// Where the value sits in the record: `[name]`, or the members of
    /// nested objects (`path: location.lat`).
    pub path: Vec<String>,
    pub kind: FieldKind,
    pub required: bool,
    /// Allowed values (numbers only).
    pub range: Option<Interval>,
    /// Most decimal places the exact value may have (numbers only).
    pub max_decimals: Option<u32>,
    /// Timestamps only: the most the value may be ahead of the row's
    /// bronze `ingested_at` (reason `future_event_time`).
    pub max_ahead_of_ingest: Option<Duration>,
    /// The output column the value lands in.
    pub column: ColumnType,
}

/// The JSON type a field rule demands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    String,
    Number,
    Integer,
    /// RFC 3339 with a required offset, stored as UTC microseconds.
    Timestamp,
}

impl FieldKind {
    pub fn parse(s: &str) -> Option<FieldKind> {
        Some(match s {
            "string" => FieldKind::String,
            "number" => FieldKind::Number,
            "integer" => FieldKind::Integer,
            "timestamp" => FieldKind::Timestamp,
            _ => return None,
        })
    }

    /// The output column type when a rule does not say `as:`.
    pub fn default_column(self) -> ColumnType {
        match self {
            FieldKind::String => ColumnType::String,
            FieldKind::Number => ColumnType::Double,
            FieldKind::Integer => ColumnType::Int,
            FieldKind::Timestamp => ColumnType::Timestamp,
        }
    }
}

/// Which copy of a duplicated key a cleaning model keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct Dedupe {
    pub key: Vec<String>,
    /// Ordering columns; the first row in this order wins.
    pub order: Vec<String>,
}

/// A column a cleaning model computes from the parsed fields, as a SQL
/// expression over them (e.g. `CAST(event_time AS DATE)`).
#[derive(Clone, Debug, PartialEq)]
pub struct Derived {
    pub name: String,
    pub sql: String,
}
