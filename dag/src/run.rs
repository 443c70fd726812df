//! `dag run [SELECTOR]`: the selected silver and gold models, once, in
//! dependency order (models that do not depend on each other at the same
//! time, up to `models.concurrency`; one at a time in a full refresh),
//! each printing what it read, wrote and how long it took, each followed
//! by its data tests as soon as the models they read have run
//! (write-audit-publish). A model whose input failed, or whose input's
//! error-severity test failed, in this run is skipped (upstream_failed),
//! and the warehouse load only runs when nothing failed. Bronze sources
//! and quarantines are listed by the selection but written by the
//! ingester and the cleaning models.

use crate::config::Loaded;
use crate::datatest::Pending;
use crate::events::{Event, EventSink, NodeFinished, NodeState, RunSummary};
use crate::outcome::{CliError, Outcome};
use crate::pipeline::Pipeline;
use jobs::datatest::{Options, TestResult, Tester};
use jobs::model::{Catalog, ModelReport, Settings, run_model};
use jobs::spec::{DataTest, Model, Source};
use jobs::warehouse::load::Gate;
use petgraph::graph::NodeIndex;
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::task::JoinSet;

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

pub async fn run(
    cfg: &Loaded,
    p: &Pipeline,
    selected: &[NodeIndex],
    full_refresh: bool,
    range: Option<jobs::model::DateRange>,
    load: bool,
    events: &dyn EventSink,
) -> Result<Outcome, CliError> {
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
        return Ok(Outcome::Success);
    }
    let run = crate::datatest::run_id();
    events.emit(&Event::RunStarted {
        run: run.clone(),
        nodes: order.iter().map(|n| p.graph[*n].name.clone()).collect(),
        tests: order
            .iter()
            .flat_map(|n| p.graph[*n].tests.iter().map(|t| t.name.clone()))
            .collect(),
    });
    let catalog = Catalog::new(p.graph.node_weights().cloned());
    let mut s = cfg.model_settings(full_refresh);
    s.range = range;
    let tester = Tester::new(catalog.clone(), s.clone(), Options::default())
        .await
        .map_err(anyhow::Error::from)?;
    // Models that are not run here are as settled as those that ran.
    let running: BTreeSet<&str> = order.iter().map(|n| p.graph[*n].name.as_str()).collect();
    let settled = p
        .graph
        .node_weights()
        .map(|m| m.name.clone())
        .filter(|m| !running.contains(m.as_str()))
        .collect();
    let mut exec = Executor {
        p,
        run: run.clone(),
        events,
        catalog,
        settings: s,
        tester: Arc::new(tester),
        pending: Pending::of(p, &order),
        settled,
        failed: BTreeSet::new(),
        why: Vec::new(),
        counts: Counts::default(),
    };
    // A full refresh rebuilds every model from all of its input: each
    // already uses every core, and two at once only add up their memory
    // (10M events: 1.3 -> 1.9 GB peak). Runs of new data are mostly
    // small, latency-bound steps: those overlap.
    let limit = if full_refresh {
        1
    } else {
        cfg.config.models.concurrency()
    };
    exec.execute(&order, limit).await?;
    let Executor {
        tester,
        failed,
        why,
        counts,
        ..
    } = exec;
    let tester = Arc::into_inner(tester)
        .ok_or_else(|| anyhow::anyhow!("a test step of this run still holds its results"))?;
    let results = tester.finish(&run).await.map_err(anyhow::Error::from)?;
    let summary = RunSummary {
        run: run.clone(),
        models_ran: counts.ran,
        models_failed: counts.failed,
        models_skipped: counts.skipped,
        tests: counts.tests,
        tests_failed: counts.tests_failed,
        tests_warned: results
            .iter()
            .filter(|r| r.status == jobs::datatest::Status::Warn)
            .count(),
        ..RunSummary::default()
    };
    let mut outcome = if failed.is_empty() {
        Outcome::Success
    } else {
        Outcome::Failed
    };
    if load {
        // Write-audit-publish: a failed model or error test closes the
        // gate, and the warehouse keeps the last complete, tested state;
        // an open one publishes the versions the tests judged.
        let gate = if why.is_empty() {
            Gate::after(&results)
        } else {
            Gate::Closed(why.join(", "))
        };
        let loaded = load_as_node(cfg, p, selected, gate, &run, events).await;
        if loaded? == Outcome::Failed {
            outcome = Outcome::Failed;
        }
    }
    events.emit(&Event::RunFinished(RunSummary {
        success: outcome == Outcome::Success,
        ..summary
    }));
    Ok(outcome)
}

/// The warehouse load at the end of `run`: a node of the run, as in the
/// scheduler's runs, with its own event after the tables it moved
/// (skipped when the gate is closed).
async fn load_as_node(
    cfg: &Loaded,
    p: &Pipeline,
    selected: &[NodeIndex],
    gate: Gate,
    run: &str,
    events: &dyn EventSink,
) -> Result<Outcome, CliError> {
    let started = std::time::Instant::now();
    let closed = matches!(gate, Gate::Closed(_));
    let loaded = crate::warehouse::load_reporting(cfg, p, selected, gate, run, events).await;
    let state = match &loaded {
        Ok(Outcome::Success) => NodeState::Success,
        _ if closed => NodeState::Skipped,
        _ => NodeState::Failed,
    };
    let error = match &loaded {
        Err(e) => Some(e.to_string()),
        Ok(_) if closed => Some("a model or an error test failed".into()),
        Ok(_) => None,
    };
    events.emit(&Event::NodeFinished(NodeFinished {
        seconds: started.elapsed().as_secs_f64(),
        ..NodeFinished::of(run, crate::pipeline::LOAD_NODE, state, error)
    }));
    loaded
}

/// What one step of a run hands back to the executor.
enum Done {
    /// A model ran (or failed, with the message).
    Model(NodeIndex, Result<ModelReport, String>),
    /// The tests that became ready when `node` settled (by owner), with
    /// the node's own event to emit first; `Err` when the step panicked.
    Tests {
        node: NodeIndex,
        head: NodeFinished,
        results: Result<Vec<(NodeIndex, TestResult)>, String>,
    },
}

/// Runs the models of a run as their inputs allow, up to `limit` steps at
/// once. A model starts when each input it has in the run is *cleared*:
/// the input ran, and the tests that became ready when it settled have
/// judged it (so a failing test stops what is downstream, as in a run one
/// model at a time). Each model's line and its tests' lines print together
/// when they are all known, so concurrent models never interleave lines.
struct Executor<'a> {
    p: &'a Pipeline,
    run: String,
    events: &'a dyn EventSink,
    catalog: Catalog,
    settings: Settings,
    tester: Arc<Tester>,
    pending: Pending,
    /// Model names whose run is over (ran, failed or skipped).
    settled: BTreeSet<String>,
    failed: BTreeSet<NodeIndex>,
    /// Why each failed model failed, for the gate's message.
    why: Vec<String>,
    counts: Counts,
}

impl Executor<'_> {
    /// Runs every model of `order`; an error only when a step could not
    /// be joined (a model or test that fails is a result, not an error).
    async fn execute(&mut self, order: &[NodeIndex], limit: usize) -> anyhow::Result<()> {
        let limit = limit.max(1);
        let in_run: BTreeSet<NodeIndex> = order.iter().copied().collect();
        let mut waiting = critical_first(self.p, order);
        let mut cleared: BTreeSet<NodeIndex> = BTreeSet::new();
        let mut steps: JoinSet<Done> = JoinSet::new();
        loop {
            // Start what can start, in dependency order (a skipped model
            // settles at once, so look again until nothing changes).
            let mut i = 0;
            while i < waiting.len() && steps.len() < limit {
                let n = waiting[i];
                let inputs = self.p.inputs_idx(n);
                if !inputs
                    .iter()
                    .all(|x| !in_run.contains(x) || cleared.contains(x))
                {
                    i += 1;
                    continue;
                }
                waiting.remove(i);
                let name = self.p.graph[n].name.clone();
                if inputs.iter().any(|x| self.failed.contains(x)) {
                    self.failed.insert(n);
                    self.counts.skipped += 1;
                    let head = NodeFinished::of(
                        &self.run,
                        &name,
                        NodeState::Skipped,
                        Some("upstream failed".into()),
                    );
                    self.settle(n, head, &mut steps);
                } else {
                    let (catalog, settings) = (self.catalog.clone(), self.settings.clone());
                    steps.spawn(async move {
                        let r =
                            blocking(
                                move || async move { run_model(&name, &catalog, &settings).await },
                            )
                            .await;
                        Done::Model(n, r.and_then(|r| r.map_err(|e| e.to_string())))
                    });
                }
                i = 0;
            }
            let Some(done) = steps.join_next().await else {
                break;
            };
            match done.map_err(|e| anyhow::anyhow!("a step of the run ended abnormally: {e}"))? {
                Done::Model(n, r) => {
                    release_freed_memory();
                    let name = self.p.graph[n].name.clone();
                    let head = match r {
                        Ok(r) => {
                            self.counts.ran += 1;
                            NodeFinished::ran(&self.run, &r)
                        }
                        Err(e) => {
                            tracing::error!(model = %name, "{e}");
                            self.failed.insert(n);
                            self.why.push(format!("model {name} failed"));
                            self.counts.failed += 1;
                            NodeFinished::of(&self.run, &name, NodeState::Failed, Some(e))
                        }
                    };
                    self.settle(n, head, &mut steps);
                }
                Done::Tests {
                    node,
                    head,
                    results,
                } => {
                    self.events.emit(&Event::NodeFinished(head));
                    let results = match results {
                        Ok(results) => results,
                        Err(error) => {
                            // The tests could not judge: nothing downstream runs.
                            self.events.emit(&Event::TestsNotRun {
                                run: self.run.clone(),
                                after: self.p.graph[node].name.clone(),
                                error,
                            });
                            self.failed.insert(node);
                            self.why
                                .push(format!("tests after {} failed", self.p.graph[node].name));
                            Vec::new()
                        }
                    };
                    for (owner, r) in results {
                        self.counts.tests += 1;
                        if r.status.blocks() {
                            self.counts.tests_failed += 1;
                            self.failed.insert(owner);
                            self.why.push(format!("test {} failed", r.test));
                        }
                        self.events.emit(&Event::TestFinished {
                            run: self.run.clone(),
                            result: r,
                        });
                    }
                    cleared.insert(node);
                }
            }
        }
        debug_assert!(waiting.is_empty(), "every model ran or was skipped");
        Ok(())
    }

    /// `n` is over: its tests that now have every input (its own, and
    /// those that waited for it) run as one step, then `n` is cleared.
    fn settle(&mut self, n: NodeIndex, head: NodeFinished, steps: &mut JoinSet<Done>) {
        self.settled.insert(self.p.graph[n].name.clone());
        // A test over a model that failed or was skipped has nothing new
        // to judge, and the failure already stops the load.
        let tests: Vec<(NodeIndex, DataTest)> = self
            .pending
            .ready(&self.settled)
            .into_iter()
            .filter(|(owner, test)| {
                !jobs::datatest::test_inputs(&self.p.graph[*owner].name, test)
                    .iter()
                    .any(|m| self.failed.iter().any(|f| self.p.graph[*f].name == *m))
            })
            .collect();
        let tests: Vec<(NodeIndex, Model, DataTest)> = tests
            .into_iter()
            .map(|(owner, test)| (owner, self.p.graph[owner].clone(), test))
            .collect();
        let tester = self.tester.clone();
        steps.spawn(async move {
            let results = blocking(move || async move {
                // One after another: each test's seconds are its own.
                let mut results = Vec::with_capacity(tests.len());
                for (owner, model, test) in &tests {
                    results.push((*owner, tester.run(model, test).await));
                }
                results
            })
            .await;
            Done::Tests {
                node: n,
                head,
                results,
            }
        });
    }
}

/// `order` (a dependency order) with the models that head the longest
/// chains of the run first: with fewer slots than ready models, the chain
/// that decides when the run ends starts first (a seed with nothing
/// downstream can wait). Readiness still follows the dependencies.
fn critical_first(p: &Pipeline, order: &[NodeIndex]) -> Vec<NodeIndex> {
    let in_run: BTreeSet<NodeIndex> = order.iter().copied().collect();
    // Models on the longest path from each model to the run's end.
    let mut height: std::collections::BTreeMap<NodeIndex, usize> = Default::default();
    for &n in order.iter().rev() {
        let below = p
            .graph
            .neighbors_directed(n, petgraph::Direction::Outgoing)
            .filter(|m| in_run.contains(m))
            .filter_map(|m| height.get(&m).copied())
            .max()
            .unwrap_or(0);
        height.insert(n, below + 1);
    }
    let mut ranked = order.to_vec();
    // Stable: equal heights keep the dependency order.
    ranked.sort_by_key(|n| std::cmp::Reverse(height[n]));
    ranked
}

/// Hands memory freed by the model that just ended back to the system
/// when the process holds more than [`TRIM_ABOVE`]. glibc keeps freed
/// memory in its arenas, fragmented: the next model's peak then stacked
/// on the last one's (10M events: the biggest model alone peaks at 1.2 GB,
/// the run at 1.6 GB; 1.26 GB with this). Below the bound it is left
/// alone: trimming after every model made the next ones fault their pages
/// back in (1M full run 3.5 -> 3.9 s).
fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    if resident_bytes().is_some_and(|b| b > TRIM_ABOVE) {
        // SAFETY: malloc_trim only returns free pages; no pointer changes.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// Resident memory from which a finished model's freed memory is returned.
const TRIM_ABOVE: u64 = 1 << 30;

/// This process's resident set, from /proc (Linux); `None` elsewhere.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// The future `work` makes, run on the blocking pool and driven by this
/// runtime: models and tests have long CPU-bound stretches that must not
/// hold the runtime's few workers (and their futures need not be `Send`:
/// only `work` crosses threads).
/// A panic there is the step's failure (`Err` with its message).
async fn blocking<F, Fut, T>(work: F) -> Result<T, String>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || rt.block_on(work()))
        .await
        .map_err(|e| format!("panicked: {e}"))
}

#[derive(Default)]
struct Counts {
    ran: usize,
    failed: usize,
    skipped: usize,
    tests: usize,
    tests_failed: usize,
}
