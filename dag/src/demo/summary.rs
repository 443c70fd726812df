//! The demo's closing figures: counts per layer and the warehouse checked
//! against what the simulator sent, and produce -> PostgreSQL freshness.

use super::expected::Expected;
use crate::outcome::CliError;
use jobs::model::Catalog;
use jobs::produce::sim::Kind;
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The rows of a warehouse table (0 when it is not there yet).
pub async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM gold.{table}"
    )))
    .fetch_one(pool)
    .await
    .unwrap_or(0)
}

pub struct SummaryLines {
    pub lines: Vec<String>,
    pub consistent: bool,
}

async fn rows(
    catalog: &Catalog,
    s: &jobs::model::RunSettings,
    name: &str,
) -> Result<u64, CliError> {
    let t = catalog
        .open_input(name, s)
        .await
        .map_err(anyhow::Error::from)?;
    let first = t.schema().field(0).name().clone();
    Ok(t.read_all(Some(&[first.as_str()]))
        .await
        .map_err(anyhow::Error::from)?
        .height() as u64)
}

pub async fn summarize(
    catalog: &Catalog,
    s: &jobs::model::RunSettings,
    pool: &PgPool,
    want: &Expected,
    p: &crate::pipeline::Pipeline,
) -> Result<SummaryLines, CliError> {
    // The warehouse tables: the models marked for it.
    let tables: Vec<String> = p
        .graph
        .node_weights()
        .filter(|m| m.warehouse.is_some())
        .map(|m| m.name.clone())
        .collect();
    let mut lines = Vec::new();
    let mut ok = true;
    let mut check = |good: bool| {
        ok &= good;
        if good { "" } else { "  !" }
    };
    let bt = rows(catalog, s, "bronze_vehicle_telemetry").await?;
    let bf = rows(catalog, s, "bronze_traffic_fines").await?;
    lines.push(format!(
        "  bronze      {} messages (telemetry {bt}, fines {bf}); produced {}{}",
        bt + bf,
        want.messages,
        check(bt + bf == want.messages)
    ));
    let st = rows(catalog, s, "silver_telemetry").await?;
    let sf = rows(catalog, s, "silver_fines").await?;
    lines.push(format!(
        "  silver      {st} events, {sf} fines; distinct valid sent: {}, {}{}",
        want.valid_events,
        want.valid_fines,
        check(st == want.valid_events && sf == want.valid_fines)
    ));
    let mut quarantined = 0;
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for q in ["quarantine_telemetry", "quarantine_fines"] {
        let t = catalog
            .open_input(q, s)
            .await
            .map_err(anyhow::Error::from)?;
        let df = t
            .read_all(Some(&["reason"]))
            .await
            .map_err(anyhow::Error::from)?;
        quarantined += df.height() as u64;
        if let Ok(col) = df.column("reason").and_then(|c| c.str().cloned()) {
            for r in col.iter().flatten() {
                // `missing:<field>` and the like: by kind of reason.
                let kind = r.split(':').next().unwrap_or(r);
                *reasons.entry(kind.to_string()).or_default() += 1;
            }
        }
    }
    let duplicates = (bt + bf).saturating_sub(st + sf + quarantined);
    lines.push(format!(
        "  duplicates  {duplicates} (bronze - silver - quarantined; the simulator re-sent {})",
        want.kinds.get(&Kind::Duplicate).copied().unwrap_or(0)
    ));
    let by_reason: Vec<String> = reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
    lines.push(format!(
        "  quarantined {quarantined}: {}",
        by_reason.join(", ")
    ));
    let mut gold = Vec::new();
    let mut warehouse = Vec::new();
    let (mut wh_ok, mut fact_ok) = (true, false);
    for t in tables.iter().map(String::as_str) {
        let g = rows(catalog, s, t).await?;
        let w = count(pool, t).await as u64;
        wh_ok &= g == w;
        if t == "fact_telemetry" {
            fact_ok = g == want.valid_events;
        }
        gold.push(format!("{t} {g}"));
        warehouse.push(format!("{t} {w}"));
    }
    lines.push(format!(
        "  gold        {}{}",
        gold.join(", "),
        check(fact_ok)
    ));
    lines.push(format!(
        "  warehouse   {} (= gold){}",
        warehouse.join(", "),
        check(wh_ok)
    ));
    Ok(SummaryLines {
        lines,
        consistent: ok,
    })
}

/// p50 and p99 of produce -> PostgreSQL: each loaded event's Kafka
/// timestamp (when it was produced) to the commit of the first load that
/// carried the fact version it was added in.
pub async fn freshness(
    catalog: &Catalog,
    s: &jobs::model::RunSettings,
    pool: &PgPool,
) -> Result<Option<(f64, f64, usize)>, CliError> {
    let err = |e: jobs::lake::table::TableError| CliError::Other(e.into());
    let loads: Vec<(i64, f64)> = sqlx::query_as(
        "SELECT to_version, extract(epoch FROM loaded_at)::float8 FROM dag.load_history \
         WHERE model = 'fact_telemetry' ORDER BY loaded_at",
    )
    .fetch_all(pool)
    .await
    .map_err(anyhow::Error::from)?;
    // When each event was produced (its first copy in bronze).
    let bronze = catalog
        .open_input("bronze_vehicle_telemetry", s)
        .await
        .map_err(anyhow::Error::from)?;
    let df = bronze
        .read_all(Some(&["value", "kafka_timestamp"]))
        .await
        .map_err(err)?;
    let mut produced: HashMap<String, i64> = HashMap::new();
    let values = df
        .column("value")
        .map_err(anyhow::Error::from)?
        .binary()
        .map_err(anyhow::Error::from)?
        .clone();
    let ts = df
        .column("kafka_timestamp")
        .map_err(anyhow::Error::from)?
        .cast(&polars::prelude::DataType::Int64)
        .map_err(anyhow::Error::from)?;
    let ts = ts.i64().map_err(anyhow::Error::from)?.clone();
    for (v, t) in values.iter().zip(ts.iter()) {
        let (Some(v), Some(t)) = (v, t) else { continue };
        if let Some(id) = serde_json::from_slice::<serde_json::Value>(v)
            .ok()
            .and_then(|j| j["event_id"].as_str().map(str::to_string))
        {
            let e = produced.entry(id).or_insert(t);
            *e = (*e).min(t);
        }
    }
    // The fact version each event was first added in.
    let fact = catalog
        .open_input("fact_telemetry", s)
        .await
        .map_err(anyhow::Error::from)?;
    let mut latencies = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for v in 0..=fact.version() {
        let Some(load) = loads.iter().find(|(to, _)| *to >= v).map(|l| l.1) else {
            continue;
        };
        let added = fact.commit_changes(v).await.map_err(err)?.added;
        if added.is_empty() {
            continue;
        }
        let ids = fact.read(&added, Some(&["event_id"])).await.map_err(err)?;
        let ids = ids
            .column("event_id")
            .map_err(anyhow::Error::from)?
            .str()
            .map_err(anyhow::Error::from)?
            .clone();
        for id in ids.iter().flatten() {
            // A merge may rewrite a row later: its first version counts.
            if seen.insert(id.to_string())
                && let Some(t) = produced.get(id)
            {
                latencies.push(load - *t as f64 / 1e6);
            }
        }
    }
    if latencies.is_empty() {
        return Ok(None);
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Ok(Some((pick(0.5), pick(0.99), latencies.len())))
}
