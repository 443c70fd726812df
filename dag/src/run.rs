//! `dag run [SELECTOR]`: the selected silver and gold models, once, in
//! dependency order, each printing what it read, wrote and how long it
//! took. A model whose input failed in this run is skipped
//! (upstream_failed); bronze sources and quarantines are listed by the
//! selection but written by the ingester and the cleaning models.

use crate::commands::{CliError, Outcome};
use crate::config::Loaded;
use crate::pipeline::Pipeline;
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
    let mut failed: BTreeSet<NodeIndex> = BTreeSet::new();
    let mut counts = (0, 0, 0);
    for n in order {
        let name = p.graph[n].name.clone();
        let upstream_failed = p.inputs_idx(n).iter().any(|i| failed.contains(i));
        if upstream_failed {
            println!("{name:<width$}  skipped: upstream failed");
            failed.insert(n);
            counts.2 += 1;
            continue;
        }
        match run_model(&name, &catalog, &s).await {
            Ok(r) => {
                println!("{}", line(&r, width));
                counts.0 += 1;
            }
            Err(e) => {
                println!("{name:<width$}  FAILED: {e}");
                tracing::error!(model = %name, "{e}");
                failed.insert(n);
                counts.1 += 1;
            }
        }
    }
    println!(
        "\n{} model(s) ran, {} failed, {} skipped",
        counts.0, counts.1, counts.2
    );
    let mut outcome = if failed.is_empty() {
        Outcome::Success
    } else {
        Outcome::Failed
    };
    if load {
        // Until data tests gate it, a failed model closes the gate: the
        // warehouse keeps the last complete state.
        let gate = match failed.iter().next() {
            None => Gate::Open,
            Some(n) => Gate::Closed(format!("model {} failed", p.graph[*n].name)),
        };
        println!();
        if crate::warehouse::load_selected(cfg, p, selected, gate).await? == Outcome::Failed {
            outcome = Outcome::Failed;
        }
    }
    Ok(outcome)
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
