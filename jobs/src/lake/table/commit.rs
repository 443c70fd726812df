//! Writing a table's data files and committing them, with the removed
//! files and the input versions consumed, as one atomic Delta commit;
//! a commit whose answer was lost is found again, and every
//! [`CHECKPOINT_EVERY`] commits the log is checkpointed.

use super::data_file::DataFile;
use super::error::TableError;
use super::open::ModelTable;
use crate::lake::bridge::df_to_batch;
use crate::lake::state::{REBUILD_EVERY, rebuild};
use crate::stall::{STALL_COMMIT, stall_if_asked};
use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use deltalake::DeltaTable;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, Remove, Transaction};
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::parquet::schema::types::ColumnPath;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use polars::prelude::{DataFrame, IdxCa, IdxSize};
use std::collections::BTreeMap;

/// False-positive rate of the bloom filters on key columns. A lookup's
/// wasted row-group reads are about keys x row groups x this: 100k keys
/// against 100 row groups read ~10 for nothing. Filters are folded to this
/// rate after writing, about 4-5 bytes per distinct key.
const BLOOM_FPP: f64 = 1e-6;

/// A model table writes a Delta checkpoint every this many commits. Few:
/// every open and update of a table (each run's tasks, tests and load)
/// pays for each commit since the last checkpoint: with 100, a load's
/// opening of six gold tables grew from 0.02 to 0.8 s between two
/// checkpoints of a continuous run, while a checkpoint of a compacted
/// model table costs tens of milliseconds.
pub const CHECKPOINT_EVERY: i64 = 10;

/// A table's expired log entries are looked for every this many commits
/// (at a checkpoint): the cleanup lists the whole `_delta_log`, 30 days of
/// commits (2.6 million at one a second), a cost that has no place on every
/// checkpoint.
pub const CLEANUP_EVERY: i64 = 1000;

// The cleanup and the writer's state rebuild happen at a checkpoint.
const _: () = assert!(CLEANUP_EVERY % CHECKPOINT_EVERY == 0);
const _: () = assert!(REBUILD_EVERY % CHECKPOINT_EVERY == 0);

/// A model table's small files are compacted every this many commits (a
/// model in continuous mode commits every few seconds), once there are
/// [`COMPACT_MIN_FILES`] of them.
pub const COMPACT_EVERY: i64 = 20;
const COMPACT_MIN_FILES: usize = 10;

/// Rows per data file at most. Rows arrive roughly in time order, so a
/// file covers a narrow time range: an as-of join reading the newest rows
/// of a 10M-row fact reads one or two files, not a half of it. Small
/// enough for that, big enough that a file's footer and bloom filter stay
/// a small part of it.
pub(super) const FILE_ROWS: usize = 128 * 1024;

/// Outputs from this many rows up are written by several writers at once.
const PARALLEL_WRITE_ROWS: usize = 200_000;

/// Rows of a column looked at to choose its encoding.
const ENCODING_SAMPLE: usize = 2048;

/// A column whose sample snappy shrinks by this share or less is written
/// uncompressed: random ids and measurements (a UUID's text, coordinates)
/// shrink by 0-10%, and compressing them cost more time on write and on
/// every read (decompression was a tenth of a full run) than the bytes
/// saved. Text and repetitive columns shrink far more and keep snappy.
const WORTH_COMPRESSING: f64 = 0.15;

/// How `part`'s columns are encoded, from a sample of rows spread over it.
#[derive(Debug, Default)]
struct Encodings {
    /// Nearly all distinct (more than half the sample): a dictionary of
    /// such a column is about as large as its data and costs a hash per
    /// value (for 8-byte numbers it never even overflows to plain within
    /// one file), so they are written plain. Columns with few values
    /// (flags, codes, ids of a small dimension) keep their dictionary.
    plain: Vec<String>,
    /// Of those, the ones snappy barely shrinks ([`WORTH_COMPRESSING`]).
    uncompressed: Vec<String>,
}

fn encodings(part: &DataFrame, schema: &SchemaRef) -> Encodings {
    let mut out = Encodings::default();
    let rows = part.height();
    if rows < 64 {
        return out;
    }
    let step = rows.div_ceil(ENCODING_SAMPLE);
    let at: Vec<IdxSize> = (0..rows).step_by(step).map(|i| i as IdxSize).collect();
    let Ok(sample) = part.take(&IdxCa::from_vec("".into(), at)) else {
        return out;
    };
    // Compressibility is judged on the values as the file will hold them
    // (cast to the table's types: an f64 computed for an integer column,
    // an i32 for an i64 one), not as the model computed them. Types
    // `plain_bytes` does not know (decimals, booleans, small ints) keep
    // compression.
    let cast = df_to_batch(&sample, schema).ok();
    for c in sample.columns() {
        if !c.n_unique().is_ok_and(|n| n * 2 > sample.height()) {
            continue;
        }
        let name = c.name().to_string();
        let stored = cast.as_ref().and_then(|b| b.column_by_name(&name));
        if stored
            .and_then(plain_bytes)
            .is_some_and(|raw| !shrinks(&raw))
        {
            out.uncompressed.push(name.clone());
        }
        out.plain.push(name);
    }
    out
}

/// About the bytes a plain page holds for `array`: each string's bytes
/// after its 4-byte length, or fixed-width numbers' and temporals'
/// little-endian values; `None` for other types (they keep compression).
fn plain_bytes(array: &ArrayRef) -> Option<Vec<u8>> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::DataType as A;
    let mut raw = Vec::new();
    let mut push = |v: &[u8]| {
        raw.extend_from_slice(&(v.len() as u32).to_le_bytes());
        raw.extend_from_slice(v);
    };
    match array.data_type() {
        // Any string layout, as one: a cast of the sample's few rows.
        A::Utf8 | A::LargeUtf8 | A::Utf8View => arrow::compute::cast(array, &A::Utf8)
            .ok()?
            .as_string::<i32>()
            .iter()
            .flatten()
            .for_each(|v| push(v.as_bytes())),
        A::Int32 | A::Int64 | A::Float32 | A::Float64 | A::Date32 | A::Timestamp(..) => {
            let data = array.to_data();
            let width = data.data_type().primitive_width()?;
            let bytes = data.buffers().first()?.as_slice();
            let from = data.offset() * width;
            raw.extend_from_slice(bytes.get(from..from + data.len() * width)?);
        }
        _ => return None,
    }
    Some(raw)
}

/// Whether snappy shrinks `raw` by more than [`WORTH_COMPRESSING`].
fn shrinks(raw: &[u8]) -> bool {
    if raw.is_empty() {
        return true;
    }
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .is_ok_and(|c| (c.len() as f64) < raw.len() as f64 * (1.0 - WORTH_COMPRESSING))
}

fn chunks(batch: &RecordBatch, rows: usize) -> Vec<RecordBatch> {
    (0..batch.num_rows())
        .step_by(rows.max(1))
        .map(|at| batch.slice(at, rows.min(batch.num_rows() - at)))
        .collect()
}

impl ModelTable {
    /// Writes `df` (any column order; cast to the table's types) as new
    /// data files, partitioned as the table is. Nothing is committed.
    pub async fn write_files(&self, df: &DataFrame) -> Result<Vec<Add>, TableError> {
        if df.height() == 0 {
            return Ok(Vec::new());
        }
        // Parquet encoding is single-threaded per writer and most of a big
        // write: large outputs are split over one writer per core (one file
        // each per partition). Each writer also converts its own share to
        // Arrow (the conversion copies strings out of polars' views).
        let ways = if df.height() < PARALLEL_WRITE_ROWS {
            1
        } else {
            crate::cores::count()
        };
        let per = df.height().div_ceil(ways);
        let mut tasks = tokio::task::JoinSet::new();
        for at in (0..df.height()).step_by(per) {
            let part = df.slice(at as i64, per);
            let schema = self.schema.clone();
            let mut props = WriterProperties::builder().set_compression(Compression::SNAPPY);
            // A file holds at most this many keys. Sized for them, the
            // filter starts small; the default (a million) allocated and
            // zeroed 8 MB per file at this rate before folding it down.
            let ndv = part.height().min(FILE_ROWS) as u64;
            let chosen = encodings(&part, &schema);
            for c in chosen.plain {
                props = props.set_column_dictionary_enabled(ColumnPath::new(vec![c]), false);
            }
            for c in chosen.uncompressed {
                props = props
                    .set_column_compression(ColumnPath::new(vec![c]), Compression::UNCOMPRESSED);
            }
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
            let writer = match &self.replacing {
                // The new columns and partitioning, not the table's.
                Some(r) => RecordBatchWriter::try_new(
                    &r.url,
                    self.schema.clone(),
                    Some(self.partition_by.clone()),
                    Some(r.storage_options.clone()),
                )?,
                None => RecordBatchWriter::for_table(&self.table)?,
            };
            let mut writer = writer.with_writer_properties(props.build());
            tasks.spawn(async move {
                let batch = df_to_batch(&part, &schema)?;
                // The writer splits by partition; a file ends every
                // FILE_ROWS rows so that readers pruning by statistics
                // (as-of scopes, time scopes) skip most of a big table.
                let mut adds = Vec::new();
                for slice in chunks(&batch, FILE_ROWS) {
                    writer.write(slice).await?;
                    adds.extend(writer.flush().await?);
                }
                Ok::<_, TableError>(adds)
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
        self.commit_actions(adds, removes, txns, overwrite, true)
            .await
    }

    /// [`ModelTable::commit`]; `data_change: false` marks the removes as a
    /// rewrite of the same rows (compaction), which change readers skip.
    pub(super) async fn commit_actions(
        &mut self,
        adds: Vec<Add>,
        removes: &[DataFile],
        txns: &BTreeMap<String, i64>,
        overwrite: bool,
        data_change: bool,
    ) -> Result<i64, TableError> {
        stall_if_asked(STALL_COMMIT, &self.name, "commit").await;
        if self.cancel.is_cancelled() {
            return Err(TableError::Cancelled(self.name.clone()));
        }
        let now = chrono::Utc::now().timestamp_millis();
        let added: Vec<String> = adds.iter().map(|a| a.path.clone()).collect();
        let actions = self.actions(adds, removes, overwrite, data_change, now)?;
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
        self.replacing = None;
        // A scheduled model commits every few seconds: without checkpoints
        // every open would replay its whole JSON log. A failed checkpoint
        // costs only speed.
        if version > 0 && version % CHECKPOINT_EVERY == 0 {
            upkeep(
                &mut self.table,
                &self.name,
                version,
                version % CLEANUP_EVERY == 0,
            )
            .await;
        }
        // ... and gains a file per commit, which every later commit and
        // open of the table pays for (deltalake passes over the whole file
        // list): its small files are compacted now and then. Not this
        // commit's own: a reader of what changed since the last version
        // (the next load, the next run's tests) then finds its rows in its
        // files, not moved into a big rewrite it would read whole. A
        // failure costs only speed.
        if data_change && version > 0 && version % COMPACT_EVERY == 0 && !self.cancel.is_cancelled()
        {
            match Box::pin(self.compact_small_files_but(COMPACT_MIN_FILES, &added)).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(table = %self.name, version, "{n} small files compacted"),
                Err(e) => tracing::debug!(table = %self.name, version, "compaction skipped: {e}"),
            }
        }
        Ok(version)
    }

    /// A commit's actions: the new metadata of a rebuild with changed
    /// columns, `adds`, and the removal of `removes` at `now`.
    fn actions(
        &self,
        adds: Vec<Add>,
        removes: &[DataFile],
        overwrite: bool,
        data_change: bool,
        now: i64,
    ) -> Result<Vec<Action>, TableError> {
        let mut actions: Vec<Action> = Vec::with_capacity(adds.len() + removes.len() + 1);
        if let Some(r) = &self.replacing {
            // New columns come only with rows written for them, all of
            // them: the old files do not have them.
            if !overwrite {
                return Err(TableError::Schema(format!(
                    "{}: its declared columns changed, and only a rebuild of every row commits them",
                    self.name
                )));
            }
            actions.push(Action::Metadata(r.metadata.clone()));
        }
        actions.extend(adds.into_iter().map(Action::Add));
        actions.extend(removes.iter().map(|f| {
            Action::Remove(Remove {
                path: f.path.clone(),
                data_change,
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
        Ok(actions)
    }
}

/// A checkpoint at `version`, then what follows one (see
/// [`after_checkpoint`]): every [`REBUILD_EVERY`] versions the writer's
/// state rebuilt, with `cleanup` the expired log entries deleted. A failed
/// checkpoint costs only speed: it is logged.
async fn upkeep(table: &mut DeltaTable, name: &str, version: i64, cleanup: bool) {
    if let Err(e) = deltalake::checkpoints::create_checkpoint(table, None).await {
        tracing::warn!(table = %name, version, "checkpoint failed: {e}");
        return;
    }
    after_checkpoint(table, name, version, version % REBUILD_EVERY == 0, cleanup).await;
}

/// What a writer does after its checkpoint at `version`, model and bronze
/// tables alike: with `rebuild`, its state is rebuilt from that checkpoint
/// (`lake::state`: a long-lived writer's commits would otherwise get slower
/// for as long as it runs); with `cleanup`, the log entries older than the
/// table's log retention (and older than a checkpoint) are deleted (the
/// cleanup lists the whole log). Failures cost only speed or disk: they
/// are logged.
pub async fn after_checkpoint(
    table: &mut DeltaTable,
    name: &str,
    version: i64,
    rebuild_state: bool,
    cleanup: bool,
) {
    if rebuild_state && let Err(e) = rebuild(table).await {
        tracing::debug!(table = %name, version, "state not rebuilt: {e}");
    }
    if !cleanup {
        return;
    }
    match deltalake::checkpoints::cleanup_metadata(table, None).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(table = %name, version, "{n} expired log entries removed"),
        Err(e) => tracing::warn!(table = %name, version, "log cleanup failed: {e}"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    /// Distinct pseudo-random values (a splitmix sequence): what ids and
    /// measurements look like to a compressor.
    fn scrambled(n: u64) -> Vec<u64> {
        (1..=n)
            .map(|i| {
                let mut z = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z ^ (z >> 31)
            })
            .collect()
    }

    #[test]
    fn random_distinct_columns_are_written_uncompressed_and_repetitive_ones_compressed() {
        let n = 10_000;
        let r = scrambled(n);
        let df = df!(
            "id" => r.iter().map(|x| format!("{x:016x}")).collect::<Vec<_>>(),
            "lat" => r.iter().map(|x| *x as f64 / u64::MAX as f64 * 90.0).collect::<Vec<_>>(),
            "seq" => (0..n as i64).collect::<Vec<_>>(),
            "note" => (0..n).map(|i| format!("reading {i} of sensor north-east")).collect::<Vec<_>>(),
            "flag" => (0..n).map(|i| i % 3 == 0).collect::<Vec<_>>(),
            "noise" => r.iter().map(|x| *x as i64).collect::<Vec<_>>(),
        )
        .expect("frame");
        let e = encodings(&df, &schema_of(&df));
        assert_eq!(e.plain, ["id", "lat", "seq", "note", "noise"], "{e:?}");
        // A counter and a templated text shrink; hex ids and coordinates do not.
        assert_eq!(e.uncompressed, ["id", "lat", "noise"], "{e:?}");
    }

    /// Each column stored as its own type.
    fn schema_of(df: &DataFrame) -> super::SchemaRef {
        use arrow::datatypes::{DataType as A, Field, Schema};
        let fields: Vec<Field> = df
            .columns()
            .iter()
            .map(|c| {
                let t = match c.dtype() {
                    DataType::String => A::Utf8,
                    DataType::Float64 => A::Float64,
                    DataType::Int64 => A::Int64,
                    DataType::Boolean => A::Boolean,
                    other => panic!("no arrow type for {other}"),
                };
                Field::new(c.name().as_str(), t, true)
            })
            .collect();
        std::sync::Arc::new(Schema::new(fields))
    }

    #[test]
    fn compressibility_is_judged_on_the_stored_type() {
        // Amounts computed as f64, stored as small integers (high bytes
        // zero): judged as stored, they compress.
        let n = 10_000;
        let cents: Vec<f64> = scrambled(n)
            .iter()
            .map(|x| (x % 1_000_000) as f64 / 100.0)
            .collect();
        let df = df!("amount" => cents).expect("frame");
        let decimal = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("amount", arrow::datatypes::DataType::Int64, true),
        ]));
        let as_int = encodings(&df, &decimal);
        assert_eq!(as_int.plain, ["amount"], "{as_int:?}");
        assert!(as_int.uncompressed.is_empty(), "{as_int:?}");
    }

    #[test]
    fn a_small_part_keeps_the_defaults() {
        let df = df!("id" => (0..10).map(|i| format!("{i}")).collect::<Vec<_>>()).expect("frame");
        let e = encodings(&df, &schema_of(&df));
        assert!(e.plain.is_empty() && e.uncompressed.is_empty(), "{e:?}");
    }
}
