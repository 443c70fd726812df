//! `dag run [SELECTOR]`: the selected silver and gold models, once, in
//! dependency order, each printing what it read, wrote and how long it
//! took, each followed by its data tests as soon as the models they read
//! have run (write-audit-publish). A model whose input failed, or whose
//! input's error-severity test failed, in this run is skipped
//! (upstream_failed), and the warehouse load only runs when nothing
//! failed. Bronze sources and quarantines are listed by the selection but
//! written by the ingester and the cleaning models.

use crate::commands::{CliError, Outcome};
use crate::config::Loaded;
use crate::datatest::Pending;
use crate::pipeline::Pipeline;
use jobs::datatest::{Options, Tester};
use jobs::model::{Catalog, ModelReport, Settings, run_model};
use jobs::spec::Source;
use jobs::warehouse::load::Gate;
use petgraph::graph::NodeIndex;
use std::collections::BTreeSet;

pub fn settings(cfg: &Loaded, full_refresh: bool) -> Settings {
    Settings {
        lake: cfg.lake_url(),
        storage_options: cfg.storage_options(),
        data_dir: cfg.data_dir(),
        full_refresh,
        clean_batch_bytes: cfg.config.models.clean_batch_mb << 20,
    }
}

/// The models of `selected` that a run executes, in dependency order.
pub fn runnable(p: &Pipeline, selected: &[NodeIndex]) -> Vec<NodeIndex> {
    let chosen: BTreeSet<NodeIndex> = selected.iter().copied().collect();
    p.topo_order()
        .iter()
        .copied()
        .filter(|n| chosen.contains(n))
        .filter(|n| {
            !matches!(
                p.graph[*n].source,
                Source::Kafka { .. } | Source::Quarantine { .. }
            )
        })
        .collect()
}

pub async fn run(
    cfg: &Loaded,
    p: &Pipeline,
    selected: &[NodeIndex],
    full_refresh: bool,
    load: bool,
) -> Result<Outcome, CliError> {
    let order = runnable(p, selected);
    if order.is_empty() {
        println!("nothing to run: the selection holds no silver or gold model");
        return Ok(Outcome::Success);
    }
    let catalog = Catalog::new(p.graph.node_weights().cloned());
    let s = settings(cfg, full_refresh);
    let width = order
        .iter()
        .map(|n| p.graph[*n].name.len())
        .max()
        .unwrap_or(10);
    let test_width = crate::datatest::width(p, &order);
    let mut tester = Tester::new(catalog.clone(), s.clone(), Options::default())
        .await
        .map_err(anyhow::Error::from)?;
    let mut pending = Pending::of(p, &order);
    // Models that are not run here are as settled as those that ran.
    let running: BTreeSet<&str> = order.iter().map(|n| p.graph[*n].name.as_str()).collect();
    let mut settled: BTreeSet<String> = p
        .graph
        .node_weights()
        .map(|m| m.name.clone())
        .filter(|m| !running.contains(m.as_str()))
        .collect();
    let mut failed: BTreeSet<NodeIndex> = BTreeSet::new();
    // Why each failed model failed, for the gate's message.
    let mut why: Vec<String> = Vec::new();
    let mut counts = Counts::default();
    for n in order {
        let name = p.graph[n].name.clone();
        let upstream_failed = p.inputs_idx(n).iter().any(|i| failed.contains(i));
        if upstream_failed {
            println!("{name:<width$}  skipped: upstream failed");
            failed.insert(n);
            counts.skipped += 1;
        } else {
            match run_model(&name, &catalog, &s).await {
                Ok(r) => {
                    println!("{}", line(&r, width));
                    counts.ran += 1;
                }
                Err(e) => {
                    println!("{name:<width$}  FAILED: {e}");
                    tracing::error!(model = %name, "{e}");
                    failed.insert(n);
                    why.push(format!("model {name} failed"));
                    counts.failed += 1;
                }
            }
        }
        settled.insert(name);
        for (owner, test) in pending.ready(&settled) {
            // A test over a model that failed or was skipped has nothing
            // new to judge, and the failure already stops the load.
            let reads_failed = jobs::datatest::test_inputs(&p.graph[owner].name, &test)
                .iter()
                .any(|m| failed.iter().any(|f| p.graph[*f].name == *m));
            if reads_failed {
                continue;
            }
            let r = tester.run(&p.graph[owner], &test).await;
            println!("{}", crate::datatest::line(&r, test_width));
            counts.tests += 1;
            if r.status.blocks() {
                counts.tests_failed += 1;
                failed.insert(owner);
                why.push(format!("test {} failed", r.test));
            }
        }
    }
    let results = tester
        .finish(&crate::datatest::run_id())
        .await
        .map_err(anyhow::Error::from)?;
    let warned = results
        .iter()
        .filter(|r| r.status == jobs::datatest::Status::Warn)
        .count();
    println!(
        "\n{} model(s) ran, {} failed, {} skipped; {} test(s), {} failed, {} warned",
        counts.ran, counts.failed, counts.skipped, counts.tests, counts.tests_failed, warned
    );
    let mut outcome = if failed.is_empty() {
        Outcome::Success
    } else {
        Outcome::Failed
    };
    if load {
        // Write-audit-publish: a failed model or error test closes the
        // gate, and the warehouse keeps the last complete, tested state.
        let gate = if why.is_empty() {
            Gate::Open
        } else {
            Gate::Closed(why.join(", "))
        };
        println!();
        if crate::warehouse::load_selected(cfg, p, selected, gate).await? == Outcome::Failed {
            outcome = Outcome::Failed;
        }
    }
    Ok(outcome)
}

#[derive(Default)]
struct Counts {
    ran: usize,
    failed: usize,
    skipped: usize,
    tests: usize,
    tests_failed: usize,
}

/// One model's line: rows in/out/quarantined/duplicates, version, seconds.
pub fn line(r: &ModelReport, width: usize) -> String {
    let name = &r.model;
    match r.version {
        None => format!(
            "{name:<width$}  up to date ({}) {:>7.2}s",
            r.note.as_deref().unwrap_or("nothing new"),
            r.seconds
        ),
        Some(v) => {
            let mut s = format!("{name:<width$}  in {:>9}  out {:>9}", r.rows_in, r.rows_out);
            if r.quarantined > 0 || r.duplicates > 0 {
                s += &format!(
                    "  quarantined {}  duplicates {}",
                    r.quarantined, r.duplicates
                );
            }
            s + &format!("  -> v{v} {:>7.2}s", r.seconds)
        }
    }
}
