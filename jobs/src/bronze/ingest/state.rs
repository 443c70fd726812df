//! The state of one ingester, shared with librdkafka's callbacks: the
//! partitions it holds and where each reads next, the pending batch, and
//! how a message is taken into it (or skipped because the table has it).

use super::error::IngestError;
use super::settings::{IngestSettings, SourceSpec};
use super::stats::{IngestStats, lock};
use crate::bronze::batch::{BatchBuilder, RawMessage, Span};
use crate::bronze::table::BronzeTable;
use arrow::array::RecordBatch;
use deltalake::DeltaTableError;
use deltalake::kernel::Add;
use rdkafka::error::KafkaError;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// The consumer context: the ingest state, reachable from rebalance
/// callbacks.
pub(super) struct Ctx {
    pub(super) rt: Handle,
    pub(super) state: Mutex<State>,
}

pub(super) struct State {
    pub(super) source: SourceSpec,
    pub(super) settings: IngestSettings,
    pub(super) table: BronzeTable,
    pub(super) pending: BatchBuilder,
    /// When the oldest pending message arrived.
    pub(super) pending_since: Option<Instant>,
    /// When the first message of this run was taken.
    pub(super) first_message: Option<Instant>,
    /// Assigned partitions: the next offset to take (-1: the first offset
    /// the broker gives, for a partition the table has never seen).
    pub(super) next: BTreeMap<i32, i64>,
    /// Partitions whose repositioning seek failed, with where they must
    /// start: their messages are dropped until a retried seek succeeds
    /// (taking them would skip what lies between).
    pub(super) unsought: BTreeMap<i32, i64>,
    /// High watermarks at start, for `--until-caught-up`: (low, high).
    pub(super) targets: BTreeMap<i32, (i64, i64)>,
    pub(super) assigned_once: bool,
    pub(super) commits_since_checkpoint: u64,
    pub(super) last_compaction: Instant,
    pub(super) stats: Arc<IngestStats>,
    pub(super) stop: Arc<AtomicBool>,
    /// An error raised inside a callback, surfaced by the main loop.
    pub(super) fatal: Option<IngestError>,
    /// The batch whose files are being written while reading goes on;
    /// committed by `settle` (at most one at a time).
    pub(super) in_flight: Option<InFlight>,
    /// Whether the pending batch was old enough to commit when the last
    /// poll began (one clock read per poll, not several per message).
    pub(super) interval_passed: bool,
}

/// A batch cut from the pending rows, its files being written on the
/// runtime; its offsets are in no commit yet.
pub(super) struct InFlight {
    pub(super) batch: RecordBatch,
    pub(super) spans: BTreeMap<i32, Span>,
    pub(super) payload: u64,
    pub(super) files: JoinHandle<Result<Vec<Add>, DeltaTableError>>,
}

impl State {
    /// A fresh state: nothing assigned, nothing pending.
    pub(super) fn new(
        source: &SourceSpec,
        settings: &IngestSettings,
        table: BronzeTable,
        stats: &Arc<IngestStats>,
        stop: &Arc<AtomicBool>,
    ) -> Self {
        State {
            pending: BatchBuilder::new(&source.topic),
            source: source.clone(),
            settings: settings.clone(),
            table,
            pending_since: None,
            first_message: None,
            next: BTreeMap::new(),
            unsought: BTreeMap::new(),
            targets: BTreeMap::new(),
            assigned_once: false,
            commits_since_checkpoint: 0,
            last_compaction: Instant::now(),
            stats: stats.clone(),
            stop: stop.clone(),
            fatal: None,
            in_flight: None,
            interval_passed: false,
        }
    }

    pub(super) fn kafka_error(&self, error: KafkaError) -> IngestError {
        IngestError::Kafka {
            source_name: self.source.name.clone(),
            error,
        }
    }

    pub(super) fn table_error(&self, message: String) -> IngestError {
        IngestError::Table {
            source_name: self.source.name.clone(),
            table: self.table.url().to_string(),
            message,
        }
    }

    /// Reads the recorded offsets of newly assigned partitions (retrying an
    /// unreachable store) and returns where each starts.
    pub(super) fn claim(
        &mut self,
        rt: &Handle,
        parts: &[i32],
    ) -> Result<BTreeMap<i32, i64>, IngestError> {
        let deadline = Instant::now() + self.settings.retry_timeout;
        let mut backoff = Duration::from_millis(200);
        let recorded = loop {
            match rt.block_on(self.table.claim(parts)) {
                Ok(r) => break r,
                Err(e) if Instant::now() < deadline && !self.stop.load(Ordering::Relaxed) => {
                    warn!(table = %self.table.url(), error = %e, retry_in = ?backoff, "cannot read the recorded offsets; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err(e) => return Err(self.table_error(format!("reading recorded offsets: {e}"))),
            }
        };
        let next: BTreeMap<i32, i64> = recorded
            .iter()
            .map(|(p, v)| (*p, v.map_or(-1, |v| v + 1)))
            .collect();
        self.next.extend(next.iter().map(|(p, n)| (*p, *n)));
        // The assignment itself starts these where the table says.
        for p in next.keys() {
            self.unsought.remove(p);
        }
        let mut positions = lock(&self.stats.positions);
        for (p, n) in &next {
            positions.entry(*p).or_insert((*n, *n)).0 = *n;
        }
        Ok(next)
    }

    /// Forgets partitions given up: their offsets, seeks and positions.
    pub(super) fn release(&mut self, parts: &[i32]) {
        for p in parts {
            self.next.remove(p);
            self.unsought.remove(p);
        }
        self.table.release(parts);
        let mut positions = lock(&self.stats.positions);
        for p in parts {
            positions.remove(p);
        }
    }

    /// Takes one message into the pending batch, unless the table already
    /// has it.
    pub(super) fn accept(&mut self, m: &RawMessage<'_>) {
        self.stats.consumed.fetch_add(1, Ordering::Relaxed);
        let Some(next) = self.next.get_mut(&m.partition) else {
            // Not ours (any more): the owner reads it from the table's offsets.
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if self.unsought.contains_key(&m.partition) {
            // Read from where a failed seek left the consumer: read again
            // once the seek succeeds.
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if *next >= 0 && m.offset < *next {
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if *next >= 0 && m.offset > *next {
            // Offsets may legitimately skip (transaction markers, compacted
            // topics); the seek on assignment (and `unsought` after a
            // failed reposition) is what guarantees the start.
            debug!(
                partition = m.partition,
                expected = *next,
                got = m.offset,
                "offset gap"
            );
        }
        *next = m.offset + 1;
        self.pending.push(m, self.settings.clock.now_micros());
        if self.pending_since.is_none() {
            let now = Instant::now();
            self.pending_since = Some(now);
            self.first_message.get_or_insert(now);
        }
    }

    /// How long the next poll may wait: until the pending batch is due by
    /// age, at most 200 ms (5 ms while a batch's files are being written,
    /// so that its commit follows them soon). Notes whether the batch is
    /// due by age already, for [`Self::due`].
    pub(super) fn poll_wait(&mut self) -> Duration {
        let left = self
            .pending_since
            .map(|t| self.settings.batch_interval.saturating_sub(t.elapsed()));
        self.interval_passed = left == Some(Duration::ZERO);
        let cap = if self.in_flight.is_some() {
            Duration::from_millis(5)
        } else {
            Duration::from_millis(200)
        };
        left.unwrap_or(cap).min(cap)
    }

    /// Whether the pending batch is big enough to commit, or was old
    /// enough when the last poll began.
    pub(super) fn due(&self) -> bool {
        self.pending.rows() >= self.settings.batch_rows
            || self.pending.bytes() >= self.settings.batch_bytes
            || self.interval_passed
    }
}
