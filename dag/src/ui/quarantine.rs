//! `GET /api/quarantine`: per cleaning model's quarantine table, the rows
//! it holds by reason, by reason per hour of ingestion, and a sample of
//! the newest rows with their bronze coordinates (topic, partition,
//! offset). Raw values are bytes that failed to parse: they are shown as
//! text only when they are printable UTF-8, else escaped, with their hex.

use super::state::{Answer, Ui, fail};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jobs::decl::{Model, Source};
use jobs::lake::table::{DataFile, ModelTable};
use polars::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Newest rows shown per quarantine table.
const SAMPLE_ROWS: usize = 20;
/// Hours of history in the "over time" series (those with rows).
const HOURS: usize = 48;
/// Bytes of a raw value shown.
const SHOWN_BYTES: usize = 2048;

pub async fn quarantine(State(ui): State<Arc<Ui>>) -> Answer {
    let s = ui.cfg.model_settings(false);
    let mut out = Vec::new();
    for m in ui.p.graph.node_weights() {
        let Source::Quarantine { of } = &m.source else {
            continue;
        };
        let input = match ui.p.model(of).map(|c| &c.source) {
            Some(Source::Clean { input, .. }) => Some(input.clone()),
            _ => None,
        };
        let mut entry = json!({ "name": m.name, "of": of, "source": input });
        match one(&s, m).await {
            Ok(Some(found)) => merge(&mut entry, found),
            Ok(None) => merge(
                &mut entry,
                json!({ "rows": 0, "version": null, "by_reason": [], "by_hour": [], "sample": [] }),
            ),
            Err(e) => {
                return Err(fail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("reading {}: {e}", m.name),
                ));
            }
        }
        out.push(entry);
    }
    Ok(Json(json!({ "quarantines": out })))
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

/// One quarantine table's counts and sample (`None`: no table yet).
async fn one(s: &jobs::model::RunSettings, m: &Model) -> Result<Option<Value>, String> {
    let loc = s.location(m.layer, &m.name).map_err(|e| e.to_string())?;
    let schema = jobs::lake::table::arrow_schema(&jobs::decl::quarantine_columns());
    let Some(table) = ModelTable::open(&m.name, &loc, schema)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let files = table.files().await.map_err(|e| e.to_string())?;
    let df = table
        .read(&files, Some(&["reason", "ingested_at"]))
        .await
        .map_err(|e| e.to_string())?;
    let (by_reason, by_hour) = counts(&df).map_err(|e| e.to_string())?;
    let sample = sample(&table, &files).await.map_err(|e| e.to_string())?;
    Ok(Some(json!({
        "rows": df.height(),
        "version": table.version(),
        "by_reason": by_reason.into_iter().map(|(reason, rows)| json!({ "reason": reason, "rows": rows })).collect::<Vec<_>>(),
        "by_hour": by_hour,
        "sample": sample,
    })))
}

/// Rows per reason, and per (hour of ingestion, reason) for the last
/// [`HOURS`] hours that have rows.
fn counts(df: &DataFrame) -> PolarsResult<(BTreeMap<String, u64>, Vec<Value>)> {
    let reasons = df.column("reason")?.str()?.clone();
    let at = df.column("ingested_at")?.cast(&DataType::Int64)?;
    let at = at.i64()?;
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_hour: BTreeMap<i64, BTreeMap<String, u64>> = BTreeMap::new();
    for (reason, micros) in reasons.iter().zip(at.iter()) {
        let reason = reason.unwrap_or("").to_string();
        *by_reason.entry(reason.clone()).or_default() += 1;
        if let Some(us) = micros {
            let hour = us.div_euclid(3_600_000_000);
            *by_hour.entry(hour).or_default().entry(reason).or_default() += 1;
        }
    }
    let keep = by_hour.len().saturating_sub(HOURS);
    let series = by_hour
        .into_iter()
        .skip(keep)
        .map(|(hour, reasons)| {
            let start = chrono::DateTime::from_timestamp(hour * 3600, 0)
                .map(|t| t.format("%Y-%m-%dT%H:00Z").to_string())
                .unwrap_or_default();
            json!({ "hour": start, "reasons": reasons })
        })
        .collect();
    Ok((by_reason, series))
}

/// The newest rows: the files with the latest ingestion (by their
/// statistics) read until there are enough, newest first.
async fn sample(table: &ModelTable, files: &[DataFile]) -> Result<Vec<Value>, String> {
    let mut order: Vec<&DataFile> = files.iter().collect();
    order.sort_by_key(|f| std::cmp::Reverse(f.bounds("ingested_at").map_or(i64::MIN, |b| b.1)));
    let mut frames = Vec::new();
    let mut rows = 0;
    for f in order {
        let df = table
            .read(std::slice::from_ref(f), None)
            .await
            .map_err(|e| e.to_string())?;
        rows += df.height();
        frames.push(df);
        if rows >= SAMPLE_ROWS {
            break;
        }
    }
    let mut out = Vec::new();
    for df in &frames {
        out.extend(rows_of(df).map_err(|e| e.to_string())?);
    }
    out.sort_by_key(|r| std::cmp::Reverse(r.0));
    Ok(out.into_iter().take(SAMPLE_ROWS).map(|(_, v)| v).collect())
}

/// Each row as (ingested_at, JSON).
fn rows_of(df: &DataFrame) -> PolarsResult<Vec<(i64, Value)>> {
    let topic = df.column("topic")?.str()?.clone();
    let partition = df.column("partition")?.cast(&DataType::Int64)?;
    let partition = partition.i64()?;
    let offset = df.column("offset")?.cast(&DataType::Int64)?;
    let offset = offset.i64()?;
    let value = df.column("value")?.binary()?.clone();
    let reason = df.column("reason")?.str()?.clone();
    let at = df.column("ingested_at")?.cast(&DataType::Int64)?;
    let at = at.i64()?;
    Ok((0..df.height())
        .map(|i| {
            let us = at.get(i).unwrap_or(i64::MIN);
            let when = chrono::DateTime::from_timestamp_micros(us)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            (
                us,
                json!({
                    "topic": topic.get(i),
                    "partition": partition.get(i),
                    "offset": offset.get(i),
                    "reason": reason.get(i),
                    "ingested_at": when,
                    "value": value.get(i).map(shown),
                }),
            )
        })
        .collect())
}

/// A raw value as the page may show it: `text` (printable UTF-8 as is,
/// anything else escaped as `\xNN`), `binary` when it was not printable
/// UTF-8 (then `hex` too), its length, and whether it was cut.
pub fn shown(bytes: &[u8]) -> Value {
    let cut = bytes.len() > SHOWN_BYTES;
    let head = &bytes[..bytes.len().min(SHOWN_BYTES)];
    let printable = |c: char| !c.is_control() || c == '\n' || c == '\t';
    let text = std::str::from_utf8(head)
        .ok()
        .filter(|t| t.chars().all(printable));
    match text {
        Some(t) => json!({ "text": t, "binary": false, "bytes": bytes.len(), "cut": cut }),
        None => {
            let mut escaped = String::new();
            for chunk in head.utf8_chunks() {
                for c in chunk.valid().chars() {
                    if printable(c) {
                        escaped.push(c);
                    } else {
                        escaped.extend(c.escape_default());
                    }
                }
                for b in chunk.invalid() {
                    escaped.push_str(&format!("\\x{b:02x}"));
                }
            }
            let hex: String = head
                .iter()
                .take(256)
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ");
            json!({ "text": escaped, "binary": true, "hex": hex, "bytes": bytes.len(), "cut": cut })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn printable_utf8_is_text_and_the_rest_is_escaped_with_its_hex() {
        let v = shown("{\"speed\": \"fast\"} é".as_bytes());
        assert_eq!(v["binary"], false);
        assert_eq!(v["text"], "{\"speed\": \"fast\"} é");
        let v = shown(b"ab\xff\x00<script>");
        assert_eq!(v["binary"], true);
        assert_eq!(v["text"], "ab\\xff\\u{0}<script>");
        assert_eq!(v["hex"], "61 62 ff 00 3c 73 63 72 69 70 74 3e");
        assert_eq!(v["bytes"], 12);
        let long = vec![b'x'; 5000];
        let v = shown(&long);
        assert_eq!(v["cut"], true);
        assert_eq!(v["text"].as_str().map(str::len), Some(2048));
    }
}
