//! What the kinds share: the evaluation's inputs ([`Context`], [`Target`]
//! and the [`Scope`] of files a row-wise kind reads), its [`Findings`], and
//! reading the rows in scope a bounded chunk at a time, with only the
//! columns a test needs, through its `where` into a sample of failing rows.

use crate::datatest::Options;
use crate::datatest::results::Base;
use crate::decl::{DataTest, Model, sql_columns};
use crate::lake::table::{DataFile, ModelTable};
use crate::model::{Catalog, ModelError, RunSettings};
use polars::prelude::*;
use polars::sql::SQLContext;

/// What the evaluation found, before thresholds decide the status.
#[derive(Clone, Debug, Default)]
pub struct Findings {
    pub version: i64,
    pub since_version: Option<i64>,
    /// The other model's version, for kinds that compare with one.
    pub compared_version: Option<i64>,
    pub rows_checked: u64,
    pub failing: u64,
    pub message: String,
    pub sample: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Where the tables are and how tests run.
pub struct Context<'a> {
    pub catalog: &'a Catalog,
    pub settings: &'a RunSettings,
    pub opts: &'a Options,
}

/// The table a test checks and the part of it in scope.
pub(crate) struct Target<'a> {
    pub model: &'a Model,
    pub test: &'a DataTest,
    pub table: &'a ModelTable,
    /// Every live file of the table.
    pub all: &'a [DataFile],
    pub scope: &'a Scope,
    /// The test's last clean pass on this table, if any.
    pub base: Option<&'a Base>,
}

/// Keyed filters: `semi_on(right, keys)` keeps the rows whose key
/// values `right` holds, `anti_on` those it does not.
pub(crate) trait KeyedFilter {
    fn semi_on(self, right: impl IntoLazy, keys: impl AsRef<[Expr]>) -> LazyFrame;
    fn anti_on(self, right: impl IntoLazy, keys: impl AsRef<[Expr]>) -> LazyFrame;
}

impl KeyedFilter for LazyFrame {
    fn semi_on(self, right: impl IntoLazy, keys: impl AsRef<[Expr]>) -> LazyFrame {
        let k = keys.as_ref().to_vec();
        self.join(right.lazy(), k.clone(), k, JoinArgs::new(JoinType::Semi))
    }

    fn anti_on(self, right: impl IntoLazy, keys: impl AsRef<[Expr]>) -> LazyFrame {
        let k = keys.as_ref().to_vec();
        self.join(right.lazy(), k.clone(), k, JoinArgs::new(JoinType::Anti))
    }
}

/// Files of this many bytes (on disk) at most are read at once: memory
/// stays bounded however much a test reads.
const CHUNK_BYTES: i64 = 256 << 20;

pub(crate) fn input_error(test: &DataTest, e: impl std::fmt::Display) -> ModelError {
    ModelError::Input(format!("test {} ({}): {e}", test.name, test.pos))
}

/// The files whose rows a row-wise test checks.
pub(crate) struct Scope {
    pub files: Vec<DataFile>,
    /// `Some(v)`: the files committed after version v; `None`: all.
    pub since: Option<i64>,
}

impl Scope {
    pub async fn new(
        table: &ModelTable,
        all: &[DataFile],
        base: Option<&Base>,
    ) -> Result<Scope, ModelError> {
        let everything = || Scope {
            files: all.to_vec(),
            since: None,
        };
        let Some(base) = base else {
            return Ok(everything());
        };
        // A table younger than the base was recreated; a log cleaned
        // below it cannot say what changed: check everything.
        if base.version > table.version() {
            return Ok(everything());
        }
        let Ok(changes) = table.changes(base.version).await else {
            return Ok(everything());
        };
        // The live files holding rows added since the base, compacted
        // ones included (with their older rows: checked again, no harm).
        let files: Vec<DataFile> = changes.live_new(all).into_iter().cloned().collect();
        // Every live file is new (a full refresh replaced the table): the
        // check is over every row, and says so.
        if files.len() == all.len() {
            return Ok(everything());
        }
        Ok(Scope {
            files,
            since: Some(base.version),
        })
    }
}

/// The table's columns a test reads: `named`, those its `where` (and
/// `extra` SQL) mention, and the model's unique key for the sample.
pub(crate) fn needed_columns(
    model: &Model,
    table: &ModelTable,
    test: &DataTest,
    named: &[&str],
    extra_sql: &str,
) -> Result<Vec<String>, ModelError> {
    // One parseable query naming every condition: `SELECT (a), (b)`.
    let parts: Vec<String> = test
        .filter
        .iter()
        .map(String::as_str)
        .chain(Some(extra_sql).filter(|e| !e.trim().is_empty()))
        .map(|p| format!("({p})"))
        .collect();
    let words = sql_columns(&format!(
        "SELECT {}",
        if parts.is_empty() {
            "1".to_string()
        } else {
            parts.join(", ")
        }
    ))
    .map_err(|e| input_error(test, e))?;
    let mut out: Vec<String> = Vec::new();
    let mut add = |c: &str| {
        if !out.iter().any(|o| o == c) {
            out.push(c.to_string());
        }
    };
    for c in &model.unique_key {
        add(c);
    }
    for c in named {
        add(c);
    }
    for f in table.schema().fields() {
        if words.reads("t", f.name()) {
            add(f.name());
        }
    }
    Ok(out
        .into_iter()
        .filter(|c| table.schema().index_of(c).is_ok())
        .collect())
}

/// The rows of `df` that satisfy the test's `where` and `cond`.
pub(crate) fn select(df: DataFrame, test: &DataTest, cond: &str) -> Result<DataFrame, ModelError> {
    let cond = match &test.filter {
        Some(f) => format!("({f}) AND ({cond})"),
        None => cond.to_string(),
    };
    let mut ctx = SQLContext::new();
    ctx.register("t", df.lazy());
    ctx.execute(&format!("SELECT * FROM t WHERE {cond}"))
        .and_then(|lf| lf.collect())
        .map_err(|e| input_error(test, e))
}

/// Groups files into reads of at most [`CHUNK_BYTES`].
pub(crate) fn chunks(files: &[DataFile]) -> Vec<&[DataFile]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, f) in files.iter().enumerate() {
        if i > start && bytes + f.size > CHUNK_BYTES {
            out.push(&files[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += f.size;
    }
    if start < files.len() {
        out.push(&files[start..]);
    }
    out
}

/// Counts and samples the rows in scope that satisfy `cond` (`named`: the
/// columns the test is about, read even when `cond` does not name them).
pub(crate) async fn rowwise(
    ctx: &Context<'_>,
    t: &Target<'_>,
    cond: &str,
    named: &[&str],
) -> Result<Findings, ModelError> {
    let columns = needed_columns(t.model, t.table, t.test, named, cond)?;
    let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut out = Findings {
        since_version: t.scope.since,
        ..Findings::default()
    };
    for chunk in chunks(&t.scope.files) {
        let df = t.table.read(chunk, Some(&cols)).await?;
        out.rows_checked += df.height() as u64;
        let bad = select(df, t.test, cond)?;
        out.failing += bad.height() as u64;
        add_sample(&mut out.sample, &bad, ctx.opts.sample_rows);
    }
    out.message = if out.failing == 0 {
        format!("{} row(s) checked", out.rows_checked)
    } else {
        format!(
            "{} of {} row(s) checked fail `{cond}`",
            out.failing, out.rows_checked
        )
    };
    Ok(out)
}

/// A number from a file's Delta statistics: `numRecords`, or
/// `nullCount.<column>`.
pub(crate) fn stat(file: &DataFile, key: &str, column: Option<&str>) -> Option<u64> {
    let stats: serde_json::Value = serde_json::from_str(file.stats.as_deref()?).ok()?;
    let v = stats.get(key)?;
    match column {
        Some(c) => v.get(c)?.as_u64(),
        None => v.as_u64(),
    }
}

/// The table's columns the test's `where` reads.
pub(crate) fn filter_columns(
    table: &ModelTable,
    test: &DataTest,
) -> Result<Vec<String>, ModelError> {
    columns_in(table, test.filter.as_deref(), test)
}

/// The table's columns a SQL condition mentions.
pub(crate) fn columns_in(
    table: &ModelTable,
    sql: Option<&str>,
    test: &DataTest,
) -> Result<Vec<String>, ModelError> {
    let Some(f) = sql else {
        return Ok(Vec::new());
    };
    let words = sql_columns(&format!("SELECT {f}")).map_err(|e| input_error(test, e))?;
    Ok(table
        .schema()
        .fields()
        .iter()
        .map(|c| c.name().clone())
        .filter(|c| words.reads("t", c))
        .collect())
}

/// The rows of `df` that satisfy the test's `where`.
pub(crate) fn filtered(df: DataFrame, test: &DataTest) -> Result<DataFrame, ModelError> {
    match &test.filter {
        Some(_) => select(df, test, "TRUE"),
        None => Ok(df),
    }
}

/// Adds rows of `df` to `sample` until it holds `limit`.
pub(crate) fn add_sample(
    sample: &mut Vec<serde_json::Map<String, serde_json::Value>>,
    df: &DataFrame,
    limit: usize,
) {
    let take = limit.saturating_sub(sample.len()).min(df.height());
    for i in 0..take {
        let mut row = serde_json::Map::new();
        for c in df.columns() {
            let v = c.get(i).unwrap_or(AnyValue::Null);
            row.insert(c.name().to_string(), json_value(&v));
        }
        sample.push(row);
    }
}

fn json_value(v: &AnyValue) -> serde_json::Value {
    use serde_json::Value;
    match v {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(b) => Value::Bool(*b),
        AnyValue::String(s) => Value::String(s.to_string()),
        AnyValue::StringOwned(s) => Value::String(s.to_string()),
        AnyValue::Int8(n) => Value::from(*n),
        AnyValue::Int16(n) => Value::from(*n),
        AnyValue::Int32(n) => Value::from(*n),
        AnyValue::Int64(n) => Value::from(*n),
        AnyValue::UInt8(n) => Value::from(*n),
        AnyValue::UInt16(n) => Value::from(*n),
        AnyValue::UInt32(n) => Value::from(*n),
        AnyValue::UInt64(n) => Value::from(*n),
        AnyValue::Float32(x) => {
            serde_json::Number::from_f64(f64::from(*x)).map_or(Value::Null, Value::Number)
        }
        AnyValue::Float64(x) => serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
        other => Value::String(other.to_string()),
    }
}
