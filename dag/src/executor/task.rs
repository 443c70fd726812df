//! What the tasks of a run are, and what one does: a model node runs its
//! model and the data tests it owns in the run; the load node loads the
//! run's warehouse models (it waits for all of them, so a failed model or
//! test upstream leaves the warehouse as it was).
//!
//! One rule says when a data test runs, for `dag run` and the scheduler
//! alike: in the task of the last (in dependency order) of the run's
//! models it reads, which waits for the others ([`NewTask::after`]), so
//! the test sees each of them as the run left it. A failing error test
//! fails its task, and what is downstream of that task does not run.

use super::state::{Claim, Done, RunView, TaskError, TaskOutcome};
use crate::config::Loaded;
use crate::events::{Console, EventSink, Style};
use crate::pipeline::LOAD_NODE;
use crate::pipeline::Pipeline;
use jobs::datatest::{Options, Status, Tester, test_inputs};
use jobs::decl::DataTest;
use jobs::model::{Cancel, Catalog, RunSettings, run_model};
use jobs::stall::{STALL_TESTS, stall_if_asked};
use jobs::warehouse::load::Gate;
use petgraph::graph::NodeIndex;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

/// One node of a new run and the nodes of the same run it waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTask {
    pub node: String,
    /// Runs once these succeeded; skipped if one fails.
    pub upstream: Vec<String>,
    /// Runs once these ended, however: the other models its tests read.
    pub after: Vec<String>,
    /// Of two ready tasks the higher runs first: the longest chain of the
    /// run's tasks this one heads.
    pub priority: i32,
}

/// The tasks of a run of `nodes` (runnable models): each waits for the
/// nearest models of the run upstream of it (through models outside the
/// run) and for the other models its tests read; the load, when `load`
/// and a warehouse model is in the run, waits for every model of the run.
pub fn plan(p: &Pipeline, nodes: &[NodeIndex], load: bool) -> Vec<NewTask> {
    let chosen: BTreeSet<NodeIndex> = nodes.iter().copied().collect();
    let names: BTreeSet<String> = nodes.iter().map(|n| p.graph[*n].name.clone()).collect();
    let mut tasks: Vec<NewTask> = Vec::new();
    for n in p.topo_order().iter().filter(|n| chosen.contains(n)) {
        let mut upstream = BTreeSet::new();
        let mut stack = p.inputs_idx(*n);
        let mut seen = BTreeSet::new();
        while let Some(i) = stack.pop() {
            if !seen.insert(i) {
                continue;
            }
            if chosen.contains(&i) {
                upstream.insert(p.graph[i].name.clone());
            } else {
                stack.extend(p.inputs_idx(i));
            }
        }
        let node = p.graph[*n].name.clone();
        let after: BTreeSet<String> = owned_tests(p, &names, &node)
            .iter()
            .flat_map(|(owner, t)| test_inputs(&p.graph[*owner].name, t))
            .filter(|m| names.contains(m) && *m != node && !upstream.contains(m))
            .collect();
        tasks.push(NewTask {
            node,
            upstream: upstream.into_iter().collect(),
            after: after.into_iter().collect(),
            priority: 0,
        });
    }
    if load && nodes.iter().any(|n| p.graph[*n].warehouse.is_some()) {
        tasks.push(NewTask {
            node: LOAD_NODE.to_string(),
            upstream: tasks.iter().map(|t| t.node.clone()).collect(),
            after: Vec::new(),
            priority: 0,
        });
    }
    rank_by_chain(&mut tasks);
    tasks
}

/// Sets each task's priority to the length of the longest chain of tasks
/// it heads: with fewer slots than ready tasks, the chain that decides
/// when the run ends starts first (a seed with nothing downstream can
/// wait). `tasks` is in dependency order.
fn rank_by_chain(tasks: &mut [NewTask]) {
    let mut height: BTreeMap<String, i32> = BTreeMap::new();
    for i in (0..tasks.len()).rev() {
        let node = &tasks[i].node;
        let below = tasks[i + 1..]
            .iter()
            .filter(|t| t.upstream.contains(node) || t.after.contains(node))
            .filter_map(|t| height.get(&t.node).copied())
            .max()
            .unwrap_or(0);
        height.insert(node.clone(), below + 1);
        tasks[i].priority = below + 1;
    }
}

/// The tests `node` runs in a run of `run_nodes`: a test of a model in the
/// run belongs to the last, in dependency order, of the run's models it
/// reads (a fact's relationships test towards a dimension built from that
/// fact runs with the dimension).
fn owned_tests(
    p: &Pipeline,
    run_nodes: &BTreeSet<String>,
    node: &str,
) -> Vec<(NodeIndex, DataTest)> {
    let rank: BTreeMap<&str, usize> = p
        .topo_order()
        .iter()
        .enumerate()
        .map(|(i, n)| (p.graph[*n].name.as_str(), i))
        .collect();
    let mut out = Vec::new();
    for name in run_nodes {
        let Some(idx) = p.node(name) else {
            continue;
        };
        for t in &p.graph[idx].tests {
            let owner = test_inputs(name, t)
                .into_iter()
                .filter(|m| run_nodes.contains(m))
                .max_by_key(|m| rank.get(m.as_str()).copied().unwrap_or(0));
            if owner.as_deref() == Some(node) {
                out.push((idx, t.clone()));
            }
        }
    }
    out
}

/// Runs tasks for one executor: the pipeline, where the lake is.
pub struct Runner {
    /// Where what a task did goes (the scheduler's console by default).
    pub events: Arc<dyn EventSink>,
    pub cfg: Loaded,
    pub p: Pipeline,
    catalog: Catalog,
    settings: RunSettings,
    /// The tests' bases (their last clean passes), read once and kept
    /// up to date by this process's tasks. A base another process moved
    /// meanwhile is older here, never newer: a test then reads more rows
    /// than it had to, and judges them the same. None: each task reads them
    /// from the results table. The lock is held across the first read, so
    /// tasks starting together wait for it instead of each reading the
    /// whole table (a run with nothing new read it six times).
    bases: Option<tokio::sync::Mutex<Option<jobs::datatest::results::Bases>>>,
    /// The warehouse, made ready by the first load and kept for the next.
    warehouse: crate::warehouse::Ready,
}

impl Runner {
    /// A runner of new data (the scheduler's).
    pub fn new(cfg: &Loaded, p: Pipeline) -> Runner {
        Runner::with_settings(cfg, p, cfg.model_settings(false))
    }

    /// A runner whose models run with `settings` (a full refresh, a range).
    pub fn with_settings(cfg: &Loaded, p: Pipeline, settings: RunSettings) -> Runner {
        Runner {
            events: Arc::new(Console::new(Style::Log)),
            catalog: Catalog::new(p.graph.node_weights().cloned()),
            settings,
            cfg: cfg.clone(),
            p,
            bases: None,
            warehouse: crate::warehouse::Ready::default(),
        }
    }

    /// Appends `results` of the run `run` (its name in the results table)
    /// to the results table, in one commit. A task's results are kept by
    /// its run's state store until its load or its end
    /// ([`super::record_results`]).
    pub async fn append_results(
        &self,
        run: &str,
        results: &[jobs::datatest::TestResult],
    ) -> anyhow::Result<()> {
        jobs::datatest::results::append(
            &self.settings,
            run,
            chrono::Utc::now(),
            results,
            Some(self.catalog.tables()),
        )
        .await?;
        Ok(())
    }

    /// Reads the tests' bases once and keeps them in memory (see
    /// `Runner::bases`): a run's tasks then do not each read the whole
    /// results table (1M events, nothing new: 0.43 s with a read per
    /// task), nor does a long-lived scheduler's, whose results table grows
    /// with its history.
    pub fn keeping_test_bases(mut self) -> Runner {
        self.bases = Some(tokio::sync::Mutex::new(None));
        self
    }

    /// The tester of a task: from the kept bases, or reading them.
    async fn tester(&self, settings: &RunSettings) -> Result<Tester, jobs::model::ModelError> {
        let Some(kept) = &self.bases else {
            return Tester::new(self.catalog.clone(), settings.clone(), Options::default()).await;
        };
        let bases = {
            let mut known = kept.lock().await;
            match known.as_ref() {
                Some(b) => b.clone(),
                None => known
                    .insert(jobs::datatest::results::Bases::read(settings).await?)
                    .clone(),
            }
        };
        Ok(Tester::with_bases(
            self.catalog.clone(),
            settings.clone(),
            Options::default(),
            bases,
        ))
    }

    /// Keeps what `tester` learnt (its tests' new passes) for later tasks.
    async fn keep_bases(&self, tester: &Tester) {
        if let Some(kept) = &self.bases {
            let mut kept = kept.lock().await;
            match kept.as_mut() {
                Some(k) => k.absorb(tester.bases()),
                None => *kept = Some(tester.bases()),
            }
        }
    }

    /// Bytes of the files `node`'s inputs hold now (what a rebuild of it
    /// reads); an input that cannot be opened counts as unbounded, the
    /// load and unknown nodes as nothing.
    pub async fn input_bytes(&self, node: &str) -> u64 {
        let Some(n) = self.p.node(node) else {
            return 0;
        };
        let mut bytes = 0u64;
        for input in self.p.inputs(n) {
            let files = match self.catalog.open_input(&input.name, &self.settings).await {
                Ok(table) => table.files().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match files {
                Ok(files) => {
                    bytes += files
                        .iter()
                        .map(|f| u64::try_from(f.size).unwrap_or(0))
                        .sum::<u64>();
                }
                Err(e) => {
                    tracing::debug!(node, input = %input.name, "input not weighed: {e}");
                    return u64::MAX;
                }
            }
        }
        bytes
    }

    /// Runs the task `c` of a run whose state is `run`; no commit happens
    /// once `cancel` is set. The load node publishes the versions the
    /// run's model tasks left and tested.
    pub async fn execute(&self, c: &Claim, run: &RunView, cancel: Cancel) -> TaskOutcome {
        let settings = RunSettings {
            cancel,
            ..self.settings.clone()
        };
        let started = Instant::now();
        if c.node == LOAD_NODE {
            return self.load(c, run, started).await;
        }
        let report = match run_model(&c.node, &self.catalog, &settings).await {
            Ok(r) => r,
            Err(e) => {
                let kind = if e.is_transient() {
                    TaskError::transient
                } else {
                    TaskError::deterministic
                };
                return TaskOutcome {
                    done: Done {
                        seconds: started.elapsed().as_secs_f64(),
                        ..Done::default()
                    },
                    tests: Vec::new(),
                    error: Some(kind(e.to_string())),
                };
            }
        };
        let mut outcome = TaskOutcome {
            done: Done {
                rows_in: Some(report.rows_in as i64),
                rows_out: Some(report.rows_out as i64),
                version: report.version,
                quarantined: report.quarantined,
                duplicates: report.duplicates,
                note: report.note,
                ..Done::default()
            },
            ..TaskOutcome::default()
        };
        let model_seconds = started.elapsed().as_secs_f64();
        self.test(c, run, &settings, &mut outcome).await;
        let tests_seconds = started.elapsed().as_secs_f64() - model_seconds;
        // The version this task left the table at (what the load may
        // publish): written now, else judged by its tests, else, for a
        // model the load publishes, as found (one more table open).
        let tested = outcome
            .tests
            .iter()
            .filter(|r| r.model == c.node)
            .map(|r| r.version)
            .max();
        outcome.done.left_at = match outcome.done.version.or(tested) {
            Some(v) => Some(v),
            None if self.p.model(&c.node).is_some_and(|m| m.warehouse.is_some()) => self
                .catalog
                .open_input(&c.node, &settings)
                .await
                .ok()
                .map(|t| t.version()),
            None => None,
        };
        outcome.done.seconds = started.elapsed().as_secs_f64();
        // Where a task's time goes (`-v`): the model, its tests, and the
        // rest.
        tracing::debug!(
            "task {} of run {}: model {:.3} s ({} rows in), {} tests {:.3} s, rest {:.3} s",
            c.node,
            c.run,
            model_seconds,
            report.rows_in,
            outcome.tests.len(),
            tests_seconds,
            outcome.done.seconds - model_seconds - tests_seconds
        );
        outcome
    }

    /// Runs the tests `c` owns whose inputs did not fail in this run, and
    /// keeps their results; an error test that failed fails the task.
    async fn test(&self, c: &Claim, run: &RunView, settings: &RunSettings, out: &mut TaskOutcome) {
        let nodes: BTreeSet<String> = run.nodes.iter().cloned().collect();
        let tests: Vec<(NodeIndex, DataTest)> = owned_tests(&self.p, &nodes, &c.node)
            .into_iter()
            // A test over a model that failed or was skipped has nothing
            // new to judge, and the failure already stops the load.
            .filter(|(owner, t)| {
                !test_inputs(&self.p.graph[*owner].name, t)
                    .iter()
                    .any(|m| run.failed.contains(m))
            })
            .collect();
        if tests.is_empty() {
            return;
        }
        stall_if_asked(STALL_TESTS, &c.node, "tests").await;
        let tester = match self.tester(settings).await {
            Ok(t) => t,
            Err(e) => {
                out.error = Some(TaskError::transient(format!("tests: {e}")));
                return;
            }
        };
        // The tests judge the versions the run's load publishes: each
        // model's as its task in this run left it, and this task's model
        // as it wrote it, whatever another writer committed since.
        for (model, v) in &run.versions {
            tester.pin(model, *v);
        }
        if let Some(v) = out.done.version {
            tester.pin(&c.node, v);
        }
        // One after another: each test's seconds are its own.
        for (idx, t) in &tests {
            tester.run(&self.p.graph[*idx], t).await;
        }
        self.keep_bases(&tester).await;
        // Kept with the task's outcome by the run's state store, appended
        // with the run's others before its load.
        let results = tester.into_results();
        tracing::debug!(
            "task {}: {} tests ran in {:.3} s",
            c.node,
            results.len(),
            results.iter().map(|r| r.seconds).sum::<f64>(),
        );
        let failed: Vec<String> = results
            .iter()
            .filter(|r| r.status.blocks())
            .map(|r| {
                format!(
                    "test {} failed ({}: {})",
                    r.test,
                    r.status.as_str(),
                    r.message
                )
            })
            .collect();
        if !failed.is_empty() {
            // A test that could not run may run next time; one that judged
            // the data failing judges it the same way again.
            let could_not_run = results.iter().any(|r| r.status == Status::Error);
            let message = failed.join("; ");
            out.error = Some(if could_not_run {
                TaskError::transient(message)
            } else {
                TaskError::deterministic(message)
            });
        }
        out.tests = results;
    }

    /// The load node: the versions the run's tests passed, never newer
    /// ones a concurrent run committed since.
    async fn load(&self, c: &Claim, run: &RunView, started: Instant) -> TaskOutcome {
        let selected: Vec<NodeIndex> = run.nodes.iter().filter_map(|n| self.p.node(n)).collect();
        let loaded = crate::warehouse::load_reporting(
            &self.cfg,
            &self.p,
            &selected,
            Gate::Audited(run.versions.clone()),
            &c.run,
            &*self.events,
            &self.warehouse,
        )
        .await;
        let error = match loaded {
            Ok(crate::outcome::CommandOutcome::Success) => None,
            Ok(_) => Some(TaskError::transient("the warehouse load failed")),
            Err(e) => Some(TaskError::transient(format!("{e:#}"))),
        };
        TaskOutcome {
            done: Done {
                seconds: started.elapsed().as_secs_f64(),
                ..Done::default()
            },
            tests: Vec::new(),
            error,
        }
    }
}
