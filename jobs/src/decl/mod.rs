//! Model declarations: what a pipeline folder under `models/` may declare, as
//! typed values. See `models/README.md` for the format as users write it.
//!
//! A model is a named node with a kind (where its rows come from), a
//! materialization, keys, partitioning, output columns, data tests and
//! optionally a schedule and a warehouse target. One YAML file declares one
//! model, named after the file; a gold `sql` model has its query in a `.sql`
//! file beside it. `file` parses and checks one file on its own; resolving
//! names across files (inputs, relationships, cycles) is the loader's job in
//! the `dag` crate.

mod checks;
mod clean;
mod column;
mod data_test;
mod declaring;
mod diag;
mod draft;
mod file;
mod model;
mod options;
mod parse_clean;
mod parse_source;
mod parse_sql;
mod parse_test;
mod parse_warehouse;
mod range;
mod raw;
mod scalars;
mod sql;
mod sql_model;
pub mod template;

pub use clean::{Dedupe, Derived, FieldKind, FieldRule};
pub use column::{Column, ColumnType, bronze_columns, quarantine_columns};
pub use data_test::{CmpOp, DataTest, Kind, SameAs, Severity, TestKind, Threshold};
pub use declaring::Declaring;
pub use diag::{Diagnostic, Diagnostics, Pos, did_you_mean};
pub use draft::{ModelDraft, Reference};
pub use file::{parse_model_file, parser_message};
pub use model::{
    FileFormat, Layer, Materialization, Model, OnSchemaChange, RecordFormat, Source,
    WarehouseTarget,
};
pub use range::{Bound, Interval};
pub(crate) use scalars::is_identifier;
pub use scalars::{check_cron, parse_duration};
pub use sql::{SqlColumns, SqlRelation, monotone_in, sql_columns, sql_relations};
pub use sql_model::{AsofJoin, Fold, ScopeInput};
pub use template::SqlFile;
