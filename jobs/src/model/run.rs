//! Running one model: the kind decides which runner does the work.

use super::{Catalog, ModelError, ModelReport, RunSettings, clean, seed, sql};
use crate::decl::Source;
use std::time::Instant;

/// Runs one model (not a bronze source or a quarantine: those are written
/// by the ingester and by their cleaning model).
pub async fn run_model(
    name: &str,
    catalog: &Catalog,
    settings: &RunSettings,
) -> Result<ModelReport, ModelError> {
    let started = Instant::now();
    let model = catalog.model(name)?;
    let mut report = match &model.source {
        Source::Clean { .. } => clean::run(model, catalog, settings).await?,
        Source::Seed { file } => seed::run(model, file, catalog, settings).await?,
        Source::Sql {
            sql,
            asof,
            scope,
            accumulate,
        } => sql::run(model, sql, asof, scope, accumulate, catalog, settings).await?,
        Source::Kafka { .. } | Source::Files { .. } | Source::Quarantine { .. } => {
            return Err(ModelError::Input(format!(
                "`{name}` is a {}: it is written by {}, not run",
                model.source.kind_name(),
                if model.source.is_bronze_source() {
                    "`dag ingest`"
                } else {
                    "its cleaning model"
                }
            )));
        }
    };
    report.model = name.to_string();
    report.seconds = started.elapsed().as_secs_f64();
    // Fault injection for the exactly-once tests: the process dies right
    // after this model's commit, before anything downstream of it runs.
    if std::env::var(ABORT_AFTER).is_ok_and(|m| m == name) {
        eprintln!("{ABORT_AFTER}={name}: aborting after its commit");
        std::process::abort();
    }
    Ok(report)
}

/// Names a model after whose commit the process aborts (tests only).
pub const ABORT_AFTER: &str = "DAG_TEST_ABORT_AFTER";
