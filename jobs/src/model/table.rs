//! A model's Delta table: create it from the declared columns, read it (or
//! only some of its files) into polars, list what changed between two
//! versions, and commit new files, removed files and the input versions
//! consumed as one atomic Delta commit.
//!
//! Reading goes through the parquet crate on the table's own object store
//! (local or S3) and crosses into polars through the C Data Interface; the
//! partition columns, which Delta keeps out of the files, are added back
//! from each file's partition values.

use super::bloom::{Filter, key_hash};
use super::bridge::{BridgeError, batches_to_df, df_to_batch};
use crate::lake::TableLocation;
use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, Remove, StructType, Transaction};
use deltalake::parquet::arrow::ProjectionMask;
use deltalake::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
// ParquetObjectReader is deprecated in parquet 59 in favour of a hand-made
// AsyncFileReader; it still does what we need (ranged reads through the
// table's object store), so we keep it until deltalake moves on.
#[allow(deprecated)]
use deltalake::parquet::arrow::async_reader::{
    ParquetObjectReader, ParquetRecordBatchStreamBuilder,
};
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::parquet::schema::types::ColumnPath;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};
use futures::{StreamExt, TryStreamExt};
use polars::prelude::{
    Column, DataFrame, Expr, IntoLazy, JoinArgs, JoinType, NamedFrom, Scalar, Series, col,
};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error(transparent)]
    Delta(#[from] DeltaTableError),
    #[error(transparent)]
    Parquet(#[from] deltalake::parquet::errors::ParquetError),
    #[error(transparent)]
    Bridge(#[from] BridgeError),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("{0}")]
    Schema(String),
    #[error(
        "{0}: not committed: the task was given up (timed out, lost its claim, or its scheduler is stopping)"
    )]
    Cancelled(String),
}

/// One data file of the table, as the log records it.
#[derive(Clone, Debug, PartialEq)]
pub struct DataFile {
    /// Relative to the table root, as written in the log.
    pub path: String,
    pub partition_values: BTreeMap<String, Option<String>>,
    pub size: i64,
    /// The writer's statistics (Delta `stats` JSON), when recorded.
    pub stats: Option<String>,
}

impl DataFile {
    /// (min, max) of an integer or timestamp column from the statistics,
    /// timestamps as epoch microseconds.
    pub fn bounds(&self, column: &str) -> Option<(i64, i64)> {
        let stats: serde_json::Value = serde_json::from_str(self.stats.as_deref()?).ok()?;
        let value = |side: &str| -> Option<i64> {
            match stats.get(side)?.get(column)? {
                serde_json::Value::Number(n) => n.as_i64(),
                serde_json::Value::String(t) => chrono::DateTime::parse_from_rfc3339(t)
                    .ok()
                    .map(|t| t.timestamp_micros()),
                _ => None,
            }
        };
        Some((value("minValues")?, value("maxValues")?))
    }
}

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

pub struct ModelTable {
    pub name: String,
    table: DeltaTable,
    schema: SchemaRef,
    partition_by: Vec<String>,
    /// Columns whose files get a parquet bloom filter (the table's key).
    bloom: Vec<String>,
    /// Once set, [`ModelTable::commit`] refuses.
    cancel: Cancel,
}

/// Set when the task writing a table must not commit any more: its
/// scheduler gave it up (it timed out, lost its claim, or the scheduler is
/// stopping) and another attempt may run. Checked right before every
/// commit, so a task given up can finish computing but never publish.
#[derive(Clone, Debug, Default)]
pub struct Cancel {
    own: Arc<std::sync::atomic::AtomicBool>,
    /// A scheduler's "stopping": cancels every task's token at once.
    parent: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl Cancel {
    /// A token cancelled with this one, or on its own.
    pub fn child(&self) -> Cancel {
        Cancel {
            own: Arc::default(),
            parent: Some(self.own.clone()),
        }
    }

    pub fn cancel(&self) {
        self.own.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        self.own.load(SeqCst) || self.parent.as_ref().is_some_and(|p| p.load(SeqCst))
    }
}

/// Names a table whose next commit stalls, once (tests only):
/// `<table>:<milliseconds>:<marker file>`; the stall happens when the
/// marker file does not exist yet, and creates it.
pub const STALL_COMMIT: &str = "DAG_TEST_STALL_COMMIT";

/// Delta tables this process loaded, by URL, for one catalog: opening a
/// table again applies only the commits made since (one log listing when
/// there are none), where loading it from scratch replayed its whole log
/// every time (a run with nothing new read fact_telemetry's log 29 times).
/// A table deleted and recreated under the same URL while the catalog
/// lives is not noticed; nothing here does that.
/// Clones share one cache.
#[derive(Clone, Default)]
pub struct TableCache(Arc<std::sync::Mutex<std::collections::HashMap<String, DeltaTable>>>);

impl std::fmt::Debug for TableCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map_or(0, |m| m.len());
        write!(f, "TableCache({n} tables)")
    }
}

impl TableCache {
    fn get(&self, url: &str) -> Option<DeltaTable> {
        self.0.lock().ok()?.get(url).cloned()
    }

    /// Keeps `table`'s state unless a newer one is there already.
    fn put(&self, url: &str, table: &DeltaTable) {
        let Ok(mut map) = self.0.lock() else { return };
        let newer = map
            .get(url)
            .is_none_or(|held| held.version() <= table.version());
        if newer {
            map.insert(url.to_string(), table.clone());
        }
    }
}

impl ModelTable {
    /// Opens an existing table (`None` when there is none yet), reading it
    /// with `schema` (partition columns included).
    pub async fn open(
        name: &str,
        location: &TableLocation,
        schema: SchemaRef,
    ) -> Result<Option<Self>, TableError> {
        Self::open_cached(name, location, schema, None).await
    }

    /// [`ModelTable::open`], starting from the state `cache` holds for the
    /// table (only the commits since are read) and leaving the new state
    /// there.
    pub async fn open_cached(
        name: &str,
        location: &TableLocation,
        schema: SchemaRef,
        cache: Option<&TableCache>,
    ) -> Result<Option<Self>, TableError> {
        let key = location.url.as_str();
        let mut table = match cache.and_then(|c| c.get(key)) {
            Some(t) => t,
            None => location.builder()?.build()?,
        };
        match table.load().await {
            Ok(()) => {}
            Err(DeltaTableError::NotATable(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        if let Some(c) = cache {
            c.put(key, &table);
        }
        let partition_by: Vec<String> = table.snapshot()?.metadata().partition_columns().to_vec();
        let this = Self {
            name: name.to_string(),
            table,
            schema,
            partition_by,
            bloom: Vec::new(),
            cancel: Cancel::default(),
        };
        this.check_schema()?;
        Ok(Some(this))
    }

    /// The table as it was at `version` (time travel): a load publishes
    /// exactly the version its data tests judged.
    pub async fn at_version(mut self, version: i64) -> Result<Self, TableError> {
        let v = version
            .try_into()
            .map_err(|_| TableError::Schema(format!("no version {version}")))?;
        self.table.load_version(v).await?;
        Ok(self)
    }

    /// Opens the table, creating it with `schema` and `partition_by` if
    /// there is none yet.
    pub async fn open_or_create(
        name: &str,
        location: &TableLocation,
        schema: SchemaRef,
        partition_by: &[String],
        comment: &str,
    ) -> Result<Self, TableError> {
        Self::open_or_create_cached(name, location, schema, partition_by, comment, None).await
    }

    /// [`ModelTable::open_or_create`] through `cache` (see
    /// [`ModelTable::open_cached`]).
    pub async fn open_or_create_cached(
        name: &str,
        location: &TableLocation,
        schema: SchemaRef,
        partition_by: &[String],
        comment: &str,
        cache: Option<&TableCache>,
    ) -> Result<Self, TableError> {
        if let Some(t) = Self::open_cached(name, location, schema.clone(), cache).await? {
            return Ok(t);
        }
        let kernel: StructType = schema.as_ref().try_into_kernel()?;
        let created = location
            .builder()?
            .build()?
            .create()
            .with_columns(kernel.fields().cloned())
            .with_partition_columns(partition_by.iter().cloned())
            .with_table_name(name)
            .with_comment(comment)
            .with_save_mode(SaveMode::Ignore)
            .await;
        let table = match created {
            Ok(t) => t,
            // Created meanwhile, by another run or by this attempt whose
            // answer was lost: open what is there (its schema is checked).
            Err(e) => match Self::open_cached(name, location, schema.clone(), cache).await {
                Ok(Some(t)) => return Ok(t),
                _ => return Err(e.into()),
            },
        };
        let this = Self {
            name: name.to_string(),
            table,
            schema,
            partition_by: partition_by.to_vec(),
            bloom: Vec::new(),
            cancel: Cancel::default(),
        };
        this.check_schema()?;
        Ok(this)
    }

    fn check_schema(&self) -> Result<(), TableError> {
        let have: Vec<String> = self
            .table
            .snapshot()?
            .schema()
            .fields()
            .map(|f| f.name().to_string())
            .collect();
        let want: Vec<String> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let (mut h, mut w) = (have.clone(), want.clone());
        h.sort();
        w.sort();
        if h != w {
            return Err(TableError::Schema(format!(
                "table {} at {} has columns {have:?}, the model declares {want:?}; \
                 a changed model needs its table rebuilt (delete the folder, then run)",
                self.name,
                self.table.table_url()
            )));
        }
        Ok(())
    }

    /// Files written from now on carry a parquet bloom filter on each of
    /// `columns` (those that are in the files, not partition columns), so
    /// that [`Self::lookup`] reads only the row groups that may hold a key.
    /// Commits refuse once `cancel` is set.
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    pub fn with_bloom_filters(mut self, columns: &[String]) -> Self {
        self.bloom = columns
            .iter()
            .filter(|c| !self.partition_by.contains(c))
            .cloned()
            .collect();
        self
    }

    /// The table's partition columns.
    pub fn partition_by(&self) -> &[String] {
        &self.partition_by
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// When the table was created (epoch milliseconds), as its metadata
    /// records it: a table deleted and rebuilt under the same name has a
    /// new one.
    pub fn created_at(&self) -> Option<i64> {
        let metadata = self.table.snapshot().ok()?.metadata().clone();
        serde_json::to_value(metadata)
            .ok()?
            .get("createdTime")?
            .as_i64()
    }

    pub fn version(&self) -> i64 {
        self.table.version().map_or(-1, |v| v as i64)
    }

    pub fn delta(&self) -> &DeltaTable {
        &self.table
    }

    /// The version recorded for `app_id` by a `txn` action, if any.
    pub async fn txn(&self, app_id: &str) -> Result<Option<i64>, TableError> {
        Ok(self
            .table
            .snapshot()?
            .transaction_version(self.table.log_store().as_ref(), app_id)
            .await?)
    }

    /// Every data file at the loaded version.
    pub async fn files(&self) -> Result<Vec<DataFile>, TableError> {
        let log = self.table.log_store();
        let files = self
            .table
            .snapshot()?
            .snapshot()
            .file_views(log.as_ref(), None);
        let out: Vec<DataFile> = files
            .map_ok(|f| DataFile {
                path: f.path().to_string(),
                partition_values: f.partition_values_map().into_iter().collect(),
                size: f.size(),
                stats: f.stats(),
            })
            .try_collect()
            .await?;
        Ok(out)
    }

    /// When commit `version` was made (epoch milliseconds), from its
    /// `commitInfo`; `None` when the log no longer holds the commit or its
    /// writer recorded no time.
    pub async fn committed_at(&self, version: i64) -> Result<Option<i64>, TableError> {
        if version < 0 {
            return Ok(None);
        }
        let log = self.table.log_store();
        let Some(bytes) = log.read_commit_entry(version as u64).await? else {
            return Ok(None);
        };
        Ok(deltalake::logstore::get_actions(version as u64, &bytes)?
            .into_iter()
            .find_map(|a| match a {
                Action::CommitInfo(info) => info.timestamp,
                _ => None,
            }))
    }

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

    /// Reads the whole table (optionally only some columns).
    pub async fn read_all(&self, columns: Option<&[&str]>) -> Result<DataFrame, TableError> {
        let files = self.files().await?;
        self.read(&files, columns).await
    }

    /// Reads `files` of this table into one DataFrame, in file order.
    pub async fn read(
        &self,
        files: &[DataFile],
        columns: Option<&[&str]>,
    ) -> Result<DataFrame, TableError> {
        let schema = match columns {
            Some(cols) => {
                let idx = cols
                    .iter()
                    .map(|c| {
                        self.schema.index_of(c).map_err(|_| {
                            TableError::Schema(format!("{} has no column `{c}`", self.name))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Arc::new(self.schema.project(&idx)?)
            }
            None => self.schema.clone(),
        };
        // Strings and bytes are read as views, the layout polars holds
        // them in: the bridge then hands buffers over instead of
        // converting every value.
        let schema = as_views(&schema);
        let store = self.table.log_store().object_store(None);
        let batches: Vec<Vec<RecordBatch>> = futures::stream::iter(files.iter().cloned())
            .map(|f| read_file(store.clone(), f, schema.clone(), &self.partition_by))
            .buffered(4)
            .try_collect()
            .await?;
        let batches: Vec<RecordBatch> = batches.into_iter().flatten().collect();
        let df = batches_to_df(&batches, &schema)?;
        Ok(constant_partitions(df, files, &self.partition_by)?)
    }

    /// Which of `keys` rows of `files` hold in the string column `column`
    /// (one row per matching row: a key held twice comes twice), as a
    /// one-column frame. Only that column is read, and of it only the row
    /// groups whose bloom filter may hold one of `keys`; row groups
    /// without a filter (files written before filters, or by another
    /// writer) are read whole. Looking 100k new keys up among 10M random
    /// UUIDs reads the filters (a few bytes per row) and almost no column.
    pub async fn lookup(
        &self,
        files: &[DataFile],
        column: &str,
        keys: &[&str],
    ) -> Result<DataFrame, TableError> {
        let frame = |found: Vec<String>| {
            DataFrame::new(found.len(), vec![Series::new(column.into(), found).into()])
                .map_err(BridgeError::from)
        };
        if files.is_empty() || keys.is_empty() {
            return Ok(frame(Vec::new())?);
        }
        let set: HashSet<&str> = keys.iter().copied().collect();
        // Each key hashed once for every filter of every file.
        let hashes: Vec<u64> = set.iter().map(|k| key_hash(k.as_bytes())).collect();
        let store = self.table.log_store().object_store(None);
        let found: Vec<Vec<String>> = futures::stream::iter(files.iter())
            .map(|f| lookup_file(store.clone(), f, column, &set, &hashes))
            .buffered(8)
            .try_collect()
            .await?;
        Ok(frame(found.into_iter().flatten().collect())?)
    }

    /// The rows of `files` whose key matches a row of `keys` (whose columns
    /// name the key), key columns only, one row per matching row. One
    /// string key column goes through the bloom filters ([`Self::lookup`]);
    /// any other key reads the key columns of every file.
    pub async fn held(
        &self,
        files: &[DataFile],
        keys: &DataFrame,
    ) -> Result<DataFrame, TableError> {
        let names: Vec<String> = keys
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        if let [column] = names.as_slice()
            && !self.partition_by.contains(column)
            && let Ok(values) = keys.column(column).and_then(|c| c.str().cloned())
        {
            let values: Vec<&str> = values.iter().flatten().collect();
            return self.lookup(files, column, &values).await;
        }
        let cols: Vec<&str> = names.iter().map(String::as_str).collect();
        let rows = self.read(files, Some(&cols)).await?;
        let casts: Vec<Expr> = rows
            .columns()
            .iter()
            .map(|c| col(c.name().clone()).cast(c.dtype().clone()))
            .collect();
        let on: Vec<Expr> = names.iter().map(|c| col(c.as_str())).collect();
        let wanted = keys.clone().lazy().select(casts);
        rows.lazy()
            .join(wanted, on.clone(), on, JoinArgs::new(JoinType::Semi))
            .collect()
            .map_err(|e| BridgeError::from(e).into())
    }

    /// Writes `df` (any column order; cast to the table's types) as new
    /// data files, partitioned as the table is. Nothing is committed.
    pub async fn write_files(&self, df: &DataFrame) -> Result<Vec<Add>, TableError> {
        if df.height() == 0 {
            return Ok(Vec::new());
        }
        let batch = df_to_batch(df, &self.schema)?;
        // Parquet encoding is single-threaded per writer and most of a big
        // write: large outputs are split over one writer per core (one file
        // each per partition).
        let ways = if batch.num_rows() < PARALLEL_WRITE_ROWS {
            1
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        };
        let mut tasks = tokio::task::JoinSet::new();
        for part in chunks(&batch, batch.num_rows().div_ceil(ways)) {
            let mut props = WriterProperties::builder().set_compression(Compression::SNAPPY);
            // A file holds at most this many keys. Sized for them, the
            // filter starts small; the default (a million) allocated and
            // zeroed 8 MB per file at this rate before folding it down.
            let ndv = part.num_rows().min(FILE_ROWS) as u64;
            for c in &self.bloom {
                // A key column is (nearly) one value per row: a dictionary
                // never pays, and trying one cost a hash per value.
                let path = ColumnPath::new(vec![c.clone()]);
                props = props
                    .set_column_bloom_filter_enabled(path.clone(), true)
                    .set_column_bloom_filter_fpp(path.clone(), BLOOM_FPP)
                    .set_column_bloom_filter_max_ndv(path.clone(), ndv)
                    .set_column_dictionary_enabled(path, false);
            }
            let mut writer =
                RecordBatchWriter::for_table(&self.table)?.with_writer_properties(props.build());
            tasks.spawn(async move {
                // The writer splits by partition; a file ends every
                // FILE_ROWS rows so that readers pruning by statistics
                // (as-of scopes, time scopes) skip most of a big table.
                let mut adds = Vec::new();
                for slice in chunks(&part, FILE_ROWS) {
                    writer.write(slice).await?;
                    adds.extend(writer.flush().await?);
                }
                Ok::<_, DeltaTableError>(adds)
            });
        }
        let mut adds = Vec::new();
        while let Some(done) = tasks.join_next().await {
            adds.extend(
                done.map_err(|e| TableError::Schema(format!("{}: writer task: {e}", self.name)))??,
            );
        }
        // Files in a stable order (join order is arbitrary).
        adds.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(adds)
    }

    /// One atomic commit: `adds`, removal of `removes`, and the `txns`
    /// (input -> version consumed). Returns the new version.
    pub async fn commit(
        &mut self,
        adds: Vec<Add>,
        removes: &[DataFile],
        txns: &BTreeMap<String, i64>,
        overwrite: bool,
    ) -> Result<i64, TableError> {
        self.stall_for_tests().await;
        if self.cancel.is_cancelled() {
            return Err(TableError::Cancelled(self.name.clone()));
        }
        let now = chrono::Utc::now().timestamp_millis();
        let mut actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
        actions.extend(removes.iter().map(|f| {
            Action::Remove(Remove {
                path: f.path.clone(),
                data_change: true,
                deletion_timestamp: Some(now),
                extended_file_metadata: Some(true),
                partition_values: Some(f.partition_values.clone().into_iter().collect()),
                size: Some(f.size),
                tags: None,
                deletion_vector: None,
                base_row_id: None,
                default_row_commit_version: None,
            })
        }));
        // A commit whose answer is lost (the store wrote it, the reply
        // never came) is found again by this id in its commitInfo.
        let commit_id = uuid::Uuid::new_v4().to_string();
        let props = CommitProperties::default()
            .with_application_transactions(
                txns.iter()
                    .map(|(app, v)| Transaction::new_with_last_update(app, *v, Some(now)))
                    .collect(),
            )
            .with_metadata([(
                COMMIT_ID_KEY.to_string(),
                serde_json::Value::String(commit_id.clone()),
            )])
            // Checkpoints and the cleanup of expired log entries are ours,
            // every CHECKPOINT_EVERY commits (below): delta-rs would list
            // the whole `_delta_log` after every commit to look for
            // expired entries, a cost that grows with the log.
            .with_create_checkpoint(false)
            .with_cleanup_expired_logs(Some(false));
        let op = DeltaOperation::Write {
            mode: if overwrite {
                SaveMode::Overwrite
            } else {
                SaveMode::Append
            },
            partition_by: (!self.partition_by.is_empty()).then(|| self.partition_by.clone()),
            predicate: None,
        };
        let read_version = self.version();
        let built = CommitBuilder::from(props)
            .with_actions(actions)
            .build(Some(self.table.snapshot()?), self.table.log_store(), op)
            .await;
        let finalized = match built {
            Ok(f) => f,
            Err(e) => {
                // deltalake retries a commit whose put failed; when the
                // first put had landed, the retry meets our own commit as
                // a conflict. Look before calling it a failure.
                return match self.find_commit(read_version, &commit_id).await {
                    Ok(Some(version)) => {
                        tracing::info!(table = %self.name, version, "the commit landed though its answer was lost");
                        Ok(version)
                    }
                    _ => Err(e.into()),
                };
            }
        };
        let version = finalized.version() as i64;
        self.table.state = Some(finalized.snapshot());
        // A scheduled model commits every few seconds: without checkpoints
        // every open would replay its whole JSON log. A failed checkpoint
        // costs only speed.
        if version > 0 && version % CHECKPOINT_EVERY == 0 {
            upkeep(&self.table, &self.name, version).await;
        }
        Ok(version)
    }
}

/// A checkpoint at `version`, then the log entries older than the table's
/// log retention (and older than a checkpoint) deleted. Failures cost only
/// speed: they are logged.
pub async fn upkeep(table: &DeltaTable, name: &str, version: i64) {
    if let Err(e) = deltalake::checkpoints::create_checkpoint(table, None).await {
        tracing::warn!(table = %name, version, "checkpoint failed: {e}");
        return;
    }
    match deltalake::checkpoints::cleanup_metadata(table, None).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(table = %name, version, "{n} expired log entries removed"),
        Err(e) => tracing::warn!(table = %name, version, "log cleanup failed: {e}"),
    }
}

impl ModelTable {
    /// See [`STALL_COMMIT`].
    async fn stall_for_tests(&self) {
        let Ok(spec) = std::env::var(STALL_COMMIT) else {
            return;
        };
        let mut parts = spec.splitn(3, ':');
        let (Some(table), Some(ms), Some(marker)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let marker = std::path::Path::new(marker);
        if table == self.name && !marker.exists() && std::fs::write(marker, b"").is_ok() {
            let ms = ms.parse().unwrap_or(0);
            eprintln!("{STALL_COMMIT}: stalling {table}'s commit for {ms} ms");
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            eprintln!("{STALL_COMMIT}: {table}'s commit resumes at {at:.3}");
        }
    }
}

/// The commitInfo key holding the id of a model table's commit.
const COMMIT_ID_KEY: &str = "dagCommitId";

impl ModelTable {
    /// The version of the commit carrying `commit_id` made after
    /// `read_version`, if it landed (the table is reloaded).
    async fn find_commit(
        &mut self,
        read_version: i64,
        commit_id: &str,
    ) -> Result<Option<i64>, TableError> {
        self.table.update_state().await?;
        let log = self.table.log_store();
        for v in (read_version + 1)..=self.version() {
            let Some(bytes) = log.read_commit_entry(v as u64).await? else {
                continue;
            };
            for action in deltalake::logstore::get_actions(v as u64, &bytes)? {
                if let Action::CommitInfo(info) = action
                    && info.info.get(COMMIT_ID_KEY).and_then(|v| v.as_str()) == Some(commit_id)
                {
                    return Ok(Some(v));
                }
            }
        }
        Ok(None)
    }
}

/// Timestamp statistics in the Delta log may be truncated (to the
/// millisecond or the second, by writer): a file's bounds are widened by
/// this much before they decide anything.
pub const STATS_SLACK_US: i64 = 1_000_000;

/// False-positive rate of the bloom filters on key columns. A lookup's
/// wasted row-group reads are about keys x row groups x this: 100k keys
/// against 100 row groups read ~10 for nothing. Filters are folded to this
/// rate after writing, about 4-5 bytes per distinct key.
const BLOOM_FPP: f64 = 1e-6;

/// A model table writes a Delta checkpoint every this many commits.
pub const CHECKPOINT_EVERY: i64 = 100;

/// Rows per data file at most. Rows arrive roughly in time order, so a
/// file covers a narrow time range: an as-of join reading the newest rows
/// of a 10M-row fact reads one or two files, not a half of it. Small
/// enough for that, big enough that a file's footer and bloom filter stay
/// a small part of it.
const FILE_ROWS: usize = 128 * 1024;

/// Outputs from this many rows up are written by several writers at once.
const PARALLEL_WRITE_ROWS: usize = 200_000;

fn chunks(batch: &RecordBatch, rows: usize) -> Vec<RecordBatch> {
    (0..batch.num_rows())
        .step_by(rows.max(1))
        .map(|at| batch.slice(at, rows.min(batch.num_rows() - at)))
        .collect()
}

/// A reader of one data file of the table (its footer read).
#[allow(deprecated)]
async fn open_parquet(
    store: Arc<dyn object_store::ObjectStore>,
    file: &DataFile,
) -> Result<ParquetRecordBatchStreamBuilder<ParquetObjectReader>, TableError> {
    let path = deltalake::Path::from_url_path(&file.path)
        .map_err(|e| TableError::Schema(format!("bad file path {}: {e}", file.path)))?;
    let reader = ParquetObjectReader::new(store, path).with_file_size(file.size as u64);
    Ok(ParquetRecordBatchStreamBuilder::new(reader).await?)
}

/// `schema` with its string and binary columns as views.
fn as_views(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| {
                let ty = match f.data_type() {
                    DataType::Utf8 | DataType::LargeUtf8 => DataType::Utf8View,
                    DataType::Binary | DataType::LargeBinary => DataType::BinaryView,
                    other => other.clone(),
                };
                Field::new(f.name(), ty, f.is_nullable())
            })
            .collect::<Vec<_>>(),
    ))
}

/// Reads one parquet file into batches of `schema`, adding the partition
/// columns from the file's partition values. String and binary columns of
/// the file are decoded straight into views.
#[allow(deprecated)] // ParquetObjectReader: see the imports
async fn read_file(
    store: Arc<dyn object_store::ObjectStore>,
    file: DataFile,
    schema: SchemaRef,
    partition_by: &[String],
) -> Result<Vec<RecordBatch>, TableError> {
    let path = deltalake::Path::from_url_path(&file.path)
        .map_err(|e| TableError::Schema(format!("bad file path {}: {e}", file.path)))?;
    let mut reader = ParquetObjectReader::new(store, path).with_file_size(file.size as u64);
    let plain = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new()).await?;
    let viewed = ArrowReaderMetadata::try_new(
        plain.metadata().clone(),
        ArrowReaderOptions::new().with_schema(as_views(plain.schema())),
    )?;
    let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, viewed);
    let in_file: Vec<usize> = schema
        .fields()
        .iter()
        .filter(|f| !partition_by.contains(f.name()))
        .filter_map(|f| builder.schema().index_of(f.name()).ok())
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), in_file);
    let stream = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()?;
    let raw: Vec<RecordBatch> = stream.try_collect().await?;
    let mut out = Vec::with_capacity(raw.len());
    for b in raw {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let column = if partition_by.contains(field.name()) {
                let value = file.partition_values.get(field.name()).cloned().flatten();
                partition_column(field, value.as_deref(), b.num_rows())?
            } else if let Some(c) = b.column_by_name(field.name()) {
                if c.data_type() == field.data_type() {
                    c.clone()
                } else {
                    arrow::compute::cast(c, field.data_type())?
                }
            } else {
                // A nullable column added after this file was written.
                new_null_array(field.data_type(), b.num_rows())
            };
            columns.push(column);
        }
        out.push(RecordBatch::try_new(schema.clone(), columns)?);
    }
    Ok(out)
}

/// The values of `column` in `file` that are among `keys`, reading only
/// the row groups whose bloom filter (if any) may hold one of them.
async fn lookup_file(
    store: Arc<dyn object_store::ObjectStore>,
    file: &DataFile,
    column: &str,
    keys: &HashSet<&str>,
    hashes: &[u64],
) -> Result<Vec<String>, TableError> {
    let mut builder = open_parquet(store, file).await?;
    let Some(leaf) = builder
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.path().string() == column)
    else {
        // A nullable column added after this file was written: no keys.
        return Ok(Vec::new());
    };
    let mut groups = Vec::new();
    for rg in 0..builder.metadata().num_row_groups() {
        let filter = builder.get_row_group_column_bloom_filter(rg, leaf).await?;
        match filter.as_ref().and_then(Filter::from_sbbf) {
            Some(f) if !hashes.iter().any(|h| f.may_hold(*h)) => {}
            _ => groups.push(rg),
        }
    }
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let mask = ProjectionMask::leaves(builder.parquet_schema(), [leaf]);
    let stream = builder
        .with_projection(mask)
        .with_row_groups(groups)
        .with_batch_size(64 * 1024)
        .build()?;
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    let mut found = Vec::new();
    for b in batches {
        let values = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let values = values
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .ok_or_else(|| TableError::Schema(format!("{column} is not a string column")))?;
        found.extend(
            values
                .iter()
                .flatten()
                .filter(|v| keys.contains(v))
                .map(str::to_string),
        );
    }
    Ok(found)
}

/// `df` (rows of `files`) with each partition column that holds one value
/// in all of `files` as a scalar column: polars then groups, joins and
/// filters on it as the constant it is (an incremental aggregate
/// re-reading one day grouped by (driver, day) encoded the day into
/// every row's key).
fn constant_partitions(
    mut df: DataFrame,
    files: &[DataFile],
    partition_by: &[String],
) -> Result<DataFrame, BridgeError> {
    if df.height() == 0 {
        return Ok(df);
    }
    for p in partition_by {
        let Ok(column) = df.column(p) else {
            continue;
        };
        let first = files.first().and_then(|f| f.partition_values.get(p));
        if !files.iter().all(|f| f.partition_values.get(p) == first) {
            continue;
        }
        let value = column.get(0)?.into_static();
        let scalar = Scalar::new(column.dtype().clone(), value);
        let constant = Column::new_scalar(p.as_str().into(), scalar, df.height());
        df.with_column(constant)?;
    }
    Ok(df)
}

/// A constant column from a partition value as the log stores it (text).
fn partition_column(
    field: &Field,
    value: Option<&str>,
    rows: usize,
) -> Result<ArrayRef, TableError> {
    // The value is parsed once and then repeated: casting `rows` copies
    // of the text parsed a date per row (a tenth of re-reading a day).
    let text: ArrayRef = Arc::new(arrow::array::StringArray::from(vec![value]));
    let one = match field.data_type() {
        DataType::Utf8 => text,
        other => arrow::compute::cast(&text, other)?,
    };
    let zeros = arrow::array::UInt32Array::from(vec![0u32; rows]);
    Ok(arrow::compute::take(&one, &zeros, None)?)
}

/// The arrow schema of a model's declared columns.
pub fn arrow_schema(columns: &[crate::spec::Column]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, arrow_type(c.ty), c.nullable))
            .collect::<Vec<_>>(),
    ))
}

pub fn arrow_type(ty: crate::spec::ColumnType) -> DataType {
    use crate::spec::ColumnType as T;
    match ty {
        T::String => DataType::Utf8,
        T::Binary => DataType::Binary,
        T::Int => DataType::Int32,
        T::BigInt => DataType::Int64,
        T::Double => DataType::Float64,
        T::Decimal { precision, scale } => DataType::Decimal128(precision, scale as i8),
        T::Bool => DataType::Boolean,
        T::Timestamp => {
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into()))
        }
        T::Date => DataType::Date32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::{DataType as PlType, df};

    fn file(day: Option<&str>) -> DataFile {
        DataFile {
            path: format!("event_date={}/part.parquet", day.unwrap_or("null")),
            partition_values: BTreeMap::from([("event_date".to_string(), day.map(String::from))]),
            size: 1,
            stats: None,
        }
    }

    #[test]
    fn a_partition_column_with_one_value_in_every_file_becomes_a_constant() {
        let rows = df!("id" => ["a", "b", "c"], "event_date" => ["2026-11-21"; 3])
            .unwrap()
            .lazy()
            .with_column(col("event_date").cast(PlType::Date))
            .collect()
            .unwrap();
        let day = Some("2026-11-21");
        let out = constant_partitions(
            rows.clone(),
            &[file(day), file(day)],
            &["event_date".into()],
        )
        .unwrap();
        let c = out.column("event_date").unwrap();
        assert!(matches!(c, Column::Scalar(_)), "not a constant: {c:?}");
        assert_eq!(c.dtype(), &PlType::Date);
        assert!(out.equals(&rows), "values changed: {out:?}");
    }

    #[test]
    fn a_partition_column_over_several_values_stays_as_read() {
        let rows = df!("id" => ["a", "b"], "event_date" => ["2026-11-21", "2026-11-22"]).unwrap();
        let files = [file(Some("2026-11-21")), file(Some("2026-11-22"))];
        let out = constant_partitions(rows.clone(), &files, &["event_date".into()]).unwrap();
        assert!(!matches!(
            out.column("event_date").unwrap(),
            Column::Scalar(_)
        ));
        assert!(out.equals(&rows));
        // One file with a null partition and one without: not one value.
        let files = [file(None), file(Some("2026-11-21"))];
        let out = constant_partitions(rows.clone(), &files, &["event_date".into()]).unwrap();
        assert!(!matches!(
            out.column("event_date").unwrap(),
            Column::Scalar(_)
        ));
    }
}
