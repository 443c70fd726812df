//! What an ingester did: live counters while it runs (progress lines, lag
//! in the UI) and the report once it has finished.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};

/// Live counters of one ingester, for progress lines and reports.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub consumed: AtomicU64,
    pub committed_rows: AtomicU64,
    /// Key and value bytes committed.
    pub committed_bytes: AtomicU64,
    pub commits: AtomicU64,
    /// Messages read again below a partition's recorded offset and skipped.
    pub skipped: AtomicU64,
    /// Batches dropped because another writer had committed their partitions.
    pub fenced: AtomicU64,
    /// Per partition: (next offset to ingest, high watermark last seen).
    pub positions: Mutex<BTreeMap<i32, (i64, i64)>>,
}

impl IngestStats {
    /// Messages behind the high watermark, per partition this ingester holds.
    pub fn lags(&self) -> Vec<(i32, i64)> {
        lock(&self.positions)
            .iter()
            .map(|(p, (next, high))| (*p, (high - next.max(&0)).max(0)))
            .collect()
    }
}

/// What a finished ingester did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IngestReport {
    pub source: String,
    pub table: String,
    pub rows: u64,
    pub bytes: u64,
    pub commits: u64,
    pub skipped: u64,
    pub fenced: u64,
    pub version: i64,
    /// File sources: true, the files taken, and how many of them could
    /// not be read.
    pub file_source: bool,
    pub files: u64,
    pub unreadable: u64,
    /// Seconds from the first message taken to the end (excludes joining
    /// the group and waiting for messages to arrive).
    pub active_seconds: f64,
    /// `--until-caught-up` found the table at the high watermarks already
    /// and took nothing (without joining the consumer group).
    pub caught_up_at_start: bool,
}

/// The data behind `m`, even if a thread panicked while holding it.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the data as consistent as any
    // other stop: the table is the truth, so carry on.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
