//! The check of values, once at load: folders, URLs, durations, time
//! zones, addresses, alert rules; each error names the key and where its
//! value came from. Secrets from the environment are applied last.

use super::loaded::Loaded;
use super::origin::{ConfigError, Origin};
use std::collections::BTreeMap;
use std::path::Path;

/// Checks every value; then applies the secrets of the environment.
pub(super) fn validate(
    loaded: &mut Loaded,
    env: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    // Checks read only; secrets are applied at the end.
    folders(loaded)?;
    lake(loaded)?;
    kafka_and_ingest(loaded)?;
    scheduler_and_ui(loaded, env)?;
    let wh = warehouse(loaded)?;
    secrets(loaded, env, wh)
}

fn invalid(loaded: &Loaded, key: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        origin: loaded.origin(key),
        key: key.to_string(),
        message,
    }
}

fn duration(ro: &Loaded, key: &str, text: &str) -> Result<std::time::Duration, ConfigError> {
    jobs::decl::parse_duration(text).map_err(|e| invalid(ro, key, e))
}

/// The pipeline's name and the folders it lives in.
fn folders(ro: &Loaded) -> Result<(), ConfigError> {
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
    Ok(())
}

/// The lake: a local folder (or its parent) that exists, or an S3 bucket
/// with an endpoint URL.
fn lake(ro: &Loaded) -> Result<(), ConfigError> {
    let c = &ro.config;
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
    Ok(())
}

/// The broker's address, the consumer's and the ingesters' knobs.
fn kafka_and_ingest(ro: &Loaded) -> Result<(), ConfigError> {
    let c = &ro.config;
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
    duration(ro, "kafka.session_timeout", &c.kafka.session_timeout)?;
    if !matches!(c.kafka.assignment.as_str(), "group" | "all") {
        return Err(invalid(
            ro,
            "kafka.assignment",
            format!("`{}` must be \"group\" or \"all\"", c.kafka.assignment),
        ));
    }
    duration(ro, "ingest.batch_interval", &c.ingest.batch_interval)?;
    duration(ro, "ingest.retry_timeout", &c.ingest.retry_timeout)?;
    duration(ro, "ingest.file_settle", &c.ingest.file_settle)?;
    duration(ro, "warehouse.retry_timeout", &c.warehouse.retry_timeout)?;
    if c.ingest.compact_every != "off" {
        jobs::decl::parse_duration(&c.ingest.compact_every)
            .map_err(|e| invalid(ro, "ingest.compact_every", format!("{e}, or \"off\"")))?;
    }
    for (key, value, min) in [
        ("ingest.batch_rows", c.ingest.batch_rows, 1),
        ("ingest.batch_bytes", c.ingest.batch_bytes, 1),
        ("ingest.checkpoint_every", c.ingest.checkpoint_every, 0),
        ("ingest.compact_min_files", c.ingest.compact_min_files, 2),
        ("ingest.target_file_mb", c.ingest.target_file_mb, 1),
        ("models.clean_batch_mb", c.models.clean_batch_mb, 0),
        ("models.heavy_input_mb", c.models.heavy_input_mb, 0),
    ] {
        if value < min {
            return Err(invalid(
                ro,
                key,
                format!("must be at least {min}, found {value}"),
            ));
        }
    }
    jobs::bronze::IngestClock::parse(&c.ingest.clock)
        .map_err(|e| invalid(ro, "ingest.clock", e))?;
    Ok(())
}

/// The scheduler, the UI's address and the alert rules.
fn scheduler_and_ui(ro: &Loaded, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    let c = &ro.config;
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
        duration(ro, key, text)?;
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
    crate::scheduler::clock::SchedulerClock::parse(&c.scheduler.clock)
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
    Ok(())
}

/// The warehouse URL as configured (no password in a file).
fn warehouse(ro: &Loaded) -> Result<url::Url, ConfigError> {
    let c = &ro.config;
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
    Ok(wh)
}

/// Secrets from the environment: `DATABASE_URL` replaces the warehouse
/// URL, else `PGPASSWORD` goes into it.
fn secrets(
    loaded: &mut Loaded,
    env: &BTreeMap<String, String>,
    wh: url::Url,
) -> Result<(), ConfigError> {
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
