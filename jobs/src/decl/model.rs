//! A model as the engine runs it: its layer, where its rows come from, how
//! they are written, and where the warehouse keeps them.

use super::{
    AsofJoin, Column, DataTest, Dedupe, Derived, FieldRule, Fold, Pos, ScopeInput, bronze_columns,
    quarantine_columns,
};
use std::fmt;

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
