//! `dag migrate [--plan]`, `dag load [SELECTOR]`, and the load at the end
//! of `dag run`: connect (retried while PostgreSQL is down), bring the
//! warehouse to what the pipeline's models need (dag's migrations, the
//! models' tables, the pipeline's migrations), load the selected warehouse
//! models, print what moved.

use crate::config::Loaded;
use crate::events::{Console, Event, EventSink, Style};
use crate::outcome::{CliError, CommandOutcome};
use crate::pipeline::Pipeline;
use jobs::decl::Model;
use jobs::model::Catalog;
use jobs::warehouse::load::{Gate, LoadReport, load};
use jobs::warehouse::migrate::{Applied, PipelineMigrations};
use jobs::warehouse::{connect, migrate};
use petgraph::graph::NodeIndex;
use sqlx::PgPool;

/// Whether a database is configured at all (`[warehouse]` enabled, or
/// `warehouse.url` / `DATABASE_URL` given): what records runs and alerts
/// and what the UI reads.
pub fn database_configured(cfg: &Loaded) -> bool {
    cfg.config.warehouse.enabled || cfg.origins.contains_key("warehouse.url")
}

/// A pool of up to `connections` on the configured database, connected
/// on first use (a database that is down does not hold a command up);
/// None when none is configured.
pub fn lazy_pool(cfg: &Loaded, connections: u32) -> Option<PgPool> {
    if !database_configured(cfg) {
        return None;
    }
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect_lazy(&cfg.warehouse_url)
        .ok()
}

/// Connects and applies dag's own pending migrations (commands that need
/// the run metadata: trigger, runs, status, the scheduler).
pub async fn ready(cfg: &Loaded) -> Result<PgPool, CliError> {
    ready_with(cfg, 3).await
}

/// [`ready`], with a pool of `connections`.
pub async fn ready_with(cfg: &Loaded, connections: u32) -> Result<PgPool, CliError> {
    let ws = cfg.warehouse_settings();
    let pool = connect::connect_with(&ws, connections)
        .await
        .map_err(anyhow::Error::from)?;
    let applied = connect::retrying(&ws, "migrating the warehouse", || migrate::migrate(&pool))
        .await
        .map_err(anyhow::Error::from)?;
    for m in &applied {
        println!("migration applied: {m}");
    }
    Ok(pool)
}

/// The pipeline's warehouse models, in the pipeline's order.
fn warehouse_models(p: &Pipeline) -> Vec<&Model> {
    p.topo_order()
        .iter()
        .map(|n| &p.graph[*n])
        .filter(|m| m.warehouse.is_some())
        .collect()
}

/// Connects and brings the warehouse to what `p` needs: dag's migrations,
/// the tables of its warehouse models, its own migrations. Prints each
/// change.
pub async fn ready_warehouse(
    cfg: &Loaded,
    p: &Pipeline,
    events: &dyn EventSink,
) -> Result<PgPool, CliError> {
    let ws = cfg.warehouse_settings();
    let pool = connect::connect(&ws).await.map_err(anyhow::Error::from)?;
    let models = warehouse_models(p);
    let migrations = PipelineMigrations::read(&p.name, &p.root).map_err(anyhow::Error::from)?;
    let applied = connect::retrying(&ws, "migrating the warehouse", || {
        migrate::migrate_pipeline(&pool, &models, &migrations)
    })
    .await
    .map_err(anyhow::Error::from)?;
    for text in render_applied(&applied).lines() {
        events.emit(&Event::Notice { text: text.into() });
    }
    Ok(pool)
}

fn render_applied(a: &Applied) -> String {
    let mut out = String::new();
    for m in &a.dag {
        out += &format!("migration applied: {m}\n");
    }
    for s in &a.schemas {
        out += &format!("schema {s} created\n");
    }
    for t in &a.tables {
        for n in &t.notes {
            out += &format!("table {}: {n}\n", t.table);
        }
    }
    for m in &a.pipeline {
        out += &format!("pipeline migration applied: {m}\n");
    }
    out
}

/// `dag migrate [--plan]`.
pub async fn migrate_command(
    cfg: &Loaded,
    p: &Pipeline,
    plan_only: bool,
) -> Result<CommandOutcome, CliError> {
    let target = connect::target(&cfg.warehouse_url);
    if plan_only {
        let ws = cfg.warehouse_settings();
        let pool = connect::connect(&ws).await.map_err(anyhow::Error::from)?;
        let models = warehouse_models(p);
        let migrations = PipelineMigrations::read(&p.name, &p.root).map_err(anyhow::Error::from)?;
        let plan = connect::retrying(&ws, "reading the warehouse", || async {
            let mut conn = pool.acquire().await?;
            migrate::plan(&mut conn, &models, &migrations).await
        })
        .await
        .map_err(anyhow::Error::from)?;
        for t in &plan.foreign {
            println!(
                "-- {t}: in a schema of this pipeline, loaded by none of its models (left alone)"
            );
        }
        if plan.is_empty() {
            println!(
                "-- warehouse at {target} matches pipeline `{}`: nothing to do",
                p.name
            );
            return Ok(CommandOutcome::Success);
        }
        println!(
            "-- dag migrate on {target} (pipeline `{}`) would run:\n",
            p.name
        );
        print!("{}", plan.sql());
        return Ok(if plan.problems().is_empty() {
            CommandOutcome::Success
        } else {
            CommandOutcome::Failed
        });
    }
    let pool = ready_warehouse(cfg, p, &Console::new(Style::Log)).await?;
    let foreign = {
        let mut conn = pool.acquire().await.map_err(anyhow::Error::from)?;
        migrate::plan(
            &mut conn,
            &warehouse_models(p),
            &PipelineMigrations::default(),
        )
        .await
        .map_err(anyhow::Error::from)?
        .foreign
    };
    for t in &foreign {
        println!(
            "note: {t} is in a schema of this pipeline but none of its models loads it (left alone)"
        );
    }
    println!(
        "warehouse at {target} is up to date for pipeline `{}` ({} warehouse tables)",
        p.name,
        warehouse_models(p).len()
    );
    Ok(CommandOutcome::Success)
}

/// `dag load`: the selected warehouse models at their current gold
/// versions, once their data tests pass there (only the rows since each
/// test last passed are checked, so an audited state costs nothing more).
pub async fn load_command(
    cfg: &Loaded,
    p: &Pipeline,
    selected: &[NodeIndex],
    events: &dyn EventSink,
) -> Result<CommandOutcome, CliError> {
    let loaded: Vec<NodeIndex> = selected
        .iter()
        .copied()
        .filter(|n| p.graph[*n].warehouse.is_some())
        .collect();
    let gate = crate::datatest::audit(cfg, p, &loaded).await?;
    let run = crate::datatest::run_id();
    load_reporting(cfg, p, selected, gate, &run, events, &Ready::default()).await
}

/// Loads the warehouse models among `selected` through `gate`, as part of
/// `run`; what moved is an event (`LoadFinished`).
pub async fn load_reporting(
    cfg: &Loaded,
    p: &Pipeline,
    selected: &[NodeIndex],
    gate: Gate,
    run: &str,
    events: &dyn EventSink,
    ready: &Ready,
) -> Result<CommandOutcome, CliError> {
    let models: Vec<&Model> = selected
        .iter()
        .map(|n| &p.graph[*n])
        .filter(|m| m.warehouse.is_some())
        .collect();
    if models.is_empty() {
        events.emit(&Event::LoadFinished {
            run: run.to_string(),
            selected: false,
            blocked: None,
            tables: Vec::new(),
            current: Vec::new(),
            missing: Vec::new(),
        });
        return Ok(CommandOutcome::Success);
    }
    if let Gate::Closed(why) = &gate {
        events.emit(&Event::load(
            run,
            &LoadReport {
                blocked: Some(why.clone()),
                ..LoadReport::default()
            },
        ));
        return Ok(CommandOutcome::Failed);
    }
    let pool = ready.pool(cfg, p, events).await?;
    let catalog = Catalog::new(p.graph.node_weights().cloned());
    let s = cfg.model_settings(false);
    let report = load(
        &cfg.warehouse_settings(),
        &pool,
        &models,
        &catalog,
        &s,
        gate,
    )
    .await;
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            // The next load checks the warehouse again (a table dropped or
            // changed under us, a server that went away).
            ready.forget().await;
            return Err(anyhow::Error::from(e).into());
        }
    };
    events.emit(&Event::load(run, &report));
    Ok(CommandOutcome::Success)
}

/// The warehouse made ready ([`ready_warehouse`]) once and kept: a
/// scheduler loads after every run (in continuous mode several times a
/// second), and connecting, checking dag's and the pipeline's migrations
/// and every table's columns each time was most of a small load. The
/// load still checks the loaded tables' columns in its transaction; a
/// failed load forgets the pool, so the next one starts over.
#[derive(Default)]
pub struct Ready(tokio::sync::Mutex<Option<PgPool>>);

impl Ready {
    /// The pool, made ready on first use.
    pub async fn pool(
        &self,
        cfg: &Loaded,
        p: &Pipeline,
        events: &dyn EventSink,
    ) -> Result<PgPool, CliError> {
        let mut kept = self.0.lock().await;
        if let Some(pool) = kept.as_ref() {
            return Ok(pool.clone());
        }
        let pool = ready_warehouse(cfg, p, events).await?;
        *kept = Some(pool.clone());
        Ok(pool)
    }

    async fn forget(&self) {
        if let Some(pool) = self.0.lock().await.take() {
            pool.close().await;
        }
    }
}
