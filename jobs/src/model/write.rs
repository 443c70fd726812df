//! The materializations: how a model's freshly computed rows become its
//! table's next version, in one commit that also records the input
//! versions consumed.
//!
//! - `table`: every file replaced.
//! - `incremental`: a merge on the unique key that touches only what
//!   changed: rows new or different from the table's, and keys gone from
//!   the result, are found by comparison; only the files holding such keys
//!   are rewritten (with partitioning, that is the affected partitions).
//!   Unchanged rows are never rewritten, so a late event changes exactly the
//!   aggregate rows it affects.
//! - `append`: rows whose key the table does not hold yet (every row when
//!   there is no key).

use super::ModelError;
use super::table::{DataFile, ModelTable};
use crate::spec::Materialization;
use polars::prelude::*;
use std::collections::BTreeMap;

/// What a write did.
#[derive(Clone, Debug, Default)]
pub struct Written {
    pub version: i64,
    /// Rows inserted or updated.
    pub rows: u64,
    /// Keys deleted (incremental only).
    pub deleted: u64,
}

pub async fn write(
    table: &mut ModelTable,
    result: DataFrame,
    how: Materialization,
    unique_key: &[String],
    txns: &BTreeMap<String, i64>,
) -> Result<Written, ModelError> {
    match how {
        Materialization::Table => overwrite(table, &result, txns).await,
        Materialization::Append => append(table, result, unique_key, txns).await,
        Materialization::Incremental if unique_key.is_empty() => Err(ModelError::Input(format!(
            "{}: incremental needs a unique_key",
            table.name
        ))),
        Materialization::Incremental => merge(table, result, unique_key, txns).await,
    }
}

/// Replaces every file of the table with `result`.
pub async fn overwrite(
    table: &mut ModelTable,
    result: &DataFrame,
    txns: &BTreeMap<String, i64>,
) -> Result<Written, ModelError> {
    let old = table.files().await?;
    let adds = table.write_files(result).await?;
    let version = table.commit(adds, &old, txns, true).await?;
    Ok(Written {
        version,
        rows: result.height() as u64,
        deleted: 0,
    })
}

async fn append(
    table: &mut ModelTable,
    result: DataFrame,
    unique_key: &[String],
    txns: &BTreeMap<String, i64>,
) -> Result<Written, ModelError> {
    let new = if unique_key.is_empty() || table.files().await?.is_empty() {
        result
    } else {
        let keys: Vec<&str> = unique_key.iter().map(String::as_str).collect();
        let existing = table.read_all(Some(&keys)).await?;
        anti_join(result, existing, unique_key)?
    };
    let adds = table.write_files(&new).await?;
    let version = table.commit(adds, &[], txns, false).await?;
    Ok(Written {
        version,
        rows: new.height() as u64,
        deleted: 0,
    })
}

async fn merge(
    table: &mut ModelTable,
    result: DataFrame,
    unique_key: &[String],
    txns: &BTreeMap<String, i64>,
) -> Result<Written, ModelError> {
    let columns: Vec<String> = table
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let result = result.select(columns.iter().map(String::as_str))?;
    let files = table.files().await?;
    if files.is_empty() {
        let adds = table.write_files(&result).await?;
        let version = table.commit(adds, &[], txns, false).await?;
        return Ok(Written {
            version,
            rows: result.height() as u64,
            deleted: 0,
        });
    }
    let existing = table.read(&files, None).await?;
    let existing = conform(existing, &result)?;
    // Rows new or different (every column compared, nulls equal).
    let changed = anti_join(result.clone(), existing.clone(), &columns)?;
    // Keys the result no longer has.
    let gone = anti_join(
        existing.select(unique_key.iter().map(String::as_str))?,
        result.select(unique_key.iter().map(String::as_str))?,
        unique_key,
    )?;
    let mut affected = changed.select(unique_key.iter().map(String::as_str))?;
    affected.vstack_mut_owned(gone.clone())?;
    if affected.height() == 0 {
        // Same rows: only the watermark moves.
        let version = table.commit(Vec::new(), &[], txns, false).await?;
        return Ok(Written {
            version,
            rows: 0,
            deleted: 0,
        });
    }
    // The files holding an affected key are rewritten without those keys.
    let keys: Vec<&str> = unique_key.iter().map(String::as_str).collect();
    let mut rewrite: Vec<DataFile> = Vec::new();
    let mut kept = DataFrame::empty();
    for file in &files {
        let file_keys = table.read(std::slice::from_ref(file), Some(&keys)).await?;
        let hit = semi_join(file_keys, affected.clone(), unique_key)?;
        if hit.height() > 0 {
            let rows = conform(table.read(std::slice::from_ref(file), None).await?, &result)?;
            let rest = anti_join(rows, affected.clone(), unique_key)?;
            if kept.width() == 0 {
                kept = rest;
            } else {
                kept.vstack_mut_owned(rest)?;
            }
            rewrite.push(file.clone());
        }
    }
    let mut out = changed.clone();
    if kept.width() > 0 {
        out.vstack_mut_owned(kept)?;
    }
    let adds = table.write_files(&out).await?;
    let version = table.commit(adds, &rewrite, txns, false).await?;
    Ok(Written {
        version,
        rows: changed.height() as u64,
        deleted: gone.height() as u64,
    })
}

/// `existing` cast to the result's column types (a table read gives Delta's
/// types, a query may give wider ones), so rows compare value for value.
fn conform(existing: DataFrame, result: &DataFrame) -> Result<DataFrame, ModelError> {
    let casts: Vec<Expr> = result
        .columns()
        .iter()
        .map(|c| col(c.name().clone()).cast(c.dtype().clone()))
        .collect();
    Ok(existing.lazy().select(casts).collect()?)
}

pub fn anti_join(
    left: DataFrame,
    right: DataFrame,
    on: &[String],
) -> Result<DataFrame, ModelError> {
    keyed_join(left, right, on, JoinType::Anti)
}

pub fn semi_join(
    left: DataFrame,
    right: DataFrame,
    on: &[String],
) -> Result<DataFrame, ModelError> {
    keyed_join(left, right, on, JoinType::Semi)
}

fn keyed_join(
    left: DataFrame,
    right: DataFrame,
    on: &[String],
    how: JoinType,
) -> Result<DataFrame, ModelError> {
    let keys: Vec<Expr> = on.iter().map(|c| col(c.as_str())).collect();
    let mut args = JoinArgs::new(how);
    args.nulls_equal = true;
    args.maintain_order = MaintainOrderJoin::Left;
    Ok(left
        .lazy()
        .join(right.lazy(), &keys, &keys, args)
        .collect()?)
}
