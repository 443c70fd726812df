//! Each test kind on polars, over the rows in scope: the files committed
//! after the test's base (or every file), read a bounded chunk at a time
//! and only the columns the test needs (its columns, the model's unique
//! key for the sample, and those its `where` names).
//!
//! Row-wise kinds become one SQL condition a failing row satisfies
//! (`where` AND the kind's condition), run by polars SQL on each chunk.
//! Statistics answer without reading when they can: a `not_null` whose
//! files record no nulls, a `row_count` or `freshness` without `where`.

use super::Options;
use super::results::Base;
use crate::model::keyset::KeySet;
use crate::model::table::{DataFile, ModelTable};
use crate::model::{Catalog, ModelError, Settings};
use crate::spec::{Allowed, Bound, ColumnType, DataTest, Model, TestKind, sql_columns};
use polars::prelude::*;
use polars::sql::SQLContext;
use std::collections::{BTreeMap, BTreeSet};

/// What the evaluation found, before thresholds decide the status.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub version: i64,
    pub since_version: Option<i64>,
    /// The other model's version, for kinds that compare with one.
    pub compared_version: Option<i64>,
    pub rows_checked: u64,
    pub failing: u64,
    pub message: String,
    pub sample: Vec<serde_json::Map<String, serde_json::Value>>,
}

pub struct Context<'a> {
    pub catalog: &'a Catalog,
    pub settings: &'a Settings,
    pub opts: &'a Options,
}

/// Keyed filters: `semi_on(right, keys)` keeps the rows whose key
/// values `right` holds, `anti_on` those it does not.
trait KeyedFilter {
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

/// Files of this many bytes (on disk) at most are read at once.
const CHUNK_BYTES: i64 = 256 << 20;

fn input_error(test: &DataTest, e: impl std::fmt::Display) -> ModelError {
    ModelError::Input(format!("test {} ({}): {e}", test.name, test.pos))
}

pub async fn evaluate(
    ctx: &Context<'_>,
    model: &Model,
    test: &DataTest,
    passes: &[Base],
) -> Result<Outcome, ModelError> {
    let table = ctx.catalog.open_input(&model.name, ctx.settings).await?;
    let base = super::results::pick(passes, table.created_at());
    let version = table.version();
    let all = table.files().await?;
    let scope = Scope::new(&table, &all, base.as_ref()).await?;
    let mut out = match &test.kind {
        TestKind::NotNull { column } => not_null(ctx, model, test, &table, &scope, column).await?,
        TestKind::AcceptedValues { column, allowed } => {
            let ty = column_type(model, test, column)?;
            let cond = not_accepted(column, ty, allowed);
            rowwise(ctx, model, test, &table, &scope.files, &cond, &[column]).await?
        }
        TestKind::Expression { sql } => {
            let cond = format!("NOT COALESCE(({sql}), FALSE)");
            rowwise(ctx, model, test, &table, &scope.files, &cond, &[]).await?
        }
        TestKind::Unique { columns } => {
            unique(ctx, model, test, &table, &all, &scope, columns).await?
        }
        TestKind::Relationships { column, to, field } => {
            relationships(
                ctx,
                model,
                test,
                &table,
                &all,
                &scope,
                base.as_ref(),
                column,
                to,
                field,
            )
            .await?
        }
        TestKind::RowCount { min, max, equal_to } => {
            row_count(ctx, test, &table, &all, *min, *max, equal_to.as_ref()).await?
        }
        TestKind::Freshness { column, max_lag } => {
            freshness(ctx, test, &table, &all, column, *max_lag).await?
        }
    };
    out.version = version;
    if matches!(
        test.kind,
        TestKind::NotNull { .. }
            | TestKind::AcceptedValues { .. }
            | TestKind::Expression { .. }
            | TestKind::Unique { .. }
    ) {
        // (relationships sets its own: it may widen to every row)
        out.since_version = scope.since;
    }
    if let Some(since) = out.since_version
        && out.rows_checked == 0
        && out.failing == 0
    {
        out.message = format!("nothing committed since v{since}, where it passed");
    }
    Ok(out)
}

/// The files whose rows a row-wise test checks.
struct Scope {
    files: Vec<DataFile>,
    /// `Some(v)`: the files committed after version v; `None`: all.
    since: Option<i64>,
}

impl Scope {
    async fn new(
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
        let live: BTreeSet<&str> = all.iter().map(|f| f.path.as_str()).collect();
        let files: Vec<DataFile> = changes
            .added
            .into_iter()
            .filter(|f| live.contains(f.path.as_str()))
            .collect();
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

fn column_type(model: &Model, test: &DataTest, column: &str) -> Result<ColumnType, ModelError> {
    model.column(column).map(|c| c.ty).ok_or_else(|| {
        input_error(
            test,
            format!("model {} has no column `{column}`", model.name),
        )
    })
}

/// `column` is set and not among the allowed values (nulls pass, as in dbt).
fn not_accepted(column: &str, ty: ColumnType, allowed: &Allowed) -> String {
    match allowed {
        Allowed::Values(values) => {
            let numeric = !matches!(ty, ColumnType::String | ColumnType::Binary)
                && values.iter().all(|v| v.parse::<f64>().is_ok());
            let list: Vec<String> = values
                .iter()
                .map(|v| {
                    if numeric {
                        v.clone()
                    } else {
                        format!("'{}'", v.replace('\'', "''"))
                    }
                })
                .collect();
            let subject = if numeric || ty == ColumnType::String {
                column.to_string()
            } else {
                format!("CAST({column} AS VARCHAR)")
            };
            format!(
                "{column} IS NOT NULL AND {subject} NOT IN ({})",
                list.join(", ")
            )
        }
        Allowed::Range(r) => {
            let mut inside = Vec::new();
            match r.low {
                Bound::Inclusive(v) => inside.push(format!("{column} >= {v}")),
                Bound::Exclusive(v) => inside.push(format!("{column} > {v}")),
                Bound::Unbounded => {}
            }
            match r.high {
                Bound::Inclusive(v) => inside.push(format!("{column} <= {v}")),
                Bound::Exclusive(v) => inside.push(format!("{column} < {v}")),
                Bound::Unbounded => {}
            }
            if inside.is_empty() {
                "FALSE".to_string()
            } else {
                format!("{column} IS NOT NULL AND NOT ({})", inside.join(" AND "))
            }
        }
    }
}

/// The table's columns a test reads: `named`, those its `where` (and
/// `extra` SQL) mention, and the model's unique key for the sample.
fn needed_columns(
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
fn select(df: DataFrame, test: &DataTest, cond: &str) -> Result<DataFrame, ModelError> {
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
fn chunks(files: &[DataFile]) -> Vec<&[DataFile]> {
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

/// Counts and samples the rows of `files` that satisfy `cond`.
async fn rowwise(
    ctx: &Context<'_>,
    model: &Model,
    test: &DataTest,
    table: &ModelTable,
    files: &[DataFile],
    cond: &str,
    named: &[&str],
) -> Result<Outcome, ModelError> {
    let columns = needed_columns(model, table, test, named, cond)?;
    let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut out = Outcome::default();
    for chunk in chunks(files) {
        let df = table.read(chunk, Some(&cols)).await?;
        out.rows_checked += df.height() as u64;
        let bad = select(df, test, cond)?;
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

async fn not_null(
    ctx: &Context<'_>,
    model: &Model,
    test: &DataTest,
    table: &ModelTable,
    scope: &Scope,
    column: &str,
) -> Result<Outcome, ModelError> {
    // Without `where`, the writers' null counts answer when they say none.
    if test.filter.is_none() {
        let counted: Option<Vec<(u64, u64)>> = scope
            .files
            .iter()
            .map(|f| {
                Some((
                    stat(f, "numRecords", None)?,
                    stat(f, "nullCount", Some(column))?,
                ))
            })
            .collect();
        if let Some(counted) = counted {
            let rows: u64 = counted.iter().map(|c| c.0).sum();
            if counted.iter().all(|c| c.1 == 0) {
                return Ok(Outcome {
                    rows_checked: rows,
                    message: format!("{rows} row(s): no nulls recorded in the file statistics"),
                    ..Outcome::default()
                });
            }
        }
    }
    let cond = format!("{column} IS NULL");
    rowwise(ctx, model, test, table, &scope.files, &cond, &[column]).await
}

/// A number from a file's Delta statistics: `numRecords`, or
/// `nullCount.<column>`.
fn stat(file: &DataFile, key: &str, column: Option<&str>) -> Option<u64> {
    let stats: serde_json::Value = serde_json::from_str(file.stats.as_deref()?).ok()?;
    let v = stats.get(key)?;
    match column {
        Some(c) => v.get(c)?.as_u64(),
        None => v.as_u64(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn unique(
    ctx: &Context<'_>,
    model: &Model,
    test: &DataTest,
    table: &ModelTable,
    all: &[DataFile],
    scope: &Scope,
    columns: &[String],
) -> Result<Outcome, ModelError> {
    let named: Vec<&str> = columns.iter().map(String::as_str).collect();
    let needed = needed_columns(model, table, test, &named, "")?;
    let cols: Vec<&str> = needed.iter().map(String::as_str).collect();
    if scope.since.is_none() {
        return unique_everywhere(ctx, test, table, &scope.files, &named, &cols).await;
    }
    let keys: Vec<Expr> = named.iter().map(|c| col(*c)).collect();
    // Rows in scope (with `where`).
    let new = filtered(table.read(&scope.files, Some(&cols)).await?, test)?;
    // The rest of the table where it can hold one of the new keys: files
    // outside the scope, in the new rows' partitions when the key holds a
    // partition column.
    let others: Vec<DataFile> = if new.height() > 0 {
        let in_scope: BTreeSet<&str> = scope.files.iter().map(|f| f.path.as_str()).collect();
        let partitions = partition_filter(table, &new, &named)?;
        all.iter()
            .filter(|f| !in_scope.contains(f.path.as_str()))
            .filter(|f| partitions.admits(f))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    // One key column and no `where` (the usual test): when every new key
    // is there once, which one pass over an exact key set tells, and the
    // rest of the table holds none of them, the test passes without
    // counting keys (a third of a full run's tests at 1M rows).
    let lookup = named.len() == 1 && test.filter.is_none();
    if lookup && new.height() > 0 && KeySet::new(columns).insert_new(&new)?.all() {
        let wanted = new.select(named.clone())?;
        if table.held(&others, &wanted).await?.height() == 0 {
            return Ok(Outcome {
                rows_checked: new.height() as u64,
                message: unique_message(new.height() as u64, 0, &named),
                ..Outcome::default()
            });
        }
    }
    // How often each key occurs among the new rows, then in the rest.
    let mut counts = new
        .clone()
        .lazy()
        .group_by(keys.clone())
        .agg([len().alias("__n")])
        .collect()?;
    if new.height() > 0 {
        let wanted = counts.select(named.clone())?;
        // One key column and no `where`: looked up through the files'
        // bloom filters (written on model keys) when it is a string, so
        // only the row groups that may hold a new key are read.
        if lookup {
            let hits = table.held(&others, &wanted).await?;
            if hits.height() > 0 {
                let hits = hits.lazy().group_by(keys.clone()).agg([len().alias("__n")]);
                counts = concat([counts.lazy(), hits], UnionArgs::default())?
                    .group_by(keys.clone())
                    .agg([col("__n").sum()])
                    .collect()?;
            }
            return finish_unique(ctx, new, counts, keys, &named);
        }
        let mut other_cols: Vec<String> = columns.to_vec();
        for c in filter_columns(table, test)? {
            if !other_cols.contains(&c) {
                other_cols.push(c);
            }
        }
        let other_cols: Vec<&str> = other_cols.iter().map(String::as_str).collect();
        for chunk in chunks(&others) {
            let rows = filtered(table.read(chunk, Some(&other_cols)).await?, test)?;
            let hits = rows
                .lazy()
                .semi_on(wanted.clone(), keys.clone())
                .group_by(keys.clone())
                .agg([len().alias("__n")])
                .collect()?;
            if hits.height() > 0 {
                counts = concat([counts.lazy(), hits.lazy()], UnionArgs::default())?
                    .group_by(keys.clone())
                    .agg([col("__n").sum()])
                    .collect()?;
            }
        }
    }
    finish_unique(ctx, new, counts, keys, &named)
}

/// The outcome of `unique` on the rows in scope (`new`), given how often
/// each of their keys occurs in the table (`counts`, column `__n`).
fn finish_unique(
    ctx: &Context<'_>,
    new: DataFrame,
    counts: DataFrame,
    keys: Vec<Expr>,
    named: &[&str],
) -> Result<Outcome, ModelError> {
    let repeated = counts
        .lazy()
        .filter(col("__n").gt(lit(1)))
        .select(keys.clone())
        .collect()?;
    let bad = new.clone().lazy().semi_on(repeated, keys).collect()?;
    let mut out = Outcome {
        rows_checked: new.height() as u64,
        failing: bad.height() as u64,
        ..Outcome::default()
    };
    add_sample(&mut out.sample, &bad, ctx.opts.sample_rows);
    out.message = unique_message(out.rows_checked, out.failing, named);
    Ok(out)
}

fn unique_message(checked: u64, failing: u64, named: &[&str]) -> String {
    if failing == 0 {
        format!(
            "{checked} row(s) checked, every ({}) once",
            named.join(", ")
        )
    } else {
        format!(
            "{failing} row(s) share their ({}) with another row",
            named.join(", ")
        )
    }
}

/// `unique` over every row, in bounded memory: a first pass keeps only a
/// 64-bit hash per row, chunk by chunk; a second pass reads back only the
/// rows whose hash repeats and counts their keys exactly (a collision
/// costs a candidate, never a wrong answer).
async fn unique_everywhere(
    ctx: &Context<'_>,
    test: &DataTest,
    table: &ModelTable,
    files: &[DataFile],
    key: &[&str],
    cols: &[&str],
) -> Result<Outcome, ModelError> {
    // The first pass reads the key and what `where` needs, nothing else.
    let mut first: Vec<String> = key.iter().map(|c| c.to_string()).collect();
    for c in filter_columns(table, test)? {
        if !first.contains(&c) {
            first.push(c);
        }
    }
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let mut hashes: Vec<u64> = Vec::new();
    for chunk in chunks(files) {
        let rows = filtered(table.read(chunk, Some(&first)).await?, test)?;
        hashes.extend(row_hashes(&rows, key)?);
    }
    let checked = hashes.len() as u64;
    hashes.sort_unstable();
    let repeated: std::collections::HashSet<u64> = hashes
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    drop(hashes);
    let mut out = Outcome {
        rows_checked: checked,
        ..Outcome::default()
    };
    if !repeated.is_empty() {
        let keys: Vec<Expr> = key.iter().map(|c| col(*c)).collect();
        let mut candidates: Vec<DataFrame> = Vec::new();
        for chunk in chunks(files) {
            let rows = filtered(table.read(chunk, Some(cols)).await?, test)?;
            let mask: BooleanChunked = row_hashes(&rows, key)?
                .into_iter()
                .map(|h| repeated.contains(&h))
                .collect();
            candidates.push(rows.filter(&mask)?);
        }
        let mut all = candidates.into_iter();
        let mut rows = all.next().unwrap_or_default();
        for more in all {
            rows.vstack_mut(&more)?;
        }
        let repeated_keys = rows
            .clone()
            .lazy()
            .group_by(keys.clone())
            .agg([len().alias("__n")])
            .filter(col("__n").gt(lit(1)))
            .select(keys.clone())
            .collect()?;
        let bad = rows.lazy().semi_on(repeated_keys, keys.clone()).collect()?;
        out.failing = bad.height() as u64;
        add_sample(&mut out.sample, &bad, ctx.opts.sample_rows);
    }
    out.message = unique_message(checked, out.failing, key);
    Ok(out)
}

/// One 64-bit hash per row of the `key` columns (any types, via text).
fn row_hashes(df: &DataFrame, key: &[&str]) -> Result<Vec<u64>, ModelError> {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let hasher = BuildHasherDefault::<DefaultHasher>::default();
    let mut out = vec![0u64; df.height()];
    for c in key {
        let text = df.column(c)?.cast(&DataType::String)?;
        for (h, v) in out.iter_mut().zip(text.str()?.iter()) {
            *h = h.rotate_left(17) ^ hasher.hash_one(v);
        }
    }
    Ok(out)
}

/// The table's columns the test's `where` reads.
fn filter_columns(table: &ModelTable, test: &DataTest) -> Result<Vec<String>, ModelError> {
    columns_in(table, test.filter.as_deref(), test)
}

/// The table's columns a SQL condition mentions.
fn columns_in(
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

fn filtered(df: DataFrame, test: &DataTest) -> Result<DataFrame, ModelError> {
    match &test.filter {
        Some(_) => select(df, test, "TRUE"),
        None => Ok(df),
    }
}

/// Which partition values can hold the given rows' keys.
struct PartitionFilter {
    /// Partition column -> values present (as the log writes them).
    values: BTreeMap<String, BTreeSet<Option<String>>>,
}

impl PartitionFilter {
    fn admits(&self, f: &DataFile) -> bool {
        self.values.iter().all(|(c, vals)| {
            let v = f.partition_values.get(c).cloned().flatten();
            vals.contains(&v)
        })
    }
}

fn partition_filter(
    table: &ModelTable,
    rows: &DataFrame,
    key: &[&str],
) -> Result<PartitionFilter, ModelError> {
    let mut values = BTreeMap::new();
    for c in table.partition_by() {
        if !key.contains(&c.as_str()) {
            continue;
        }
        let s = rows.column(c)?.as_materialized_series().unique()?;
        let text = s.cast(&DataType::String)?;
        let vals: BTreeSet<Option<String>> =
            text.str()?.iter().map(|v| v.map(str::to_string)).collect();
        values.insert(c.clone(), vals);
    }
    Ok(PartitionFilter { values })
}

#[allow(clippy::too_many_arguments)]
async fn relationships(
    ctx: &Context<'_>,
    model: &Model,
    test: &DataTest,
    table: &ModelTable,
    all: &[DataFile],
    scope: &Scope,
    base: Option<&Base>,
    column: &str,
    to: &str,
    field: &str,
) -> Result<Outcome, ModelError> {
    let parent = ctx.catalog.open_input(to, ctx.settings).await?;
    let parent_files = parent.files().await?;
    let keys = parent
        .read(&parent_files, Some(&[field]))
        .await?
        .lazy()
        .select([col(field).alias(column)])
        .unique(None, UniqueKeepStrategy::Any)
        .collect()?;
    // Rows already checked stay valid while the parent only gains keys; a
    // parent that lost keys since the check sends the test over the rows
    // that may point at them (every row, unless none was lost).
    let mut files = scope.files.clone();
    let mut since = scope.since;
    if let (Some(_), Some(b)) = (since, base) {
        // A parent rebuilt since the check (created after it) shares
        // nothing with the version compared then.
        let same_parent = parent
            .created_at()
            .is_none_or(|ms| b.tested_at >= ms.saturating_mul(1000));
        let stands = match b.compared_version {
            Some(pv) if pv <= parent.version() && same_parent => {
                !lost_keys(&parent, pv, field, &keys, column).await?
            }
            _ => false,
        };
        if !stands {
            files = all.to_vec();
            since = None;
        }
    }
    let needed = needed_columns(model, table, test, &[column], "")?;
    let cols: Vec<&str> = needed.iter().map(String::as_str).collect();
    let mut out = Outcome {
        compared_version: Some(parent.version()),
        ..Outcome::default()
    };
    for chunk in chunks(&files) {
        let rows = table.read(chunk, Some(&cols)).await?;
        out.rows_checked += rows.height() as u64;
        let rows = select(rows, test, &format!("{column} IS NOT NULL"))?;
        let orphans = rows.lazy().anti_on(keys.clone(), [col(column)]).collect()?;
        out.failing += orphans.height() as u64;
        add_sample(&mut out.sample, &orphans, ctx.opts.sample_rows);
    }
    out.message = if out.failing == 0 {
        format!(
            "{} row(s) checked, each {column} in {to}.{field}",
            out.rows_checked
        )
    } else {
        format!(
            "{} row(s) have a {column} that {to}.{field} does not hold",
            out.failing
        )
    };
    // The scope may have widened; the caller reports this one.
    if since.is_none() && scope.since.is_some() {
        out.message += " (the parent lost keys since the last check: every row checked)";
    }
    out.since_version = since;
    Ok(out)
}

/// Whether `parent` lost any `field` value after version `since` (the
/// values of files removed since then that its current rows lack). A
/// removed file that is gone counts as a loss.
async fn lost_keys(
    parent: &ModelTable,
    since: i64,
    field: &str,
    current: &DataFrame,
    alias: &str,
) -> Result<bool, ModelError> {
    let Ok(changes) = parent.changes(since).await else {
        return Ok(true);
    };
    if changes.removed.is_empty() {
        return Ok(false);
    }
    let Ok(old) = parent.read(&changes.removed, Some(&[field])).await else {
        return Ok(true);
    };
    let lost = old
        .lazy()
        .select([col(field).alias(alias)])
        .filter(col(alias).is_not_null())
        .anti_on(current.clone(), [col(alias)])
        .collect()?;
    Ok(lost.height() > 0)
}

/// Rows of a table (with an optional `where`), from the statistics when
/// they suffice.
async fn count_rows(
    table: &ModelTable,
    files: &[DataFile],
    filter: Option<&str>,
    test: &DataTest,
) -> Result<u64, ModelError> {
    if filter.is_none()
        && let Some(n) = files
            .iter()
            .map(|f| stat(f, "numRecords", None))
            .sum::<Option<u64>>()
    {
        return Ok(n);
    }
    let mut columns = columns_in(table, filter, test)?;
    if columns.is_empty() {
        // Some column is needed to count rows: the narrowest first one.
        columns.push(table.schema().field(0).name().clone());
    }
    let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut n = 0;
    for chunk in chunks(files) {
        let df = table.read(chunk, Some(&cols)).await?;
        n += match filter {
            Some(f) => {
                let mut ctx = SQLContext::new();
                ctx.register("t", df.lazy());
                ctx.execute(&format!("SELECT * FROM t WHERE {f}"))
                    .and_then(|lf| lf.collect())
                    .map_err(|e| input_error(test, e))?
                    .height() as u64
            }
            None => df.height() as u64,
        };
    }
    Ok(n)
}

async fn row_count(
    ctx: &Context<'_>,
    test: &DataTest,
    table: &ModelTable,
    all: &[DataFile],
    min: Option<u64>,
    max: Option<u64>,
    equal_to: Option<&crate::spec::CountOf>,
) -> Result<Outcome, ModelError> {
    let n = count_rows(table, all, test.filter.as_deref(), test).await?;
    let mut out = Outcome {
        rows_checked: n,
        ..Outcome::default()
    };
    let mut problems = Vec::new();
    if let Some(lo) = min
        && n < lo
    {
        problems.push(format!("{n} row(s), fewer than the minimum {lo}"));
    }
    if let Some(hi) = max
        && n > hi
    {
        problems.push(format!("{n} row(s), more than the maximum {hi}"));
    }
    if let Some(other) = equal_to {
        let t = ctx.catalog.open_input(&other.model, ctx.settings).await?;
        let files = t.files().await?;
        let m = count_rows(&t, &files, other.filter.as_deref(), test).await?;
        out.compared_version = Some(t.version());
        if m != n {
            problems.push(format!("{n} row(s), but {} has {m}", other.model));
        }
    }
    out.failing = u64::from(!problems.is_empty());
    out.message = if problems.is_empty() {
        format!("{n} row(s)")
    } else {
        problems.join("; ")
    };
    Ok(out)
}

async fn freshness(
    ctx: &Context<'_>,
    test: &DataTest,
    table: &ModelTable,
    all: &[DataFile],
    column: &str,
    max_lag: std::time::Duration,
) -> Result<Outcome, ModelError> {
    let newest: Option<i64> = if test.filter.is_none() {
        super::freshness::newest(table, all, column).await?
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
            if let Some(m) = super::freshness::micros(&df, column)? {
                newest = Some(newest.map_or(m, |n: i64| n.max(m)));
            }
        }
        newest
    };
    let clock = ctx.opts.clock;
    let lag_allowed = chrono::TimeDelta::from_std(max_lag).unwrap_or(chrono::TimeDelta::MAX);
    let mut out = Outcome::default();
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
fn span(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// Adds rows of `df` to `sample` until it holds `limit`.
fn add_sample(
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
