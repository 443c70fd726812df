//! Finding which keys a table holds, reading only the row groups whose
//! bloom filter may hold one of them.

use super::data_file::DataFile;
use super::error::TableError;
use super::open::ModelTable;
use crate::lake::bloom::{Filter, key_hash};
use crate::lake::bridge::BridgeError;
use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use deltalake::parquet::arrow::ProjectionMask;
// ParquetObjectReader: see read.rs.
#[allow(deprecated)]
use deltalake::parquet::arrow::async_reader::{
    ParquetObjectReader, ParquetRecordBatchStreamBuilder,
};
use futures::{StreamExt, TryStreamExt};
use polars::prelude::{DataFrame, Expr, IntoLazy, JoinArgs, JoinType, NamedFrom, Series, col};
use std::collections::HashSet;
use std::sync::Arc;

impl ModelTable {
    /// Which of `keys` rows of `files` hold in the string column `column`
    /// (one row per matching row: a key held twice comes twice), as a
    /// one-column frame. Only that column is read, and of it only the row
    /// groups whose bloom filter may hold one of `keys`; row groups
    /// without a filter (files written before filters, or by another
    /// writer) are read whole. Looking 100k new keys up among 10M random
    /// UUIDs reads the filters (a few bytes per row) and almost no column.
    pub async fn lookup(
        &self,
        files: &[DataFile],
        column: &str,
        keys: &[&str],
    ) -> Result<DataFrame, TableError> {
        let frame = |found: Vec<String>| {
            DataFrame::new(found.len(), vec![Series::new(column.into(), found).into()])
                .map_err(BridgeError::from)
        };
        if files.is_empty() || keys.is_empty() {
            return Ok(frame(Vec::new())?);
        }
        let set: HashSet<&str> = keys.iter().copied().collect();
        // Each key hashed once for every filter of every file.
        let hashes: Vec<u64> = set.iter().map(|k| key_hash(k.as_bytes())).collect();
        let store = self.table.log_store().object_store(None);
        let found: Vec<Vec<String>> = futures::stream::iter(files.iter())
            .map(|f| lookup_file(store.clone(), f, column, &set, &hashes))
            .buffered(8)
            .try_collect()
            .await?;
        Ok(frame(found.into_iter().flatten().collect())?)
    }

    /// The rows of `files` whose key matches a row of `keys` (whose columns
    /// name the key), key columns only, one row per matching row. One
    /// string key column goes through the bloom filters ([`Self::lookup`]);
    /// any other key reads the key columns of every file.
    pub async fn held(
        &self,
        files: &[DataFile],
        keys: &DataFrame,
    ) -> Result<DataFrame, TableError> {
        let names: Vec<String> = keys
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        if let [column] = names.as_slice()
            && !self.partition_by.contains(column)
            && let Ok(values) = keys.column(column).and_then(|c| c.str().cloned())
        {
            let values: Vec<&str> = values.iter().flatten().collect();
            return self.lookup(files, column, &values).await;
        }
        let cols: Vec<&str> = names.iter().map(String::as_str).collect();
        let rows = self.read(files, Some(&cols)).await?;
        let casts: Vec<Expr> = rows
            .columns()
            .iter()
            .map(|c| col(c.name().clone()).cast(c.dtype().clone()))
            .collect();
        let on: Vec<Expr> = names.iter().map(|c| col(c.as_str())).collect();
        let wanted = keys.clone().lazy().select(casts);
        rows.lazy()
            .join(wanted, on.clone(), on, JoinArgs::new(JoinType::Semi))
            .collect()
            .map_err(|e| BridgeError::from(e).into())
    }
}

/// A reader of one data file of the table (its footer read).
#[allow(deprecated)]
async fn open_parquet(
    store: Arc<dyn object_store::ObjectStore>,
    file: &DataFile,
) -> Result<ParquetRecordBatchStreamBuilder<ParquetObjectReader>, TableError> {
    let path = deltalake::Path::from_url_path(&file.path)
        .map_err(|e| TableError::Schema(format!("bad file path {}: {e}", file.path)))?;
    let reader = ParquetObjectReader::new(store, path).with_file_size(file.size as u64);
    Ok(ParquetRecordBatchStreamBuilder::new(reader).await?)
}

/// The values of `column` in `file` that are among `keys`, reading only
/// the row groups whose bloom filter (if any) may hold one of them.
async fn lookup_file(
    store: Arc<dyn object_store::ObjectStore>,
    file: &DataFile,
    column: &str,
    keys: &HashSet<&str>,
    hashes: &[u64],
) -> Result<Vec<String>, TableError> {
    let mut builder = open_parquet(store, file).await?;
    let Some(leaf) = builder
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.path().string() == column)
    else {
        // A nullable column added after this file was written: no keys.
        return Ok(Vec::new());
    };
    let mut groups = Vec::new();
    for rg in 0..builder.metadata().num_row_groups() {
        let filter = builder.get_row_group_column_bloom_filter(rg, leaf).await?;
        match filter.as_ref().and_then(Filter::from_sbbf) {
            Some(f) if !hashes.iter().any(|h| f.may_hold(*h)) => {}
            _ => groups.push(rg),
        }
    }
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let mask = ProjectionMask::leaves(builder.parquet_schema(), [leaf]);
    let stream = builder
        .with_projection(mask)
        .with_row_groups(groups)
        .with_batch_size(64 * 1024)
        .build()?;
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    let mut found = Vec::new();
    for b in batches {
        let values = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let values = values
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .ok_or_else(|| TableError::Schema(format!("{column} is not a string column")))?;
        found.extend(
            values
                .iter()
                .flatten()
                .filter(|v| keys.contains(v))
                .map(str::to_string),
        );
    }
    Ok(found)
}
