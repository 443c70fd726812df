//! The UI's JSON API (`/api/...`, names stable, documented in
//! `docs/ui.md`): the pipeline with each node's latest state, a model,
//! the runs, one run with its tasks, attempts and test results, the data
//! tests with their history, and triggering a run. Runs come from
//! PostgreSQL (`dag.runs`, `dag.task_runs`, `dag.task_attempts`,
//! `dag.loaded_versions`); test results from the lake's results table.

use super::state::{Answer, Ui, fail};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The database, or the answer that says there is none.
fn pool(ui: &Ui) -> Result<&sqlx::PgPool, (StatusCode, Json<Value>)> {
    ui.pool.as_ref().ok_or_else(|| {
        fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "no database configured (DATABASE_URL or [warehouse]): runs are not recorded",
        )
    })
}

fn db_error(e: sqlx::Error) -> (StatusCode, Json<Value>) {
    fail(StatusCode::SERVICE_UNAVAILABLE, format!("PostgreSQL: {e}"))
}

/// Each node's latest finished task: node -> its fields.
async fn latest_tasks(pool: &sqlx::PgPool) -> Result<BTreeMap<String, Value>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT DISTINCT ON (node) node, run_id, state, attempt, rows_out, delta_version, \
           seconds, error, tests, tests_failed, tests_warned, \
           to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
           extract(epoch FROM now() - finished_at)::float8 \
         FROM dag.task_runs WHERE finished_at IS NOT NULL ORDER BY node, finished_at DESC",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get::<String, _>(0),
                json!({
                    "run": r.get::<i64, _>(1),
                    "state": r.get::<String, _>(2),
                    "attempt": r.get::<i32, _>(3),
                    "rows_out": r.get::<Option<i64>, _>(4),
                    "delta_version": r.get::<Option<i64>, _>(5),
                    "seconds": r.get::<Option<f64>, _>(6),
                    "error": r.get::<Option<String>, _>(7),
                    "tests": r.get::<Option<i32>, _>(8),
                    "tests_failed": r.get::<Option<i32>, _>(9),
                    "tests_warned": r.get::<Option<i32>, _>(10),
                    "finished_at": r.get::<Option<String>, _>(11),
                    "age_seconds": r.get::<Option<f64>, _>(12),
                }),
            )
        })
        .collect())
}

/// The warehouse's loaded version of each model.
async fn loaded(pool: &sqlx::PgPool) -> BTreeMap<String, i64> {
    super::state::loaded_versions(pool)
        .await
        .into_iter()
        .map(|(model, (version, _))| (model, version))
        .collect()
}

/// `GET /api/pipeline`: every node with its layer, kind, inputs, tests,
/// warehouse table and latest task; the edges.
pub async fn pipeline(State(ui): State<Arc<Ui>>) -> Answer {
    let (latest, loaded, database) = match &ui.pool {
        Some(pool) => match latest_tasks(pool).await {
            Ok(l) => (l, loaded(pool).await, Value::from("ok")),
            Err(e) => (BTreeMap::new(), BTreeMap::new(), Value::from(e.to_string())),
        },
        None => (BTreeMap::new(), BTreeMap::new(), Value::Null),
    };
    let p = &ui.p;
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for &n in p.topo_order() {
        let m = &p.graph[n];
        for i in p.inputs_idx(n) {
            edges.push(json!({ "from": p.graph[i].name, "to": m.name }));
        }
        nodes.push(json!({
            "name": m.name,
            "layer": m.layer.as_str(),
            "kind": m.source.kind_name(),
            "description": m.description,
            "inputs": p.inputs_idx(n).iter().map(|i| p.graph[*i].name.clone()).collect::<Vec<_>>(),
            "tests": m.tests.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
            "warehouse": m.warehouse.as_ref().map(|w| format!("{}.{}", w.schema, w.table)),
            "loaded_version": loaded.get(&m.name),
            "schedule": m.schedule,
            "latest": latest.get(&m.name),
        }));
    }
    Ok(Json(json!({
        "pipeline": ui.cfg.config.pipeline,
        "database": database,
        "nodes": nodes,
        "edges": edges,
        "load": latest.get(crate::pipeline::LOAD_NODE),
    })))
}

/// `GET /api/models/{name}`: the model's declaration (SQL, columns,
/// tests), its inputs and outputs, its warehouse table and loaded
/// version, and its recent tasks (versions written, rows).
pub async fn model(State(ui): State<Arc<Ui>>, Path(name): Path<String>) -> Answer {
    let p = &ui.p;
    let Some(n) = p.node(&name) else {
        return Err(fail(StatusCode::NOT_FOUND, format!("no model {name}")));
    };
    let m = &p.graph[n];
    let outputs: Vec<String> = p
        .graph
        .neighbors_directed(n, petgraph::Direction::Outgoing)
        .map(|o| p.graph[o].name.clone())
        .collect();
    let sql = match &m.source {
        jobs::decl::Source::Sql { sql, .. } => Some(sql.clone()),
        _ => None,
    };
    let mut recent = Vec::new();
    let mut loaded_version = None;
    if let Some(pool) = &ui.pool {
        let rows = sqlx::query(
            "SELECT run_id, state, attempt, rows_in, rows_out, delta_version, seconds, error, \
               to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
             FROM dag.task_runs WHERE node = $1 AND finished_at IS NOT NULL \
             ORDER BY finished_at DESC LIMIT 20",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
        recent = rows
            .iter()
            .map(|r| {
                json!({
                    "run": r.get::<i64, _>(0),
                    "state": r.get::<String, _>(1),
                    "attempt": r.get::<i32, _>(2),
                    "rows_in": r.get::<Option<i64>, _>(3),
                    "rows_out": r.get::<Option<i64>, _>(4),
                    "delta_version": r.get::<Option<i64>, _>(5),
                    "seconds": r.get::<Option<f64>, _>(6),
                    "error": r.get::<Option<String>, _>(7),
                    "finished_at": r.get::<Option<String>, _>(8),
                })
            })
            .collect();
        loaded_version = loaded(pool).await.get(&name).copied();
    }
    Ok(Json(json!({
        "name": m.name,
        "layer": m.layer.as_str(),
        "kind": m.source.kind_name(),
        "source": m.source.label(),
        "description": m.description,
        "materialized": format!("{:?}", m.materialized).to_lowercase(),
        "unique_key": m.unique_key,
        "sql": sql,
        "columns": m.columns.iter().map(|c| json!({
            "name": c.name,
            "type": c.ty.to_string(),
            "nullable": c.nullable,
            "description": c.description,
        })).collect::<Vec<_>>(),
        "tests": m.tests.iter().map(|t| json!({
            "name": t.name,
            "kind": t.kind.name(),
        })).collect::<Vec<_>>(),
        "inputs": p.inputs_idx(n).iter().map(|i| p.graph[*i].name.clone()).collect::<Vec<_>>(),
        "outputs": outputs,
        "warehouse": m.warehouse.as_ref().map(|w| format!("{}.{}", w.schema, w.table)),
        "loaded_version": loaded_version,
        "recent": recent,
    })))
}

#[derive(Deserialize)]
pub struct Limit {
    limit: Option<i64>,
}

/// `GET /api/runs?limit=N`: the latest runs, newest first.
pub async fn runs(State(ui): State<Arc<Ui>>, Query(q): Query<Limit>) -> Answer {
    let pool = pool(&ui)?;
    let rows = sqlx::query(
        "SELECT r.id, r.trigger, r.selector, r.schedule, r.state, r.note, \
           to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
           extract(epoch FROM coalesce(r.finished_at, now()) - r.started_at)::float8, \
           count(t.node), count(t.node) FILTER (WHERE t.state = 'success'), \
           count(t.node) FILTER (WHERE t.state IN ('failed', 'upstream_failed')) \
         FROM dag.runs r LEFT JOIN dag.task_runs t ON t.run_id = r.id \
         GROUP BY r.id ORDER BY r.id DESC LIMIT $1",
    )
    .bind(q.limit.unwrap_or(50).clamp(1, 1000))
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    let runs: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.get::<i64, _>(0),
                "trigger": r.get::<String, _>(1),
                "selector": r.get::<String, _>(2),
                "schedule": r.get::<Option<String>, _>(3),
                "state": r.get::<String, _>(4),
                "note": r.get::<Option<String>, _>(5),
                "created_at": r.get::<Option<String>, _>(6),
                "seconds": r.get::<Option<f64>, _>(7),
                "tasks": r.get::<i64, _>(8),
                "tasks_succeeded": r.get::<i64, _>(9),
                "tasks_failed": r.get::<i64, _>(10),
            })
        })
        .collect();
    Ok(Json(json!({ "runs": runs })))
}

/// `GET /api/runs/{id}`: the run, its tasks (times relative to the run's
/// start, for a timeline), every attempt, and the test results it wrote.
/// A `dag run` is also found by its name (`20261206T054709Z-ad361e74`,
/// what its events and alerts call it).
pub async fn run(State(ui): State<Arc<Ui>>, Path(name): Path<String>) -> Answer {
    let pool = pool(&ui)?;
    let id = match name.parse::<i64>() {
        Ok(id) => id,
        Err(_) => sqlx::query_scalar::<_, i64>("SELECT id FROM dag.runs WHERE note = $1")
            .bind(format!("dag run {name}"))
            .fetch_optional(pool)
            .await
            .map_err(db_error)?
            .ok_or_else(|| fail(StatusCode::NOT_FOUND, format!("no run {name}")))?,
    };
    let head = sqlx::query(
        "SELECT trigger, selector, schedule, state, note, \
           to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
           extract(epoch FROM coalesce(finished_at, now()) - started_at)::float8 \
         FROM dag.runs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(db_error)?
    .ok_or_else(|| fail(StatusCode::NOT_FOUND, format!("no run {id}")))?;
    let tasks = sqlx::query(
        "SELECT t.node, t.state, t.attempt, t.max_attempts, t.upstream, t.rows_in, t.rows_out, \
           t.delta_version, t.seconds, t.error, t.tests, t.tests_failed, t.tests_warned, \
           extract(epoch FROM t.started_at - r.started_at)::float8, \
           extract(epoch FROM t.finished_at - r.started_at)::float8 \
         FROM dag.task_runs t JOIN dag.runs r ON r.id = t.run_id WHERE t.run_id = $1 \
         ORDER BY t.started_at NULLS LAST, t.node",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    let attempts = sqlx::query(
        "SELECT a.node, a.attempt, a.scheduler, a.outcome, \
           extract(epoch FROM a.started_at - r.started_at)::float8, \
           extract(epoch FROM a.finished_at - r.started_at)::float8 \
         FROM dag.task_attempts a JOIN dag.runs r ON r.id = a.run_id WHERE a.run_id = $1 \
         ORDER BY a.started_at",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    let trigger: String = head.get(0);
    let note: Option<String> = head.get(4);
    // The name the run's test results carry in the lake.
    let results_run = match (trigger.as_str(), &note) {
        ("cli", Some(n)) => n.trim_start_matches("dag run ").to_string(),
        _ => format!("run-{id}"),
    };
    let tests: Vec<Value> = super::lake::results(&ui, None)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r["run_id"] == results_run.as_str())
        .collect();
    Ok(Json(json!({
        "id": id,
        "trigger": trigger,
        "selector": head.get::<String, _>(1),
        "schedule": head.get::<Option<String>, _>(2),
        "state": head.get::<String, _>(3),
        "note": note,
        "created_at": head.get::<Option<String>, _>(5),
        "seconds": head.get::<Option<f64>, _>(6),
        "tasks": tasks.iter().map(|r| json!({
            "node": r.get::<String, _>(0),
            "state": r.get::<String, _>(1),
            "attempt": r.get::<i32, _>(2),
            "max_attempts": r.get::<i32, _>(3),
            "upstream": r.get::<Vec<String>, _>(4),
            "rows_in": r.get::<Option<i64>, _>(5),
            "rows_out": r.get::<Option<i64>, _>(6),
            "delta_version": r.get::<Option<i64>, _>(7),
            "seconds": r.get::<Option<f64>, _>(8),
            "error": r.get::<Option<String>, _>(9),
            "tests": r.get::<Option<i32>, _>(10),
            "tests_failed": r.get::<Option<i32>, _>(11),
            "tests_warned": r.get::<Option<i32>, _>(12),
            "start": r.get::<Option<f64>, _>(13),
            "end": r.get::<Option<f64>, _>(14),
        })).collect::<Vec<_>>(),
        "attempts": attempts.iter().map(|r| json!({
            "node": r.get::<String, _>(0),
            "attempt": r.get::<i32, _>(1),
            "scheduler": r.get::<String, _>(2),
            "outcome": r.get::<Option<String>, _>(3),
            "start": r.get::<Option<f64>, _>(4),
            "end": r.get::<Option<f64>, _>(5),
        })).collect::<Vec<_>>(),
        "test_results": tests,
    })))
}

/// `GET /api/tests`: every declared test with its latest result and its
/// history (newest last, up to 30).
pub async fn tests(State(ui): State<Arc<Ui>>) -> Answer {
    let results = super::lake::results(&ui, None)
        .await
        .map_err(|e| fail(StatusCode::SERVICE_UNAVAILABLE, e))?;
    let mut by_test: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in results {
        if let Some(t) = r["test"].as_str() {
            by_test.entry(t.to_string()).or_default().push(r);
        }
    }
    let mut out = Vec::new();
    for m in ui.p.graph.node_weights() {
        for t in &m.tests {
            let mut history = by_test.remove(&t.name).unwrap_or_default();
            let keep = history.len().saturating_sub(30);
            history.drain(..keep);
            out.push(json!({
                "test": t.name,
                "model": m.name,
                "kind": t.kind.name(),
                "latest": history.last(),
                "history": history,
            }));
        }
    }
    Ok(Json(json!({ "tests": out })))
}

/// `GET /api/tests/report.md`: the latest result of every declared test
/// as the Markdown report `dag test --markdown` writes.
pub async fn report(
    State(ui): State<Arc<Ui>>,
) -> Result<impl IntoResponse, (StatusCode, Json<Value>)> {
    let all = super::lake::recorded(&ui)
        .await
        .map_err(|e| fail(StatusCode::SERVICE_UNAVAILABLE, e))?;
    let mut latest = BTreeMap::new();
    for r in all.iter() {
        latest.insert(r.test.as_str(), r);
    }
    let mut results = Vec::new();
    let mut newest: Option<&jobs::datatest::results::Recorded> = None;
    for m in ui.p.graph.node_weights() {
        for t in &m.tests {
            if let Some(r) = latest.get(t.name.as_str()) {
                results.push(r.to_result(&t.pos.to_string()));
                if newest.is_none_or(|n| n.tested_at < r.tested_at) {
                    newest = Some(r);
                }
            }
        }
    }
    let meta = jobs::datatest::report::Meta {
        run_id: newest.map_or_else(|| "none".to_string(), |r| r.run_id.clone()),
        generated_at: chrono::Utc::now(),
        full: false,
    };
    Ok((
        [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
        jobs::datatest::report::markdown(&meta, &results),
    ))
}

#[derive(Deserialize)]
pub struct TriggerBody {
    selector: String,
}

/// `POST /api/trigger {"selector": "..."}`: queues a run of the selection
/// and everything upstream (as `dag trigger`); a scheduler runs it.
pub async fn trigger(State(ui): State<Arc<Ui>>, Json(body): Json<TriggerBody>) -> Answer {
    let pool = pool(&ui)?;
    let words: Vec<String> = body.selector.split_whitespace().map(String::from).collect();
    let selector = crate::select::Selector::parse_args(&words)
        .map_err(|e| fail(StatusCode::BAD_REQUEST, format!("selector: {e}")))?;
    let nodes =
        ui.p.select(&selector)
            .map_err(|e| fail(StatusCode::BAD_REQUEST, format!("selector: {e}")))?;
    let nodes = crate::trigger::with_upstream(&ui.p, &nodes);
    let live = crate::scheduler::store::live_schedulers(pool, std::time::Duration::from_secs(10))
        .await
        .map_err(db_error)?;
    if live == 0 {
        return Err(fail(
            StatusCode::CONFLICT,
            "no scheduler is running: start one with `dag scheduler` (or `dag ui` beside it)",
        ));
    }
    let (id, tasks) = crate::trigger::queue(pool, &ui.cfg, &ui.p, &nodes, &words.join(" "))
        .await
        .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok(Json(json!({ "run": id, "tasks": tasks })))
}
