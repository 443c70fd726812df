//! Output columns: their types as Delta, polars and PostgreSQL hold them,
//! and the fixed columns of bronze and quarantine tables.

use std::fmt;

/// The type of an output column, as Delta, polars and PostgreSQL will hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// UTF-8 text.
    String,
    /// Raw bytes.
    Binary,
    /// 32-bit integer.
    Int,
    /// 64-bit integer.
    BigInt,
    /// 64-bit float.
    Double,
    /// Exact decimal with precision and scale.
    Decimal {
        precision: u8,
        scale: u8,
    },
    Bool,
    /// Microseconds since the epoch, UTC.
    Timestamp,
    /// A calendar date.
    Date,
}

impl ColumnType {
    /// Parses `string`, `int`, `decimal(14,2)`, ... as written in model files.
    pub fn parse(s: &str) -> Option<ColumnType> {
        let s = s.trim();
        Some(match s {
            "string" => ColumnType::String,
            "binary" => ColumnType::Binary,
            "int" => ColumnType::Int,
            "bigint" => ColumnType::BigInt,
            "double" => ColumnType::Double,
            "bool" => ColumnType::Bool,
            "timestamp" => ColumnType::Timestamp,
            "date" => ColumnType::Date,
            _ => {
                let inner = s.strip_prefix("decimal(")?.strip_suffix(')')?;
                let (p, sc) = inner.split_once(',')?;
                let precision: u8 = p.trim().parse().ok()?;
                let scale: u8 = sc.trim().parse().ok()?;
                if precision == 0 || precision > 38 || scale > precision {
                    return None;
                }
                ColumnType::Decimal { precision, scale }
            }
        })
    }

    pub const NAMES: &'static str =
        "string, binary, int, bigint, double, decimal(p,s), bool, timestamp, date";
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::String => f.write_str("string"),
            ColumnType::Binary => f.write_str("binary"),
            ColumnType::Int => f.write_str("int"),
            ColumnType::BigInt => f.write_str("bigint"),
            ColumnType::Double => f.write_str("double"),
            ColumnType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            ColumnType::Bool => f.write_str("bool"),
            ColumnType::Timestamp => f.write_str("timestamp"),
            ColumnType::Date => f.write_str("date"),
        }
    }
}

/// One output column of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    pub description: String,
    pub nullable: bool,
}

/// A fixed column (of the tables whose columns no model declares).
fn fixed(name: &str, ty: ColumnType, nullable: bool, description: &str) -> Column {
    Column {
        name: name.into(),
        ty,
        nullable,
        description: description.into(),
    }
}

/// The fixed columns of every bronze table: bronze never parses.
pub fn bronze_columns() -> Vec<Column> {
    let c = fixed;
    vec![
        c("topic", ColumnType::String, false, "Kafka topic"),
        c("partition", ColumnType::Int, false, "Kafka partition"),
        c("offset", ColumnType::BigInt, false, "Kafka offset"),
        c("key", ColumnType::Binary, true, "message key, raw"),
        c(
            "value",
            ColumnType::Binary,
            true,
            "message value, raw; null for a tombstone",
        ),
        c(
            "kafka_timestamp",
            ColumnType::Timestamp,
            true,
            "Kafka message timestamp",
        ),
        c(
            "ingested_at",
            ColumnType::Timestamp,
            false,
            "when the ingester read the message",
        ),
        c(
            "ingest_date",
            ColumnType::Date,
            false,
            "UTC date of ingested_at (partition)",
        ),
    ]
}

/// The fixed columns of every quarantine table.
pub fn quarantine_columns() -> Vec<Column> {
    let c = fixed;
    vec![
        c(
            "topic",
            ColumnType::String,
            false,
            "bronze coordinates: Kafka topic",
        ),
        c(
            "partition",
            ColumnType::Int,
            false,
            "bronze coordinates: Kafka partition",
        ),
        c(
            "offset",
            ColumnType::BigInt,
            false,
            "bronze coordinates: Kafka offset",
        ),
        c("value", ColumnType::Binary, true, "the raw value"),
        c(
            "reason",
            ColumnType::String,
            false,
            "first failing rule, e.g. range:speed_kmh",
        ),
        c(
            "ingested_at",
            ColumnType::Timestamp,
            false,
            "bronze ingested_at",
        ),
        c(
            "ingest_date",
            ColumnType::Date,
            false,
            "UTC date of ingested_at (partition)",
        ),
    ]
}
