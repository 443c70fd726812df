//! Compaction of a bronze table's small files, with our own reader
//! and writer: the small files of a date are read back (parquet, through
//! the table's object store) and written again as files of about the
//! target size, and one Delta commit removes the old files and adds the
//! new ones without changing the data (`dataChange: false`), so readers
//! that follow the table's changes skip it.
//!
//! Our own rather than deltalake's `optimize`: that one needs deltalake's
//! `datafusion` feature (51 crates, a large share of a cold build) for
//! this one job.

use super::BronzeTable;
use crate::bronze::batch::{PARTITION_COLUMN, bronze_schema};
use crate::bronze::clock::IngestClock;
use arrow::array::{ArrayRef, Date32Array, RecordBatch};
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake::kernel::{Action, Add, LogicalFileView, Transaction};
// ParquetObjectReader is deprecated in parquet 59 (see lake/table/read.rs).
#[allow(deprecated)]
use deltalake::parquet::arrow::async_reader::{
    ParquetObjectReader, ParquetRecordBatchStreamBuilder,
};
use deltalake::protocol::DeltaOperation;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTableError, Path};
use futures::TryStreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;

/// On an ingest date still open, a file under this share of the target
/// size is small (see [`BronzeTable::compact`]).
pub const OPEN_SMALL_SHARE: u64 = 64;

/// The txn app id a compaction of ingest date `date` carries.
fn compaction_app_id(date: &str) -> String {
    format!("dag.compact/{date}")
}

impl BronzeTable {
    /// Compacts small files, in one commit per ingest date: a date with at
    /// least `min_files` small files gets them rewritten as files of about
    /// `target_bytes`. On a closed date (before the clock's yesterday) a
    /// file under half the target is small; on an open one (still being
    /// appended to), only a file under [`OPEN_SMALL_SHARE`]th of it: the
    /// batch files of a streaming ingester, which would otherwise pile up
    /// at one per commit and make every commit slower (each commit's new
    /// snapshot lists every file), while an earlier compaction's output is
    /// soon past that size and left alone until the date closes, so a byte
    /// is rewritten about twice, not at every round.
    /// Returns the dates compacted and the files removed.
    pub async fn compact(
        &mut self,
        clock: &IngestClock,
        min_files: usize,
        target_bytes: u64,
    ) -> Result<(Vec<String>, u64), DeltaTableError> {
        let horizon = clock.today() - chrono::Days::new(1);
        let target = target_bytes.max(1 << 20);
        let mut per_date: BTreeMap<String, Vec<LogicalFileView>> = BTreeMap::new();
        {
            let snapshot = self.table.snapshot()?;
            let log = self.table.log_store();
            let mut files = snapshot.snapshot().file_views(log.as_ref(), None);
            while let Some(f) = files.try_next().await? {
                let Some(Some(date)) = f.partition_values_map().get(PARTITION_COLUMN).cloned()
                else {
                    continue;
                };
                let closed =
                    chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d").is_ok_and(|d| d < horizon);
                let small = if closed {
                    target / 2
                } else {
                    target / OPEN_SMALL_SHARE
                };
                if (f.size() as u64) < small {
                    per_date.entry(date).or_default().push(f);
                }
            }
        }
        let mut done = Vec::new();
        let mut removed = 0;
        for (date, files) in per_date {
            if files.len() < min_files.max(2) {
                continue;
            }
            let adds = self.rewrite(&date, &files, target).await?;
            let actions = adds
                .into_iter()
                .map(|mut a| {
                    a.data_change = false;
                    Action::Add(a)
                })
                .chain(files.iter().map(|f| Action::Remove(f.remove_action(false))))
                .collect();
            // Two compactions of the same files would both land (Delta's
            // conflict check lets removes without a data change overlap)
            // and add the rows twice: each carries the date's txn app id,
            // which makes the later of two concurrent ones conflict.
            let guard = Transaction::new_with_last_update(
                compaction_app_id(&date),
                self.version(),
                Some(chrono::Utc::now().timestamp_millis()),
            );
            let props = CommitProperties::default()
                .with_application_transaction(guard)
                .with_create_checkpoint(false)
                .with_cleanup_expired_logs(Some(false));
            let op = DeltaOperation::Optimize {
                predicate: Some(format!("{PARTITION_COLUMN} = '{date}'")),
                target_size: target as i64,
            };
            // Built on the snapshot the files were listed from: after a
            // concurrent compaction of the date this commit fails (its new
            // files are then unreferenced, for vacuum); appends do not
            // conflict with it.
            let built = CommitBuilder::from(props)
                .with_actions(actions)
                .build(Some(self.table.snapshot()?), self.table.log_store(), op)
                .await;
            let finalized = match built {
                Ok(f) => f,
                Err(DeltaTableError::Transaction {
                    source: TransactionError::CommitConflict(e),
                }) => {
                    // Another writer compacted the date first: its files
                    // stand, ours are left unreferenced.
                    tracing::info!(table = %self.name, %date, "another writer compacted this date first ({e})");
                    self.reload().await?;
                    self.refresh_known().await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.table.state = Some(finalized.snapshot());
            // The snapshot now holds every commit up to ours, other
            // writers' offsets included.
            self.refresh_known().await?;
            removed += files.len() as u64;
            done.push(date);
        }
        Ok((done, removed))
    }

    /// Reads `files` (all of ingest date `date`) and writes their rows as
    /// new files of about `target` bytes, one input batch at a time.
    #[allow(deprecated)] // ParquetObjectReader: see the imports
    async fn rewrite(
        &self,
        date: &str,
        files: &[LogicalFileView],
        target: u64,
    ) -> Result<Vec<Add>, DeltaTableError> {
        let days = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .map_err(|e| DeltaTableError::Generic(format!("ingest date {date}: {e}")))?
            .signed_duration_since(chrono::NaiveDate::default()) // 1970-01-01
            .num_days() as i32;
        let schema = bronze_schema();
        let store = self.table.log_store().object_store(None);
        let mut writer = RecordBatchWriter::for_table(&self.table)?
            .with_writer_properties(self.props.clone())
            .with_target_file_size(target);
        for file in files {
            let path = Path::from_url_path(file.path().as_ref())
                .map_err(|e| DeltaTableError::Generic(format!("file {}: {e}", file.path())))?;
            let reader =
                ParquetObjectReader::new(store.clone(), path).with_file_size(file.size() as u64);
            let mut stream = ParquetRecordBatchStreamBuilder::new(reader)
                .await?
                .with_batch_size(64 * 1024)
                .build()?;
            while let Some(read) = stream.try_next().await? {
                // The files hold every column but the partition one.
                let date_column: ArrayRef =
                    Arc::new(Date32Array::from_value(days, read.num_rows()));
                let columns = schema
                    .fields()
                    .iter()
                    .map(|f| {
                        if f.name() == PARTITION_COLUMN {
                            Ok(date_column.clone())
                        } else {
                            read.column_by_name(f.name()).cloned().ok_or_else(|| {
                                DeltaTableError::Generic(format!(
                                    "file {} has no column {}",
                                    file.path(),
                                    f.name()
                                ))
                            })
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                writer
                    .write(RecordBatch::try_new(schema.clone(), columns)?)
                    .await?;
            }
        }
        writer.flush().await
    }
}
