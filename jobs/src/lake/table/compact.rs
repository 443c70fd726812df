//! Compaction of a table that grows by small commits (a model in
//! continuous mode gains a file per run, the data test results a file per
//! task): its small files rewritten as few, so that what deltalake redoes
//! after every commit and every open (a pass over the list of the table's
//! files) stays short however long a scheduler runs.
//!
//! The rewrite is no data change: readers of changes skip it, and those
//! that keep only the live files of what was added also take the files a
//! rewrite moved new rows to (`Changes::rewritten`).

use super::commit::FILE_ROWS;
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

/// A file of fewer rows than this is small: a rewrite's own files are
/// [`FILE_ROWS`] rows but the last of each partition, so a file is
/// rewritten a bounded number of times, however wide or narrow its rows.
const SMALL_ROWS: i64 = (FILE_ROWS / 2) as i64;

/// Without statistics, a file under this size is small.
const SMALL_BYTES: i64 = 8 << 20;

/// Bytes (on disk) one compaction rewrites at most.
const REWRITE_BYTES: i64 = 128 << 20;

fn is_small(f: &DataFile) -> bool {
    match f.rows() {
        Some(rows) => rows < SMALL_ROWS,
        None => f.size < SMALL_BYTES,
    }
}

impl ModelTable {
    /// Rewrites the table's small files as new files, in one commit that
    /// removes them, once there are at least `min_files` of them. Returns
    /// how many files were rewritten (0: not yet).
    pub async fn compact_small_files(&mut self, min_files: usize) -> Result<usize, TableError> {
        self.compact_small_files_but(min_files, &[]).await
    }

    /// [`Self::compact_small_files`], leaving the files `keep` (paths)
    /// as they are.
    pub async fn compact_small_files_but(
        &mut self,
        min_files: usize,
        keep: &[String],
    ) -> Result<usize, TableError> {
        // At most REWRITE_BYTES of them at once (a model writing many
        // partitions per commit has many small files): memory stays
        // bounded, the next compaction takes the rest.
        let keep: std::collections::HashSet<&str> = keep.iter().map(String::as_str).collect();
        let mut bytes = 0;
        let small: Vec<DataFile> = self
            .files()
            .await?
            .into_iter()
            .filter(|f| is_small(f) && !keep.contains(f.path.as_str()))
            .take_while(|f| {
                bytes += f.size;
                bytes <= REWRITE_BYTES
            })
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
