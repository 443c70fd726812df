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
//!
//! How a scoped run reads an input's rows in scope is in `scope/read.rs`.

mod read;

use super::{Catalog, ModelError};
use crate::decl::{AsofJoin, Model, ScopeInput, Source, sql_columns};
use crate::lake::table::{DataFile, ModelTable, STATS_SLACK_US};
use polars::prelude::*;
use polars::sql::SQLContext;
pub use read::read_in_scope;
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
    let mut seen = Changed::default();
    for (name, table) in tables {
        let input = Input { name, table };
        if let Some(why) = seen.add(input, scope, asof_only, tables, out).await? {
            return Ok(Plan::Full(why));
        }
    }
    let Some(affected) = seen.affected.take().filter(|a| a.height() > 0) else {
        return Ok(Plan::Nothing);
    };
    let affected = affected.unique_stable(None, UniqueKeepStrategy::First, None)?;
    let (files, new_keys_only) = seen.candidates(scope, tables, catalog, &affected).await?;
    Ok(Plan::Scoped(Scoped {
        affected,
        files,
        new_keys_only,
    }))
}

/// One input of a scoped model, by name.
#[derive(Clone, Copy)]
struct Input<'a> {
    name: &'a String,
    table: &'a ModelTable,
}

/// What the inputs' changes told so far.
#[derive(Default)]
struct Changed {
    /// The scope values the changes affect (not yet distinct).
    affected: Option<DataFrame>,
    /// The inputs with data changes, in name order.
    changed_inputs: Vec<String>,
    /// Per mapped changed input: the files holding the rows it added
    /// (those it added, and those a compaction moved such rows to).
    added_files: BTreeMap<String, Vec<DataFile>>,
    /// Per mapped changed input: whether it removed any file.
    removed_any: BTreeMap<String, bool>,
    /// Presence inputs that only gained rows (see `ScopeInput::presence`).
    presence_gains: Vec<String>,
}

impl Changed {
    /// Adds the scope values `input`'s changes since `out` consumed it
    /// affect; `Some(why)` when a scoped run cannot be exact.
    async fn add(
        &mut self,
        input: Input<'_>,
        scope: &[ScopeInput],
        asof_only: &[&AsofJoin],
        tables: &BTreeMap<String, ModelTable>,
        out: &ModelTable,
    ) -> Result<Option<String>, ModelError> {
        let Input { name, table } = input;
        let Some(from) = out.txn(name).await? else {
            return Ok(Some(format!("{name} was never consumed")));
        };
        if from >= table.version() {
            return Ok(None);
        }
        let changes = table.changes(from).await?;
        if changes.added.is_empty() && changes.removed.is_empty() {
            return Ok(None);
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
                return Ok(Some(format!("{name} changed and `scope` does not map it")));
            }
        };
        let mut files = changes.added.clone();
        files.extend(changes.removed.iter().cloned());
        let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
        let rows = match table.read(&files, Some(&cols)).await {
            Ok(rows) => rows,
            Err(e) if !changes.removed.is_empty() => {
                return Ok(Some(format!("a file {name} removed cannot be read ({e})")));
            }
            Err(e) => return Err(e.into()),
        };
        self.changed_inputs.push(name.clone());
        let Some(mapping) = mapping else {
            if let Some((a, left_map, left)) = through {
                let values = affected_through_asof(a, rows, left_map, left).await?;
                stack_cast(&mut self.affected, values)?;
            }
            return Ok(None);
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
            stack_cast(&mut self.affected, not_held(out, values).await?)?;
            self.presence_gains.push(name.clone());
        } else {
            stack_cast(&mut self.affected, values)?;
        }
        self.removed_any
            .insert(name.clone(), !changes.removed.is_empty());
        // The files holding what it added: a compaction since may have
        // moved those rows to files of its own.
        let mut holding = changes.added;
        holding.extend(changes.rewritten);
        self.added_files.insert(name.clone(), holding);
        Ok(None)
    }

    /// Per mapped input, the files that can hold rows in scope; and
    /// whether the output cannot hold a row in scope yet
    /// ([`Scoped::new_keys_only`]).
    async fn candidates(
        &self,
        scope: &[ScopeInput],
        tables: &BTreeMap<String, ModelTable>,
        catalog: &Catalog,
        affected: &DataFrame,
    ) -> Result<(BTreeMap<String, Vec<DataFile>>, bool), ModelError> {
        // Every value in scope came from presence inputs' new rows and is new
        // to the output, so no old row of a presence input holds one (the
        // output would hold it): those inputs are read from their new files.
        let presence_only =
            !self.presence_gains.is_empty() && self.presence_gains == self.changed_inputs;
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
            let only_changes = self.changed_inputs.as_slice() == [mapping.input.clone()]
                && maps_own_key(catalog.model(&mapping.input)?, mapping);
            let candidates = if presence_only && mapping.presence {
                self.added_only(&mapping.input, live)
            } else if only_changes {
                new_keys_only = self.removed_any.get(&mapping.input) == Some(&false);
                self.added_only(&mapping.input, live)
            } else {
                let by_partition: Vec<(String, String)> = mapping
                    .columns
                    .iter()
                    .filter(|(_, expr)| table.partition_by().contains(expr))
                    .map(|(out, expr)| (expr.clone(), out.clone()))
                    .collect();
                let files = prune(live, &by_partition, affected)?;
                prune_by_stats(table, mapping, files, affected).await?
            };
            files.insert(mapping.input.clone(), candidates);
        }
        Ok((files, new_keys_only))
    }

    /// The files of `live` that `input` added since it was consumed.
    fn added_only(&self, input: &str, live: Vec<DataFile>) -> Vec<DataFile> {
        let added: HashSet<&str> = self
            .added_files
            .get(input)
            .map(|f| f.iter().map(|f| f.path.as_str()).collect())
            .unwrap_or_default();
        live.into_iter()
            .filter(|f| added.contains(f.path.as_str()))
            .collect()
    }
}

/// The scope values of the left rows of `a` that the changed right rows
/// `rows` can re-match.
async fn affected_through_asof(
    a: &AsofJoin,
    rows: DataFrame,
    left_map: &ScopeInput,
    left: &ModelTable,
) -> Result<DataFrame, ModelError> {
    let mut need = expression_columns(left, left_map)?;
    for c in a.by.iter().chain([&a.left_on]) {
        if !need.contains(c) {
            need.push(c.clone());
        }
    }
    let need: Vec<&str> = need.iter().map(String::as_str).collect();
    let rows = super::asof_scope::affected_left(a, rows, left, &need).await?;
    evaluate(rows, left_map, false)
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
    let plain = |e: &str| crate::decl::is_identifier(e) && rows.column(e).is_ok();
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
        let Some(column) = crate::decl::monotone_in(expr) else {
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
