//! `dag test [SELECTOR]`, and the tests inside `dag run` and before
//! `dag load`: which tests to run when, one line per result, the reports.
//!
//! In a run, a test runs as soon as every model it reads has settled
//! (its own model, and the model a `relationships` or `row_count`
//! compares with), so a failing test stops what is downstream of its
//! model before it runs. A `relationships` test towards a model that is
//! itself downstream (fact -> inferred dimension) can only run after that
//! model: its failure still fails the run and closes the load's gate.

use crate::config::Loaded;
use crate::outcome::{CliError, Outcome};
use crate::pipeline::Pipeline;
use chrono::Utc;
use jobs::datatest::report::{self, Meta, Summary};
use jobs::datatest::{Options, Status, TestResult, Tester, test_inputs};
use jobs::model::Catalog;
use jobs::spec::DataTest;
use petgraph::graph::NodeIndex;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Where `dag test` writes its reports.
#[derive(Clone, Debug, Default)]
pub struct ReportFiles {
    pub junit: Option<PathBuf>,
    pub markdown: Option<PathBuf>,
    pub json: Option<PathBuf>,
}

/// A fresh run id: the start time and a random suffix.
pub fn run_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", Utc::now().format("%Y%m%dT%H%M%SZ"), &id[..8])
}

/// Tests waiting for the models they read, in declaration order.
pub struct Pending {
    tests: Vec<(NodeIndex, DataTest, Vec<String>)>,
}

impl Pending {
    /// The tests of the models in `nodes`.
    pub fn of(p: &Pipeline, nodes: &[NodeIndex]) -> Pending {
        let mut tests = Vec::new();
        for n in nodes {
            let m = &p.graph[*n];
            for t in &m.tests {
                tests.push((*n, t.clone(), test_inputs(&m.name, t)));
            }
        }
        Pending { tests }
    }

    pub fn is_empty(&self) -> bool {
        self.tests.is_empty()
    }

    /// Removes and returns the tests whose inputs are all in `settled`.
    pub fn ready(&mut self, settled: &BTreeSet<String>) -> Vec<(NodeIndex, DataTest)> {
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.tests)
            .into_iter()
            .partition(|(_, _, inputs)| inputs.iter().all(|i| settled.contains(i)));
        self.tests = waiting;
        ready.into_iter().map(|(n, t, _)| (n, t)).collect()
    }
}

/// One result as a line of `dag run` / `dag test` output.
pub fn line(r: &TestResult, width: usize) -> String {
    let scope = match r.since_version {
        Some(v) => format!("rows since v{v}"),
        None => "every row".to_string(),
    };
    let what = match r.status {
        Status::Pass => format!("{} checked ({scope})", r.rows_checked),
        Status::Warn | Status::Fail => format!("{} failing: {}", r.failing, r.message),
        Status::Error => format!("could not run: {}", r.message),
    };
    format!(
        "  test {:<width$}  {:<5}  {what}  {:.2}s",
        r.test,
        r.status.as_str().to_uppercase(),
        r.seconds
    )
}

/// The longest test name among `nodes`' models, for aligned lines.
pub fn width(p: &Pipeline, nodes: &[NodeIndex]) -> usize {
    nodes
        .iter()
        .flat_map(|n| p.graph[*n].tests.iter().map(|t| t.name.len()))
        .max()
        .unwrap_or(10)
}

/// `dag test`: the tests of the selected models on the current tables.
pub async fn test_command(
    cfg: &Loaded,
    p: &Pipeline,
    selected: &[NodeIndex],
    full: bool,
    files: &ReportFiles,
) -> Result<Outcome, CliError> {
    let opts = Options {
        full,
        ..Options::default()
    };
    let clock = opts.clock;
    let id = run_id();
    if Pending::of(p, selected).is_empty() {
        println!("no data tests are declared on the selected models");
    }
    let results = run_on_current(cfg, p, selected, opts, &id, true).await?;
    let meta = Meta {
        run_id: id,
        generated_at: clock,
        full,
    };
    write_reports(&meta, &results, files, true)?;
    let summary = Summary::of(&results);
    println!(
        "\n{} test(s): {} passed, {} warned, {} failed, {} could not run",
        summary.total, summary.pass, summary.warn, summary.fail, summary.error
    );
    Ok(match summary.exit_code() {
        0 => Outcome::Success,
        1 => Outcome::Failed,
        _ => Outcome::Unrunnable,
    })
}

/// Writes the reports asked for (creating folders); names each when `print`.
pub fn write_reports(
    meta: &Meta,
    results: &[TestResult],
    files: &ReportFiles,
    print: bool,
) -> Result<(), CliError> {
    let write = |path: &Option<PathBuf>, text: String| -> Result<(), CliError> {
        if let Some(path) = path {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
            }
            std::fs::write(path, text)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
            if print {
                println!("report: {}", path.display());
            }
        }
        Ok(())
    };
    write(&files.junit, report::junit(meta, results))?;
    write(&files.markdown, report::markdown(meta, results))?;
    write(&files.json, report::json(meta, results))?;
    Ok(())
}

/// The tests of `nodes` on their current tables, for `dag load`: the gate
/// is open only when none of them failed.
pub async fn audit(
    cfg: &Loaded,
    p: &Pipeline,
    nodes: &[NodeIndex],
) -> Result<jobs::warehouse::load::Gate, CliError> {
    use jobs::warehouse::load::Gate;
    let results = run_on_current(cfg, p, nodes, Options::default(), &run_id(), true).await?;
    Ok(Gate::after(&results))
}

/// Every test of `nodes` on the tables as they are (all ready at once),
/// one line each when `print`; the results are appended under `id`.
pub async fn run_on_current(
    cfg: &Loaded,
    p: &Pipeline,
    nodes: &[NodeIndex],
    opts: Options,
    id: &str,
    print: bool,
) -> Result<Vec<TestResult>, CliError> {
    let catalog = Catalog::new(p.graph.node_weights().cloned());
    let tester = Tester::new(catalog, cfg.model_settings(false), opts)
        .await
        .map_err(anyhow::Error::from)?;
    let w = width(p, nodes);
    let everything: BTreeSet<String> = p.graph.node_weights().map(|m| m.name.clone()).collect();
    for (n, t) in Pending::of(p, nodes).ready(&everything) {
        let r = tester.run(&p.graph[n], &t).await;
        if print {
            println!("{}", line(&r, w));
        }
    }
    Ok(tester.finish(id).await.map_err(anyhow::Error::from)?)
}
