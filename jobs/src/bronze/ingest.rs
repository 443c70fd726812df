//! The ingester of one Kafka source: a consumer in a group that batches
//! messages and commits each batch, with its offsets, to the bronze table.
//!
//! One blocking thread per source drives librdkafka's `BaseConsumer`
//! (librdkafka fetches in its own threads; polling is cheap). Rebalance
//! callbacks run inside `poll` on that thread: on assignment the consumer
//! is positioned at the offsets the table records (never the group's
//! committed offsets); on revocation the pending batch is committed while
//! the partitions are still ours, or dropped if it cannot be. Kafka group
//! offsets are committed too, after the Delta commit, only so that the
//! usual lag tools work: nothing reads them back.

use super::batch::{BatchBuilder, RawMessage, Span};
use super::clock::Clock;
use super::table::{BronzeTable, Moved, Outcome, TableLocation};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, Timestamp};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tracing::{debug, info, warn};

/// How one ingester batches, commits and looks after its table.
#[derive(Clone, Debug)]
pub struct IngestSettings {
    pub bootstrap_servers: String,
    /// The consumer group; each source joins `<group_id>.<source>`.
    pub group_id: String,
    pub session_timeout: Duration,
    /// Take every partition of the topic directly instead of joining the
    /// consumer group: a restart reads again at once (no dead member to
    /// wait out); exactly-once still rests on the table's offsets.
    pub assign_all: bool,
    /// Extra librdkafka properties (security, tuning), applied last.
    pub kafka_properties: BTreeMap<String, String>,
    /// A batch is committed when it holds this many rows...
    pub batch_rows: usize,
    /// ...or this many payload bytes...
    pub batch_bytes: usize,
    /// ...or its first message is this old, whichever comes first.
    pub batch_interval: Duration,
    /// A Delta checkpoint every N commits (0: never).
    pub checkpoint_every: u64,
    /// Compact small files of closed ingest dates this often (None: never).
    pub compact_every: Option<Duration>,
    pub compact_min_files: usize,
    pub target_file_bytes: u64,
    pub clock: Clock,
    /// How long an unreachable store is retried before the ingester gives up.
    pub retry_timeout: Duration,
    /// Stop once every assigned partition reached the high watermark seen
    /// at start (after a final commit).
    pub until_caught_up: bool,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            bootstrap_servers: "localhost:9092".into(),
            group_id: "dag-bronze".into(),
            session_timeout: Duration::from_secs(45),
            assign_all: false,
            kafka_properties: BTreeMap::new(),
            batch_rows: 200_000,
            batch_bytes: 64 << 20,
            batch_interval: Duration::from_secs(5),
            checkpoint_every: 100,
            compact_every: Some(Duration::from_secs(600)),
            compact_min_files: 10,
            target_file_bytes: 128 << 20,
            clock: Clock::System,
            retry_timeout: Duration::from_secs(300),
            until_caught_up: false,
        }
    }
}

/// A Kafka source and its bronze table.
#[derive(Clone, Debug)]
pub struct SourceSpec {
    pub name: String,
    pub topic: String,
    pub location: TableLocation,
}

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
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("source {source_name}: Kafka: {error}")]
    Kafka {
        source_name: String,
        #[source]
        error: KafkaError,
    },
    #[error("source {source_name}: table {table}: {message}")]
    Table {
        source_name: String,
        table: String,
        message: String,
    },
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the data as consistent as any
    // other stop: the table is the truth, so carry on.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The consumer context: the ingest state, reachable from rebalance
/// callbacks.
struct Ctx {
    rt: Handle,
    state: Mutex<State>,
}

struct State {
    source: SourceSpec,
    settings: IngestSettings,
    table: BronzeTable,
    pending: BatchBuilder,
    /// When the oldest pending message arrived.
    pending_since: Option<Instant>,
    /// When the first message of this run was taken.
    first_message: Option<Instant>,
    /// Assigned partitions: the next offset to take (-1: the first offset
    /// the broker gives, for a partition the table has never seen).
    next: BTreeMap<i32, i64>,
    /// Partitions whose repositioning seek failed, with where they must
    /// start: their messages are dropped until a retried seek succeeds
    /// (taking them would skip what lies between).
    unsought: BTreeMap<i32, i64>,
    /// High watermarks at start, for `--until-caught-up`: (low, high).
    targets: BTreeMap<i32, (i64, i64)>,
    assigned_once: bool,
    commits_since_checkpoint: u64,
    last_compaction: Instant,
    stats: Arc<IngestStats>,
    stop: Arc<AtomicBool>,
    /// An error raised inside a callback, surfaced by the main loop.
    fatal: Option<IngestError>,
}

impl ClientContext for Ctx {
    fn stats(&self, statistics: Statistics) {
        let st = lock(&self.state);
        let Some(topic) = statistics.topics.get(&st.source.topic) else {
            return;
        };
        let mut positions = lock(&st.stats.positions);
        for (p, info) in &topic.partitions {
            if let Some(next) = st.next.get(p) {
                positions.insert(*p, (*next, info.hi_offset));
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Broker outages land here; librdkafka reconnects by itself.
        warn!(%error, reason, "kafka client error (retrying)");
    }
}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let mut st = lock(&self.state);
        let topic = st.source.topic.clone();
        let parts: Vec<i32> = tpl
            .elements_for_topic(&topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                match st.claim(&self.rt, &parts) {
                    Ok(next) => {
                        for (p, n) in &next {
                            let offset = if *n >= 0 {
                                Offset::Offset(*n)
                            } else {
                                Offset::Beginning
                            };
                            if let Err(e) = tpl.set_partition_offset(&topic, *p, offset) {
                                warn!(partition = p, error = %e, "cannot set start offset");
                            }
                        }
                        info!(source = %st.source.name, partitions = ?next, "assigned; starting at the offsets the table records");
                    }
                    Err(e) => st.fatal = Some(e),
                }
                st.assigned_once = true;
                let r = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = r {
                    st.fatal = Some(st.kafka_error(e));
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // Commit while the partitions are still ours; what cannot be
                // committed now is dropped (the next owner re-reads it).
                if let Err(e) = st.flush(&self.rt, consumer) {
                    warn!(error = %e, "could not commit before giving partitions up; dropping their rows");
                    st.pending.retain_partitions(|p| !parts.contains(&p));
                    st.table.discard_staged();
                }
                st.release(&parts);
                info!(source = %st.source.name, partitions = ?parts, "revoked");
                let r = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = r {
                    warn!(error = %e, "unassign failed");
                }
            }
            other => {
                warn!(error = ?other, "rebalance error; dropping the assignment");
                let _ = st.flush(&self.rt, consumer);
                let all: Vec<i32> = st.next.keys().copied().collect();
                st.release(&all);
                let _ = consumer.unassign();
            }
        }
    }
}

impl State {
    fn kafka_error(&self, error: KafkaError) -> IngestError {
        IngestError::Kafka {
            source_name: self.source.name.clone(),
            error,
        }
    }

    fn table_error(&self, message: String) -> IngestError {
        IngestError::Table {
            source_name: self.source.name.clone(),
            table: self.table.url().to_string(),
            message,
        }
    }

    /// Reads the recorded offsets of newly assigned partitions (retrying an
    /// unreachable store) and returns where each starts.
    fn claim(&mut self, rt: &Handle, parts: &[i32]) -> Result<BTreeMap<i32, i64>, IngestError> {
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

    fn release(&mut self, parts: &[i32]) {
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
    fn accept(&mut self, m: &RawMessage<'_>) {
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

    fn due(&self) -> bool {
        self.pending.rows() >= self.settings.batch_rows
            || self.pending.bytes() >= self.settings.batch_bytes
            || self
                .pending_since
                .is_some_and(|t| t.elapsed() >= self.settings.batch_interval)
    }

    /// Commits the pending batch with its offsets, retrying an unreachable
    /// store with backoff. Never skips: an error leaves the offsets
    /// uncommitted, so the messages are read again.
    fn flush(&mut self, rt: &Handle, consumer: &BaseConsumer<Ctx>) -> Result<(), IngestError> {
        self.pending_since = None;
        if self.pending.is_empty() {
            return Ok(());
        }
        let payload = self.pending.payload_bytes() as u64;
        let (batch, spans) = self.pending.finish();
        let deadline = Instant::now() + self.settings.retry_timeout;
        let mut backoff = Duration::from_millis(200);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = match rt.block_on(self.table.commit(&batch, &spans)) {
                Ok(outcome) => Ok(Some(outcome)),
                Err(e) => {
                    warn!(
                        table = %self.table.name,
                        offsets = %describe(&spans),
                        attempt,
                        error = %e,
                        "commit failed; checking what the table recorded"
                    );
                    rt.block_on(self.table.resolve(&spans))
                }
            };
            match result {
                Ok(Some(Outcome::Committed { version, moved })) => {
                    self.committed(version, &batch, payload, &spans, consumer);
                    self.reposition(moved, consumer);
                    self.upkeep(rt);
                    return Ok(());
                }
                Ok(Some(Outcome::Fenced { moved })) => {
                    warn!(
                        table = %self.table.name,
                        offsets = %describe(&spans),
                        recorded = ?moved,
                        "another writer committed these partitions; dropping this batch and re-reading from the table's offsets"
                    );
                    self.stats.fenced.fetch_add(1, Ordering::Relaxed);
                    self.reposition(after_fence(&spans, moved), consumer);
                    return Ok(());
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(table = %self.table.name, error = %e, "cannot read the table back");
                }
            }
            if Instant::now() >= deadline || self.stop.load(Ordering::Relaxed) {
                self.table.discard_staged();
                // Rewind, so that a caller that carries on re-reads them.
                let rewind: Moved = spans.iter().map(|(p, s)| (*p, Some(s.first - 1))).collect();
                self.reposition(rewind, consumer);
                return Err(self.table_error(format!(
                    "gave up committing offsets {} after {attempt} attempts; nothing was skipped: they will be read again",
                    describe(&spans)
                )));
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    fn committed(
        &mut self,
        version: i64,
        batch: &arrow::array::RecordBatch,
        payload: u64,
        spans: &BTreeMap<i32, Span>,
        consumer: &BaseConsumer<Ctx>,
    ) {
        let rows = batch.num_rows() as u64;
        self.stats.committed_rows.fetch_add(rows, Ordering::Relaxed);
        self.stats
            .committed_bytes
            .fetch_add(payload, Ordering::Relaxed);
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        debug!(table = %self.table.name, version, rows, offsets = %describe(spans), "committed");
        // Informational only (lag tools); the table is the checkpoint.
        let mut tpl = TopicPartitionList::new();
        for (p, s) in spans {
            if self.next.contains_key(p) {
                let _ =
                    tpl.add_partition_offset(&self.source.topic, *p, Offset::Offset(s.last + 1));
            }
        }
        if tpl.count() > 0
            && let Err(e) = consumer.commit(&tpl, CommitMode::Async)
        {
            debug!(error = %e, "group offset commit failed (informational only)");
        }
        self.commits_since_checkpoint += 1;
    }

    /// Moves partitions whose recorded offsets changed under us to just
    /// after what the table now records.
    fn reposition(&mut self, moved: Moved, consumer: &BaseConsumer<Ctx>) {
        if moved.is_empty() {
            return;
        }
        // Whatever we hold of those partitions is stale too.
        self.pending.retain_partitions(|p| !moved.contains_key(&p));
        for (p, recorded) in moved {
            let Some(next) = self.next.get_mut(&p) else {
                continue;
            };
            let n = recorded.map_or(-1, |v| v + 1);
            *next = n;
            self.unsought.insert(p, n);
        }
        self.retry_seeks(consumer);
    }

    /// Seeks the partitions that must be read from elsewhere; one that
    /// fails stays in `unsought` (its messages dropped) and is tried again
    /// on the next poll.
    fn retry_seeks(&mut self, consumer: &BaseConsumer<Ctx>) {
        let todo: Vec<(i32, i64)> = self.unsought.iter().map(|(p, n)| (*p, *n)).collect();
        for (p, n) in todo {
            let offset = if n >= 0 {
                Offset::Offset(n)
            } else {
                Offset::Beginning
            };
            match consumer.seek(&self.source.topic, p, offset, Duration::from_secs(10)) {
                Ok(()) => {
                    self.unsought.remove(&p);
                }
                Err(e) => {
                    warn!(partition = p, next = n, error = %e, "seek failed; its messages wait until a retried seek succeeds");
                }
            }
        }
    }

    /// Checkpoints and compaction, between batches so they never race this
    /// writer; failures are logged and retried next time.
    fn upkeep(&mut self, rt: &Handle) {
        let every = self.settings.checkpoint_every;
        if every > 0 && self.commits_since_checkpoint >= every {
            match rt.block_on(self.table.checkpoint()) {
                Ok(()) => {
                    self.commits_since_checkpoint = 0;
                    info!(table = %self.table.name, version = self.table.version(), "checkpoint written");
                }
                Err(e) => warn!(table = %self.table.name, error = %e, "checkpoint failed"),
            }
        }
        if let Some(every) = self.settings.compact_every
            && self.last_compaction.elapsed() >= every
        {
            self.last_compaction = Instant::now();
            match rt.block_on(self.table.compact_closed(
                &self.settings.clock,
                self.settings.compact_min_files,
                self.settings.target_file_bytes,
            )) {
                Ok((dates, removed)) if !dates.is_empty() => {
                    info!(table = %self.table.name, ?dates, files_removed = removed, "compacted closed ingest dates");
                }
                Ok(_) => {}
                Err(e) => warn!(table = %self.table.name, error = %e, "compaction failed"),
            }
        }
    }

    fn caught_up(&self) -> bool {
        self.assigned_once
            && self.next.iter().all(|(p, next)| match self.targets.get(p) {
                Some((low, high)) => {
                    if *next >= 0 {
                        next >= high
                    } else {
                        high <= low
                    }
                }
                // A partition created after start: not part of this run.
                None => true,
            })
    }
}

fn describe(spans: &BTreeMap<i32, Span>) -> String {
    spans
        .iter()
        .map(|(p, s)| format!("p{p}:{}..={}", s.first, s.last))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs one ingester until `stop` is set (or, with `until_caught_up`,
/// until it has caught up). Blocking: call it on its own thread, with a
/// handle to a multi-thread tokio runtime for the Delta I/O.
pub fn run(
    source: SourceSpec,
    settings: IngestSettings,
    rt: Handle,
    stop: Arc<AtomicBool>,
    stats: Arc<IngestStats>,
) -> Result<IngestReport, IngestError> {
    let table = rt
        .block_on(BronzeTable::open_or_create(
            &source.name,
            &source.topic,
            source.location.clone(),
        ))
        .map_err(|e| IngestError::Table {
            source_name: source.name.clone(),
            table: source.location.url.to_string(),
            message: format!("cannot open or create: {e}"),
        })?;
    let kafka_err = |error| IngestError::Kafka {
        source_name: source.name.clone(),
        error,
    };
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.bootstrap_servers)
        .set("group.id", format!("{}.{}", settings.group_id, source.name))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            settings.session_timeout.as_millis().to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (settings.session_timeout.as_millis() / 3)
                .max(100)
                .to_string(),
        )
        // A commit retries an unreachable lake for up to retry_timeout
        // without polling: the group must not evict us meanwhile, or the
        // partitions move while we still commit (a zombie). librdkafka's
        // background thread keeps the session alive; this bounds the poll gap.
        .set(
            "max.poll.interval.ms",
            (settings.retry_timeout.as_millis() + 300_000)
                .min(86_400_000)
                .to_string(),
        )
        .set("statistics.interval.ms", "1000")
        // Big fetches: bronze wants throughput, and memory stays bounded.
        .set("fetch.max.bytes", (64 << 20).to_string())
        .set("max.partition.fetch.bytes", (16 << 20).to_string())
        .set("queued.max.messages.kbytes", (128 << 10).to_string());
    for (k, v) in &settings.kafka_properties {
        config.set(k, v);
    }
    let ctx = Ctx {
        rt: rt.clone(),
        state: Mutex::new(State {
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
        }),
    };
    let consumer: BaseConsumer<Ctx> = config.create_with_context(ctx).map_err(kafka_err)?;
    if settings.until_caught_up {
        let targets = watermarks(&consumer, &source.topic, &stop).map_err(kafka_err)?;
        info!(source = %source.name, ?targets, "catching up to these high watermarks");
        lock(&consumer.context().state).targets = targets;
    }
    if settings.assign_all {
        // Every partition, from where the table says: no group to join.
        let parts: Vec<i32> = watermarks(&consumer, &source.topic, &stop)
            .map_err(kafka_err)?
            .into_keys()
            .collect();
        let mut st = lock(&consumer.context().state);
        let next = st.claim(&rt, &parts)?;
        let mut tpl = TopicPartitionList::new();
        for (p, n) in &next {
            let offset = if *n >= 0 {
                Offset::Offset(*n)
            } else {
                Offset::Beginning
            };
            tpl.add_partition_offset(&source.topic, *p, offset)
                .map_err(kafka_err)?;
        }
        st.assigned_once = true;
        drop(st);
        consumer.assign(&tpl).map_err(kafka_err)?;
        info!(source = %source.name, partitions = ?next, "took every partition; starting at the offsets the table records");
    } else {
        consumer.subscribe(&[&source.topic]).map_err(kafka_err)?;
    }
    info!(source = %source.name, topic = %source.topic, table = %source.location.url, "ingesting");

    let result = poll_loop(&consumer, &rt, &stop);
    // Leaving the group revokes the partitions, which commits what is
    // pending (see `rebalance`).
    let closed = {
        let mut st = lock(&consumer.context().state);
        st.flush(&rt, &consumer)
    };
    consumer.unsubscribe();
    drop(
        consumer
            .poll(Duration::from_millis(0))
            .map(|r| r.map(|_| ())),
    );
    result.and(closed)?;
    let st = lock(&consumer.context().state);
    Ok(IngestReport {
        source: source.name.clone(),
        table: source.location.url.to_string(),
        rows: stats.committed_rows.load(Ordering::Relaxed),
        bytes: stats.committed_bytes.load(Ordering::Relaxed),
        commits: stats.commits.load(Ordering::Relaxed),
        skipped: stats.skipped.load(Ordering::Relaxed),
        fenced: stats.fenced.load(Ordering::Relaxed),
        version: st.table.version(),
        active_seconds: st.first_message.map_or(0.0, |t| t.elapsed().as_secs_f64()),
        ..IngestReport::default()
    })
}

fn poll_loop(
    consumer: &BaseConsumer<Ctx>,
    rt: &Handle,
    stop: &AtomicBool,
) -> Result<(), IngestError> {
    let ctx = consumer.context();
    let mut last_kafka_warning: Option<Instant> = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let wait = {
            let st = lock(&ctx.state);
            st.pending_since
                .map(|t| st.settings.batch_interval.saturating_sub(t.elapsed()))
                .unwrap_or(Duration::from_millis(200))
                .min(Duration::from_millis(200))
        };
        match consumer.poll(wait) {
            Some(Ok(m)) => {
                let raw = RawMessage {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key(),
                    value: m.payload(),
                    timestamp_ms: match m.timestamp() {
                        Timestamp::NotAvailable => None,
                        t => t.to_millis(),
                    },
                };
                let mut st = lock(&ctx.state);
                st.accept(&raw);
                // Drain what librdkafka already holds without re-locking
                // per message; the batch checks stay per message.
                if st.due() {
                    st.flush(rt, consumer)?;
                }
            }
            // Broker trouble: librdkafka retries; say so, at most every 10 s.
            Some(Err(e))
                if last_kafka_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) =>
            {
                warn!(error = %e, "kafka consumer error (retrying)");
                last_kafka_warning = Some(Instant::now());
            }
            Some(Err(_)) => {}
            None => {}
        }
        let mut st = lock(&ctx.state);
        if let Some(e) = st.fatal.take() {
            return Err(e);
        }
        if !st.unsought.is_empty() {
            st.retry_seeks(consumer);
        }
        if st.due() {
            st.flush(rt, consumer)?;
        }
        if st.settings.until_caught_up && st.caught_up() {
            return Ok(());
        }
    }
}

/// Low and high watermarks of every partition of `topic`, retried until the
/// broker answers (or `stop`).
fn watermarks(
    consumer: &BaseConsumer<Ctx>,
    topic: &str,
    stop: &AtomicBool,
) -> Result<BTreeMap<i32, (i64, i64)>, KafkaError> {
    let mut backoff = Duration::from_millis(200);
    loop {
        let attempt = (|| {
            let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
            let mut out = BTreeMap::new();
            for t in md.topics() {
                if let Some(e) = t.error() {
                    return Err(KafkaError::MetadataFetch(e.into()));
                }
                for p in t.partitions() {
                    let w = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
                    out.insert(p.id(), w);
                }
            }
            Ok(out)
        })();
        match attempt {
            Ok(w) if !w.is_empty() => return Ok(w),
            Ok(_) => warn!(topic, "topic has no partitions yet; waiting"),
            Err(e) if stop.load(Ordering::Relaxed) => return Err(e),
            Err(e) => {
                warn!(topic, error = %e, retry_in = ?backoff, "cannot read watermarks; retrying")
            }
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(BTreeMap::new());
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Where each partition of a dropped (fenced) batch reads next. A partition
/// another writer moved goes to just after what that writer recorded; every
/// other partition of the batch goes back to the batch's first offset: its
/// rows were dropped with the batch, and the consumer's position is past
/// them, so without the rewind they would never be read again.
fn after_fence(spans: &BTreeMap<i32, Span>, moved: Moved) -> Moved {
    let mut next: Moved = spans.iter().map(|(p, s)| (*p, Some(s.first - 1))).collect();
    next.extend(moved);
    next
}

#[cfg(test)]
mod fence_tests {
    use super::*;

    #[test]
    fn a_fenced_batch_rewinds_the_partitions_nobody_moved() {
        let spans: BTreeMap<i32, Span> = [
            (
                0,
                Span {
                    first: 10,
                    last: 19,
                    rows: 10,
                },
            ),
            (
                1,
                Span {
                    first: 0,
                    last: 4,
                    rows: 5,
                },
            ),
        ]
        .into();
        // Another writer took partition 0 and recorded up to 25.
        let next = after_fence(&spans, [(0, Some(25))].into());
        assert_eq!(next, [(0, Some(25)), (1, Some(-1))].into());
        // A partition moved to "nothing recorded" starts from the beginning.
        let next = after_fence(&spans, [(1, None)].into());
        assert_eq!(next, [(0, Some(9)), (1, None)].into());
    }
}
