//! What commits did to a table's data: the files they added and removed,
//! read from the Delta log.

use super::data_file::DataFile;
use super::error::TableError;
use super::open::ModelTable;
use deltalake::kernel::Action;

/// What the commits after some version did to the data. Rewrites without
/// a data change (compaction) are not changes; but a rewrite that took in
/// a file added in the same span leaves its rows in a file that is not in
/// `added`: `rewritten` lists those files.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    pub added: Vec<DataFile>,
    pub removed: Vec<DataFile>,
    /// Files written by a rewrite (no data change) of a file in `added`
    /// (or of one in here): they hold rows added in the span, beside
    /// older ones. A reader that keeps only the live files of `added`
    /// must read these too, or lose the rows a compaction moved.
    pub rewritten: Vec<DataFile>,
    /// A commit in the span changed the table's metadata or protocol
    /// (schema, partitioning, properties, features): the same files may
    /// no longer read as the same rows.
    pub reshaped: bool,
}

impl Changes {
    /// No commit in the span changed the rows or how they read: only
    /// rewrites (compaction), checkpoints' commits and the like.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && !self.reshaped
    }

    /// The files of `live` that may hold rows added in the span: those
    /// added, and those a rewrite moved such rows to.
    pub fn live_new<'a>(&self, live: &'a [DataFile]) -> Vec<&'a DataFile> {
        let new: std::collections::HashSet<&str> = self
            .added
            .iter()
            .chain(&self.rewritten)
            .map(|f| f.path.as_str())
            .collect();
        live.iter()
            .filter(|f| new.contains(f.path.as_str()))
            .collect()
    }
}

fn data_file(a: deltalake::kernel::Add) -> DataFile {
    DataFile {
        path: a.path,
        partition_values: a.partition_values.into_iter().collect(),
        size: a.size,
        stats: a.stats,
    }
}

impl ModelTable {
    /// Files added and removed with a data change by commits after
    /// `after` (exclusive) up to the loaded version.
    pub async fn changes(&self, after: i64) -> Result<Changes, TableError> {
        self.changes_in((after + 1).max(0)..=self.version()).await
    }

    /// What commit `v` alone did to the data.
    pub async fn commit_changes(&self, v: i64) -> Result<Changes, TableError> {
        self.changes_in(v..=v).await
    }

    async fn changes_in(
        &self,
        versions: std::ops::RangeInclusive<i64>,
    ) -> Result<Changes, TableError> {
        let log = self.table.log_store();
        let mut changes = Changes::default();
        // Paths holding rows added in the span: added, or rewritten from
        // such a file.
        let mut fresh: std::collections::HashSet<String> = std::collections::HashSet::new();
        for v in versions {
            let bytes = log.read_commit_entry(v as u64).await?.ok_or_else(|| {
                TableError::Schema(format!(
                    "{}: commit {v} is gone from the log (cleaned up?); rebuild with a full refresh",
                    self.name
                ))
            })?;
            let (mut rewrite_adds, mut rewrote_fresh) = (Vec::new(), false);
            for action in deltalake::logstore::get_actions(v as u64, &bytes)? {
                match action {
                    Action::Add(a) if a.data_change => {
                        fresh.insert(a.path.clone());
                        changes.added.push(data_file(a));
                    }
                    Action::Add(a) => rewrite_adds.push(data_file(a)),
                    Action::Remove(r) if !r.data_change => {
                        rewrote_fresh |= fresh.contains(&r.path);
                    }
                    Action::Remove(r) if r.data_change => changes.removed.push(DataFile {
                        path: r.path,
                        partition_values: r
                            .partition_values
                            .unwrap_or_default()
                            .into_iter()
                            .collect(),
                        size: r.size.unwrap_or(0),
                        stats: None,
                    }),
                    Action::Metadata(_) | Action::Protocol(_) => changes.reshaped = true,
                    _ => {}
                }
            }
            // A rewrite's new files take the place of the files it
            // removed: fresh if one of those was.
            if rewrote_fresh {
                fresh.extend(rewrite_adds.iter().map(|f| f.path.clone()));
                changes.rewritten.extend(rewrite_adds);
            }
        }
        Ok(changes)
    }
}
