//! The newest value of a timestamp column, as a `freshness` test and the
//! UI's freshness page measure it: from the Delta statistics when every
//! file records them, else by reading the column a bounded chunk at a time.

use crate::model::ModelError;
use crate::model::table::{DataFile, ModelTable};
use polars::prelude::*;

/// Files read together when statistics do not answer.
const CHUNK_FILES: usize = 64;

/// The newest `column` value of `files` (epoch microseconds), or `None`
/// when the column holds no value.
pub async fn newest(
    table: &ModelTable,
    files: &[DataFile],
    column: &str,
) -> Result<Option<i64>, ModelError> {
    if let Some(maxes) = files
        .iter()
        .map(|f| f.bounds(column).map(|b| b.1))
        .collect::<Option<Vec<i64>>>()
    {
        return Ok(maxes.into_iter().max());
    }
    let mut newest = None;
    for chunk in files.chunks(CHUNK_FILES) {
        let df = table.read(chunk, Some(&[column])).await?;
        if let Some(m) = micros(&df, column)? {
            newest = Some(newest.map_or(m, |n: i64| n.max(m)));
        }
    }
    Ok(newest)
}

/// The largest value of a timestamp (or date) column, in microseconds.
pub fn micros(df: &DataFrame, column: &str) -> Result<Option<i64>, ModelError> {
    let micros = df
        .column(column)?
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))?
        .cast(&DataType::Int64)?;
    Ok(micros.as_materialized_series().i64()?.max())
}
