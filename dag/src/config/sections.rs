//! The sections and keys of `dag.toml`, with their built-in defaults
//! (which match docker-compose.yml). The known keys and their types are
//! read off these defaults, serialized.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The pipeline to run: a folder under `models_dir`.
    pub pipeline: String,
    /// Where pipelines live.
    pub models_dir: PathBuf,
    /// Reference CSVs (seeds).
    pub data_dir: PathBuf,
    pub lake: LakeConfig,
    pub s3: S3Config,
    pub kafka: KafkaConfig,
    pub ingest: IngestConfig,
    pub models: ModelsConfig,
    pub warehouse: WarehouseConfig,
    pub scheduler: SchedulerConfig,
    pub ui: UiConfig,
    /// `[[alerts]]`: webhooks called on failures (`dag/src/alerts/`).
    pub alerts: Vec<crate::alerts::rule::AlertRule>,
    /// What `var()` returns in SQL templates; any keys, any TOML values.
    /// `--vars` overrides them.
    pub vars: BTreeMap<String, toml::Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Silver cleaning reads bronze in batches of about this many MiB
    /// (a bound on memory; raw values are most of it).
    pub clean_batch_mb: i64,
    /// Most models `dag run` executes at once (models that do not depend
    /// on each other); 0: one per CPU core.
    pub concurrency: u32,
    /// In a full refresh, a model whose inputs' files hold more than this
    /// many MiB runs while no other such model runs: each of those
    /// rebuilds takes every core, and their memory adds up. Smaller models
    /// run beside it, up to `concurrency`.
    pub heavy_input_mb: i64,
    /// `dag run` records its runs in PostgreSQL when a database is
    /// configured.
    pub record_runs: bool,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            clean_batch_mb: 96,
            concurrency: 0,
            heavy_input_mb: 64,
            record_runs: true,
        }
    }
}

impl ModelsConfig {
    /// `concurrency`, with 0 read as the machine's core count.
    pub fn concurrency(&self) -> usize {
        match self.concurrency {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LakeConfig {
    /// A local directory (plain path or `file://`) or `s3://bucket/prefix`.
    pub uri: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    pub endpoint: String,
    pub region: String,
    pub allow_http: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    /// Each bronze source consumes in group `<group_id>.<source>`.
    pub group_id: String,
    /// A consumer that stops heartbeating this long loses its partitions.
    pub session_timeout: String,
    /// "group": ingesters of a source share its partitions through the
    /// consumer group (a restarted one waits for the group to drop its dead
    /// predecessor, up to session_timeout). "all": each ingester takes
    /// every partition itself, no group to wait for (a restart reads again
    /// at once); run one ingester per source then (a second one is fenced
    /// by the table, batch by batch, and only wastes work).
    pub assignment: String,
}

/// How bronze ingesters batch, commit and look after their tables.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// A batch is committed at this many messages...
    pub batch_rows: i64,
    /// ...or this many payload bytes...
    pub batch_bytes: i64,
    /// ...or when its first message is this old.
    pub batch_interval: String,
    /// A Delta checkpoint every N commits (0: never).
    pub checkpoint_every: i64,
    /// Compact small files of closed ingest dates this often ("off": never).
    pub compact_every: String,
    /// Compact a closed date once it has at least this many small files.
    pub compact_min_files: i64,
    /// Target size of compacted files, in MiB.
    pub target_file_mb: i64,
    /// What stamps `ingested_at`: "system", or an RFC 3339 instant that
    /// pins it (reproducible runs).
    pub clock: String,
    /// How long an unreachable store is retried before the ingester stops.
    pub retry_timeout: String,
    /// A file source in a local folder takes a file once it has not
    /// changed for this long (`cp` and SFTP write in place).
    pub file_settle: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WarehouseConfig {
    /// A PostgreSQL URL without password.
    pub url: String,
    /// Whether `dag run` loads gold into the warehouse after its models.
    pub enabled: bool,
    /// How long an unreachable warehouse is retried before a load fails.
    pub retry_timeout: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// IANA time zone the cron schedules are read in.
    pub timezone: String,
    /// Most tasks running at once, over every scheduler sharing the database.
    pub max_concurrency: u32,
    /// Attempts after the first for a failing task.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub retry_backoff: String,
    /// A task running longer fails (and is retried).
    pub task_timeout: String,
    /// How long a claim holds without renewal: a scheduler that dies has
    /// its tasks handed to another after this.
    pub lease: String,
    /// A schedule firing while its previous run is still going: "skip"
    /// records a skipped run, "queue" starts it after the previous one.
    pub overlap: String,
    /// How often to look for work when no notification arrives.
    pub poll_interval: String,
    /// On SIGTERM, how long in-flight tasks may finish before they are
    /// handed back.
    pub grace_period: String,
    /// Keep the bronze ingesters streaming in the scheduler process.
    pub ingest: bool,
    /// Continuous mode: each bronze commit of the scheduler's ingesters
    /// queues a run of what reads that source (downstream, tests, load),
    /// one at a time, instead of waiting for a schedule.
    pub continuous: bool,
    /// Prometheus metrics on this address ("off": none).
    pub metrics_addr: String,
    /// "system", or "<RFC 3339 instant> x<speed>": a clock that starts at
    /// that instant and runs <speed> times faster (tests, replays).
    pub clock: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            pipeline: "telematics".into(),
            models_dir: "models".into(),
            data_dir: "data".into(),
            lake: LakeConfig::default(),
            s3: S3Config::default(),
            kafka: KafkaConfig::default(),
            ingest: IngestConfig::default(),
            models: ModelsConfig::default(),
            warehouse: WarehouseConfig::default(),
            scheduler: SchedulerConfig::default(),
            ui: UiConfig::default(),
            alerts: Vec::new(),
            vars: BTreeMap::new(),
        }
    }
}

impl Default for LakeConfig {
    fn default() -> Self {
        Self {
            uri: "./lake".into(),
        }
    }
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: "http://localhost:9000".into(),
            region: "us-east-1".into(),
            allow_http: true,
        }
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: "localhost:9092".into(),
            group_id: "dag-bronze".into(),
            session_timeout: "45s".into(),
            assignment: "group".into(),
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            batch_rows: 200_000,
            batch_bytes: 64 << 20,
            batch_interval: "5s".into(),
            checkpoint_every: 100,
            compact_every: "10m".into(),
            compact_min_files: 10,
            target_file_mb: 128,
            clock: "system".into(),
            retry_timeout: "5m".into(),
            file_settle: "2s".into(),
        }
    }
}

impl Default for WarehouseConfig {
    fn default() -> Self {
        Self {
            url: "postgres://dag@localhost:5432/dag".into(),
            enabled: true,
            retry_timeout: "1m".into(),
        }
    }
}

/// `[ui]`: the web UI of `dag ui` (and of `dag scheduler` when
/// `in_scheduler`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// Where the UI listens (loopback by default).
    pub addr: String,
    /// The address people reach it at, for links in alerts (default:
    /// `http://<addr>`).
    pub url: String,
    /// `dag scheduler` serves the UI too.
    pub in_scheduler: bool,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8686".into(),
            url: String::new(),
            in_scheduler: false,
        }
    }
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            timezone: "UTC".into(),
            max_concurrency: 4,
            retries: 2,
            retry_backoff: "10s".into(),
            task_timeout: "1h".into(),
            lease: "30s".into(),
            overlap: "skip".into(),
            poll_interval: "1s".into(),
            grace_period: "30s".into(),
            ingest: true,
            continuous: false,
            metrics_addr: "127.0.0.1:9187".into(),
            clock: "system".into(),
        }
    }
}
