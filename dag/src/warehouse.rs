//! `dag migrate`, `dag load [SELECTOR]`, and the load at the end of
//! `dag run`: connect (retried while PostgreSQL is down), apply pending
//! migrations, load the selected warehouse models, print what moved.

use crate::commands::{CliError, Outcome};
use crate::config::Loaded;
use crate::pipeline::Pipeline;
use jobs::model::Catalog;
use jobs::spec::Model;
use jobs::warehouse::load::{Gate, LoadReport, load};
use jobs::warehouse::{connect, migrate};
use petgraph::graph::NodeIndex;
use sqlx::PgPool;

/// Connects and applies pending migrations (every command that needs the
/// warehouse starts here).
pub async fn ready(cfg: &Loaded) -> Result<PgPool, CliError> {
    let ws = cfg.warehouse_settings();
    let pool = connect::connect(&ws).await.map_err(anyhow::Error::from)?;
    let applied = connect::retrying(&ws, "migrating the warehouse", || migrate::migrate(&pool))
        .await
        .map_err(anyhow::Error::from)?;
    for m in &applied {
        println!("migration applied: {m}");
    }
    Ok(pool)
}

pub async fn migrate_command(cfg: &Loaded) -> Result<Outcome, CliError> {
    let pool = ready(cfg).await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM dag.refinery_schema_history")
        .fetch_one(&pool)
        .await
        .map_err(anyhow::Error::from)?;
    println!(
        "warehouse at {} is at the latest migration ({n} applied)",
        connect::target(&cfg.warehouse_url)
    );
    Ok(Outcome::Success)
}

/// `dag load`: the selected warehouse models at their current gold
/// versions, once their data tests pass there (only the rows since each
/// test last passed are checked, so an audited state costs nothing more).
pub async fn load_command(
    cfg: &Loaded,
    p: &Pipeline,
    selected: &[NodeIndex],
) -> Result<Outcome, CliError> {
    let loaded: Vec<NodeIndex> = selected
        .iter()
        .copied()
        .filter(|n| p.graph[*n].warehouse.is_some())
        .collect();
    let gate = crate::datatest::audit(cfg, p, &loaded).await?;
    load_selected(cfg, p, selected, gate).await
}

/// Loads the warehouse models among `selected` through `gate`, printing a
/// line per table.
pub async fn load_selected(
    cfg: &Loaded,
    p: &Pipeline,
    selected: &[NodeIndex],
    gate: Gate,
) -> Result<Outcome, CliError> {
    load_reporting(cfg, p, selected, gate, true).await
}

/// [`load_selected`], printing the per-table lines only when `print`.
pub async fn load_reporting(
    cfg: &Loaded,
    p: &Pipeline,
    selected: &[NodeIndex],
    gate: Gate,
    print: bool,
) -> Result<Outcome, CliError> {
    let models: Vec<&Model> = selected
        .iter()
        .map(|n| &p.graph[*n])
        .filter(|m| m.warehouse.is_some())
        .collect();
    if models.is_empty() {
        println!("load: the selection holds no model with a warehouse table");
        return Ok(Outcome::Success);
    }
    if let Gate::Closed(why) = &gate {
        println!("load: BLOCKED ({why}); the warehouse keeps its previous state");
        return Ok(Outcome::Failed);
    }
    let pool = ready(cfg).await?;
    let catalog = Catalog::new(p.graph.node_weights().cloned());
    let s = crate::run::settings(cfg, false);
    let report = load(
        &cfg.warehouse_settings(),
        &pool,
        &models,
        &catalog,
        &s,
        gate,
    )
    .await
    .map_err(anyhow::Error::from)?;
    if print {
        print!("{}", render(&report));
    }
    Ok(Outcome::Success)
}

fn render(r: &LoadReport) -> String {
    let mut out = String::new();
    let width = r
        .tables
        .iter()
        .map(|t| t.model.len())
        .chain(r.current.iter().map(String::len))
        .max()
        .unwrap_or(10);
    for t in &r.tables {
        let from = t.from.map_or("-".to_string(), |v| format!("v{v}"));
        out += &format!(
            "load {:<width$}  {from} -> v{} ({})  inserted {}  updated {}  deleted {}  {:.2}s\n",
            t.model,
            t.to,
            t.mode.as_str(),
            t.inserted,
            t.updated,
            t.deleted,
            t.seconds
        );
    }
    for m in &r.current {
        out += &format!("load {m:<width$}  up to date\n");
    }
    for m in &r.missing {
        out += &format!("load {m:<width$}  no gold table yet (run its model first)\n");
    }
    out
}
