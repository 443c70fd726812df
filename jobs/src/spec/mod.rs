//! The model format: what a pipeline folder under `models/` may declare, as
//! typed values. See `models/README.md` for the format as users write it.
//!
//! A model is a named node with a kind (where its rows come from), a
//! materialization, keys, partitioning, output columns, data tests and
//! optionally a schedule and a warehouse target. One YAML file declares one
//! model, named after the file; a gold `sql` model has its query in a `.sql`
//! file beside it. `file` parses and checks one file on its own; resolving
//! names across files (inputs, relationships, cycles) is the loader's job in
//! the `dag` crate.

mod diag;
mod file;
mod range;
mod sql;
pub mod template;

pub use diag::{Diagnostic, Diagnostics, Pos, did_you_mean};
pub(crate) use file::is_identifier;
pub use file::{
    ModelDraft, Reference, check_cron, parse_duration, parse_model_file, parser_message,
};
pub use range::{Bound, Interval};
pub use sql::{SqlColumns, SqlRelation, monotone_in, sql_columns, sql_relations};
pub use template::SqlFile;

use std::fmt;
use std::time::Duration;

/// The medallion layer a model belongs to, from the folder it lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    Bronze,
    Silver,
    Gold,
}

impl Layer {
    pub const ALL: [Layer; 3] = [Layer::Bronze, Layer::Silver, Layer::Gold];

    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Bronze => "bronze",
            Layer::Silver => "silver",
            Layer::Gold => "gold",
        }
    }

    pub fn parse(s: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a model's output is written to its Delta table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Materialization {
    /// Replace the whole table each run.
    Table,
    /// Merge on the unique key, touching only the affected rows/partitions.
    Incremental,
    /// Add new rows only.
    Append,
}

impl Materialization {
    pub fn as_str(self) -> &'static str {
        match self {
            Materialization::Table => "table",
            Materialization::Incremental => "incremental",
            Materialization::Append => "append",
        }
    }
}

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

/// An as-of join made available to a SQL model as a named relation: each
/// `left` row gets the `right` row with the same `by` values and the latest
/// `right_on` at or before its `left_on` (ties: greatest `tie_break`).
#[derive(Clone, Debug, PartialEq)]
pub struct AsofJoin {
    pub name: String,
    pub left: String,
    pub right: String,
    pub left_on: String,
    pub right_on: String,
    pub by: Vec<String>,
    pub tie_break: Option<String>,
    /// Columns taken from the right side.
    pub select: Vec<String>,
}

/// For an incremental SQL model, how the changed rows of one input name the
/// output rows they can affect: each scope column of the output is a SQL
/// expression over the input's row. An incremental run recomputes only the
/// output rows whose scope values some changed input row has, from the
/// input rows with those values. Valid when every output row depends only
/// on input rows with its own scope values (a group by, a per-row
/// transform); see models/README.md.
#[derive(Clone, Debug, PartialEq)]
pub struct ScopeInput {
    pub input: String,
    /// (output column, SQL expression over the input), in output-column order.
    pub columns: Vec<(String, String)>,
    /// `scope_presence`: an output row depends only on whether rows of
    /// this input with its scope values exist (an inferred dimension
    /// member), not on what or how many they are. While the input only
    /// gains rows, only scope values the output does not hold yet are
    /// affected, and the new rows alone decide them.
    pub presence: bool,
}

/// How an `accumulate` model folds a column of the rows computed from new
/// input rows into the row it holds for the same key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fold {
    Sum,
    Min,
    Max,
}

/// Where a model's rows come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// Bronze: raw messages of a Kafka topic.
    Kafka { topic: String },
    /// Bronze: the records of files arriving under a folder or an object
    /// store prefix, each file taken once.
    Files {
        /// Where the files arrive: a folder (relative to the project) or a
        /// URL (`s3://bucket/prefix`, `file:///...`).
        path: String,
        format: FileFormat,
    },
    /// Silver: parse, check and dedupe a bronze table's raw values.
    Clean {
        /// How the raw values are written.
        format: RecordFormat,
        input: String,
        quarantine: String,
        fields: Vec<FieldRule>,
        dedupe: Dedupe,
        derive: Vec<Derived>,
    },
    /// Silver: the rows a cleaning model rejected (written by that model).
    Quarantine { of: String },
    /// Silver: a reference CSV file under the data folder.
    Seed { file: String },
    /// Gold: a SQL query (polars SQL) over other models.
    Sql {
        /// The query text, from `<name>.sql`.
        sql: String,
        asof: Vec<AsofJoin>,
        /// How an incremental run finds the output rows to recompute (empty:
        /// the query runs over whole inputs).
        scope: Vec<ScopeInput>,
        /// `accumulate`: the query runs over the input's new rows only and
        /// each column folds into the row the table holds for its key
        /// (output column, fold), while the input only gains rows.
        accumulate: Vec<(String, Fold)>,
    },
}

impl Source {
    pub fn kind_name(&self) -> &'static str {
        match self {
            Source::Kafka { .. } => "kafka_source",
            Source::Files { .. } => "file_source",
            Source::Clean { .. } => "clean",
            Source::Quarantine { .. } => "quarantine",
            Source::Seed { .. } => "seed",
            Source::Sql { .. } => "sql",
        }
    }

    /// The kind with what it reads, as `dag list` shows it
    /// (`kafka_source(topic)`, `file_source(csv, path)`, `seed(file)`).
    pub fn label(&self) -> String {
        match self {
            Source::Kafka { topic } => format!("kafka_source({topic})"),
            Source::Files { path, format } => format!("file_source({}, {path})", format.name()),
            Source::Seed { file } => format!("seed({file})"),
            other => other.kind_name().to_string(),
        }
    }

    /// Bronze kinds: raw records from outside, landed as they came.
    pub fn is_bronze_source(&self) -> bool {
        matches!(self, Source::Kafka { .. } | Source::Files { .. })
    }
}

/// The format of the files of a `file_source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// Comma-separated with a header line; a record is one CSV row.
    Csv,
    /// JSON lines: a record is one non-blank line.
    Json,
    /// Parquet: a record is one row, kept as a JSON object.
    Parquet,
}

impl FileFormat {
    pub const NAMES: &'static str = "csv, json, parquet";

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "csv" => FileFormat::Csv,
            "json" | "jsonl" | "ndjson" => FileFormat::Json,
            "parquet" => FileFormat::Parquet,
            _ => return None,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Json => "json",
            FileFormat::Parquet => "parquet",
        }
    }
}

/// How a cleaning model reads a bronze value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecordFormat {
    /// A strict JSON object (Kafka messages, JSON lines, Parquet rows).
    #[default]
    Json,
    /// One CSV row; the bronze `key` holds the file's header line.
    Csv,
}

/// How bad a failing data test is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Fails the run and blocks the load and downstream models.
    Error,
    /// Reported; blocks nothing.
    Warn,
}

/// A threshold on a test's failing-row count, as dbt writes it (`"> 10"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Threshold {
    pub op: CmpOp,
    pub value: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Gt,
    Ge,
    Eq,
    Ne,
    Lt,
    Le,
}

impl Threshold {
    pub fn parse(s: &str) -> Option<Threshold> {
        let s = s.trim();
        let (op, rest) = [
            (">=", CmpOp::Ge),
            ("<=", CmpOp::Le),
            ("!=", CmpOp::Ne),
            ("<>", CmpOp::Ne),
            ("==", CmpOp::Eq),
            (">", CmpOp::Gt),
            ("<", CmpOp::Lt),
            ("=", CmpOp::Eq),
        ]
        .into_iter()
        .find_map(|(tok, op)| s.strip_prefix(tok).map(|r| (op, r)))?;
        Some(Threshold {
            op,
            value: rest.trim().parse().ok()?,
        })
    }

    pub fn holds(&self, failures: u64) -> bool {
        match self.op {
            CmpOp::Gt => failures > self.value,
            CmpOp::Ge => failures >= self.value,
            CmpOp::Eq => failures == self.value,
            CmpOp::Ne => failures != self.value,
            CmpOp::Lt => failures < self.value,
            CmpOp::Le => failures <= self.value,
        }
    }
}

/// What a data test checks.
#[derive(Clone, Debug, PartialEq)]
pub enum TestKind {
    NotNull {
        column: String,
    },
    Unique {
        columns: Vec<String>,
    },
    Relationships {
        column: String,
        to: String,
        field: String,
    },
    AcceptedValues {
        column: String,
        allowed: Allowed,
    },
    /// A SQL boolean every row must satisfy.
    Expression {
        sql: String,
    },
    RowCount {
        min: Option<u64>,
        max: Option<u64>,
        equal_to: Option<CountOf>,
    },
    /// The newest `column` value is within `max_lag` of the run's clock.
    Freshness {
        column: String,
        max_lag: Duration,
    },
}

impl TestKind {
    pub fn name(&self) -> &'static str {
        match self {
            TestKind::NotNull { .. } => "not_null",
            TestKind::Unique { .. } => "unique",
            TestKind::Relationships { .. } => "relationships",
            TestKind::AcceptedValues { .. } => "accepted_values",
            TestKind::Expression { .. } => "expression",
            TestKind::RowCount { .. } => "row_count",
            TestKind::Freshness { .. } => "freshness",
        }
    }
}

/// The values an `accepted_values` test allows.
#[derive(Clone, Debug, PartialEq)]
pub enum Allowed {
    Values(Vec<String>),
    Range(Interval),
}

/// `row_count: {equal_to: {model: x, where: "..."}}`.
#[derive(Clone, Debug, PartialEq)]
pub struct CountOf {
    pub model: String,
    pub filter: Option<String>,
}

/// A declared data test of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct DataTest {
    /// Stable name: `<kind>_<model>[_<columns>]`, unique within the pipeline.
    pub name: String,
    pub kind: TestKind,
    pub severity: Severity,
    /// Only rows matching this SQL condition are tested.
    pub filter: Option<String>,
    pub warn_if: Option<Threshold>,
    pub error_if: Option<Threshold>,
    pub pos: Pos,
}

/// Where a gold model goes in the warehouse.
#[derive(Clone, Debug, PartialEq)]
pub struct WarehouseTarget {
    pub schema: String,
    pub table: String,
    /// What `dag migrate` does when the table's columns differ from the
    /// model's (dbt's `on_schema_change`).
    pub on_schema_change: OnSchemaChange,
}

/// How a warehouse table follows a change of its model's columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnSchemaChange {
    /// Stop with an error naming table, column and the ALTER that fixes it.
    #[default]
    Fail,
    /// Add the model's new columns (as nullable); columns the model no
    /// longer has stay in the table, nullable, NULL in rows loaded later.
    AppendNewColumns,
    /// Add new columns, drop the ones the model no longer has (their
    /// values are gone), change column types (existing values cast).
    SyncAllColumns,
}

impl OnSchemaChange {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "fail" => Self::Fail,
            "append_new_columns" => Self::AppendNewColumns,
            "sync_all_columns" => Self::SyncAllColumns,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fail => "fail",
            Self::AppendNewColumns => "append_new_columns",
            Self::SyncAllColumns => "sync_all_columns",
        }
    }
}

/// A fully parsed and locally checked model.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub name: String,
    pub layer: Layer,
    pub source: Source,
    pub description: String,
    pub tags: Vec<String>,
    /// A cron expression (with seconds), in the scheduler's time zone.
    pub schedule: Option<String>,
    pub materialized: Materialization,
    pub unique_key: Vec<String>,
    pub partition_by: Vec<String>,
    pub columns: Vec<Column>,
    pub tests: Vec<DataTest>,
    pub warehouse: Option<WarehouseTarget>,
    /// The YAML file that declares the model (for a quarantine: its
    /// cleaning model's file).
    pub pos: Pos,
}

impl Model {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

impl Model {
    /// The columns of the model's table: fixed for bronze and quarantine
    /// tables, declared for the rest.
    pub fn table_columns(&self) -> Vec<Column> {
        match &self.source {
            Source::Kafka { .. } | Source::Files { .. } => bronze_columns(),
            Source::Quarantine { .. } => quarantine_columns(),
            _ => self.columns.clone(),
        }
    }
}

/// The fixed columns of every bronze table: bronze never parses.
pub fn bronze_columns() -> Vec<Column> {
    let c = |name: &str, ty, nullable, description: &str| Column {
        name: name.into(),
        ty,
        nullable,
        description: description.into(),
    };
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
    let c = |name: &str, ty, nullable, description: &str| Column {
        name: name.into(),
        ty,
        nullable,
        description: description.into(),
    };
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
