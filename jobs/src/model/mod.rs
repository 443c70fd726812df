//! Silver and gold: running one model, from its inputs' Delta tables to its
//! own, exactly once per input version.
//!
//! Each model's commit carries, as `txn` actions, the version of every
//! input it consumed (app id = the input's name; for a seed, `file:<name>`
//! with the file's content hash), so the write and the watermark are one
//! atomic step: a run killed anywhere redoes at most the model it was in,
//! and a model whose inputs did not move writes nothing.
//!
//! [`run_model`] (in `run.rs`) hands a model to the runner of its kind:
//! - [`clean`]: silver cleaning of a bronze table (strict JSON against
//!   declared field rules, quarantine with reasons, first-copy dedupe).
//! - [`seed`]: reference CSVs into silver tables.
//! - [`sql`]: SQL models (polars SQL) and their as-of joins
//!   ([`dry_run`]: a query on empty inputs, for `dag validate`);
//!   [`scope`], [`asof_scope`], [`accumulate`]: how their incremental
//!   runs recompute only what changed.
//! - [`write`]: the materializations (table, incremental, append).
//! - [`range`]: backfills over a range of dates ([`DateRange`], in
//!   `dates.rs`, says which files and rows lie in it).
//! - [`frame`]: the joins and batching the runners share (the Delta
//!   tables they read and write are `crate::lake::table`'s).
//! - [`json`], [`values`]: the parsing rules, exactly; [`keyset`]: the
//!   keys a cleaning run let through.
//!
//! This file holds what every runner needs (settings, the catalog of
//! models, the report) and uses none of the runners: the files below it
//! never import each other in a circle (`scripts/check_structure.py`).

pub mod accumulate;
pub mod asof_scope;
pub mod clean;
mod dates;
pub mod dry_run;
mod error;
pub mod frame;
pub mod json;
pub mod keyset;
pub mod range;
mod run;
pub mod scope;
pub mod seed;
pub mod sql;
pub mod values;
pub mod write;

use crate::decl::{Column, Layer, Model, Source, quarantine_columns};
use crate::lake::TableLocation;
pub use crate::lake::table::Cancel;
use crate::lake::table::{ModelTable, TableCache, arrow_schema};
pub use dates::DateRange;
pub use error::ModelError;
pub use run::{ABORT_AFTER, run_model};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// Where the lake and the data folder are.
#[derive(Clone, Debug)]
pub struct RunSettings {
    /// `file:///...` or `s3://bucket/prefix`.
    pub lake: String,
    pub storage_options: HashMap<String, String>,
    /// Seeds' CSV files.
    pub data_dir: PathBuf,
    /// Rebuild from scratch: read every input row, ignore what the table
    /// holds and replace it (one commit per table).
    pub full_refresh: bool,
    /// Silver cleaning reads bronze in batches of about this many bytes.
    pub clean_batch_bytes: i64,
    /// A backfill over a range of dates: models are recomputed as a full
    /// refresh, but only their partitions in the range are replaced (see
    /// [`range`]). Set together with `full_refresh`.
    pub range: Option<DateRange>,
    /// Set when the task running the models is given up: no commit after.
    pub cancel: Cancel,
}

impl RunSettings {
    /// Incremental runs (no full refresh, no range), cleaning batches of
    /// 96 MB, never cancelled: what a run is unless it says otherwise.
    pub fn new(lake: String, storage_options: HashMap<String, String>, data_dir: PathBuf) -> Self {
        Self {
            lake,
            storage_options,
            data_dir,
            full_refresh: false,
            clean_batch_bytes: 96 << 20,
            range: None,
            cancel: Cancel::default(),
        }
    }

    pub fn location(&self, layer: Layer, name: &str) -> Result<TableLocation, ModelError> {
        Ok(TableLocation::in_lake(
            &self.lake,
            layer.as_str(),
            name,
            self.storage_options.clone(),
        )?)
    }
}

/// Every model of the pipeline by name, for reading inputs' tables.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    models: BTreeMap<String, Model>,
    /// The tables opened so far: a table is opened by its model, by every
    /// model reading it and by its tests, and each opening only reads the
    /// commits since the last.
    tables: TableCache,
}

impl Catalog {
    pub fn new(models: impl IntoIterator<Item = Model>) -> Self {
        Self {
            models: models.into_iter().map(|m| (m.name.clone(), m)).collect(),
            tables: TableCache::default(),
        }
    }

    /// The tables this catalog opened (shared by its clones).
    pub fn tables(&self) -> &TableCache {
        &self.tables
    }

    pub fn model(&self, name: &str) -> Result<&Model, ModelError> {
        self.models
            .get(name)
            .ok_or_else(|| ModelError::Input(format!("no model named `{name}` in the pipeline")))
    }

    /// The columns a model's table holds.
    pub fn columns(&self, name: &str) -> Result<Vec<Column>, ModelError> {
        Ok(self.model(name)?.table_columns())
    }

    /// Opens an input's table for reading; a missing table is an error
    /// that says which command makes it.
    pub async fn open_input(&self, name: &str, s: &RunSettings) -> Result<ModelTable, ModelError> {
        let m = self.model(name)?;
        let loc = s.location(m.layer, name)?;
        let schema = arrow_schema(&self.columns(name)?);
        ModelTable::open_cached(name, &loc, schema, Some(&self.tables))
            .await?
            .ok_or_else(|| {
                let how = match m.source {
                    Source::Kafka { .. } | Source::Files { .. } => "run `dag ingest` first",
                    _ => "run its model first (`dag run +<model>` brings upstream up to date)",
                };
                ModelError::Input(format!(
                    "input `{name}` has no table at {} yet: {how}",
                    loc.url
                ))
            })
    }

    /// Opens (or creates) a model's own table.
    pub async fn open_output(&self, name: &str, s: &RunSettings) -> Result<ModelTable, ModelError> {
        let m = self.model(name)?;
        let loc = s.location(m.layer, name)?;
        let (columns, partition_by) = match &m.source {
            Source::Quarantine { .. } => (quarantine_columns(), vec!["ingest_date".to_string()]),
            _ => (m.columns.clone(), m.partition_by.clone()),
        };
        // A full refresh rewrites every row: it also brings the table's
        // columns to the declared ones.
        let (schema, cache) = (arrow_schema(&columns), Some(&self.tables));
        let table = if s.full_refresh {
            ModelTable::open_for_rebuild(name, &loc, schema, &partition_by, &m.description, cache)
                .await?
        } else {
            ModelTable::open_or_create_cached(
                name,
                &loc,
                schema,
                &partition_by,
                &m.description,
                cache,
            )
            .await?
        };
        Ok(table
            .with_bloom_filters(lookup_key(m).unwrap_or_default())
            .with_cancel(s.cancel.clone()))
    }
}

/// The single key column rows of the model's table are looked up by (the
/// dedupe key of a cleaning model, else the unique key): its files carry a
/// bloom filter on it. Composite keys get none.
pub fn lookup_key(m: &Model) -> Option<&[String]> {
    let key: &[String] = match &m.source {
        Source::Clean { dedupe, .. } => &dedupe.key,
        Source::Quarantine { .. } => return None,
        _ => &m.unique_key,
    };
    (key.len() == 1).then_some(key)
}

/// What one model run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelReport {
    pub model: String,
    /// Rows read from the inputs (new rows for incremental inputs).
    pub rows_in: u64,
    /// Rows the model's output gained or changed.
    pub rows_out: u64,
    pub quarantined: u64,
    pub duplicates: u64,
    /// The Delta version written; `None` when there was nothing new.
    pub version: Option<i64>,
    pub seconds: f64,
    /// Why the run did what it did: a full recompute's reason, or why
    /// nothing was written.
    pub note: Option<String>,
}
