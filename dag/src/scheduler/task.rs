//! What the tasks of a run are, and what one does: a model node runs its
//! model and the data tests it owns in the run; the load node loads the
//! run's warehouse models (it waits for all of them, so a failed model or
//! test upstream leaves the warehouse as it was).

use super::store::{Done, NewTask};
use crate::config::Loaded;
use crate::events::{Console, Event, EventSink, Style};
use crate::pipeline::LOAD_NODE;
use crate::pipeline::Pipeline;
use jobs::datatest::{Options, Tester, test_inputs};
use jobs::model::{Cancel, Catalog, Settings, run_model};
use jobs::spec::DataTest;
use jobs::warehouse::load::Gate;
use petgraph::graph::NodeIndex;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

/// The tasks of a run of `nodes` (runnable models): each waits for the
/// nearest models of the run upstream of it (through models outside the
/// run), and the load, when `load` and a warehouse model is in the run,
/// waits for every model of the run.
pub fn plan(p: &Pipeline, nodes: &[NodeIndex], load: bool) -> Vec<NewTask> {
    let chosen: BTreeSet<NodeIndex> = nodes.iter().copied().collect();
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
        tasks.push(NewTask {
            node: p.graph[*n].name.clone(),
            upstream: upstream.into_iter().collect(),
        });
    }
    if load && nodes.iter().any(|n| p.graph[*n].warehouse.is_some()) {
        tasks.push(NewTask {
            node: LOAD_NODE.to_string(),
            upstream: tasks.iter().map(|t| t.node.clone()).collect(),
        });
    }
    tasks
}

/// Runs tasks for one scheduler: the pipeline, where the lake is.
pub struct Runner {
    /// Where what a task did goes (the scheduler's console by default).
    pub events: Arc<dyn EventSink>,
    pub cfg: Loaded,
    pub p: Pipeline,
    catalog: Catalog,
    settings: Settings,
}

impl Runner {
    pub fn new(cfg: &Loaded, p: Pipeline) -> Runner {
        Runner {
            events: Arc::new(Console::new(Style::Log)),
            catalog: Catalog::new(p.graph.node_weights().cloned()),
            settings: cfg.model_settings(false),
            cfg: cfg.clone(),
            p,
        }
    }

    /// The tests `node` runs in a run of `run_nodes`: a test of a model in
    /// the run belongs to the last, in dependency order, of the run's
    /// models it reads (a fact's relationships test towards a dimension
    /// built from that fact runs with the dimension).
    fn owned_tests(&self, run_nodes: &BTreeSet<String>, node: &str) -> Vec<(NodeIndex, DataTest)> {
        let rank: BTreeMap<&str, usize> = self
            .p
            .topo_order()
            .iter()
            .enumerate()
            .map(|(i, n)| (self.p.graph[*n].name.as_str(), i))
            .collect();
        let mut out = Vec::new();
        for name in run_nodes {
            let Some(idx) = self.p.node(name) else {
                continue;
            };
            for t in &self.p.graph[idx].tests {
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

    /// Runs one node of run `run_id` (whose nodes are `run_nodes`); no
    /// commit happens once `cancel` is set. The load node publishes the
    /// `audited` versions (model -> the version its task left and tested).
    pub async fn execute(
        &self,
        run_id: i64,
        run_nodes: &[String],
        node: &str,
        cancel: Cancel,
        audited: BTreeMap<String, i64>,
    ) -> Result<Done, String> {
        let settings = Settings {
            cancel,
            ..self.settings.clone()
        };
        let started = Instant::now();
        if node == LOAD_NODE {
            let selected: Vec<NodeIndex> =
                run_nodes.iter().filter_map(|n| self.p.node(n)).collect();
            let outcome = crate::warehouse::load_reporting(
                &self.cfg,
                &self.p,
                &selected,
                // The versions the run's tests passed, never newer ones a
                // concurrent run committed since.
                Gate::Audited(audited),
                &run_id.to_string(),
                &*self.events,
            )
            .await
            .map_err(|e| format!("{e:#}"))?;
            if outcome != crate::outcome::Outcome::Success {
                return Err("the warehouse load failed".into());
            }
            return Ok(Done {
                seconds: started.elapsed().as_secs_f64(),
                ..Done::default()
            });
        }
        let report = run_model(node, &self.catalog, &settings)
            .await
            .map_err(|e| format!("{e}"))?;
        let all: BTreeSet<String> = run_nodes.iter().cloned().collect();
        let tests = self.owned_tests(&all, node);
        let mut tested = None;
        if !tests.is_empty() {
            let tester = Tester::new(self.catalog.clone(), settings.clone(), Options::default())
                .await
                .map_err(|e| format!("{e}"))?;
            for (idx, t) in &tests {
                tester.run(&self.p.graph[*idx], t).await;
            }
            let results = tester
                .finish(&format!("run-{run_id}"))
                .await
                .map_err(|e| format!("{e}"))?;
            for r in &results {
                self.events.emit(&Event::TestFinished {
                    run: run_id.to_string(),
                    result: r.clone(),
                });
            }
            let failed: Vec<String> = results
                .iter()
                .filter(|r| r.status.blocks())
                .map(|r| format!("test {} {}: {}", r.test, r.status.as_str(), r.message))
                .collect();
            if !failed.is_empty() {
                return Err(failed.join("; "));
            }
            tested = results
                .iter()
                .filter(|r| r.model == node)
                .map(|r| r.version)
                .max();
        }
        // The version this step left the table at (what the load may
        // publish): written now, else judged by its tests, else, for a
        // model the load publishes, as found (one more table open).
        let version = match report.version.or(tested) {
            Some(v) => Some(v),
            None if self.p.model(node).is_some_and(|m| m.warehouse.is_some()) => self
                .catalog
                .open_input(node, &settings)
                .await
                .ok()
                .map(|t| t.version()),
            None => None,
        };
        Ok(Done {
            seconds: started.elapsed().as_secs_f64(),
            rows_in: Some(report.rows_in as i64),
            rows_out: Some(report.rows_out as i64),
            version,
            quarantined: report.quarantined,
            duplicates: report.duplicates,
            note: report.note,
        })
    }
}
