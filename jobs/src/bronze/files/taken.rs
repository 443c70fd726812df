//! Which files a file source's bronze table already holds (the distinct
//! `topic`s of its rows), so that no file is taken twice.

use crate::lake::TableLocation;
use std::collections::HashSet;

/// The paths of the files a file source's bronze table holds.
pub(super) async fn taken_files(
    name: &str,
    location: &TableLocation,
) -> Result<HashSet<String>, String> {
    let schema = crate::lake::table::arrow_schema(&crate::decl::bronze_columns());
    let Some(table) = crate::lake::table::ModelTable::open(name, location, schema)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(HashSet::new());
    };
    let files = table.files().await.map_err(|e| e.to_string())?;
    if files.is_empty() {
        return Ok(HashSet::new());
    }
    let topics = table
        .read(&files, Some(&["topic"]))
        .await
        .map_err(|e| e.to_string())?;
    let column = topics
        .column("topic")
        .map_err(|e| e.to_string())?
        .as_materialized_series()
        .unique()
        .map_err(|e| e.to_string())?;
    let strings = column.str().map_err(|e| e.to_string())?;
    Ok(strings.iter().flatten().map(str::to_string).collect())
}
