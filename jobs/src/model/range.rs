//! A backfill over a range of dates (`dag backfill --from D --to D`): a
//! model is recomputed from all of its inputs, as a full refresh is, but
//! only the partitions of its date partition column inside the range are
//! replaced; every other partition keeps its files untouched.
//!
//! The column is the one the user names (`--column`), else the model's
//! first partition column of type date. A model not partitioned by such a
//! column cannot be replaced piecewise and is rebuilt whole, which keeps it
//! consistent with its (partly replaced) inputs.

use super::ModelError;
use super::dates::DateRange;
use crate::lake::table::ModelTable;
use polars::prelude::*;
use std::collections::BTreeMap;

/// Replaces the partitions of `column` inside the range with the rows of
/// `result` inside it, in one commit that also records `txns`.
pub async fn replace(
    table: &mut ModelTable,
    result: DataFrame,
    range: &DateRange,
    column: &str,
    txns: &BTreeMap<String, i64>,
) -> Result<super::write::Written, ModelError> {
    let rows = range.rows_in(result, column)?;
    let (old, _) = range.split(table.files().await?, column);
    let adds = table.write_files(&rows).await?;
    let version = table.commit(adds, &old, txns, false).await?;
    Ok(super::write::Written {
        version,
        rows: rows.height() as u64,
        deleted: 0,
    })
}
