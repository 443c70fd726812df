//! Compaction of a table that grows by small appends and is read whole
//! (the data test results, a row per test per task): its small files
//! rewritten as one, so that what deltalake rebuilds after every commit
//! and every open (the list of the table's files) stays short however long
//! a scheduler runs. Not for tables read by their changes: the rows would
//! stay the same, but a reader of changes would see the rewrite's files
//! come and go.

use super::data_file::DataFile;
use super::error::TableError;
use super::open::ModelTable;
use std::collections::BTreeMap;

/// The txn app id every compaction of a table commits with: of two
/// compactions of the same files started together, the second conflicts
/// (delta-rs lets two commits remove the same file when the removes are
/// not data changes, so without it both would land and the rows would be
/// in the table twice).
const COMPACT_APP: &str = "dag.compact";

impl ModelTable {
    /// Rewrites the files smaller than `below` bytes as new files, in one
    /// commit that removes them, once there are at least `min_files` of
    /// them. Returns how many files were rewritten (0: not yet).
    pub async fn compact_small_files(
        &mut self,
        below: i64,
        min_files: usize,
    ) -> Result<usize, TableError> {
        let small: Vec<DataFile> = self
            .files()
            .await?
            .into_iter()
            .filter(|f| f.size < below)
            .collect();
        if small.len() < min_files.max(2) {
            return Ok(0);
        }
        let rows = self.read(&small, None).await?;
        let mut adds = self.write_files(&rows).await?;
        for a in &mut adds {
            a.data_change = false;
        }
        let guard = BTreeMap::from([(COMPACT_APP.to_string(), self.version())]);
        self.commit_actions(adds, &small, &guard, false, false)
            .await?;
        Ok(small.len())
    }
}
