//! Bronze from files: the records of files arriving under a folder or an
//! object-store prefix (`kind: file_source`), each file taken exactly once.
//!
//! A file's records land in the bronze schema as a Kafka message would:
//! `topic` is the file's path under the source's root, `partition` the
//! file's sequence number in the table (the order files were taken in),
//! `offset` where the record sits (its first line for CSV and JSON lines,
//! its row number for Parquet), `key` the CSV header line (CSV only), `value`
//! the record's raw bytes (a Parquet row as a JSON object), `kafka_timestamp`
//! the file's last-modified time.
//!
//! Exactly once: a file's rows and the source's new file count (txn
//! `dag.files`) are one Delta commit, so the table says which files it
//! holds (the distinct `topic`s). Two writers that commit from the same
//! snapshot conflict on the txn and one of them plans again; a commit whose
//! answer was lost is settled by reading the table back. Files are taken
//! in arrival order (last-modified time, then path); a file is taken once,
//! so a file rewritten in place is not read again: land new data as new
//! files.
//!
//! A file in a local folder is taken once it has not changed for
//! `ingest.file_settle`
//! (`cp` and SFTP write in place: never half a file); a file that cannot be
//! read as its format (a broken Parquet file) lands
//! as one row at offset -1 whose value is the reason: its cleaning model
//! quarantines it (`unreadable_file`) and nothing else is held up. A file
//! with no records yet (empty, or a header only) is passed over until it
//! has some. Names starting with `.` or `_` (temporary files, `_SUCCESS`)
//! and files whose extension is not the format's are ignored.

use super::batch::{BatchBuilder, RawMessage};
use super::clock::Clock;
use super::ingest::{IngestError, IngestReport, IngestStats};
use super::table::BronzeTable;
use crate::lake::TableLocation;
use crate::spec::FileFormat;
use futures::StreamExt;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, path::Path as StorePath};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use url::Url;

/// One file source to ingest.
#[derive(Clone, Debug)]
pub struct FileSourceSpec {
    pub name: String,
    /// The folder or prefix files arrive under (`file:///...`, `s3://...`).
    pub root: Url,
    /// Options of the store `root` is on (the lake's S3 options).
    pub root_options: HashMap<String, String>,
    pub format: FileFormat,
    /// The bronze table.
    pub location: TableLocation,
}

/// How a file source is polled and committed.
#[derive(Clone, Debug)]
pub struct FileIngestSettings {
    /// A commit takes files until they hold this many bytes (at least one).
    pub batch_bytes: u64,
    /// Wait between two listings of the source when nothing was new.
    pub poll: Duration,
    pub clock: Clock,
    /// How long an unreachable store is retried before giving up.
    pub retry_timeout: Duration,
    /// A file in a local folder modified this recently may still be being
    /// written (`cp`, SFTP and many exporters write in place): it is taken
    /// once it has been left alone this long, never half-written.
    pub settle: Duration,
    /// One pass over what is there, then stop.
    pub until_caught_up: bool,
}

impl Default for FileIngestSettings {
    fn default() -> Self {
        Self {
            batch_bytes: 64 << 20,
            poll: Duration::from_secs(5),
            clock: Clock::System,
            retry_timeout: Duration::from_secs(300),
            settle: Duration::from_secs(2),
            until_caught_up: false,
        }
    }
}

/// A file of the source, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Arrived {
    /// Path under the source's root (`topic` in bronze).
    name: String,
    location: StorePath,
    modified_micros: i64,
    size: u64,
}

/// The records of one file, or why it cannot be read.
enum Records {
    Rows(Vec<Record>),
    Unreadable(String),
}

struct Record {
    offset: i64,
    /// The CSV header line, shared by the rows of a file.
    key: Option<std::sync::Arc<[u8]>>,
    value: Vec<u8>,
}

/// A file taken into the batch being committed.
struct Chosen {
    name: String,
    unreadable: bool,
}

/// Ingests the source until `stop` is set (or, with `until_caught_up`,
/// until a listing finds nothing new), retrying an unreachable store for
/// `retry_timeout`.
pub async fn run(
    spec: FileSourceSpec,
    settings: FileIngestSettings,
    stop: Arc<AtomicBool>,
    stats: Arc<IngestStats>,
) -> Result<IngestReport, IngestError> {
    let table_err = |message: String| IngestError::Table {
        source_name: spec.name.clone(),
        table: spec.location.url.to_string(),
        message,
    };
    let (store, prefix) = object_store::parse_url_opts(&spec.root, &spec.root_options)
        .map_err(|e| table_err(format!("cannot reach the source folder {}: {e}", spec.root)))?;
    let store: Arc<dyn ObjectStore> = Arc::from(store);
    let mut source = Source {
        spec: &spec,
        store,
        prefix,
        table: None,
        taken: HashSet::new(),
        files: None,
        commits: 0,
    };
    let started = Instant::now();
    let mut report = IngestReport {
        source: spec.name.clone(),
        table: spec.location.url.to_string(),
        version: -1,
        file_source: true,
        ..IngestReport::default()
    };
    let mut failing_since: Option<Instant> = None;
    let mut backoff = Duration::from_millis(200);
    loop {
        match source.pass(&settings, &stats, &mut report).await {
            Ok(pass) => {
                failing_since = None;
                backoff = Duration::from_millis(200);
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                match pass {
                    Pass::Committed => continue,
                    // A run-once ingest waits for files still settling.
                    Pass::Settling if settings.until_caught_up => {
                        sleep_unless_stopped(Duration::from_millis(200), &stop).await;
                        continue;
                    }
                    _ if settings.until_caught_up => break,
                    _ => {}
                }
                sleep_unless_stopped(settings.poll, &stop).await;
                if stop.load(Ordering::SeqCst) {
                    break;
                }
            }
            Err(e) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= settings.retry_timeout {
                    return Err(table_err(format!(
                        "gave up after {:.0} s of failures: {e}",
                        since.elapsed().as_secs_f64()
                    )));
                }
                tracing::warn!(source = %spec.name, error = %e, retry_in = ?backoff, "file source: retrying");
                // What the table holds is read again before the next plan:
                // the failed commit may have landed.
                source.table = None;
                sleep_unless_stopped(backoff, &stop).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                if stop.load(Ordering::SeqCst) {
                    return Err(table_err(format!("stopped while failing: {e}")));
                }
            }
        }
    }
    report.active_seconds = started.elapsed().as_secs_f64();
    if let Some(t) = &source.table {
        report.version = t.version();
    }
    Ok(report)
}

async fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let until = Instant::now() + total;
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(100).min(until - Instant::now())).await;
    }
}

/// What one pass did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    /// Files were committed (there may be more).
    Committed,
    /// Nothing new.
    Nothing,
    /// Only files still being written (changed within `SETTLE`).
    Settling,
}

/// A file's records go into record batches of about this many bytes (an
/// Arrow string column holds at most 2 GiB); one commit still takes the
/// whole file.
const CHUNK_BYTES: usize = 256 << 20;

/// A checkpoint every this many commits of a file source's table.
const CHECKPOINT_EVERY: u64 = 100;

/// The state of one source's ingester between passes.
struct Source<'s> {
    spec: &'s FileSourceSpec,
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    /// The bronze table (`None`: open it, and read what it holds, again).
    table: Option<BronzeTable>,
    /// Paths the table holds.
    taken: HashSet<String>,
    /// The file count the table records.
    files: Option<i64>,
    /// Commits since the last checkpoint.
    commits: u64,
}

impl Source<'_> {
    /// One listing and, if files are new, one commit of the oldest of them.
    /// `Ok(true)`: something was committed (there may be more).
    async fn pass(
        &mut self,
        settings: &FileIngestSettings,
        stats: &IngestStats,
        report: &mut IngestReport,
    ) -> Result<Pass, String> {
        if self.table.is_none() {
            self.open().await?;
        }
        let mut new = self.list().await?;
        new.retain(|f| !self.taken.contains(&f.name));
        new.sort_by(|a, b| (a.modified_micros, &a.name).cmp(&(b.modified_micros, &b.name)));
        // Arrival order: a file still settling holds back the ones after it.
        // Object stores show an object only once its upload is whole; a
        // folder shows files while they are written.
        let settle = if self.spec.root.scheme() == "file" {
            settings.settle
        } else {
            Duration::ZERO
        };
        let settled_before = chrono::Utc::now().timestamp_micros() - settle.as_micros() as i64;
        let settling = new
            .iter()
            .position(|f| f.modified_micros > settled_before)
            .unwrap_or(new.len());
        let young = settling < new.len();
        new.truncate(settling);
        if new.is_empty() {
            return Ok(if young { Pass::Settling } else { Pass::Nothing });
        }
        let mut builder = BatchBuilder::new("");
        let mut batches = Vec::new();
        let mut payload = 0u64;
        let now = settings.clock.now_micros();
        let (mut bytes, mut chosen) = (0u64, Vec::new());
        let mut sequence = self.files.unwrap_or(0);
        for file in new {
            if !chosen.is_empty() && bytes + file.size > settings.batch_bytes {
                break;
            }
            let data = self
                .store
                .get(&file.location)
                .await
                .map_err(|e| format!("reading {}: {e}", file.name))?
                .bytes()
                .await
                .map_err(|e| format!("reading {}: {e}", file.name))?;
            let records = match records(self.spec.format, &data) {
                Records::Rows(rows) if rows.is_empty() => {
                    tracing::debug!(source = %self.spec.name, file = %file.name, "no records yet: passed over");
                    continue;
                }
                other => other,
            };
            bytes += file.size;
            builder.set_topic(&file.name);
            let partition = i32::try_from(sequence).unwrap_or(i32::MAX);
            let timestamp_ms = Some(file.modified_micros / 1000);
            match &records {
                Records::Rows(rows) => {
                    for r in rows {
                        let m = RawMessage {
                            partition,
                            offset: r.offset,
                            key: r.key.as_deref(),
                            value: Some(&r.value),
                            timestamp_ms,
                        };
                        builder.push(&m, now);
                        if builder.bytes() >= CHUNK_BYTES {
                            payload += builder.payload_bytes() as u64;
                            batches.push(builder.finish().0);
                        }
                    }
                }
                Records::Unreadable(reason) => {
                    tracing::warn!(source = %self.spec.name, file = %file.name, %reason, "file source: unreadable file quarantined");
                    let m = RawMessage {
                        partition,
                        offset: -1,
                        key: None,
                        value: Some(reason.as_bytes()),
                        timestamp_ms,
                    };
                    builder.push(&m, now);
                }
            }
            sequence += 1;
            chosen.push(Chosen {
                unreadable: matches!(records, Records::Unreadable(_)),
                name: file.name,
            });
        }
        if chosen.is_empty() {
            return Ok(Pass::Nothing);
        }
        if !builder.is_empty() {
            payload += builder.payload_bytes() as u64;
            batches.push(builder.finish().0);
        }
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        let unreadable = chosen.iter().filter(|f| f.unreadable).count() as u64;
        let table = self.table.as_mut().ok_or("bronze table not open")?;
        let version = table
            .commit_files(&batches, sequence)
            .await
            .map_err(|e| format!("committing {} file(s): {e}", chosen.len()))?;
        stats.consumed.fetch_add(rows, Ordering::Relaxed);
        report.unreadable += unreadable;
        self.commits += 1;
        if self.commits.is_multiple_of(CHECKPOINT_EVERY)
            && let Err(e) = table.checkpoint().await
        {
            tracing::warn!(source = %self.spec.name, error = %e, "checkpoint failed");
        }
        self.files = Some(sequence);
        self.taken.extend(chosen.iter().map(|f| f.name.clone()));
        stats.committed_rows.fetch_add(rows, Ordering::Relaxed);
        stats.committed_bytes.fetch_add(payload, Ordering::Relaxed);
        stats.commits.fetch_add(1, Ordering::Relaxed);
        report.rows += rows;
        report.bytes += payload;
        report.commits += 1;
        report.files += chosen.len() as u64;
        report.version = version;
        tracing::info!(source = %self.spec.name, files = chosen.len(), rows, version, "file source: committed");
        Ok(Pass::Committed)
    }

    /// Opens the bronze table and reads which files it holds.
    async fn open(&mut self) -> Result<(), String> {
        let spec = self.spec;
        let table = BronzeTable::open_or_create_with(
            &spec.name,
            spec.root.as_str(),
            spec.location.clone(),
            format!(
                "bronze: every record of the {} files under {}",
                spec.format.name(),
                spec.root
            ),
        )
        .await
        .map_err(|e| format!("opening {}: {e}", spec.location.url))?;
        self.files = table
            .files_recorded()
            .await
            .map_err(|e| format!("reading {}: {e}", spec.location.url))?;
        self.taken = taken_files(&spec.name, &spec.location)
            .await
            .map_err(|e| format!("reading {}: {e}", spec.location.url))?;
        self.table = Some(table);
        Ok(())
    }

    /// Every file of the source's format under its root. An entry that
    /// cannot be listed (a name that is not UTF-8, a folder not readable)
    /// is skipped with a warning: the rest of the source goes on.
    async fn list(&self) -> Result<Vec<Arrived>, String> {
        let mut stream = self.store.list(Some(&self.prefix));
        let mut listed: Vec<ObjectMeta> = Vec::new();
        let mut errors = 0;
        while let Some(item) = stream.next().await {
            match item {
                Ok(meta) => listed.push(meta),
                Err(e) => {
                    errors += 1;
                    if errors <= 3 {
                        tracing::warn!(source = %self.spec.name, error = %e, "file source: an entry cannot be listed; skipped");
                    }
                }
            }
        }
        // Nothing listed and only errors: the source itself is unreachable.
        if listed.is_empty() && errors > 0 {
            return Err(format!("listing {}: every entry failed", self.spec.root));
        }
        let prefix: Vec<String> = self
            .prefix
            .parts()
            .map(|p| p.as_ref().to_string())
            .collect();
        Ok(listed
            .into_iter()
            .filter_map(|meta| {
                let parts: Vec<String> = meta
                    .location
                    .parts()
                    .map(|p| p.as_ref().to_string())
                    .collect();
                let rel = parts.get(prefix.len()..)?;
                let hidden = rel.iter().any(|p| p.starts_with('.') || p.starts_with('_'));
                let name = rel.join("/");
                (!hidden && !name.is_empty() && has_extension(self.spec.format, &name)).then(|| {
                    Arrived {
                        name,
                        modified_micros: meta.last_modified.timestamp_micros(),
                        size: meta.size,
                        location: meta.location,
                    }
                })
            })
            .collect())
    }
}

/// Whether `name` is a file of `format` by its extension.
fn has_extension(format: FileFormat, name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let ext = lower.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match format {
        FileFormat::Csv => ext == "csv",
        FileFormat::Json => matches!(ext, "json" | "jsonl" | "ndjson"),
        FileFormat::Parquet => ext == "parquet",
    }
}

/// The paths of the files a file source's bronze table holds.
async fn taken_files(name: &str, location: &TableLocation) -> Result<HashSet<String>, String> {
    let schema = crate::model::table::arrow_schema(&crate::spec::bronze_columns());
    let Some(table) = crate::model::table::ModelTable::open(name, location, schema)
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

/// Splits a file's bytes into records of `format`.
fn records(format: FileFormat, data: &[u8]) -> Records {
    match format {
        FileFormat::Json => Records::Rows(json_lines(data)),
        FileFormat::Csv => csv_rows(data),
        FileFormat::Parquet => parquet_rows(data),
    }
}

/// Non-blank lines, each at its 1-based line number; a trailing `\r` is
/// not part of the record.
fn json_lines(data: &[u8]) -> Vec<Record> {
    data.split(|b| *b == b'\n')
        .enumerate()
        .filter_map(|(i, line)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            (!line.iter().all(u8::is_ascii_whitespace)).then(|| Record {
                offset: i as i64 + 1,
                key: None,
                value: line.to_vec(),
            })
        })
        .collect()
}

/// The rows after the header, each as the raw bytes of its record (quoted
/// line breaks included) at the line it starts on, with the header line as
/// its key. Blank lines are no records.
fn csv_rows(data: &[u8]) -> Records {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(data);
    let mut starts = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {
                if let Some(p) = record.position() {
                    // The reader's position can sit on the line break that
                    // ended the previous record: the record starts after.
                    let (mut at, mut line) = (p.byte() as usize, p.line() as i64);
                    while let Some(b) = data.get(at).filter(|b| matches!(b, b'\r' | b'\n')) {
                        if *b == b'\n' {
                            line += 1;
                        }
                        at += 1;
                    }
                    starts.push((at, line));
                }
            }
            Ok(false) => break,
            Err(e) => return Records::Unreadable(format!("not CSV: {e}")),
        }
    }
    let raw = |i: usize| -> &[u8] {
        let from = starts[i].0;
        let to = starts.get(i + 1).map_or(data.len(), |s| s.0);
        let mut slice = &data[from.min(data.len())..to.min(data.len())];
        while let Some(rest) = slice
            .strip_suffix(b"\n")
            .or_else(|| slice.strip_suffix(b"\r"))
        {
            slice = rest;
        }
        slice
    };
    let Some(_) = starts.first() else {
        return Records::Rows(Vec::new());
    };
    let header: std::sync::Arc<[u8]> = raw(0).into();
    Records::Rows(
        (1..starts.len())
            .map(|i| Record {
                offset: starts[i].1,
                key: Some(header.clone()),
                value: raw(i).to_vec(),
            })
            .collect(),
    )
}

/// Each row of a Parquet file as a JSON object, at its row number.
fn parquet_rows(data: &[u8]) -> Records {
    use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let bytes = bytes::Bytes::copy_from_slice(data);
    let reader = match ParquetRecordBatchReaderBuilder::try_new(bytes).and_then(|b| b.build()) {
        Ok(r) => r,
        Err(e) => return Records::Unreadable(format!("not a Parquet file: {e}")),
    };
    let mut rows = Vec::new();
    for batch in reader {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => return Records::Unreadable(format!("Parquet data: {e}")),
        };
        let mut out = Vec::new();
        // A timestamp without a time zone (pandas' default, Spark's
        // TIMESTAMP_NTZ) is written as UTC, so `timestamp` rules (RFC 3339,
        // offset required) can read it.
        let mut writer = arrow::json::WriterBuilder::new()
            .with_timestamp_format("%Y-%m-%dT%H:%M:%S%.fZ".to_string())
            .build::<_, arrow::json::writer::LineDelimited>(&mut out);
        if let Err(e) = writer.write(&batch).and_then(|_| writer.finish()) {
            return Records::Unreadable(format!("Parquet row as JSON: {e}"));
        }
        drop(writer);
        for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            rows.push(Record {
                offset: rows.len() as i64,
                key: None,
                value: line.to_vec(),
            });
        }
    }
    Records::Rows(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(r: Records) -> Vec<(i64, Option<String>, String)> {
        match r {
            Records::Rows(rows) => rows
                .into_iter()
                .map(|r| {
                    (
                        r.offset,
                        r.key.map(|k| String::from_utf8_lossy(&k).to_string()),
                        String::from_utf8_lossy(&r.value).to_string(),
                    )
                })
                .collect(),
            Records::Unreadable(why) => panic!("unreadable: {why}"),
        }
    }

    #[test]
    fn csv_rows_keep_their_raw_bytes_quoted_newlines_and_header() {
        let data = b"id,note\r\n1,plain\r\n2,\"two\nlines\"\n\n3,last";
        let got = rows(csv_rows(data));
        let h = Some("id,note".to_string());
        assert_eq!(
            got,
            vec![
                (2, h.clone(), "1,plain".to_string()),
                (3, h.clone(), "2,\"two\nlines\"".to_string()),
                (6, h, "3,last".to_string()),
            ]
        );
        // A header alone has no records yet.
        assert!(rows(csv_rows(b"id,note\n")).is_empty());
    }

    #[test]
    fn json_lines_skip_blank_lines_and_number_the_rest() {
        let got = rows(Records::Rows(json_lines(
            b"{\"a\":1}\r\n\n  \n{\"a\":2}\nnot json",
        )));
        let values: Vec<(i64, String)> = got.into_iter().map(|(o, _, v)| (o, v)).collect();
        assert_eq!(
            values,
            vec![
                (1, "{\"a\":1}".to_string()),
                (4, "{\"a\":2}".to_string()),
                (5, "not json".to_string())
            ]
        );
    }

    #[test]
    fn parquet_rows_are_json_objects_with_utc_timestamps() {
        use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
        let naive = TimestampMicrosecondArray::from(vec![1_704_067_200_000_000i64]);
        let utc =
            TimestampMicrosecondArray::from(vec![1_704_067_200_500_000i64]).with_timezone("UTC");
        let batch = RecordBatch::try_from_iter([
            (
                "id",
                std::sync::Arc::new(StringArray::from(vec!["a"])) as ArrayRef,
            ),
            ("at", std::sync::Arc::new(naive) as ArrayRef),
            ("at_utc", std::sync::Arc::new(utc) as ArrayRef),
        ])
        .expect("test value");
        let mut file = Vec::new();
        let mut w =
            deltalake::parquet::arrow::ArrowWriter::try_new(&mut file, batch.schema(), None)
                .expect("test value");
        w.write(&batch).expect("test value");
        w.close().expect("test value");
        let got = rows(parquet_rows(&file));
        assert_eq!(got.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&got[0].2).expect("test value");
        assert_eq!(v["id"], "a");
        for key in ["at", "at_utc"] {
            let text = v[key].as_str().expect("test value");
            assert!(
                crate::model::values::parse_rfc3339(text).is_some(),
                "{key}: {text} is not RFC 3339"
            );
        }
    }

    #[test]
    fn a_broken_parquet_file_is_unreadable_with_the_reason() {
        match parquet_rows(b"PAR1 this is not parquet") {
            Records::Unreadable(why) => assert!(why.contains("Parquet"), "{why}"),
            Records::Rows(_) => panic!("read garbage as Parquet"),
        }
    }

    #[test]
    fn extensions_pick_the_formats_files() {
        assert!(has_extension(FileFormat::Csv, "a/b/orders.CSV"));
        assert!(!has_extension(FileFormat::Csv, "orders.csv.tmp"));
        assert!(has_extension(FileFormat::Json, "x.ndjson"));
        assert!(!has_extension(FileFormat::Parquet, "x"));
    }
}
