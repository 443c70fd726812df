//! `dag trigger SELECTOR [--wait]`, `dag runs`, `dag status [RUN]`: runs
//! recorded in PostgreSQL for the running scheduler(s), and their history.

use crate::config::Loaded;
use crate::executor::task;
use crate::outcome::{CliError, CommandOutcome};
use crate::pipeline::Pipeline;
use crate::scheduler::SchedulerSettings;
use crate::scheduler::store::{self, Trigger};
use crate::select::Selector;
use petgraph::Direction;
use petgraph::graph::NodeIndex;
use sqlx::{PgPool, Row};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A scheduler is live when its heartbeat is this recent.
const LIVE: Duration = Duration::from_secs(10);

/// The selection and everything upstream of it: a trigger brings stale
/// inputs up to date first (cheap: every model is incremental).
pub fn with_upstream(p: &Pipeline, nodes: &[NodeIndex]) -> Vec<NodeIndex> {
    let mut all: BTreeSet<NodeIndex> = nodes.iter().copied().collect();
    let mut stack: Vec<NodeIndex> = nodes.to_vec();
    while let Some(n) = stack.pop() {
        for i in p.graph.neighbors_directed(n, Direction::Incoming) {
            if all.insert(i) {
                stack.push(i);
            }
        }
    }
    let all: Vec<NodeIndex> = all.into_iter().collect();
    crate::run::runnable(p, &all)
}

pub async fn trigger(
    cfg: &Loaded,
    p: &Pipeline,
    words: &[String],
    wait: bool,
) -> Result<CommandOutcome, CliError> {
    let selector = Selector::parse_args(words).map_err(CliError::Selector)?;
    let nodes = p.select(&selector).map_err(CliError::Selector)?;
    let nodes = with_upstream(p, &nodes);
    let pool = crate::warehouse::ready(cfg).await?;
    if store::live_schedulers(&pool, LIVE)
        .await
        .map_err(anyhow::Error::from)?
        == 0
    {
        eprintln!(
            "no scheduler is running against {} (none has a heartbeat in the last {}s): \
             start one with `dag scheduler`, or run the selection in this shell with `dag run {}`",
            jobs::warehouse::connect::target(&cfg.warehouse_url),
            LIVE.as_secs(),
            words.join(" ")
        );
        return Ok(CommandOutcome::Failed);
    }
    let (id, tasks) = queue(&pool, cfg, p, &nodes, &words.join(" ")).await?;
    println!("run {id} queued: {tasks} task(s)");
    if !wait {
        return Ok(CommandOutcome::Success);
    }
    follow(&pool, id).await
}

/// Queues a manual run of `nodes` (with everything upstream already in),
/// plus the warehouse load when it is enabled: the run's id and its number
/// of tasks. A scheduler picks it up.
pub async fn queue(
    pool: &PgPool,
    cfg: &Loaded,
    p: &Pipeline,
    nodes: &[NodeIndex],
    label: &str,
) -> Result<(i64, usize), CliError> {
    let s = SchedulerSettings::from_config(cfg);
    let tasks = task::plan(p, nodes, cfg.config.warehouse.enabled);
    let id = store::create_run(pool, label, &Trigger::Manual, &tasks, s.max_attempts)
        .await
        .map_err(anyhow::Error::from)?
        .ok_or_else(|| anyhow::anyhow!("the run was not recorded"))?;
    Ok((id, tasks.len()))
}

/// Prints each task's state changes until the run ends; its outcome.
async fn follow(pool: &PgPool, id: i64) -> Result<CommandOutcome, CliError> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let rows = sqlx::query(
            "SELECT node, state, attempt, coalesce(error, '') FROM dag.task_runs \
             WHERE run_id = $1 ORDER BY started_at NULLS LAST, node",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .map_err(anyhow::Error::from)?;
        for r in &rows {
            let (node, state, attempt, error): (String, String, i32, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            if seen.get(&node) != Some(&state) {
                let why = if error.is_empty() {
                    String::new()
                } else {
                    format!(": {error}")
                };
                println!("  {node:<28} {state} (attempt {attempt}){why}");
                seen.insert(node, state);
            }
        }
        let state: String = sqlx::query_scalar("SELECT state FROM dag.runs WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .map_err(anyhow::Error::from)?;
        if matches!(state.as_str(), "success" | "failed" | "skipped") {
            println!("run {id}: {state}");
            return Ok(if state == "failed" {
                CommandOutcome::Failed
            } else {
                CommandOutcome::Success
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn runs(cfg: &Loaded, limit: u32) -> Result<CommandOutcome, CliError> {
    let pool = crate::warehouse::ready(cfg).await?;
    let rows = sqlx::query(
        "SELECT r.id, r.selector, r.trigger, r.state, \
           to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), \
           extract(epoch FROM (coalesce(r.finished_at, now()) - r.started_at))::float8, \
           count(t.node), count(t.node) FILTER (WHERE t.state = 'success'), \
           count(t.node) FILTER (WHERE t.state IN ('failed', 'upstream_failed')), \
           coalesce(r.note, '') \
         FROM dag.runs r LEFT JOIN dag.task_runs t ON t.run_id = r.id \
         GROUP BY r.id ORDER BY r.id DESC LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(&pool)
    .await
    .map_err(anyhow::Error::from)?;
    if rows.is_empty() {
        println!("no runs yet: `dag trigger SELECTOR` records one");
        return Ok(CommandOutcome::Success);
    }
    println!(
        "{:>6}  {:<9} {:<8} {:<19} {:>8}  {:>11}  selector",
        "run", "state", "trigger", "created (UTC)", "seconds", "ok/fail/all"
    );
    for r in rows {
        let secs: Option<f64> = r.get(5);
        let note: String = r.get(9);
        println!(
            "{:>6}  {:<9} {:<8} {:<19} {:>8}  {:>11}  {}{}",
            r.get::<i64, _>(0),
            r.get::<String, _>(3),
            r.get::<String, _>(2),
            r.get::<String, _>(4),
            secs.map_or("-".into(), |s| format!("{s:.1}")),
            format!(
                "{}/{}/{}",
                r.get::<i64, _>(7),
                r.get::<i64, _>(8),
                r.get::<i64, _>(6)
            ),
            r.get::<String, _>(1),
            if note.is_empty() {
                String::new()
            } else {
                format!("  ({note})")
            }
        );
    }
    Ok(CommandOutcome::Success)
}

pub async fn status(cfg: &Loaded, run: Option<&str>) -> Result<CommandOutcome, CliError> {
    let pool = crate::warehouse::ready(cfg).await?;
    let id: Option<i64> = match run {
        Some(text) => Some(text.trim_start_matches("run-").parse().map_err(|_| {
            CliError::Other(anyhow::anyhow!("`{text}` is not a run id (see `dag runs`)"))
        })?),
        None => sqlx::query_scalar("SELECT max(id) FROM dag.runs")
            .fetch_one(&pool)
            .await
            .map_err(anyhow::Error::from)?,
    };
    let Some(id) = id else {
        println!("no runs yet");
        return Ok(CommandOutcome::Success);
    };
    let head = sqlx::query(
        "SELECT selector, trigger, state, coalesce(note, ''), \
           coalesce(to_char(scheduled_for AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '') \
         FROM dag.runs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&pool)
    .await
    .map_err(anyhow::Error::from)?
    .ok_or_else(|| anyhow::anyhow!("no run {id} (see `dag runs`)"))?;
    let state: String = head.get(2);
    println!(
        "run {id} ({} `{}`{}): {state}{}",
        head.get::<String, _>(1),
        head.get::<String, _>(0),
        match head.get::<String, _>(4) {
            t if t.is_empty() => String::new(),
            t => format!(" for {t} UTC"),
        },
        match head.get::<String, _>(3) {
            n if n.is_empty() => String::new(),
            n => format!(" ({n})"),
        }
    );
    let rows = sqlx::query(
        "SELECT node, state, attempt, max_attempts, seconds, rows_in, rows_out, delta_version, \
           coalesce(error, ''), coalesce(claimed_by, '') \
         FROM dag.task_runs WHERE run_id = $1 ORDER BY started_at NULLS LAST, node",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .map_err(anyhow::Error::from)?;
    for r in rows {
        let secs: Option<f64> = r.get(4);
        let (rin, rout, v): (Option<i64>, Option<i64>, Option<i64>) =
            (r.get(5), r.get(6), r.get(7));
        let error: String = r.get(8);
        let by: String = r.get(9);
        println!(
            "  {:<28} {:<15} attempt {}/{}  {:>8}  in {:>9}  out {:>9}  {}{}{}",
            r.get::<String, _>(0),
            r.get::<String, _>(1),
            r.get::<i32, _>(2),
            r.get::<i32, _>(3),
            secs.map_or("-".into(), |s| format!("{s:.2}s")),
            rin.map_or("-".into(), |n| n.to_string()),
            rout.map_or("-".into(), |n| n.to_string()),
            v.map_or(String::new(), |v| format!("-> v{v}")),
            if by.is_empty() {
                String::new()
            } else {
                format!("  on {by}")
            },
            if error.is_empty() {
                String::new()
            } else {
                format!("\n      {error}")
            },
        );
    }
    Ok(if state == "failed" {
        CommandOutcome::Failed
    } else {
        CommandOutcome::Success
    })
}
