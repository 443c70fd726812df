//! `unique`: no two rows share the values of the columns (with `where`:
//! no two of the rows it keeps).
//!
//! A full check (`everywhere`) hashes every row's key in a first pass and
//! reads back only the rows whose hash repeats, so memory holds 8 bytes a
//! row. An incremental one (`new_keys`) reads the rows committed since
//! the test's base and looks their keys up in the rest of the table: only
//! the key columns, only in the partitions the new keys can be in, through
//! the files' bloom filters when the key is one column without `where`.
//! Two old rows need no check against each other: they were both there at
//! the base, where the test passed.

use super::common::{
    Context, Findings, KeyedFilter, Target, add_sample, chunks, filter_columns, filtered,
    needed_columns,
};
use super::kind::{Check, KindDef, run};
use crate::decl::{DataTest, Declaring, Kind, TestKind};
use crate::lake::table::{DataFile, ModelTable};
use crate::model::ModelError;
use crate::model::keyset::KeySet;
use polars::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use twox_hash::XxHash64;

const NAME: &str = "unique";

pub(crate) const KIND: KindDef = KindDef {
    name: NAME,
    options: &["columns"],
    parse,
    check: run::<Unique>,
};

/// `unique` under a column, or `unique: {columns: [a, b]}` on the model.
#[derive(Debug, PartialEq)]
pub struct Unique {
    pub columns: Vec<String>,
}

impl TestKind for Unique {
    fn name(&self) -> &'static str {
        NAME
    }
    fn columns(&self) -> Vec<String> {
        self.columns.clone()
    }
}

fn parse(d: &mut Declaring) -> Option<Kind> {
    let columns = match (d.column_under(), d.has("columns")) {
        (Some(c), false) => vec![c.to_string()],
        (None, true) => {
            let listed = d.texts("columns")?;
            if listed.is_empty() {
                d.fail_at("columns", "`columns:` is empty: name the key's columns");
                return None;
            }
            for (c, pos) in &listed {
                d.check_column(c, pos.clone());
            }
            listed.into_iter().map(|(c, _)| c).collect()
        }
        (None, false) => {
            d.fail("a model-level `unique` test needs `columns: [..]`");
            return None;
        }
        (Some(_), true) => {
            d.fail_at("columns", "a column-level `unique` test takes its column from where it is declared; drop `columns:`");
            return None;
        }
    };
    Some(Kind::new(Unique { columns }))
}

impl Check for Unique {
    async fn check(&self, ctx: &Context<'_>, t: &Target<'_>) -> Result<Findings, ModelError> {
        let columns = &self.columns;
        let named: Vec<&str> = columns.iter().map(String::as_str).collect();
        let needed = needed_columns(t.model, t.table, t.test, &named, "")?;
        let cols: Vec<&str> = needed.iter().map(String::as_str).collect();
        let mut out = match t.scope.since {
            None => everywhere(ctx, t.test, t.table, &t.scope.files, &named, &cols).await?,
            Some(_) => new_keys(ctx, t, columns, &named, &cols).await?,
        };
        out.since_version = t.scope.since;
        Ok(out)
    }
}

/// `unique` over the rows committed since the base: how often each of
/// their keys occurs among them and in the rest of the table.
async fn new_keys(
    ctx: &Context<'_>,
    t: &Target<'_>,
    columns: &[String],
    named: &[&str],
    cols: &[&str],
) -> Result<Findings, ModelError> {
    let keys: Vec<Expr> = named.iter().map(|c| col(*c)).collect();
    // Rows in scope (with `where`).
    let new = filtered(t.table.read(&t.scope.files, Some(cols)).await?, t.test)?;
    // The rest of the table where it can hold one of the new keys: files
    // outside the scope, in the new rows' partitions when the key holds a
    // partition column.
    let others: Vec<DataFile> = if new.height() > 0 {
        let in_scope: BTreeSet<&str> = t.scope.files.iter().map(|f| f.path.as_str()).collect();
        let partitions = partition_filter(t.table, &new, named)?;
        t.all
            .iter()
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
    let lookup = named.len() == 1 && t.test.filter.is_none();
    if lookup && new.height() > 0 && KeySet::new(columns).insert_new(&new)?.all() {
        let wanted = new.select(named.to_vec())?;
        if t.table.held(&others, &wanted).await?.height() == 0 {
            return Ok(Findings {
                rows_checked: new.height() as u64,
                message: unique_message(new.height() as u64, 0, named),
                ..Findings::default()
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
        let wanted = counts.select(named.to_vec())?;
        // One key column and no `where`: looked up through the files'
        // bloom filters (written on model keys) when it is a string, so
        // only the row groups that may hold a new key are read.
        if lookup {
            let hits = t.table.held(&others, &wanted).await?;
            if hits.height() > 0 {
                let hits = hits.lazy().group_by(keys.clone()).agg([len().alias("__n")]);
                counts = concat([counts.lazy(), hits], UnionArgs::default())?
                    .group_by(keys.clone())
                    .agg([col("__n").sum()])
                    .collect()?;
            }
            return finish(ctx, new, counts, keys, named);
        }
        let mut other_cols: Vec<String> = columns.to_vec();
        for c in filter_columns(t.table, t.test)? {
            if !other_cols.contains(&c) {
                other_cols.push(c);
            }
        }
        let other_cols: Vec<&str> = other_cols.iter().map(String::as_str).collect();
        for chunk in chunks(&others) {
            let rows = filtered(t.table.read(chunk, Some(&other_cols)).await?, t.test)?;
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
    finish(ctx, new, counts, keys, named)
}

/// The outcome of `unique` on the rows in scope (`new`), given how often
/// each of their keys occurs in the table (`counts`, column `__n`).
fn finish(
    ctx: &Context<'_>,
    new: DataFrame,
    counts: DataFrame,
    keys: Vec<Expr>,
    named: &[&str],
) -> Result<Findings, ModelError> {
    let repeated = counts
        .lazy()
        .filter(col("__n").gt(lit(1)))
        .select(keys.clone())
        .collect()?;
    let bad = new.clone().lazy().semi_on(repeated, keys).collect()?;
    let mut out = Findings {
        rows_checked: new.height() as u64,
        failing: bad.height() as u64,
        ..Findings::default()
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
async fn everywhere(
    ctx: &Context<'_>,
    test: &DataTest,
    table: &ModelTable,
    files: &[DataFile],
    key: &[&str],
    cols: &[&str],
) -> Result<Findings, ModelError> {
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
    crate::cores::sort_on_two_cores(&mut hashes);
    let repeated: std::collections::HashSet<u64> = hashes
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    drop(hashes);
    let mut out = Findings {
        rows_checked: checked,
        ..Findings::default()
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

/// A 64-bit hash of each row's key (its columns as text; a null hashes
/// apart from every string), on every core. Equal keys hash alike in
/// every call (the two passes compare them); a collision only sends a
/// row to the exact second pass.
fn row_hashes(df: &DataFrame, key: &[&str]) -> Result<Vec<u64>, ModelError> {
    const NULL: u64 = 0x9e37_79b9_7f4a_7c15;
    let texts = key
        .iter()
        .map(|c| {
            Ok(df
                .column(c)?
                .cast(&DataType::String)?
                .str()?
                .rechunk()
                .into_owned())
        })
        .collect::<Result<Vec<StringChunked>, ModelError>>()?;
    Ok(crate::cores::map_parts(df.height(), 64 * 1024, |rows| {
        rows.map(|row| {
            texts.iter().fold(0u64, |h, text| {
                let v = text
                    .get(row)
                    .map_or(NULL, |v| XxHash64::oneshot(0, v.as_bytes()));
                h.rotate_left(17) ^ v
            })
        })
        .collect()
    }))
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
