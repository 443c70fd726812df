//! Which bronze files a cleaning pass reads, in batches that can be
//! cleaned one after another, and which files a full refresh replaces.

use crate::lake::table::{DataFile, ModelTable};
use crate::model::ModelError;

/// `files` in batches of about `limit` bytes that can be cleaned one
/// after another: by their statistics, every row of a batch comes before
/// every row of the next on the first dedupe-order column (strictly, so
/// ties never straddle two batches). Without statistics, one batch.
pub(super) fn batches(
    mut files: Vec<DataFile>,
    first_order: Option<&str>,
    limit: i64,
) -> Vec<Vec<DataFile>> {
    let Some(column) = first_order else {
        return vec![files];
    };
    let bounds: Option<Vec<(i64, i64)>> = files.iter().map(|f| f.bounds(column)).collect();
    let Some(bounds) = bounds else {
        return vec![files];
    };
    let mut keyed: Vec<((i64, i64), DataFile)> = bounds.into_iter().zip(files.drain(..)).collect();
    keyed.sort_by_key(|(b, _)| *b);
    let mut out: Vec<Vec<DataFile>> = Vec::new();
    let (mut current, mut bytes, mut max) = (Vec::new(), 0i64, i64::MIN);
    for ((lo, hi), f) in keyed {
        // Statistics may truncate timestamps (to ms), never round up: a
        // truncated min above a truncated max is still strictly after it.
        if bytes >= limit && lo > max {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += f.size;
        max = max.max(hi);
        current.push(f);
    }
    if !current.is_empty() || out.is_empty() {
        out.push(current);
    }
    out
}

/// Every file of `t` when a full refresh replaces it, else none.
pub(super) async fn replaced(
    t: &ModelTable,
    full_refresh: bool,
) -> Result<Vec<DataFile>, ModelError> {
    Ok(if full_refresh {
        t.files().await?
    } else {
        Vec::new()
    })
}

/// Bronze files with rows after version `from` (every file when nothing
/// was consumed yet). Bronze is append-only: a removal with a data change
/// means someone rewrote history, and cleaning refuses to guess.
pub(super) async fn new_files(bronze: &ModelTable, from: i64) -> Result<Vec<DataFile>, ModelError> {
    if from < 0 {
        return Ok(bronze.files().await?);
    }
    let changes = bronze.changes(from).await?;
    if let Some(f) = changes.removed.first() {
        return Err(ModelError::Input(format!(
            "bronze table {} had data removed after version {from} ({}): bronze must stay \
             append-only; rebuild silver from scratch",
            bronze.name, f.path
        )));
    }
    Ok(changes.added)
}
