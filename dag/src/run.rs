//! `dag run [SELECTOR]`: the selected silver and gold models, once, in
//! dependency order (models that do not depend on each other at the same
//! time, up to `models.concurrency`; in a full refresh, models reading more
//! than `models.heavy_input_mb` one at a time),
//! each printing what it read, wrote and how long it took, each followed
//! by its data tests as soon as the models they read have run
//! (write-audit-publish). A model whose input failed, or whose input's
//! error-severity test failed, in this run is skipped (upstream_failed),
//! and the warehouse load only runs when nothing failed. Bronze sources
//! and quarantines are listed by the selection but written by the
//! ingester and the cleaning models.
//!
//! The run goes through the one executor (`crate::executor`), as the
//! scheduler's runs do, with its state in memory (and recorded in
//! PostgreSQL by the caller's event sink when a database is configured).

use crate::config::Loaded;
use crate::events::{Event, EventSink};
use crate::executor::memory::MemoryStore;
use crate::executor::task::{self, Runner};
use crate::executor::{Limits, Stop};
use crate::outcome::{CliError, CommandOutcome};
use crate::pipeline::Pipeline;
use jobs::decl::Source;
use petgraph::graph::NodeIndex;
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The models of `selected` that a run executes, in dependency order.
pub fn runnable(p: &Pipeline, selected: &[NodeIndex]) -> Vec<NodeIndex> {
    let chosen: BTreeSet<NodeIndex> = selected.iter().copied().collect();
    p.topo_order()
        .iter()
        .copied()
        .filter(|n| chosen.contains(n))
        .filter(|n| {
            let source = &p.graph[*n].source;
            !(source.is_bronze_source() || matches!(source, Source::Quarantine { .. }))
        })
        .collect()
}

/// Runs the models of `selected` once through the executor, with their
/// tests and, when `load`, the warehouse load; what happens goes to
/// `events`.
pub async fn run(
    cfg: &Loaded,
    p: &Pipeline,
    selected: &[NodeIndex],
    full_refresh: bool,
    range: Option<jobs::model::DateRange>,
    load: bool,
    events: &dyn EventSink,
) -> Result<CommandOutcome, CliError> {
    let full_refresh = full_refresh || range.is_some();
    // File sources in the selection take their new files first: a batch
    // pipeline runs end to end with `dag run` alone.
    let files: Vec<String> = selected
        .iter()
        .map(|n| &p.graph[*n])
        .filter(|m| matches!(m.source, Source::Files { .. }))
        .map(|m| m.name.clone())
        .collect();
    if !files.is_empty() {
        crate::ingest::ingest_files_once(cfg, p, &files).await?;
    }
    let order = runnable(p, selected);
    if order.is_empty() {
        println!("nothing to run: the selection holds no silver or gold model");
        return Ok(CommandOutcome::Success);
    }
    let run = crate::datatest::run_id();
    let tasks = task::plan(p, &order, load);
    if load && !tasks.iter().any(|t| t.node == crate::pipeline::LOAD_NODE) {
        events.emit(&Event::LoadFinished {
            run: run.clone(),
            selected: false,
            blocked: None,
            tables: Vec::new(),
            current: Vec::new(),
            missing: Vec::new(),
        });
    }
    let mut s = cfg.model_settings(full_refresh);
    s.range = range;
    if order.iter().any(|n| !p.graph[*n].tests.is_empty()) {
        // Tasks that end together append to one results table rather than
        // race to create it.
        jobs::datatest::results::ensure(&s)
            .await
            .map_err(anyhow::Error::from)?;
    }
    let (relay, mut relayed) = mpsc::unbounded_channel();
    // This run is the only writer of test results while it lasts.
    let mut runner = Runner::with_settings(cfg, p.clone(), s).keeping_test_bases();
    runner.events = Arc::new(Relay(relay));
    // A full refresh rebuilds every model from all of its input: a big
    // one already uses every core, and two at once only add up their
    // memory (10M events: 1.3 -> 1.9 GB peak), so those run one at a time;
    // small models run beside them. Runs of new data are mostly small,
    // latency-bound steps: those overlap.
    let limits = Limits {
        concurrency: cfg.config.models.concurrency(),
        lease: None,
        timeout: None,
        grace: std::time::Duration::ZERO,
        heavy_bytes: full_refresh.then_some(
            u64::try_from(cfg.config.models.heavy_input_mb)
                .unwrap_or(0)
                .saturating_mul(1 << 20),
        ),
    };
    // A `dag run` fails fast: a failed task is not tried again.
    let store = Arc::new(MemoryStore::new(&run, tasks, 1));
    let stop = Stop::default();
    let runner = Arc::new(runner);
    let execute = async {
        crate::executor::drive(store.clone(), runner.clone(), limits, &stop).await;
        // The load, or the run's end, appended them; what is left (a run
        // that did not end) is appended now.
        let flushed = crate::executor::record_results(&*store, &runner, 0, &run).await;
        drop(runner);
        flushed
    };
    // The executor's events reach `events` (which need not outlive this
    // call) here, in the order they were emitted.
    let show = async {
        while let Some(e) = relayed.recv().await {
            events.emit(&e);
        }
    };
    let (flushed, ()) = tokio::join!(execute, show);
    flushed.map_err(|e| anyhow::anyhow!("recording the test results: {e:#}"))?;
    // A load that failed fails the command with its error, as `dag load`.
    if let Some(e) = store.error_of(crate::pipeline::LOAD_NODE) {
        return Err(CliError::Other(anyhow::anyhow!(e)));
    }
    Ok(if store.succeeded() {
        CommandOutcome::Success
    } else {
        CommandOutcome::Failed
    })
}

/// Hands events on to the caller's sink through a channel.
struct Relay(mpsc::UnboundedSender<Event>);

impl EventSink for Relay {
    fn emit(&self, event: &Event) {
        let _ = self.0.send(event.clone());
    }
}
