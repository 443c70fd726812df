//! What a Kafka source is and how its ingester batches, commits and looks
//! after its table.

use crate::bronze::clock::IngestClock;
use crate::bronze::table::TableLocation;
use std::collections::BTreeMap;
use std::time::Duration;

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
    /// Compact small files this often (None: never; see `BronzeTable::compact`).
    pub compact_every: Option<Duration>,
    pub compact_min_files: usize,
    pub target_file_bytes: u64,
    pub clock: IngestClock,
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
            clock: IngestClock::System,
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
