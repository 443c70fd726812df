//! `dag ingest`: one bronze ingester per Kafka source, each on its own
//! thread, and one per file source, until SIGTERM/SIGINT (or, with
//! `--until-caught-up`, until every partition reached the high watermark
//! seen at start and every file source's listing found nothing new). A
//! progress line on an interactive terminal; a summary per source at the
//! end.

use crate::config::Loaded;
use crate::outcome::{CliError, CommandOutcome};
use crate::pipeline::Pipeline;
use jobs::bronze::files::FileSourceSpec;
use jobs::bronze::{IngestReport, IngestStats, SourceSpec, TableLocation};
use jobs::decl::Source;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The bronze sources of a pipeline that `dag ingest` runs.
#[derive(Debug, Default)]
pub struct Sources {
    pub kafka: Vec<SourceSpec>,
    pub files: Vec<FileSourceSpec>,
}

/// The Kafka and file sources of the pipeline, or the named ones.
pub fn sources(cfg: &Loaded, p: &Pipeline, names: &[String]) -> Result<Sources, CliError> {
    let all: Vec<(String, String)> = p
        .graph
        .node_weights()
        .filter_map(|m| match &m.source {
            Source::Kafka { topic } => Some((m.name.clone(), topic.clone())),
            _ => None,
        })
        .collect();
    let mut out = Sources::default();
    for m in p.graph.node_weights() {
        let Source::Files { path, format } = &m.source else {
            continue;
        };
        if !names.is_empty() && !names.contains(&m.name) {
            continue;
        }
        let (root, root_options) = cfg
            .file_source_root(path)
            .map_err(|e| CliError::Other(anyhow::anyhow!("file source {}: path {e}", m.name)))?;
        let location =
            TableLocation::in_lake(&cfg.lake_url(), "bronze", &m.name, cfg.storage_options())
                .map_err(|e| CliError::Other(anyhow::anyhow!("lake: {e}")))?;
        out.files.push(FileSourceSpec {
            name: m.name.clone(),
            root,
            root_options,
            format: *format,
            location,
        });
    }
    let mut chosen = Vec::new();
    for n in names {
        let is_file_source = out.files.iter().any(|f| &f.name == n);
        if !is_file_source && !all.iter().any(|(name, _)| name == n) {
            let known: Vec<&str> = p
                .graph
                .node_weights()
                .filter(|m| m.source.is_bronze_source())
                .map(|m| m.name.as_str())
                .collect();
            return Err(CliError::Selector(format!(
                "`{n}` is not a source of pipeline {}{} (sources: {})",
                p.name,
                jobs::decl::did_you_mean(n, known.iter().copied()),
                known.join(", ")
            )));
        }
    }
    for (name, topic) in all {
        if names.is_empty() || names.contains(&name) {
            let location =
                TableLocation::in_lake(&cfg.lake_url(), "bronze", &name, cfg.storage_options())
                    .map_err(|e| CliError::Other(anyhow::anyhow!("lake: {e}")))?;
            chosen.push(SourceSpec {
                name,
                topic,
                location,
            });
        }
    }
    out.kafka = chosen;
    Ok(out)
}

/// One pass over the named file sources (what arrived since they last
/// ran), with a line per source: the first step of a `dag run` that
/// selects them.
pub async fn ingest_files_once(
    cfg: &Loaded,
    p: &Pipeline,
    names: &[String],
) -> Result<(), CliError> {
    let Sources { files, .. } = sources(cfg, p, names)?;
    let settings = cfg.file_ingest_settings(true);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    for spec in files {
        let stats = Arc::new(IngestStats::default());
        let report = jobs::bronze::files::run(spec, settings.clone(), stop.clone(), stats)
            .await
            .map_err(|e| CliError::Other(anyhow::anyhow!("{e}")))?;
        println!("{}", summary(&report, started.elapsed().as_secs_f64()));
    }
    Ok(())
}

/// Sets `stop` on SIGTERM or SIGINT; a second signal exits at once
/// (nothing is lost: uncommitted messages are read again).
pub fn stop_on_signals() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return;
        };
        let Ok(mut int) = signal(SignalKind::interrupt()) else {
            return;
        };
        for n in 0.. {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            if n == 0 {
                tracing::info!("stopping: committing what is pending (signal again to quit now)");
                flag.store(true, Ordering::SeqCst);
            } else {
                std::process::exit(130);
            }
        }
    });
    stop
}

pub async fn run(
    cfg: &Loaded,
    p: &Pipeline,
    names: &[String],
    until_caught_up: bool,
) -> Result<CommandOutcome, CliError> {
    let stop = stop_on_signals();
    run_sharing(
        cfg,
        p,
        names,
        until_caught_up,
        &SharedStats::default(),
        stop,
    )
    .await
}

/// Each running ingester's counters, by source (for the scheduler's
/// metrics).
pub type SharedStats = Arc<std::sync::Mutex<Vec<(String, Arc<IngestStats>)>>>;

/// [`run`], publishing each ingester's counters into `shared`, until
/// caught up or `stop` is set (then it commits what is pending).
pub async fn run_sharing(
    cfg: &Loaded,
    p: &Pipeline,
    names: &[String],
    until_caught_up: bool,
    shared: &SharedStats,
    stop: Arc<AtomicBool>,
) -> Result<CommandOutcome, CliError> {
    let Sources {
        kafka: specs,
        files,
    } = sources(cfg, p, names)?;
    if specs.is_empty() && files.is_empty() {
        println!("pipeline {} has no sources to ingest", p.name);
        return Ok(CommandOutcome::Success);
    }
    let mut settings = cfg.ingest_settings();
    settings.until_caught_up = until_caught_up;
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut all_stats = Vec::new();
    let file_settings = cfg.file_ingest_settings(until_caught_up);
    // Each ingester's counters, for the progress line and the scheduler's
    // metrics (a restarted ingester replaces its predecessor's).
    let mut register = |name: &str| {
        let stats = Arc::new(IngestStats::default());
        all_stats.push((name.to_string(), stats.clone()));
        if let Ok(mut s) = shared.lock() {
            s.retain(|(n, _)| n != name);
            s.push((name.to_string(), stats.clone()));
        }
        stats
    };
    for spec in files {
        let stats = register(&spec.name);
        let (settings, stop) = (file_settings.clone(), stop.clone());
        tasks.push(tokio::spawn(jobs::bronze::files::run(
            spec, settings, stop, stats,
        )));
    }
    for spec in specs {
        let stats = register(&spec.name);
        let (settings, stop, rt) = (
            settings.clone(),
            stop.clone(),
            tokio::runtime::Handle::current(),
        );
        tasks.push(tokio::task::spawn_blocking(move || {
            jobs::bronze::run(spec, settings, rt, stop, stats)
        }));
    }
    let progress = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(250));
        bar
    });
    let mut results = futures::future::join_all(tasks);
    let joined = loop {
        tokio::select! {
            r = &mut results => break r,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                if let Some(bar) = &progress {
                    bar.set_message(progress_line(&all_stats, started.elapsed()));
                }
            }
        }
    };
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let mut failed = Vec::new();
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    for r in joined {
        match r {
            Ok(Ok(report)) => println!("{}", summary(&report, secs)),
            Ok(Err(e)) => failed.push(e.to_string()),
            Err(e) => failed.push(format!("ingester thread failed: {e}")),
        }
    }
    if failed.is_empty() {
        Ok(CommandOutcome::Success)
    } else {
        Err(CliError::Other(anyhow::anyhow!(failed.join("\n"))))
    }
}

fn summary(r: &IngestReport, secs: f64) -> String {
    if r.file_source {
        return format!(
            "{}: {} records of {} new file(s){} committed in {} commits, table version {}",
            r.source,
            r.rows,
            r.files,
            if r.unreadable > 0 {
                format!(
                    " ({} unreadable, quarantined by its cleaning model)",
                    r.unreadable
                )
            } else {
                String::new()
            },
            r.commits,
            r.version
        );
    }
    let active = if r.active_seconds > 0.0 {
        r.active_seconds
    } else {
        secs
    };
    format!(
        "{}: {} messages ({:.1} MB) committed in {} commits, table version {}; {:.0} msg/s, {:.1} MB/s over {:.1} s from the first message ({:.1} s in all){}{}",
        r.source,
        r.rows,
        r.bytes as f64 / 1e6,
        r.commits,
        r.version,
        r.rows as f64 / active,
        r.bytes as f64 / 1e6 / active,
        active,
        secs,
        if r.skipped > 0 {
            format!(", {} already in the table skipped", r.skipped)
        } else {
            String::new()
        },
        if r.fenced > 0 {
            format!(", {} batches fenced by another writer", r.fenced)
        } else if r.caught_up_at_start {
            ", already at the topic's high watermarks".to_string()
        } else {
            String::new()
        },
    )
}

fn progress_line(stats: &[(String, Arc<IngestStats>)], elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    stats
        .iter()
        .map(|(name, s)| {
            let consumed = s.consumed.load(Ordering::Relaxed);
            let lag: Vec<String> = s
                .lags()
                .iter()
                .map(|(p, lag)| format!("p{p}:{lag}"))
                .collect();
            format!(
                "{name}: {consumed} read, {} committed, {:.0} msg/s, lag [{}]",
                s.committed_rows.load(Ordering::Relaxed),
                consumed as f64 / secs,
                lag.join(" ")
            )
        })
        .collect::<Vec<_>>()
        .join(" | ")
}
