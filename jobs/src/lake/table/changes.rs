//! What commits did to a table's data: the files they added and removed,
//! read from the Delta log.

use super::data_file::DataFile;
use super::error::TableError;
use super::open::ModelTable;
use deltalake::kernel::Action;

/// What the commits after some version did to the data (rewrites without
/// a data change, such as compaction, are left out).
#[derive(Clone, Debug, Default)]
pub struct Changes {
    pub added: Vec<DataFile>,
    pub removed: Vec<DataFile>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
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
        for v in versions {
            let bytes = log.read_commit_entry(v as u64).await?.ok_or_else(|| {
                TableError::Schema(format!(
                    "{}: commit {v} is gone from the log (cleaned up?); rebuild with a full refresh",
                    self.name
                ))
            })?;
            for action in deltalake::logstore::get_actions(v as u64, &bytes)? {
                match action {
                    Action::Add(a) if a.data_change => changes.added.push(DataFile {
                        path: a.path,
                        partition_values: a.partition_values.into_iter().collect(),
                        size: a.size,
                        stats: a.stats,
                    }),
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
                    _ => {}
                }
            }
        }
        Ok(changes)
    }
}
