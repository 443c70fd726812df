//! The passes of one file source until it is stopped (or, run once, has
//! nothing new), retrying an unreachable store for `retry_timeout`.

use super::settings::{FileIngestSettings, FileSourceSpec};
use super::source::{Pass, Source};
use crate::bronze::ingest::{IngestError, IngestReport, IngestStats};
use object_store::ObjectStore;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Ingests the source until `stop` is set (or, with `until_caught_up`,
/// until a listing finds nothing new), retrying an unreachable store for
/// `retry_timeout`.
pub async fn run(
    spec: FileSourceSpec,
    settings: FileIngestSettings,
    stop: Arc<AtomicBool>,
    stats: Arc<IngestStats>,
) -> Result<IngestReport, IngestError> {
    let table_err = |message: String| IngestError::Table {
        source_name: spec.name.clone(),
        table: spec.location.url.to_string(),
        message,
    };
    let (store, prefix) = object_store::parse_url_opts(&spec.root, &spec.root_options)
        .map_err(|e| table_err(format!("cannot reach the source folder {}: {e}", spec.root)))?;
    let store: Arc<dyn ObjectStore> = Arc::from(store);
    let mut source = Source::new(&spec, store, prefix);
    let started = Instant::now();
    let mut report = IngestReport {
        source: spec.name.clone(),
        table: spec.location.url.to_string(),
        version: -1,
        file_source: true,
        ..IngestReport::default()
    };
    let mut failing_since: Option<Instant> = None;
    let mut backoff = Duration::from_millis(200);
    loop {
        match source.pass(&settings, &stats, &mut report).await {
            Ok(pass) => {
                failing_since = None;
                backoff = Duration::from_millis(200);
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                match pass {
                    Pass::Committed => continue,
                    // A run-once ingest waits for files still settling.
                    Pass::Settling if settings.until_caught_up => {
                        sleep_unless_stopped(Duration::from_millis(200), &stop).await;
                        continue;
                    }
                    _ if settings.until_caught_up => break,
                    _ => {}
                }
                sleep_unless_stopped(settings.poll, &stop).await;
                if stop.load(Ordering::SeqCst) {
                    break;
                }
            }
            Err(e) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= settings.retry_timeout {
                    return Err(table_err(format!(
                        "gave up after {:.0} s of failures: {e}",
                        since.elapsed().as_secs_f64()
                    )));
                }
                tracing::warn!(source = %spec.name, error = %e, retry_in = ?backoff, "file source: retrying");
                // What the table holds is read again before the next plan:
                // the failed commit may have landed.
                source.table = None;
                sleep_unless_stopped(backoff, &stop).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                if stop.load(Ordering::SeqCst) {
                    return Err(table_err(format!("stopped while failing: {e}")));
                }
            }
        }
    }
    report.active_seconds = started.elapsed().as_secs_f64();
    if let Some(t) = &source.table {
        report.version = t.version();
    }
    Ok(report)
}

/// Sleeps `total`, waking early once `stop` is set.
async fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let until = Instant::now() + total;
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(100).min(until - Instant::now())).await;
    }
}
