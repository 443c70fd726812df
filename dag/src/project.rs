//! The configuration and the pipeline, loaded the way every command loads
//! them: `--config` and `--vars` applied, every problem of the pipeline's
//! files reported at once.

use crate::config::{self, Loaded};
use crate::outcome::CliError;
use crate::pipeline::Pipeline;
use std::collections::BTreeMap;

/// The process environment as a map (config reads it through this).
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

/// Loads the configuration the way every command does; `vars` is `--vars`.
pub fn load_config(
    explicit: Option<&std::path::Path>,
    vars: Option<&str>,
) -> Result<Loaded, CliError> {
    let cwd = std::env::current_dir().map_err(|e| CliError::Other(e.into()))?;
    let mut cfg = config::load(explicit, &process_env(), &cwd)?;
    cfg.vars = cfg.template_vars(vars)?;
    Ok(cfg)
}

/// Loads the configured pipeline, with every problem reported at once.
pub fn load_pipeline(cfg: &Loaded) -> Result<Pipeline, CliError> {
    let root = cfg.pipeline_dir();
    Pipeline::load_with_vars(&root, &cfg.vars)
        .map_err(|diags| CliError::Pipeline { path: root, diags })
}
