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
//!
//! - [`sections`]: the sections and keys, with their defaults;
//! - [`origin`]: where a value came from, and the errors that name it;
//! - [`loaded`]: the validated configuration and the settings of each
//!   part of the engine it describes;
//! - [`keys`]: the check of keys and types against the defaults;
//! - [`validate`]: the check of values.

mod keys;
mod loaded;
mod origin;
mod sections;
mod validate;

pub use loaded::Loaded;
pub use origin::{ConfigError, Origin};
pub use sections::*;

use keys::{check_keys, env_value, insert_path, lookup};
use std::collections::BTreeMap;
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
    validate::validate(&mut loaded, env)?;
    loaded.vars = loaded.template_vars(None)?;
    Ok(loaded)
}
