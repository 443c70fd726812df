//! Structured logs on stderr (text or JSON), filtered by RUST_LOG or -v.

use crate::cli::LogFormat;
use tracing_subscriber::EnvFilter;

pub fn init(format: LogFormat, verbose: u8) {
    // Our crates at the asked level; dependencies (deltalake, the Delta
    // kernel, DataFusion, librdkafka) only when they warn, unless -vv.
    // The kernel logs a missing table (before we create it) as an error.
    // deltalake warns of every commit that meets another writer's ("table
    // updated during transaction") and logs the conflicts it gives up on
    // as errors: normal events between our concurrent writers, whose
    // outcome (retried, or fenced) we report ourselves.
    // sqlx warns of every statement slower than a second: a load's COPY
    // of a big table, or a wait for the load lock, which we report.
    let default = match verbose {
        0 => {
            "warn,dag=info,jobs=info,buoyant_kernel::snapshot::builder=off,deltalake_core::writer::stats=error,deltalake_core::kernel::transaction=off,sqlx::query=error"
        }
        1 => {
            "warn,dag=debug,jobs=debug,buoyant_kernel::snapshot::builder=off,deltalake_core::writer::stats=error"
        }
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests calling twice) is harmless: keep the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
