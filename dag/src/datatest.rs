//! `dag test [SELECTOR]` and the tests before `dag load`: every test of
//! the selected models on the tables as they are, one line per result,
//! the reports. (In a run, when each test runs is the executor's rule:
//! `crate::executor::task`.)

use crate::config::Loaded;
use crate::outcome::{CliError, CommandOutcome};
use crate::pipeline::Pipeline;
use chrono::Utc;
use jobs::datatest::report::{self, Meta, Summary};
use jobs::datatest::{Options, Status, TestResult, Tester};
use jobs::decl::DataTest;
use jobs::model::Catalog;
use petgraph::graph::NodeIndex;
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

/// The tests of the models in `nodes`, in declaration order.
fn tests_of(p: &Pipeline, nodes: &[NodeIndex]) -> Vec<(NodeIndex, DataTest)> {
    nodes
        .iter()
        .flat_map(|n| p.graph[*n].tests.iter().map(|t| (*n, t.clone())))
        .collect()
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
) -> Result<CommandOutcome, CliError> {
    let opts = Options {
        full,
        ..Options::default()
    };
    let clock = opts.clock;
    let id = run_id();
    if tests_of(p, selected).is_empty() {
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
        0 => CommandOutcome::Success,
        1 => CommandOutcome::Failed,
        _ => CommandOutcome::Unrunnable,
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
    for (n, t) in tests_of(p, nodes) {
        let r = tester.run(&p.graph[n], &t).await;
        if print {
            println!("{}", line(&r, w));
        }
    }
    Ok(tester.finish(id).await.map_err(anyhow::Error::from)?)
}
