//! `dag.toml`: the configuration, its defaults, environment overrides and
//! validation.
//!
//! Sources, later ones winning: built-in defaults (which match
//! docker-compose.yml), the file (`--config`, `DAG_CONFIG`, or `./dag.toml`
//! when present), then environment variables `DAG_<SECTION>__<KEY>` (or
//! `DAG_<KEY>` for top-level keys). Secrets come only from the environment:
//! `DATABASE_URL` (replaces `warehouse.url`), `PGPASSWORD`,
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
//!
//! Validation happens once, at start: an unknown key, a value of the wrong
//! type, a bad URL or time zone, a missing folder are errors that name the
//! key and where its value came from. The known keys and their types are
//! read off the serialized defaults, so the check never drifts from the
//! struct.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Environment variables with the `DAG_` prefix that are not config keys:
/// the config file's own, and the knobs of `scripts/` (see docs/services.md).
const NOT_CONFIG_VARS: [&str; 8] = [
    "DAG_CONFIG",
    "DAG_LOG",
    "DAG_SERVICES_DIR",
    "DAG_SERVICES_TIMEOUT",
    "DAG_PG_BIN",
    "DAG_BROKER_PARTITIONS",
    "DAG_VENV",
    "DAG_PIP_PACKAGES",
];

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
    /// `dag run` records its runs in PostgreSQL when a database is
    /// configured.
    pub record_runs: bool,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            clean_batch_mb: 96,
            concurrency: 0,
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
            metrics_addr: "127.0.0.1:9187".into(),
            clock: "system".into(),
        }
    }
}

/// Where a value came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    File(PathBuf),
    Env(String),
    /// A command-line flag.
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("built-in default"),
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Env(v) => write!(f, "environment variable {v}"),
            Origin::Flag(flag) => write!(f, "{flag}"),
        }
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: malformed TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{origin}: unknown key `{key}`{hint}")]
    UnknownKey {
        origin: Origin,
        key: String,
        hint: String,
    },
    #[error("{origin}: key `{key}` must be {expected}, found {found}")]
    WrongType {
        origin: Origin,
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("{origin}: key `{key}`: {message}")]
    Invalid {
        origin: Origin,
        key: String,
        message: String,
    },
}

/// The configuration after loading and validation, with resolved paths.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Config,
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// Directory relative paths in the config are resolved against.
    pub base_dir: PathBuf,
    /// Where each key's value came from (keys not listed are defaults).
    pub origins: BTreeMap<String, Origin>,
    /// The warehouse URL with secrets from the environment applied.
    pub warehouse_url: String,
    /// S3 keys, from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    /// What `var()` reads in SQL templates: `[vars]`, then `--vars`.
    pub vars: BTreeMap<String, serde_json::Value>,
}

impl Loaded {
    /// Where the warehouse is, secrets applied (validated at load).
    pub fn warehouse_settings(&self) -> jobs::warehouse::WarehouseSettings {
        jobs::warehouse::WarehouseSettings {
            url: self.warehouse_url.clone(),
            retry_timeout: jobs::spec::parse_duration(&self.config.warehouse.retry_timeout)
                .unwrap_or(std::time::Duration::from_secs(60)),
        }
    }

    /// The bronze ingest settings this configuration describes (validated
    /// at load, so parsing cannot fail here).
    pub fn ingest_settings(&self) -> jobs::bronze::IngestSettings {
        let c = &self.config;
        let dur = |t: &str, d: u64| {
            jobs::spec::parse_duration(t).unwrap_or(std::time::Duration::from_secs(d))
        };
        jobs::bronze::IngestSettings {
            bootstrap_servers: c.kafka.bootstrap_servers.clone(),
            group_id: c.kafka.group_id.clone(),
            session_timeout: dur(&c.kafka.session_timeout, 45),
            assign_all: c.kafka.assignment == "all",
            kafka_properties: Default::default(),
            batch_rows: c.ingest.batch_rows.max(1) as usize,
            batch_bytes: c.ingest.batch_bytes.max(1) as usize,
            batch_interval: dur(&c.ingest.batch_interval, 5),
            checkpoint_every: c.ingest.checkpoint_every.max(0) as u64,
            compact_every: (c.ingest.compact_every != "off")
                .then(|| dur(&c.ingest.compact_every, 600)),
            compact_min_files: c.ingest.compact_min_files.max(2) as usize,
            target_file_bytes: (c.ingest.target_file_mb.max(1) as u64) << 20,
            clock: jobs::bronze::Clock::parse(&c.ingest.clock)
                .unwrap_or(jobs::bronze::Clock::System),
            retry_timeout: dur(&c.ingest.retry_timeout, 300),
            until_caught_up: false,
        }
    }

    /// Storage options for the lake: S3 settings and keys from the
    /// environment when the lake is on S3, nothing for a local lake.
    pub fn storage_options(&self) -> std::collections::HashMap<String, String> {
        if !self.config.lake.uri.starts_with("s3://") {
            return Default::default();
        }
        self.s3_storage_options()
    }

    /// The `[s3]` settings and keys as object-store options.
    fn s3_storage_options(&self) -> std::collections::HashMap<String, String> {
        jobs::lake::S3Options {
            endpoint: self.config.s3.endpoint.clone(),
            region: self.config.s3.region.clone(),
            allow_http: self.config.s3.allow_http,
            access_key_id: self.s3_access_key_id.clone(),
            secret_access_key: self.s3_secret_access_key.clone(),
        }
        .storage_options()
    }

    /// Where a `file_source`'s files arrive, as a URL with the options of
    /// its store: `s3://...` (with the `[s3]` settings and keys, whatever
    /// the lake is) or `file://...` as written, a path made absolute
    /// against the project's folder.
    pub fn file_source_root(
        &self,
        path: &str,
    ) -> Result<(url::Url, std::collections::HashMap<String, String>), String> {
        if path.starts_with("s3://") || path.starts_with("s3a://") {
            let url = url::Url::parse(path).map_err(|e| format!("`{path}`: {e}"))?;
            return Ok((url, self.s3_storage_options()));
        }
        if path.starts_with("file://") {
            let url = url::Url::parse(path).map_err(|e| format!("`{path}`: {e}"))?;
            return Ok((url, Default::default()));
        }
        let rel = path.strip_prefix("./").unwrap_or(path);
        let abs = self.base_dir.join(rel);
        // Created when missing, so a source can be set up before its first
        // file arrives (listing a missing folder is an error).
        std::fs::create_dir_all(&abs).map_err(|e| format!("{}: {e}", abs.display()))?;
        let url = url::Url::from_directory_path(&abs)
            .map_err(|()| format!("{} is not an absolute folder", abs.display()))?;
        Ok((url, Default::default()))
    }

    /// How file sources are polled and committed.
    pub fn file_ingest_settings(
        &self,
        until_caught_up: bool,
    ) -> jobs::bronze::files::FileIngestSettings {
        let s = self.ingest_settings();
        jobs::bronze::files::FileIngestSettings {
            batch_bytes: s.batch_bytes as u64,
            poll: s.batch_interval,
            clock: s.clock,
            retry_timeout: s.retry_timeout,
            settle: jobs::spec::parse_duration(&self.config.ingest.file_settle)
                .unwrap_or(std::time::Duration::from_secs(2)),
            until_caught_up,
        }
    }

    /// `[vars]` as template values, `--vars` (YAML or JSON) applied over
    /// them key by key.
    pub fn template_vars(
        &self,
        cli: Option<&str>,
    ) -> Result<BTreeMap<String, serde_json::Value>, ConfigError> {
        let mut vars = BTreeMap::new();
        for (k, v) in &self.config.vars {
            let value = serde_json::to_value(v).map_err(|e| ConfigError::Invalid {
                origin: self.origin(&format!("vars.{k}")),
                key: format!("vars.{k}"),
                message: e.to_string(),
            })?;
            vars.insert(k.clone(), value);
        }
        if let Some(text) = cli.filter(|t| !t.trim().is_empty()) {
            let given: BTreeMap<String, serde_json::Value> = serde_saphyr::from_str(text)
                .map_err(|e| ConfigError::Invalid {
                    origin: Origin::Flag("--vars"),
                    key: "vars".into(),
                    message: format!(
                        "must be a YAML or JSON mapping such as '{{cutoff: 2024-01-01, limit: 10}}': {}",
                        jobs::spec::parser_message(&e.to_string())
                    ),
                })?;
            vars.extend(given);
        }
        Ok(vars)
    }

    pub fn models_dir(&self) -> PathBuf {
        self.base_dir.join(&self.config.models_dir)
    }

    pub fn pipeline_dir(&self) -> PathBuf {
        self.models_dir().join(&self.config.pipeline)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.base_dir.join(&self.config.data_dir)
    }

    /// The engine's settings for a run of models on this config's lake
    /// (incremental unless `full_refresh`).
    pub fn model_settings(&self, full_refresh: bool) -> jobs::model::Settings {
        jobs::model::Settings {
            full_refresh,
            clean_batch_bytes: self.config.models.clean_batch_mb << 20,
            ..jobs::model::Settings::new(self.lake_url(), self.storage_options(), self.data_dir())
        }
    }

    /// The lake as a URL: `s3://...` as written, a local path made absolute.
    pub fn lake_url(&self) -> String {
        let uri = &self.config.lake.uri;
        if uri.starts_with("s3://") || uri.starts_with("file://") {
            uri.clone()
        } else {
            let rel = uri.strip_prefix("./").unwrap_or(uri);
            format!("file://{}", self.base_dir.join(rel).display())
        }
    }

    fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }
}

/// Loads the configuration: `explicit` is `--config`; `env` the process
/// environment (passed in so tests need not touch the real one); `cwd` the
/// directory to look for `dag.toml` in.
pub fn load(
    explicit: Option<&Path>,
    env: &BTreeMap<String, String>,
    cwd: &Path,
) -> Result<Loaded, ConfigError> {
    let file = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => match env.get("DAG_CONFIG") {
            Some(p) => Some(PathBuf::from(p)),
            None => Some(cwd.join("dag.toml")).filter(|p| p.is_file()),
        },
    };
    let defaults = toml::Value::try_from(Config::default()).map_err(|e| ConfigError::Invalid {
        origin: Origin::Default,
        key: String::new(),
        message: e.to_string(),
    })?;
    let mut merged = toml::Table::new();
    let mut origins = BTreeMap::new();
    let base_dir = match &file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            let table: toml::Table =
                text.parse()
                    .map_err(|e: toml::de::Error| ConfigError::Syntax {
                        path: path.clone(),
                        message: e.to_string().trim_end().to_string(),
                    })?;
            let origin = Origin::File(path.clone());
            check_keys(&table, &defaults, "", &origin, &mut origins)?;
            merged = table;
            path.parent()
                .map(|p| {
                    if p.as_os_str().is_empty() {
                        cwd.to_path_buf()
                    } else {
                        cwd.join(p)
                    }
                })
                .unwrap_or_else(|| cwd.to_path_buf())
        }
        None => cwd.to_path_buf(),
    };
    for (var, value) in env {
        let Some(rest) = var.strip_prefix("DAG_") else {
            continue;
        };
        if NOT_CONFIG_VARS.contains(&var.as_str()) || var.starts_with("DAG_TEST_") {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
        let origin = Origin::Env(var.clone());
        // Environment values are text: read them as the key's type. A value
        // that looks like a number but belongs to a string key stays text.
        let value = match lookup(&defaults, &path) {
            Some(toml::Value::String(_)) => toml::Value::String(value.clone()),
            _ => env_value(value),
        };
        let mut one = toml::Table::new();
        insert_path(&mut one, &path, value.clone());
        // Also records the key's origin.
        check_keys(&one, &defaults, "", &origin, &mut origins)?;
        insert_path(&mut merged, &path, value);
    }
    let config: Config = toml::Value::Table(merged)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Invalid {
            origin: file.clone().map(Origin::File).unwrap_or(Origin::Default),
            key: String::new(),
            message: e.to_string(),
        })?;
    let mut loaded = Loaded {
        warehouse_url: config.warehouse.url.clone(),
        config,
        file,
        base_dir,
        origins,
        s3_access_key_id: env.get("AWS_ACCESS_KEY_ID").cloned(),
        s3_secret_access_key: env.get("AWS_SECRET_ACCESS_KEY").cloned(),
        vars: BTreeMap::new(),
    };
    validate(&mut loaded, env)?;
    loaded.vars = loaded.template_vars(None)?;
    Ok(loaded)
}

fn env_value(raw: &str) -> toml::Value {
    if let Ok(b) = raw.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(f) = raw.parse::<f64>()
        && f.is_finite()
    {
        return toml::Value::Float(f);
    }
    toml::Value::String(raw.to_string())
}

fn insert_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    match path {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = entry {
                insert_path(t, rest, value);
            }
        }
    }
}

fn lookup<'a>(value: &'a toml::Value, path: &[String]) -> Option<&'a toml::Value> {
    path.iter().try_fold(value, |v, k| v.get(k))
}

fn type_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a number",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a datetime",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// Every key of `table` must exist in `defaults` with the same type.
fn check_keys(
    table: &toml::Table,
    defaults: &toml::Value,
    prefix: &str,
    origin: &Origin,
    origins: &mut BTreeMap<String, Origin>,
) -> Result<(), ConfigError> {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        // `[vars]` is the user's own: any keys, any values.
        if prefix.is_empty() && k == "vars" {
            let toml::Value::Table(vars) = v else {
                return Err(ConfigError::WrongType {
                    origin: origin.clone(),
                    key,
                    expected: "a table",
                    found: format!("{} ({v})", type_name(v)),
                });
            };
            for name in vars.keys() {
                origins.insert(format!("vars.{name}"), origin.clone());
            }
            continue;
        }
        let Some(expected) = defaults.get(k) else {
            let known: Vec<&str> = defaults
                .as_table()
                .map(|t| t.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let secretish = ["password", "secret", "token", "access_key", "key_id"]
                .iter()
                .any(|s| k.contains(s));
            let hint = if secretish {
                " (secrets are read only from the environment: DATABASE_URL or PGPASSWORD, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)".to_string()
            } else {
                let dym = jobs::spec::did_you_mean(k, known.iter().copied());
                if dym.is_empty() {
                    format!(
                        " (known keys{}: {})",
                        if prefix.is_empty() {
                            String::new()
                        } else {
                            format!(" of [{prefix}]")
                        },
                        known.join(", ")
                    )
                } else {
                    dym
                }
            };
            return Err(ConfigError::UnknownKey {
                origin: origin.clone(),
                key,
                hint,
            });
        };
        match (v, expected) {
            (toml::Value::Table(sub), toml::Value::Table(_)) => {
                check_keys(sub, expected, &key, origin, origins)?;
            }
            (found, expected)
                if std::mem::discriminant(found) != std::mem::discriminant(expected) =>
            {
                return Err(ConfigError::WrongType {
                    origin: origin.clone(),
                    key,
                    expected: type_name(expected),
                    found: format!("{} ({found})", type_name(found)),
                });
            }
            _ => {
                origins.insert(key, origin.clone());
            }
        }
    }
    Ok(())
}

fn validate(loaded: &mut Loaded, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    let invalid = |loaded: &Loaded, key: &str, message: String| ConfigError::Invalid {
        origin: loaded.origin(key),
        key: key.to_string(),
        message,
    };
    // Checks read only; secrets are applied at the end.
    let ro: &Loaded = loaded;
    let c = &ro.config;
    if !c
        .pipeline
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        || c.pipeline.is_empty()
    {
        return Err(invalid(
            ro,
            "pipeline",
            format!(
                "`{}` must be a folder name (letters, digits, _ and -)",
                c.pipeline
            ),
        ));
    }
    let models = ro.models_dir();
    if !models.is_dir() {
        return Err(invalid(
            ro,
            "models_dir",
            format!("{} is not a directory", models.display()),
        ));
    }
    let pipeline = ro.pipeline_dir();
    if !pipeline.is_dir() {
        let available: Vec<String> = std::fs::read_dir(&models)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        return Err(invalid(
            ro,
            "pipeline",
            format!(
                "no pipeline folder {} (pipelines here: {})",
                pipeline.display(),
                available.join(", ")
            ),
        ));
    }
    // The default data folder may be missing (a pipeline without seeds
    // needs none: a seed names its missing file); one set on purpose may not.
    let data = ro.data_dir();
    if !data.is_dir() && (data.exists() || !matches!(ro.origin("data_dir"), Origin::Default)) {
        return Err(invalid(
            ro,
            "data_dir",
            format!("{} is not a directory", data.display()),
        ));
    }
    let lake = &c.lake.uri;
    if let Some(rest) = lake.strip_prefix("s3://") {
        if rest.split('/').next().unwrap_or_default().is_empty() {
            return Err(invalid(
                ro,
                "lake.uri",
                format!("`{lake}` needs a bucket: s3://bucket/prefix"),
            ));
        }
        url::Url::parse(&c.s3.endpoint).map_err(|e| {
            invalid(
                ro,
                "s3.endpoint",
                format!("`{}` is not a URL: {e}", c.s3.endpoint),
            )
        })?;
    } else if lake.contains("://") && !lake.starts_with("file://") {
        return Err(invalid(
            ro,
            "lake.uri",
            format!("`{lake}`: use a local path, file:// or s3://"),
        ));
    } else {
        let path = ro
            .base_dir
            .join(lake.strip_prefix("file://").unwrap_or(lake));
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if !path.is_dir() && !parent.is_dir() {
            return Err(invalid(
                ro,
                "lake.uri",
                format!(
                    "{} does not exist and neither does its parent folder",
                    path.display()
                ),
            ));
        }
    }
    if c.kafka.bootstrap_servers.trim().is_empty()
        || c.kafka.bootstrap_servers.split(',').any(|hp| {
            hp.trim()
                .rsplit_once(':')
                .is_none_or(|(_, p)| p.parse::<u16>().is_err())
        })
    {
        return Err(invalid(
            ro,
            "kafka.bootstrap_servers",
            format!(
                "`{}` must be host:port[,host:port...]",
                c.kafka.bootstrap_servers
            ),
        ));
    }
    let duration =
        |key: &str, text: &str| jobs::spec::parse_duration(text).map_err(|e| invalid(ro, key, e));
    duration("kafka.session_timeout", &c.kafka.session_timeout)?;
    if !matches!(c.kafka.assignment.as_str(), "group" | "all") {
        return Err(invalid(
            ro,
            "kafka.assignment",
            format!("`{}` must be \"group\" or \"all\"", c.kafka.assignment),
        ));
    }
    duration("ingest.batch_interval", &c.ingest.batch_interval)?;
    duration("ingest.retry_timeout", &c.ingest.retry_timeout)?;
    duration("ingest.file_settle", &c.ingest.file_settle)?;
    duration("warehouse.retry_timeout", &c.warehouse.retry_timeout)?;
    if c.ingest.compact_every != "off" {
        jobs::spec::parse_duration(&c.ingest.compact_every)
            .map_err(|e| invalid(ro, "ingest.compact_every", format!("{e}, or \"off\"")))?;
    }
    for (key, value, min) in [
        ("ingest.batch_rows", c.ingest.batch_rows, 1),
        ("ingest.batch_bytes", c.ingest.batch_bytes, 1),
        ("ingest.checkpoint_every", c.ingest.checkpoint_every, 0),
        ("ingest.compact_min_files", c.ingest.compact_min_files, 2),
        ("ingest.target_file_mb", c.ingest.target_file_mb, 1),
        ("models.clean_batch_mb", c.models.clean_batch_mb, 0),
    ] {
        if value < min {
            return Err(invalid(
                ro,
                key,
                format!("must be at least {min}, found {value}"),
            ));
        }
    }
    jobs::bronze::Clock::parse(&c.ingest.clock).map_err(|e| invalid(ro, "ingest.clock", e))?;
    if c.scheduler.timezone.parse::<chrono_tz::Tz>().is_err() {
        return Err(invalid(
            ro,
            "scheduler.timezone",
            format!(
                "`{}` is not an IANA time zone (e.g. UTC, Europe/Paris)",
                c.scheduler.timezone
            ),
        ));
    }
    for (key, text) in [
        ("scheduler.retry_backoff", &c.scheduler.retry_backoff),
        ("scheduler.task_timeout", &c.scheduler.task_timeout),
        ("scheduler.lease", &c.scheduler.lease),
        ("scheduler.poll_interval", &c.scheduler.poll_interval),
        ("scheduler.grace_period", &c.scheduler.grace_period),
    ] {
        duration(key, text)?;
    }
    if !matches!(c.scheduler.overlap.as_str(), "skip" | "queue") {
        return Err(invalid(
            ro,
            "scheduler.overlap",
            format!("`{}`: use skip or queue", c.scheduler.overlap),
        ));
    }
    if c.scheduler.metrics_addr != "off"
        && c.scheduler
            .metrics_addr
            .parse::<std::net::SocketAddr>()
            .is_err()
    {
        return Err(invalid(
            ro,
            "scheduler.metrics_addr",
            format!(
                "`{}` must be host:port (an IP address) or \"off\"",
                c.scheduler.metrics_addr
            ),
        ));
    }
    crate::scheduler::clock::Clock::parse(&c.scheduler.clock)
        .map_err(|e| invalid(ro, "scheduler.clock", e))?;
    if c.ui.addr.parse::<std::net::SocketAddr>().is_err() {
        return Err(invalid(
            ro,
            "ui.addr",
            format!("`{}` must be host:port (an IP address)", c.ui.addr),
        ));
    }
    crate::alerts::rule::check(&c.alerts, &|k| env.get(k).cloned()).map_err(|(key, message)| {
        ConfigError::Invalid {
            origin: ro.origin("alerts"),
            key,
            message,
        }
    })?;
    if c.scheduler.max_concurrency == 0 {
        return Err(invalid(
            ro,
            "scheduler.max_concurrency",
            "must be at least 1".into(),
        ));
    }
    let wh = url::Url::parse(&c.warehouse.url).map_err(|e| {
        invalid(
            ro,
            "warehouse.url",
            format!("`{}` is not a URL: {e}", c.warehouse.url),
        )
    })?;
    if !matches!(wh.scheme(), "postgres" | "postgresql") {
        return Err(invalid(
            ro,
            "warehouse.url",
            format!("`{}` must be a postgres:// URL", c.warehouse.url),
        ));
    }
    if wh.password().is_some() && matches!(ro.origin("warehouse.url"), Origin::File(_)) {
        return Err(invalid(
            ro,
            "warehouse.url",
            "holds a password: secrets are read only from the environment (DATABASE_URL or PGPASSWORD)".into(),
        ));
    }
    // Secrets from the environment.
    if let Some(url) = env.get("DATABASE_URL").filter(|u| !u.is_empty()) {
        url::Url::parse(url).map_err(|e| ConfigError::Invalid {
            origin: Origin::Env("DATABASE_URL".into()),
            key: "warehouse.url".into(),
            message: format!("not a URL: {e}"),
        })?;
        loaded.warehouse_url = url.clone();
        loaded
            .origins
            .insert("warehouse.url".into(), Origin::Env("DATABASE_URL".into()));
    } else if let Some(pw) = env.get("PGPASSWORD") {
        let mut u = wh;
        // set_password fails only for URLs that cannot have one (no host).
        if u.set_password(Some(pw)).is_ok() {
            loaded.warehouse_url = u.to_string();
        }
    }
    Ok(())
}
