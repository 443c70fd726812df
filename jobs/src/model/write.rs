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
use super::frame::{anti_join, semi_join};
use crate::decl::{Fold, Materialization};
use crate::lake::table::{DataFile, ModelTable};
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
    scope: Option<&DataFrame>,
) -> Result<Written, ModelError> {
    match how {
        Materialization::Table => overwrite(table, &result, txns).await,
        Materialization::Append => append(table, result, unique_key, txns).await,
        Materialization::Incremental if unique_key.is_empty() => Err(ModelError::Input(format!(
            "{}: incremental needs a unique_key",
            table.name
        ))),
        Materialization::Incremental => merge(table, result, unique_key, txns, scope, &[]).await,
    }
}

/// An `accumulate` model's merge: `partial` (the query over the input's new
/// rows) folded into the rows the table holds for its keys (see
/// [`super::accumulate`]). Only the new keys are in scope: the merge reads
/// their holders once, folds, and rewrites only rows that changed.
pub async fn fold_merge(
    table: &mut ModelTable,
    partial: DataFrame,
    unique_key: &[String],
    folds: &[(String, Fold)],
    txns: &BTreeMap<String, i64>,
) -> Result<Written, ModelError> {
    let keys = partial
        .select(unique_key.iter().map(String::as_str))?
        .unique_stable(None, UniqueKeepStrategy::First, None)?;
    merge(table, partial, unique_key, txns, Some(&keys), folds).await
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
    let version = insert(table, &new, &[], txns).await?;
    Ok(Written {
        version,
        rows: new.height() as u64,
        deleted: 0,
    })
}

/// `scope`: when set, `result` holds exactly the rows of these scope values
/// (columns named as the table's), and only table rows with these values
/// are compared, replaced or deleted; files that cannot hold them (other
/// partitions) are not read. `folds`: when not empty, a result row of a
/// key the table holds is folded into the held row (nothing is deleted).
async fn merge(
    table: &mut ModelTable,
    result: DataFrame,
    unique_key: &[String],
    txns: &BTreeMap<String, i64>,
    scope: Option<&DataFrame>,
    folds: &[(String, Fold)],
) -> Result<Written, ModelError> {
    let columns: Vec<String> = table
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let result = result.select(columns.iter().map(String::as_str))?;
    let files = files_in_scope(table, scope).await?;
    if files.is_empty() {
        let version = insert(table, &result, &[], txns).await?;
        return Ok(Written {
            version,
            rows: result.height() as u64,
            deleted: 0,
        });
    }
    let key_cols: Vec<&str> = unique_key.iter().map(String::as_str).collect();
    let probed = probe(table, files, &probe_columns(&key_cols, scope), &result).await?;
    let keys = compare_keys(&result, &probed.existing, scope, unique_key, folds)?;
    let mut touched = keys.both.clone();
    touched.vstack_mut_owned(keys.gone.clone())?;
    let (holders, old_rows) =
        read_holders(table, probed.per_file, &touched, &result, unique_key).await?;
    let changed = changed_rows(
        &result,
        keys.new_rows,
        keys.both,
        old_rows,
        unique_key,
        folds,
        &columns,
    )?;
    let gone = keys.gone;
    let mut affected = changed.select(key_cols.iter().copied())?;
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
    let (rewrite, kept) = without_keys(holders, &affected, unique_key)?;
    let mut out = changed.clone();
    stack(&mut out, kept)?;
    let version = insert(table, &out, &rewrite, txns).await?;
    Ok(Written {
        version,
        rows: changed.height() as u64,
        deleted: gone.height() as u64,
    })
}

/// The table's files that can hold rows of `scope` (with partitioning,
/// the affected partitions); every file without a scope.
async fn files_in_scope(
    table: &ModelTable,
    scope: Option<&DataFrame>,
) -> Result<Vec<DataFile>, ModelError> {
    let mut files = table.files().await?;
    if let Some(affected) = scope {
        let by_partition: Vec<(String, String)> = table
            .partition_by()
            .iter()
            .filter(|p| affected.column(p).is_ok())
            .map(|p| (p.clone(), p.clone()))
            .collect();
        files = super::scope::prune(files, &by_partition, affected)?;
    }
    Ok(files)
}

/// The key columns, then the scope columns not among them: what a merge
/// reads of every candidate file first.
fn probe_columns<'a>(key_cols: &[&'a str], scope: Option<&'a DataFrame>) -> Vec<&'a str> {
    let mut probe_cols = key_cols.to_vec();
    if let Some(affected) = scope {
        for c in affected.get_column_names() {
            if !probe_cols.contains(&c.as_str()) {
                probe_cols.push(c.as_str());
            }
        }
    }
    probe_cols
}

/// The probe columns of each candidate file, and of all of them at once.
struct Probed {
    per_file: Vec<(DataFile, DataFrame)>,
    existing: DataFrame,
}

/// First only the keys (and scope columns) of each file: which result
/// rows are new, which keys are gone, which files hold either.
async fn probe(
    table: &ModelTable,
    files: Vec<DataFile>,
    probe_cols: &[&str],
    result: &DataFrame,
) -> Result<Probed, ModelError> {
    let mut per_file = Vec::with_capacity(files.len());
    let mut existing = DataFrame::empty();
    for file in files {
        let keys = conform(
            table
                .read(std::slice::from_ref(&file), Some(probe_cols))
                .await?,
            &result.select(probe_cols.iter().copied())?,
        )?;
        stack(&mut existing, keys.clone())?;
        per_file.push((file, keys));
    }
    Ok(Probed { per_file, existing })
}

/// The result's keys against the table's, as key frames (`new_rows`: whole
/// result rows).
struct KeyComparison {
    /// Keys the table holds in scope and the result no longer has.
    gone: DataFrame,
    /// Result rows whose key the table does not hold.
    new_rows: DataFrame,
    /// Keys in both.
    both: DataFrame,
}

/// Compares the result's keys with the probed `existing` ones.
fn compare_keys(
    result: &DataFrame,
    existing: &DataFrame,
    scope: Option<&DataFrame>,
    unique_key: &[String],
    folds: &[(String, Fold)],
) -> Result<KeyComparison, ModelError> {
    let key_cols: Vec<&str> = unique_key.iter().map(String::as_str).collect();
    let in_scope = match scope {
        Some(affected) if existing.width() > 0 => {
            let names: Vec<String> = affected
                .get_column_names()
                .iter()
                .map(|c| c.to_string())
                .collect();
            semi_join(
                existing.clone(),
                super::scope::conform_to(affected, existing)?,
                &names,
            )?
        }
        _ => existing.clone(),
    };
    let result_keys = result.select(key_cols.iter().copied())?;
    let existing_keys = existing.select(key_cols.iter().copied())?;
    // Keys the result no longer has (in scope: rows outside it are not this
    // result's to delete). Folded rows only add to what is held.
    let gone = if folds.is_empty() {
        anti_join(
            in_scope.select(key_cols.iter().copied())?,
            result_keys.clone(),
            unique_key,
        )?
    } else {
        result_keys.clear()
    };
    let new_rows = anti_join(result.clone(), existing_keys.clone(), unique_key)?;
    // Keys in both: compared row by row, reading only the files holding them.
    let both = semi_join(result_keys, existing_keys, unique_key)?;
    Ok(KeyComparison {
        gone,
        new_rows,
        both,
    })
}

/// The files holding a `touched` key, each with its rows (conformed to the
/// result's types), and all those rows at once.
async fn read_holders(
    table: &ModelTable,
    per_file: Vec<(DataFile, DataFrame)>,
    touched: &DataFrame,
    result: &DataFrame,
    unique_key: &[String],
) -> Result<(Vec<(DataFile, DataFrame)>, DataFrame), ModelError> {
    let key_cols: Vec<&str> = unique_key.iter().map(String::as_str).collect();
    let mut holders = Vec::new();
    let mut old_rows = DataFrame::empty();
    for (file, keys) in per_file {
        if touched.height() > 0
            && semi_join(
                keys.select(key_cols.iter().copied())?,
                touched.clone(),
                unique_key,
            )?
            .height()
                > 0
        {
            let rows = conform(table.read(std::slice::from_ref(&file), None).await?, result)?;
            stack(&mut old_rows, rows.clone())?;
            holders.push((file, rows));
        }
    }
    Ok((holders, old_rows))
}

/// The rows to write: `new_rows`, then the result rows of keys in `both`
/// that differ from the held ones (folded into them first with `folds`).
fn changed_rows(
    result: &DataFrame,
    new_rows: DataFrame,
    both: DataFrame,
    old_rows: DataFrame,
    unique_key: &[String],
    folds: &[(String, Fold)],
    columns: &[String],
) -> Result<DataFrame, ModelError> {
    let mut changed = new_rows;
    if both.height() > 0 {
        let mut candidates = semi_join(result.clone(), both.clone(), unique_key)?;
        if !folds.is_empty() {
            let held = semi_join(old_rows.clone(), both, unique_key)?;
            candidates = super::accumulate::fold(held, candidates, unique_key, folds)?;
        }
        // Rows different from the table's (every column compared, nulls equal).
        stack(&mut changed, anti_join(candidates, old_rows, columns)?)?;
    }
    Ok(changed)
}

/// The holders that hold an `affected` key (the files to remove) and their
/// other rows (to write again): the files holding an affected key are
/// rewritten without those keys.
fn without_keys(
    holders: Vec<(DataFile, DataFrame)>,
    affected: &DataFrame,
    unique_key: &[String],
) -> Result<(Vec<DataFile>, DataFrame), ModelError> {
    let key_cols: Vec<&str> = unique_key.iter().map(String::as_str).collect();
    let mut rewrite: Vec<DataFile> = Vec::new();
    let mut kept = DataFrame::empty();
    for (file, rows) in holders {
        let keys = rows.select(key_cols.iter().copied())?;
        if semi_join(keys, affected.clone(), unique_key)?.height() > 0 {
            stack(&mut kept, anti_join(rows, affected.clone(), unique_key)?)?;
            rewrite.push(file);
        }
    }
    Ok((rewrite, kept))
}

/// Appends `more` below `acc` (a frame with no columns takes it as is).
fn stack(acc: &mut DataFrame, more: DataFrame) -> Result<(), ModelError> {
    if acc.width() == 0 {
        *acc = more;
    } else if more.width() > 0 {
        acc.vstack_mut_owned(more)?;
    }
    Ok(())
}

/// Writes `rows` as new files and commits them with the removal of
/// `removes` and the watermarks: how every write but an overwrite ends.
async fn insert(
    table: &mut ModelTable,
    rows: &DataFrame,
    removes: &[DataFile],
    txns: &BTreeMap<String, i64>,
) -> Result<i64, ModelError> {
    let adds = table.write_files(rows).await?;
    Ok(table.commit(adds, removes, txns, false).await?)
}

/// `existing` cast to the result's column types (a table read gives Delta's
/// types, a query may give wider ones), so rows compare value for value.
pub fn conform(existing: DataFrame, result: &DataFrame) -> Result<DataFrame, ModelError> {
    let casts: Vec<Expr> = result
        .columns()
        .iter()
        .map(|c| col(c.name().clone()).cast(c.dtype().clone()))
        .collect();
    Ok(existing.lazy().select(casts).collect()?)
}
