//! Incremental scope: which output rows of a SQL model a run recomputes,
//! and which input rows it reads to do so.
//!
//! A model's `scope` maps each input to the output's scope columns (SQL
//! expressions over the input's rows). The rows an input gained or lost
//! since the version the model last consumed (the data files its commits
//! added and removed) give the affected scope values; the query then runs
//! over only the input rows with those values, and the merge replaces only
//! the output rows with those values. Removed rows count as much as added
//! ones: an update that moves a row from one scope to another affects both.
//!
//! The right side of an as-of join needs no mapping when the left side
//! has one: its changes affect the left rows they can re-match (see
//! [`super::asof_scope`]).
//!
//! Falls back to a full recompute, and says why, when that cannot be
//! exact: an input never consumed, an input that changed but has no
//! mapping, or a removed file that is gone (vacuumed).

use super::table::{DataFile, ModelTable, STATS_SLACK_US};
use super::{Catalog, ModelError};
use crate::spec::{AsofJoin, Model, ScopeInput, Source, sql_columns};
use polars::prelude::*;
use polars::sql::SQLContext;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// What an incremental run of a scoped model does.
pub enum Plan {
    /// Recompute over whole inputs (the reason, for the run's report).
    Full(String),
    /// No input has data changes: only the watermarks move.
    Nothing,
    Scoped(Scoped),
}

pub struct Scoped {
    /// Distinct scope values to recompute, columns named as the output's.
    pub affected: DataFrame,
    /// Per mapped input: the files that can hold rows in scope.
    pub files: BTreeMap<String, Vec<DataFile>>,
    /// The output cannot hold a row in scope yet, so the result is only
    /// appended (no merge probe): the one changed input maps its own
    /// unique key and only gained files, so every key in scope is new to
    /// it, and the output's rows in scope could only have come from it.
    pub new_keys_only: bool,
}

/// Finds the affected scope values from the changes of each input since
/// the version `out` recorded for it. `asof_only` are the as-of joins whose
/// right side the query reads only through the join.
pub async fn plan(
    scope: &[ScopeInput],
    asof_only: &[&AsofJoin],
    tables: &BTreeMap<String, ModelTable>,
    out: &ModelTable,
    catalog: &Catalog,
) -> Result<Plan, ModelError> {
    let mut affected: Option<DataFrame> = None;
    let mut changed_inputs = Vec::new();
    let mut added_files: BTreeMap<String, Vec<DataFile>> = BTreeMap::new();
    let mut removed_any: BTreeMap<String, bool> = BTreeMap::new();
    // Presence inputs that only gained rows (see `ScopeInput::presence`).
    let mut presence_gains: Vec<String> = Vec::new();
    for (name, table) in tables {
        let Some(from) = out.txn(name).await? else {
            return Ok(Plan::Full(format!("{name} was never consumed")));
        };
        if from >= table.version() {
            continue;
        }
        let changes = table.changes(from).await?;
        if changes.added.is_empty() && changes.removed.is_empty() {
            continue;
        }
        let mapping = scope.iter().find(|m| &m.input == name);
        // An unmapped input may still be the right side of an as-of join
        // whose left side is mapped: its changes re-match left rows.
        let through = asof_only.iter().filter(|a| &a.right == name).find_map(|a| {
            let left = scope.iter().find(|m| m.input == a.left)?;
            Some((*a, left, tables.get(&a.left)?))
        });
        let cols: Vec<String> = match (mapping, through) {
            (Some(m), _) => expression_columns(table, m)?,
            (None, Some((a, ..))) => a.by.iter().chain([&a.right_on]).cloned().collect(),
            (None, None) => {
                return Ok(Plan::Full(format!(
                    "{name} changed and `scope` does not map it"
                )));
            }
        };
        let mut files = changes.added.clone();
        files.extend(changes.removed.iter().cloned());
        let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
        let rows = match table.read(&files, Some(&cols)).await {
            Ok(rows) => rows,
            Err(e) if !changes.removed.is_empty() => {
                return Ok(Plan::Full(format!(
                    "a file {name} removed cannot be read ({e})"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        changed_inputs.push(name.clone());
        let Some(mapping) = mapping else {
            let Some((a, left_map, left)) = through else {
                continue;
            };
            let mut need = expression_columns(left, left_map)?;
            for c in a.by.iter().chain([&a.left_on]) {
                if !need.contains(c) {
                    need.push(c.clone());
                }
            }
            let need: Vec<&str> = need.iter().map(String::as_str).collect();
            let rows = super::asof_scope::affected_left(a, rows, left, &need).await?;
            stack_cast(&mut affected, evaluate(rows, left_map, false)?)?;
            continue;
        };
        let values = evaluate(rows, mapping, false)?;
        if mapping.presence && changes.removed.is_empty() {
            // Only values the output does not hold yet can change it.
            // (A null scope value names no output row.)
            let values = values.drop_nulls::<String>(None)?.unique_stable(
                None,
                UniqueKeepStrategy::First,
                None,
            )?;
            stack_cast(&mut affected, not_held(out, values).await?)?;
            presence_gains.push(name.clone());
        } else {
            stack_cast(&mut affected, values)?;
        }
        removed_any.insert(name.clone(), !changes.removed.is_empty());
        added_files.insert(name.clone(), changes.added);
    }
    let Some(affected) = affected.filter(|a| a.height() > 0) else {
        return Ok(Plan::Nothing);
    };
    let affected = affected.unique_stable(None, UniqueKeepStrategy::First, None)?;
    // Every value in scope came from presence inputs' new rows and is new
    // to the output, so no old row of a presence input holds one (the
    // output would hold it): those inputs are read from their new files.
    let presence_only = !presence_gains.is_empty() && presence_gains == changed_inputs;
    let mut files = BTreeMap::new();
    let mut new_keys_only = false;
    for mapping in scope {
        let Some(table) = tables.get(&mapping.input) else {
            continue;
        };
        let live = table.files().await?;
        // Rows of an input keyed by what the scope maps one to one: the
        // rows in scope are the ones its own changes brought, so only the
        // files it added (and still has) are read.
        let only_changes = changed_inputs.as_slice() == [mapping.input.clone()]
            && maps_own_key(catalog.model(&mapping.input)?, mapping);
        // The files the input added since it was consumed (and still has).
        let added_only = |live: Vec<DataFile>| -> Vec<DataFile> {
            let added: HashSet<&str> = added_files
                .get(&mapping.input)
                .map(|f| f.iter().map(|f| f.path.as_str()).collect())
                .unwrap_or_default();
            live.into_iter()
                .filter(|f| added.contains(f.path.as_str()))
                .collect()
        };
        let candidates = if presence_only && mapping.presence {
            added_only(live)
        } else if only_changes {
            new_keys_only = removed_any.get(&mapping.input) == Some(&false);
            added_only(live)
        } else {
            let by_partition: Vec<(String, String)> = mapping
                .columns
                .iter()
                .filter(|(_, expr)| table.partition_by().contains(expr))
                .map(|(out, expr)| (expr.clone(), out.clone()))
                .collect();
            let files = prune(live, &by_partition, &affected)?;
            prune_by_stats(table, mapping, files, &affected).await?
        };
        files.insert(mapping.input.clone(), candidates);
    }
    Ok(Plan::Scoped(Scoped {
        affected,
        files,
        new_keys_only,
    }))
}

/// Whether `mapping` maps the input's key columns one to one (a row-wise
/// model over it, such as a fact over its silver table).
pub fn maps_own_key(input: &Model, mapping: &ScopeInput) -> bool {
    let key: &[String] = match &input.source {
        _ if !input.unique_key.is_empty() => &input.unique_key,
        Source::Clean { dedupe, .. } => &dedupe.key,
        _ => return false,
    };
    !key.is_empty()
        && key
            .iter()
            .all(|k| mapping.columns.iter().any(|(_, expr)| expr == k))
}

/// The input columns the scope expressions read.
fn expression_columns(table: &ModelTable, mapping: &ScopeInput) -> Result<Vec<String>, ModelError> {
    let select: Vec<&str> = mapping.columns.iter().map(|(_, e)| e.as_str()).collect();
    let used = sql_columns(&format!("SELECT {} FROM t", select.join(", ")))
        .map_err(|e| ModelError::Input(format!("scope of {}: {e}", mapping.input)))?;
    Ok(table
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|c| used.reads("t", c))
        .collect())
}

/// The rows of `values` (scope values, named as the output's columns)
/// the output table holds no row for (looked up through its bloom
/// filters when they allow: [`ModelTable::held`]).
async fn not_held(out: &ModelTable, values: DataFrame) -> Result<DataFrame, ModelError> {
    let files = out.files().await?;
    if files.is_empty() || values.height() == 0 {
        return Ok(values);
    }
    let held = out.held(&files, &values).await?;
    if held.height() == 0 {
        return Ok(values);
    }
    let names: Vec<String> = values
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let held = conform_to(&held, &values)?;
    super::frame::anti_join(values, held, &names)
}

/// The input rows (of `files`, columns `cols`) whose scope values are
/// affected.
pub async fn read_in_scope(
    table: &ModelTable,
    files: &[DataFile],
    cols: &[&str],
    mapping: &ScopeInput,
    affected: &DataFrame,
) -> Result<DataFrame, ModelError> {
    let mut all: Vec<String> = cols.iter().map(|c| c.to_string()).collect();
    for c in expression_columns(table, mapping)? {
        if !all.contains(&c) {
            all.push(c);
        }
    }
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let started = std::time::Instant::now();
    let rows = table.read(files, Some(&refs)).await?;
    let read = started.elapsed().as_secs_f64();
    let with_scope = evaluate(rows, mapping, true)?;
    let keys: Vec<String> = mapping.columns.iter().map(|(c, _)| hidden(c)).collect();
    let wanted = affected
        .clone()
        .lazy()
        .select(
            mapping
                .columns
                .iter()
                .map(|(c, _)| {
                    let dtype = with_scope.column(&hidden(c)).map(|s| s.dtype().clone());
                    col(c.as_str())
                        .cast(dtype.unwrap_or(DataType::Null))
                        .alias(hidden(c))
                })
                .collect::<Vec<_>>(),
        )
        .collect()?;
    let affected = Affected::new(wanted, &keys)?;
    let inside = if sample_all_inside(&with_scope, &affected)? {
        with_scope
    } else {
        affected.keep(with_scope)?
    };
    tracing::debug!(table = %table.name, files = files.len(), rows = inside.height(), read, filtered = started.elapsed().as_secs_f64(), "scoped read");
    Ok(inside.select(cols.iter().copied())?)
}

/// Rows in a sample of this many, from this many places, decide whether
/// a large scoped read is filtered at all.
const SAMPLE_ROWS: usize = 2048;
const SAMPLE_PLACES: usize = 4;

/// Whether evenly spread slices of `rows` (a large read) are all inside
/// the scope. Filtering an input is a saving, not a rule: rows outside the
/// scope only make output rows outside it, which [`restrict`] drops. When
/// the rows read are (nearly) all affected, as re-reading a day for most
/// of its drivers is, filtering a million rows cost more than the few
/// extra rows it would have spared.
fn sample_all_inside(rows: &DataFrame, affected: &Affected) -> Result<bool, ModelError> {
    let height = rows.height();
    if height < 4 * SAMPLE_ROWS * SAMPLE_PLACES {
        return Ok(false);
    }
    let stride = height / SAMPLE_PLACES;
    for place in 0..SAMPLE_PLACES {
        let slice = rows.slice((place * stride) as i64, SAMPLE_ROWS);
        if affected.keep(slice)?.height() < SAMPLE_ROWS {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The affected key rows of a scoped read (`keys` columns), ready to
/// filter rows by: built once, applied to samples and to the whole read.
struct Affected<'k> {
    wanted: DataFrame,
    keys: &'k [String],
    /// When `wanted` is every combination of its columns' distinct values
    /// (one day times that day's drivers: the usual scope), each column
    /// `is_in` its values; otherwise `None`, and a semi-join, which
    /// encodes every row's multi-column key first (most of re-reading a
    /// day of a million facts).
    by_column: Option<Expr>,
}

impl<'k> Affected<'k> {
    fn new(wanted: DataFrame, keys: &'k [String]) -> Result<Self, ModelError> {
        // Casts may merge values: count distinct rows, not rows.
        let wanted = wanted.unique_stable(None, UniqueKeepStrategy::First, None)?;
        let mut combinations: u128 = 1;
        let mut distinct = Vec::with_capacity(keys.len());
        for k in keys {
            let values = wanted.column(k)?.as_materialized_series().unique()?;
            combinations = combinations.saturating_mul(values.len() as u128);
            distinct.push(values);
        }
        let by_column = (keys.len() >= 2 && combinations == wanted.height() as u128).then(|| {
            keys.iter()
                .zip(distinct)
                .map(|(k, values)| col(k.as_str()).is_in(lit(values).implode(false), true))
                .reduce(Expr::and)
                .unwrap_or(lit(true))
        });
        Ok(Self {
            wanted,
            keys,
            by_column,
        })
    }

    /// The rows of `rows` whose keys are an affected row.
    fn keep(&self, rows: DataFrame) -> Result<DataFrame, ModelError> {
        let Some(inside) = &self.by_column else {
            return super::frame::semi_join(rows, self.wanted.clone(), self.keys);
        };
        const INSIDE: &str = "__inside";
        let mask = rows
            .clone()
            .lazy()
            .select([inside.clone().alias(INSIDE)])
            .collect()?;
        let mask = mask.column(INSIDE)?.bool()?;
        // Re-reading a day for most of its drivers keeps every row: then
        // the rows are handed on as read, not copied by a filter.
        if mask.null_count() == 0 && mask.all() {
            return Ok(rows);
        }
        Ok(rows.filter(mask)?)
    }
}

/// The output rows of `result` inside the scope (a query over filtered
/// inputs may still produce rows outside it, e.g. from an unfiltered
/// input; those are not this run's to write).
pub fn restrict(result: DataFrame, affected: &DataFrame) -> Result<DataFrame, ModelError> {
    let keys: Vec<String> = affected
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let wanted = conform_to(affected, &result)?;
    super::frame::semi_join(result, wanted, &keys)
}

/// `affected` with its columns cast to the types `like` has for them.
pub fn conform_to(affected: &DataFrame, like: &DataFrame) -> Result<DataFrame, ModelError> {
    let casts: Vec<Expr> = affected
        .columns()
        .iter()
        .map(|c| {
            let to = like
                .column(c.name())
                .map(|l| l.dtype().clone())
                .unwrap_or_else(|_| c.dtype().clone());
            col(c.name().clone()).cast(to)
        })
        .collect();
    Ok(affected.clone().lazy().select(casts).collect()?)
}

/// The scope expressions over `rows`: only the scope columns, or (`keep`)
/// every row column plus the scope columns under hidden names.
fn evaluate(rows: DataFrame, mapping: &ScopeInput, keep: bool) -> Result<DataFrame, ModelError> {
    let name = |c: &str| if keep { hidden(c) } else { c.to_string() };
    // The usual mapping names input columns as they are: those are the
    // columns themselves under another name (shared, not computed; a
    // constant partition column stays a constant), no SQL to plan.
    let plain = |e: &str| crate::spec::is_identifier(e) && rows.column(e).is_ok();
    if mapping.columns.iter().all(|(_, e)| plain(e)) {
        let mut columns = if keep {
            rows.columns().to_vec()
        } else {
            Vec::new()
        };
        for (c, e) in &mapping.columns {
            columns.push(rows.column(e)?.clone().with_name(name(c).into()));
        }
        return Ok(DataFrame::new(rows.height(), columns)?);
    }
    let mut ctx = SQLContext::new();
    ctx.register("t", rows.lazy());
    let exprs: Vec<String> = mapping
        .columns
        .iter()
        .map(|(c, e)| format!("{e} AS \"{}\"", name(c)))
        .collect();
    let star = if keep { "*, " } else { "" };
    let q = format!("SELECT {star}{} FROM t", exprs.join(", "));
    ctx.execute(&q)
        .and_then(|lf| lf.collect())
        .map_err(|e| ModelError::Input(format!("scope of {}: {e}", mapping.input)))
}

fn hidden(c: &str) -> String {
    format!("__scope_{c}")
}

/// Appends `more` to `acc`, cast to `acc`'s column types.
fn stack_cast(acc: &mut Option<DataFrame>, more: DataFrame) -> Result<(), ModelError> {
    match acc {
        None => *acc = Some(more),
        Some(a) => {
            let more = conform_to(&more, a)?;
            let names: Vec<String> = a.get_column_names().iter().map(|c| c.to_string()).collect();
            a.vstack_mut_owned(more.select(names)?)?;
        }
    }
    Ok(())
}

/// The files whose statistics allow a row with an affected value: for
/// each scope column whose expression never decreases in one integer or
/// timestamp column of the input (`monotone_in`), the expression at the
/// file's min and max of that column bounds the values its rows take.
/// A 15-minute window scope then reads the files of the new events' time
/// range instead of every file. Files without statistics stay.
async fn prune_by_stats(
    table: &ModelTable,
    mapping: &ScopeInput,
    mut files: Vec<DataFile>,
    affected: &DataFrame,
) -> Result<Vec<DataFile>, ModelError> {
    for (out, expr) in &mapping.columns {
        let Some(column) = crate::spec::monotone_in(expr) else {
            continue;
        };
        if table.partition_by().contains(&column) || table.schema().index_of(&column).is_err() {
            continue;
        }
        // The column's polars type, from an empty read of it.
        let dtype = table
            .read(&[], Some(&[column.as_str()]))
            .await?
            .column(&column)?
            .dtype()
            .clone();
        let slack = match dtype {
            DataType::Datetime(_, _) => STATS_SLACK_US,
            ref t if t.is_integer() => 0,
            _ => continue,
        };
        let bounded: Vec<(usize, (i64, i64))> = files
            .iter()
            .enumerate()
            .filter_map(|(i, f)| Some((i, f.bounds(&column)?)))
            .collect();
        if bounded.is_empty() {
            continue;
        }
        let ends: Vec<i64> = bounded
            .iter()
            .map(|(_, (lo, _))| *lo)
            .chain(bounded.iter().map(|(_, (_, hi))| hi.saturating_add(slack)))
            .collect();
        let ends = Series::new(column.as_str().into(), ends).cast(&dtype)?;
        let single = ScopeInput {
            input: mapping.input.clone(),
            columns: vec![(out.clone(), expr.clone())],
            presence: false,
        };
        let at = evaluate(
            DataFrame::new(ends.len(), vec![ends.into()])?,
            &single,
            false,
        )?;
        let as_f64 = |s: &Series| -> Result<Vec<Option<f64>>, ModelError> {
            Ok(s.to_physical_repr()
                .cast(&DataType::Float64)?
                .f64()?
                .to_vec())
        };
        let at = as_f64(at.column(out)?.as_materialized_series())?;
        let mut wanted: Vec<f64> = as_f64(affected.column(out)?.as_materialized_series())?
            .into_iter()
            .flatten()
            .collect();
        wanted.sort_by(f64::total_cmp);
        let n = bounded.len();
        let mut drop = vec![false; files.len()];
        for (k, (i, _)) in bounded.iter().enumerate() {
            let (Some(lo), Some(hi)) = (at[k], at[n + k]) else {
                continue;
            };
            // The first affected value >= lo must not exceed hi.
            let first = wanted.partition_point(|v| *v < lo);
            drop[*i] = wanted.get(first).is_none_or(|v| *v > hi);
        }
        let mut i = 0;
        files.retain(|_| {
            i += 1;
            !drop[i - 1]
        });
    }
    Ok(files)
}

/// The files whose partition values can match an affected value:
/// `by_partition` pairs a partition column with the scope column holding
/// its values. Partition values are text in the log, so only types whose
/// text form is unambiguous (dates, integers, strings, booleans) prune.
pub fn prune(
    files: Vec<DataFile>,
    by_partition: &[(String, String)],
    affected: &DataFrame,
) -> Result<Vec<DataFile>, ModelError> {
    let mut allowed: Vec<(String, BTreeSet<Option<String>>)> = Vec::new();
    for (part, scope_col) in by_partition {
        let values = affected.column(scope_col)?.as_materialized_series();
        let dtype = values.dtype();
        if !(dtype.is_integer()
            || matches!(dtype, DataType::Date | DataType::String | DataType::Boolean))
        {
            continue;
        }
        let text = values.cast(&DataType::String)?;
        let set = text.str()?.iter().map(|v| v.map(str::to_string)).collect();
        allowed.push((part.clone(), set));
    }
    Ok(files
        .into_iter()
        .filter(|f| {
            allowed
                .iter()
                .all(|(part, set)| set.contains(&f.partition_values.get(part).cloned().flatten()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<String> {
        vec!["d".into(), "day".into()]
    }

    fn kept(rows: &DataFrame, wanted: DataFrame) -> Vec<(String, i32)> {
        let keys = keys();
        let out = Affected::new(wanted, &keys)
            .unwrap()
            .keep(rows.clone())
            .unwrap();
        let d = out.column("d").unwrap().str().unwrap().clone();
        let day = out.column("day").unwrap().i32().unwrap().clone();
        (0..out.height())
            .map(|i| (d.get(i).unwrap().to_string(), day.get(i).unwrap()))
            .collect()
    }

    #[test]
    fn affected_rows_by_product_or_by_join_agree() {
        let rows = df!(
            "d" => ["a", "b", "c", "a", "b", "c"],
            "day" => [1i32, 1, 1, 2, 2, 2]
        )
        .unwrap();
        // Every combination of {a, b} x {1}: filtered column by column.
        let product = df!("d" => ["a", "b"], "day" => [1i32, 1]).unwrap();
        assert_eq!(kept(&rows, product), [("a".into(), 1), ("b".into(), 1)]);
        // (a, 1) and (b, 2) are not a product: (a, 2) and (b, 1) stay out.
        let diagonal = df!("d" => ["a", "b"], "day" => [1i32, 2]).unwrap();
        assert_eq!(kept(&rows, diagonal), [("a".into(), 1), ("b".into(), 2)]);
        // Repeated wanted rows are not mistaken for a product.
        let repeated = df!("d" => ["a", "a", "b", "b"], "day" => [1i32, 1, 2, 2]).unwrap();
        assert_eq!(kept(&rows, repeated), [("a".into(), 1), ("b".into(), 2)]);
    }

    fn inside(rows: &DataFrame, wanted: &DataFrame) -> bool {
        let keys = keys();
        let affected = Affected::new(wanted.clone(), &keys).unwrap();
        sample_all_inside(rows, &affected).unwrap()
    }

    #[test]
    fn a_large_read_is_left_unfiltered_only_when_every_sampled_place_is_inside() {
        let n = 4 * SAMPLE_ROWS * SAMPLE_PLACES;
        let drivers: Vec<&str> = (0..n).map(|i| ["a", "b", "c"][i % 3]).collect();
        let rows = df!("d" => drivers, "day" => vec![1i32; n]).unwrap();
        let all = df!("d" => ["a", "b", "c"], "day" => [1i32, 1, 1]).unwrap();
        assert!(inside(&rows, &all));
        // Two drivers of three: the samples see c, and the rows are filtered.
        let some = df!("d" => ["a", "b"], "day" => [1i32, 1]).unwrap();
        assert!(!inside(&rows, &some));
        // An outside row in the last sampled place only.
        let mut days = vec![1i32; n];
        days[3 * (n / SAMPLE_PLACES) + 7] = 2;
        let drivers: Vec<&str> = (0..n).map(|i| ["a", "b", "c"][i % 3]).collect();
        let rows = df!("d" => drivers, "day" => days).unwrap();
        assert!(!inside(&rows, &all));
        // A small read is always filtered (exact and cheap).
        let small = rows.slice(0, 100);
        assert!(!inside(&small, &all));
    }
}
