//! `freshness`: the newest value of a timestamp column is within a lag
//! of the run's clock.
//!
//! Always over every file, not only those since a base: the newest value
//! may be in any of them. Without `where` it is measured as the UI's
//! freshness page measures it ([`newest`]): from the Delta statistics when
//! every file records them, else by reading the column a bounded chunk at
//! a time. With `where` the statistics cannot say which rows it keeps, so
//! the rows are read in chunks, with the column and what the `where` names.

use super::common::{Context, Findings, Target, chunks, filter_columns, filtered};
use super::kind::{Check, KindDef, run};
use crate::decl::{Declaring, Kind, TestKind, parse_duration};
use crate::lake::table::{DataFile, ModelTable};
use crate::model::ModelError;
use polars::prelude::*;
use std::time::Duration;

const NAME: &str = "freshness";

pub(crate) const KIND: KindDef = KindDef {
    name: NAME,
    options: &["column", "max_lag"],
    parse,
    check: run::<Freshness>,
};

/// `freshness: {max_lag: 1h}`: the newest `column` value is within
/// `max_lag` of the run's clock.
#[derive(Debug, PartialEq)]
pub struct Freshness {
    pub column: String,
    pub max_lag: Duration,
}

impl TestKind for Freshness {
    fn name(&self) -> &'static str {
        NAME
    }
    fn columns(&self) -> Vec<String> {
        vec![self.column.clone()]
    }
}

/// A timestamp column and the lag it may have.
fn parse(d: &mut Declaring) -> Option<Kind> {
    let column = d.subject();
    if !d.has("max_lag") {
        d.fail("a `freshness` test needs `max_lag:` (e.g. `1h`)");
        return None;
    }
    let lag = d.text("max_lag")?;
    let max_lag = parse_duration(&lag)
        .map_err(|e| d.fail_at("max_lag", e))
        .ok();
    let (column, max_lag) = column.zip(max_lag)?;
    Some(Kind::new(Freshness { column, max_lag }))
}

impl Check for Freshness {
    async fn check(&self, ctx: &Context<'_>, t: &Target<'_>) -> Result<Findings, ModelError> {
        check(ctx, t, &self.column, self.max_lag).await
    }
}

/// Files read together when statistics do not answer.
const CHUNK_FILES: usize = 64;

/// The newest `column` value of `files` (epoch microseconds), or `None`
/// when the column holds no value.
pub async fn newest(
    table: &ModelTable,
    files: &[DataFile],
    column: &str,
) -> Result<Option<i64>, ModelError> {
    if let Some(maxes) = files
        .iter()
        .map(|f| f.bounds(column).map(|b| b.1))
        .collect::<Option<Vec<i64>>>()
    {
        return Ok(maxes.into_iter().max());
    }
    let mut newest = None;
    for chunk in files.chunks(CHUNK_FILES) {
        let df = table.read(chunk, Some(&[column])).await?;
        if let Some(m) = micros(&df, column)? {
            newest = Some(newest.map_or(m, |n: i64| n.max(m)));
        }
    }
    Ok(newest)
}

/// The largest value of a timestamp (or date) column, in microseconds.
pub fn micros(df: &DataFrame, column: &str) -> Result<Option<i64>, ModelError> {
    let micros = df
        .column(column)?
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))?
        .cast(&DataType::Int64)?;
    Ok(micros.as_materialized_series().i64()?.max())
}

async fn check(
    ctx: &Context<'_>,
    t: &Target<'_>,
    column: &str,
    max_lag: Duration,
) -> Result<Findings, ModelError> {
    let (test, table, all) = (t.test, t.table, t.all);
    let newest: Option<i64> = if test.filter.is_none() {
        newest(table, all, column).await?
    } else {
        let mut newest = None;
        let mut names: Vec<String> = vec![column.to_string()];
        names.extend(
            filter_columns(table, test)?
                .into_iter()
                .filter(|c| c != column),
        );
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        for chunk in chunks(all) {
            let df = filtered(table.read(chunk, Some(&names)).await?, test)?;
            if let Some(m) = micros(&df, column)? {
                newest = Some(newest.map_or(m, |n: i64| n.max(m)));
            }
        }
        newest
    };
    let clock = ctx.opts.clock;
    let lag_allowed = chrono::TimeDelta::from_std(max_lag).unwrap_or(chrono::TimeDelta::MAX);
    let mut out = Findings::default();
    match newest.and_then(chrono::DateTime::from_timestamp_micros) {
        None => {
            out.failing = 1;
            out.message = format!("no {column} value: nothing to be fresh");
        }
        Some(t) => {
            let lag = clock - t;
            out.rows_checked = 1;
            if lag > lag_allowed {
                out.failing = 1;
                out.message = format!(
                    "newest {column} {t} is {} behind the clock {clock} (allowed {})",
                    span(lag.to_std().unwrap_or_default()),
                    span(max_lag)
                );
            } else {
                out.message = format!("newest {column} {t}, within {}", span(max_lag));
            }
        }
    }
    Ok(out)
}

/// A duration as `1h2m3s` (whole seconds).
fn span(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}
