//! One bronze Delta table: open or create it, read the Kafka offsets it
//! records, and commit a batch together with those offsets.
//!
//! The table is the checkpoint: each commit carries one `txn` action per
//! topic-partition in the batch (app id `<topic>/<partition>`, version = the
//! last offset included), in the same Delta commit as the rows. When a
//! commit's outcome is unclear (an error, a conflict), the table is
//! reloaded and its txn versions decide: our offsets are there (it landed),
//! someone else moved them (fenced: drop the batch and re-seek), or nothing
//! moved (retry the same files).

use super::batch::{PARTITION_COLUMN, Span, bronze_schema};
pub use crate::lake::TableLocation;
use crate::lake::table::{CLEANUP_EVERY, after_checkpoint};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, StructType, Transaction};
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::{EnabledStatistics, WriterProperties};
use deltalake::parquet::schema::types::ColumnPath;
use deltalake::protocol::{DeltaOperation, OutputMode, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};
use std::collections::BTreeMap;
use url::Url;

mod compact;

/// The txn app id of a topic-partition.
pub fn app_id(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// The txn app id of a file source's count of files taken.
pub const FILES_APP_ID: &str = "dag.files";

/// Partitions whose recorded offsets another writer changed: the new
/// last offset per partition (`None`: nothing recorded).
pub type Moved = BTreeMap<i32, Option<i64>>;

/// How a commit of one batch ended.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchCommit {
    /// The batch is in the table at this version. `moved`: partitions held
    /// here that other writers committed meanwhile (re-seek them).
    Committed { version: i64, moved: Moved },
    /// Another writer recorded other offsets for some of the batch's
    /// partitions: the batch is dropped; re-read `moved` from there.
    Fenced { moved: Moved },
}

pub struct BronzeTable {
    pub name: String,
    pub topic: String,
    table: DeltaTable,
    location: TableLocation,
    props: WriterProperties,
    /// The last offset recorded per partition, as far as this writer knows.
    known: BTreeMap<i32, Option<i64>>,
    /// Files written for a batch whose commit has not landed yet: a retry
    /// commits them again instead of rewriting them.
    staged: Option<Vec<Add>>,
    query_id: String,
    epoch: i64,
    /// The first version a failed post-commit scan did not read: the next
    /// [`Self::resolve`] reads from there, so no other writer's commit goes
    /// unseen.
    unscanned: Option<i64>,
    /// Fault tests: the next post-commit scan fails as a lost answer would.
    fail_next_scan: bool,
    /// The version of this writer's last expired-log cleanup.
    cleaned_at: Option<i64>,
}

impl BronzeTable {
    /// Opens the table, creating it (bronze schema, partitioned by
    /// `ingest_date`) if there is none yet.
    pub async fn open_or_create(
        name: &str,
        topic: &str,
        location: TableLocation,
    ) -> Result<Self, DeltaTableError> {
        let comment = format!("bronze: every message of Kafka topic {topic}");
        Self::open_or_create_with(name, topic, location, comment).await
    }

    /// [`Self::open_or_create`], with the comment a new table gets.
    pub async fn open_or_create_with(
        name: &str,
        topic: &str,
        location: TableLocation,
        comment: String,
    ) -> Result<Self, DeltaTableError> {
        let mut table = location.builder()?.build()?;
        match table.load().await {
            Ok(()) => {}
            Err(DeltaTableError::NotATable(_)) => {
                let schema: StructType = bronze_schema().as_ref().try_into_kernel()?;
                let created = table
                    .create()
                    .with_columns(schema.fields().cloned())
                    .with_partition_columns([PARTITION_COLUMN])
                    .with_table_name(name)
                    .with_comment(comment)
                    .with_configuration(location.configuration())
                    // Another ingester may create it at the same moment.
                    .with_save_mode(SaveMode::Ignore)
                    .await;
                table = match created {
                    Ok(t) => t,
                    Err(_) => {
                        let mut t = location.builder()?.build()?;
                        t.load().await?;
                        t
                    }
                };
            }
            Err(e) => return Err(e),
        }
        let fields: Vec<String> = table
            .snapshot()?
            .schema()
            .fields()
            .map(|f| f.name().to_string())
            .collect();
        let expected: Vec<String> = bronze_schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        if fields != expected {
            return Err(DeltaTableError::Generic(format!(
                "{} is not a bronze table: columns {fields:?}, expected {expected:?}",
                location.url
            )));
        }
        Ok(Self {
            name: name.to_string(),
            topic: topic.to_string(),
            table,
            location,
            props: writer_properties(),
            known: BTreeMap::new(),
            staged: None,
            query_id: uuid::Uuid::new_v4().to_string(),
            epoch: 0,
            unscanned: None,
            fail_next_scan: false,
            cleaned_at: None,
        })
    }

    pub fn url(&self) -> &Url {
        &self.location.url
    }

    pub fn version(&self) -> i64 {
        crate::lake::state::version(&self.table)
    }

    pub fn delta(&self) -> &DeltaTable {
        &self.table
    }

    /// Re-reads the log to the latest version.
    pub async fn reload(&mut self) -> Result<(), DeltaTableError> {
        self.table.update_state().await
    }

    /// The last offset recorded per partition at the loaded version.
    pub async fn recorded(
        &self,
        partitions: impl IntoIterator<Item = i32>,
    ) -> Result<BTreeMap<i32, Option<i64>>, DeltaTableError> {
        let snapshot = self.table.snapshot()?;
        let log = self.table.log_store();
        let mut out = BTreeMap::new();
        for p in partitions {
            let v = snapshot
                .transaction_version(log.as_ref(), app_id(&self.topic, p))
                .await?;
            out.insert(p, v);
        }
        Ok(out)
    }

    /// Reloads and returns the last recorded offsets of `partitions`,
    /// remembering them as the base of the next commit.
    ///
    /// The reload also takes in other writers' commits to partitions held
    /// already: what is known of those is refreshed too, so that a batch
    /// overlapping them is refused by the next commit (Delta's conflict
    /// check no longer sees commits that are in our snapshot).
    pub async fn claim(
        &mut self,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, Option<i64>>, DeltaTableError> {
        self.reload().await?;
        self.refresh_known().await?;
        let recorded = self.recorded(partitions.iter().copied()).await?;
        self.known.extend(recorded.iter().map(|(p, v)| (*p, *v)));
        Ok(recorded)
    }

    /// Reads the recorded offsets of every held partition at the loaded
    /// version into `known`: after any reload that may absorb other
    /// writers' commits.
    async fn refresh_known(&mut self) -> Result<(), DeltaTableError> {
        let held: Vec<i32> = self.known.keys().copied().collect();
        let recorded = self.recorded(held).await?;
        self.known.extend(recorded);
        Ok(())
    }

    /// Forgets partitions this process no longer owns.
    pub fn release(&mut self, partitions: &[i32]) {
        for p in partitions {
            self.known.remove(p);
        }
    }

    /// A writer of this table's data files, for [`write_files`] on another
    /// task while the ingester goes on reading; hand the files to
    /// [`Self::stage`] before the batch's [`Self::commit`].
    pub fn file_writer(&self) -> Result<RecordBatchWriter, DeltaTableError> {
        Ok(RecordBatchWriter::for_table(&self.table)?.with_writer_properties(self.props.clone()))
    }

    /// Files [`write_files`] wrote for the batch committed next: its commit
    /// takes them instead of writing the batch again.
    pub fn stage(&mut self, adds: Vec<Add>) {
        self.staged = Some(adds);
    }

    /// One attempt to commit `batch` with the offsets of `spans` (and the
    /// files [`Self::stage`]d for it, if any). On an error, call
    /// [`Self::resolve`] before retrying.
    pub async fn commit(
        &mut self,
        batch: &arrow::array::RecordBatch,
        spans: &BTreeMap<i32, Span>,
    ) -> Result<BatchCommit, DeltaTableError> {
        // Never append offsets the table already records for us: that would
        // be a duplicate the conflict checker cannot see (it only checks
        // commits after our snapshot).
        let stale: Moved = spans
            .iter()
            .filter_map(|(p, s)| match self.known.get(p) {
                Some(Some(k)) if s.first <= *k => Some((*p, Some(*k))),
                _ => None,
            })
            .collect();
        if !stale.is_empty() {
            self.staged = None;
            return Ok(BatchCommit::Fenced { moved: stale });
        }
        let adds = match self.staged.take() {
            Some(adds) => adds,
            None => write_files(self.file_writer()?, batch.clone()).await?,
        };
        self.staged = Some(adds.clone());
        let now = chrono::Utc::now().timestamp_millis();
        let txns = spans
            .iter()
            .map(|(p, s)| {
                Transaction::new_with_last_update(app_id(&self.topic, *p), s.last, Some(now))
            })
            .collect();
        let read_version = self.version();
        let finalized = self.append(adds, txns).await?;
        let version = finalized.version() as i64;
        self.table.state = Some(finalized.snapshot());
        self.staged = None;
        // The batch is in: know it before anything else can fail, or a
        // retry would write it a second time.
        for (p, s) in spans {
            self.known.insert(*p, Some(s.last));
        }
        // Commits of other writers we stepped over: the conflict checker
        // refused any that claimed our batch's partitions, but one may have
        // claimed another partition we hold. Our snapshot now includes it,
        // so the next commit would not be checked against it: look now. If
        // the log cannot be read, `resolve` reads it from here.
        self.unscanned = Some(read_version + 1);
        if std::mem::take(&mut self.fail_next_scan) {
            return Err(DeltaTableError::Generic(
                "injected: the log read after a commit failed".into(),
            ));
        }
        let moved = self.scan_txns(read_version + 1, version).await?;
        self.unscanned = None;
        Ok(BatchCommit::Committed { version, moved })
    }

    /// After a failed attempt: reload and decide from the recorded offsets
    /// whether the batch landed (its answer was lost), was fenced, or should
    /// be retried (`None`).
    pub async fn resolve(
        &mut self,
        spans: &BTreeMap<i32, Span>,
    ) -> Result<Option<BatchCommit>, DeltaTableError> {
        let before = self.version();
        let from = self.unscanned.map_or(before + 1, |u| u.min(before + 1));
        self.reload().await?;
        let mut moved = self.scan_txns(from, self.version()).await?;
        self.unscanned = None;
        let ours = spans
            .iter()
            .all(|(p, s)| self.known.get(p) == Some(&Some(s.last)));
        if ours {
            self.staged = None;
            moved.retain(|p, _| !spans.contains_key(p));
            return Ok(Some(BatchCommit::Committed {
                version: self.version(),
                moved,
            }));
        }
        if spans.keys().any(|p| moved.contains_key(p)) {
            self.staged = None;
            return Ok(Some(BatchCommit::Fenced { moved }));
        }
        Ok(None)
    }

    /// Reads commits `from..=to` and returns the partitions we hold whose
    /// recorded offset they changed, updating what we know.
    async fn scan_txns(&mut self, from: i64, to: i64) -> Result<Moved, DeltaTableError> {
        let mut moved = Moved::new();
        if from > to || self.known.is_empty() {
            return Ok(moved);
        }
        let log = self.table.log_store();
        let prefix = format!("{}/", self.topic);
        for v in from..=to {
            let Some(bytes) = log.read_commit_entry(v as u64).await? else {
                continue;
            };
            for action in deltalake::logstore::get_actions(v as u64, &bytes)? {
                let Action::Txn(t) = action else { continue };
                let Some(p) = t
                    .app_id
                    .strip_prefix(&prefix)
                    .and_then(|p| p.parse::<i32>().ok())
                else {
                    continue;
                };
                if let Some(known) = self.known.get_mut(&p)
                    && *known != Some(t.version)
                {
                    *known = Some(t.version);
                    moved.insert(p, Some(t.version));
                }
            }
        }
        Ok(moved)
    }

    /// The file count a file source recorded (txn [`FILES_APP_ID`]) at the
    /// loaded version.
    pub async fn files_recorded(&self) -> Result<Option<i64>, DeltaTableError> {
        self.table
            .snapshot()?
            .transaction_version(self.table.log_store().as_ref(), FILES_APP_ID)
            .await
    }

    /// Commits the records of whole files of a file source together with
    /// the source's new file count (txn [`FILES_APP_ID`] = `files_after`).
    /// Two writers that commit files from the same snapshot conflict on
    /// that txn, so at most one of them lands: the other gets an error,
    /// reloads and plans again from what the table holds.
    pub async fn commit_files(
        &mut self,
        batches: &[arrow::array::RecordBatch],
        files_after: i64,
    ) -> Result<i64, DeltaTableError> {
        let mut writer =
            RecordBatchWriter::for_table(&self.table)?.with_writer_properties(self.props.clone());
        for batch in batches {
            writer.write(batch.clone()).await?;
        }
        let adds = writer.flush().await?;
        let now = chrono::Utc::now().timestamp_millis();
        let txn = Transaction::new_with_last_update(FILES_APP_ID, files_after, Some(now));
        let finalized = self.append(adds, vec![txn]).await?;
        self.table.state = Some(finalized.snapshot());
        Ok(finalized.version() as i64)
    }

    /// One streaming append of `adds` with `txns`, as the next epoch of
    /// this writer's query.
    async fn append(
        &mut self,
        adds: Vec<Add>,
        txns: Vec<Transaction>,
    ) -> Result<deltalake::kernel::transaction::FinalizedCommit, DeltaTableError> {
        let props = CommitProperties::default()
            .with_application_transactions(txns)
            // Checkpoints and log cleanup are scheduled by the ingester
            // (see `checkpoint`), not run (or looked for) on every commit.
            .with_create_checkpoint(false)
            .with_cleanup_expired_logs(Some(false));
        self.epoch += 1;
        let op = DeltaOperation::StreamingUpdate {
            output_mode: OutputMode::Append,
            query_id: self.query_id.clone(),
            epoch_id: self.epoch,
        };
        CommitBuilder::from(props)
            .with_actions(adds.into_iter().map(Action::Add).collect())
            .build(Some(self.table.snapshot()?), self.table.log_store(), op)
            .await
    }

    /// Fault tests only: the log read that follows the next successful
    /// commit fails, as when the store's answer is lost.
    #[doc(hidden)]
    pub fn fail_next_scan(&mut self) {
        self.fail_next_scan = true;
    }

    /// Drops files staged for a batch that will not be committed.
    pub fn discard_staged(&mut self) {
        self.staged = None;
    }

    /// Writes a checkpoint at the loaded version, then rebuilds this
    /// writer's state from it and, at this writer's first checkpoint and
    /// then once per [`CLEANUP_EVERY`] versions, deletes the log entries
    /// the table's log retention let expire ([`after_checkpoint`]).
    pub async fn checkpoint(&mut self) -> Result<(), DeltaTableError> {
        deltalake::checkpoints::create_checkpoint(&self.table, None).await?;
        let version = self.version();
        let cleanup = self.cleaned_at.is_none_or(|c| version - c >= CLEANUP_EVERY);
        if cleanup {
            self.cleaned_at = Some(version);
        }
        after_checkpoint(&mut self.table, &self.name, version, true, cleanup).await;
        Ok(())
    }
}

/// Writes `batch` as data files of the writer's table, committing nothing.
pub async fn write_files(
    mut writer: RecordBatchWriter,
    batch: arrow::array::RecordBatch,
) -> Result<Vec<Add>, DeltaTableError> {
    writer.write(batch).await?;
    writer.flush().await
}

/// Parquet settings for raw messages: no dictionary or statistics for the
/// payload (unique bytes; stats would only cost time), dictionaries for the
/// repetitive columns.
fn writer_properties() -> WriterProperties {
    let no_stats = |c: &str| ColumnPath::from(c);
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled(no_stats("topic"), true)
        .set_column_dictionary_enabled(no_stats("key"), true)
        .set_column_statistics_enabled(no_stats("value"), EnabledStatistics::None)
        .set_column_statistics_enabled(no_stats("key"), EnabledStatistics::None)
        .build()
}
