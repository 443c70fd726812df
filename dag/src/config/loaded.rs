//! The configuration after loading and validation, with resolved paths,
//! and the settings of each part of the engine it describes (ingest,
//! models, warehouse, file sources, template variables).

use super::origin::{ConfigError, Origin};
use super::sections::Config;
use std::collections::BTreeMap;
use std::path::PathBuf;

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
            retry_timeout: jobs::decl::parse_duration(&self.config.warehouse.retry_timeout)
                .unwrap_or(std::time::Duration::from_secs(60)),
        }
    }

    /// The bronze ingest settings this configuration describes (validated
    /// at load, so parsing cannot fail here).
    pub fn ingest_settings(&self) -> jobs::bronze::IngestSettings {
        let c = &self.config;
        let dur = |t: &str, d: u64| {
            jobs::decl::parse_duration(t).unwrap_or(std::time::Duration::from_secs(d))
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
            clock: jobs::bronze::IngestClock::parse(&c.ingest.clock)
                .unwrap_or(jobs::bronze::IngestClock::System),
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
            settle: jobs::decl::parse_duration(&self.config.ingest.file_settle)
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
                        jobs::decl::parser_message(&e.to_string())
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
    pub fn model_settings(&self, full_refresh: bool) -> jobs::model::RunSettings {
        jobs::model::RunSettings {
            full_refresh,
            clean_batch_bytes: self.config.models.clean_batch_mb << 20,
            ..jobs::model::RunSettings::new(
                self.lake_url(),
                self.storage_options(),
                self.data_dir(),
            )
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

    pub(super) fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }
}
