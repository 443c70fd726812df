//! `GET /api/freshness`: how current the lake and the warehouse are.
//! - per Kafka source, each partition's lag (the broker's high watermark
//!   against the last offset the bronze table recorded) and the age of
//!   the table's last commit; per file source, the age of its last commit;
//! - per warehouse table, its loaded version, how many versions the lake
//!   is ahead, and the age of the loaded version's commit;
//! - per `freshness` test, the newest value of its column now, its lag
//!   and the test's threshold, with the test's latest recorded result.

use super::state::{Answer, Ui};
use axum::Json;
use axum::extract::State;
use jobs::datatest::freshness::Freshness;
use jobs::decl::{Model, Source};
use jobs::lake::table::ModelTable;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How long the broker is given to answer.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn freshness(State(ui): State<Arc<Ui>>) -> Answer {
    let s = ui.cfg.model_settings(false);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut sources = Vec::new();
    let mut tables = Vec::new();
    let mut tests = Vec::new();
    let loaded = match &ui.pool {
        Some(pool) => super::state::loaded_versions(pool).await,
        None => BTreeMap::new(),
    };
    let recorded = super::lake::results(&ui, None).await.unwrap_or_default();
    for m in ui.p.graph.node_weights() {
        let table = open(&s, m).await;
        let (version, committed) = match &table {
            Ok(Some(t)) => (
                Some(t.version()),
                t.committed_at(t.version()).await.ok().flatten(),
            ),
            _ => (None, None),
        };
        let age = |ms: Option<i64>| ms.map(|t| (now_ms - t) as f64 / 1000.0);
        let table_error = table.as_ref().err().cloned();
        let table = table.ok().flatten();
        match &m.source {
            Source::Kafka { topic } => {
                let (partitions, error) = match kafka_lag(&ui, table.as_ref(), topic).await {
                    Ok(p) => (p, table_error.clone()),
                    Err(e) => (Vec::new(), Some(e)),
                };
                let lag = partitions.iter().map(|p| p.lag).sum::<i64>();
                sources.push(json!({
                    "name": m.name, "kind": "kafka", "topic": topic,
                    "version": version, "committed_at": iso(committed), "age_seconds": age(committed),
                    "lag": if error.is_none() { Some(lag) } else { None },
                    "partitions": partitions, "error": error,
                }));
            }
            Source::Files { path, .. } => sources.push(json!({
                "name": m.name, "kind": "files", "path": path,
                "version": version, "committed_at": iso(committed), "age_seconds": age(committed),
                "lag": null, "partitions": [], "error": table_error.clone(),
            })),
            _ => {}
        }
        if let Some(w) = &m.warehouse {
            let (loaded_version, loaded_at) = loaded
                .get(&m.name)
                .map_or((None, None), |(v, at)| (Some(*v), Some(at.clone())));
            let loaded_commit = match (&table, loaded_version) {
                (Some(t), Some(v)) => t.committed_at(v).await.ok().flatten(),
                _ => None,
            };
            tables.push(json!({
                "model": m.name, "warehouse": format!("{}.{}", w.schema, w.table),
                "version": version, "loaded_version": loaded_version, "loaded_at": loaded_at,
                "versions_behind": version.zip(loaded_version).map(|(v, l)| (v - l).max(0)),
                "loaded_version_committed_at": iso(loaded_commit),
                "loaded_version_age_seconds": age(loaded_commit),
                "error": table_error,
            }));
        }
        for t in &m.tests {
            let Some(Freshness { column, max_lag }) = t.kind.get::<Freshness>() else {
                continue;
            };
            let newest = match &table {
                Some(tb) => match tb.files().await {
                    Ok(files) => jobs::datatest::freshness::newest(tb, &files, column)
                        .await
                        .ok()
                        .flatten(),
                    Err(_) => None,
                },
                None => None,
            };
            let newest_ms = newest.map(|us| us.div_euclid(1000));
            tests.push(json!({
                "test": t.name, "model": m.name, "column": column,
                "max_lag_seconds": max_lag.as_secs_f64(),
                "newest": iso(newest_ms), "lag_seconds": age(newest_ms),
                "latest": recorded.iter().rev().find(|r| r["test"] == t.name.as_str()),
            }));
        }
    }
    Ok(Json(json!({
        "now": iso(Some(now_ms)),
        "sources": sources,
        "tables": tables,
        "tests": tests,
    })))
}

fn iso(ms: Option<i64>) -> Option<String> {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// A model's table, if it exists (an error as text).
async fn open(s: &jobs::model::RunSettings, m: &Model) -> Result<Option<ModelTable>, String> {
    let loc = s.location(m.layer, &m.name).map_err(|e| e.to_string())?;
    ModelTable::open(
        &m.name,
        &loc,
        jobs::lake::table::arrow_schema(&m.table_columns()),
    )
    .await
    .map_err(|e| e.to_string())
}

/// Each partition's lag, the broker asked on the blocking pool.
async fn kafka_lag(
    ui: &Ui,
    table: Option<&ModelTable>,
    topic: &str,
) -> Result<Vec<jobs::bronze::lag::PartitionLag>, String> {
    let k = ui.cfg.ingest_settings();
    let t = topic.to_string();
    let marks = tokio::task::spawn_blocking(move || {
        jobs::bronze::lag::watermarks(&k.bootstrap_servers, &k.kafka_properties, &t, KAFKA_TIMEOUT)
    })
    .await
    .map_err(|e| e.to_string())??;
    jobs::bronze::lag::lags(table, topic, &marks)
        .await
        .map_err(|e| e.to_string())
}
