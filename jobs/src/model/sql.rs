//! SQL models: a SELECT in polars SQL over other models, plus the as-of
//! joins a model declares (made available to its query by name).
//!
//! Inputs are read whole (only the columns the query names) and the query
//! recomputes the model, unless the model declares a `scope`: then an
//! incremental run reads and recomputes only the affected rows (see
//! [`super::scope`]). The materialization writes only what changed (see
//! [`super::write`]).
//! A model whose inputs all sit at the versions its last commit recorded
//! is skipped without writing.

use super::accumulate::{self, Step};
use super::frame::{asof_join, size_batches};
use super::scope::{self, Plan, Scoped};
use super::{Catalog, DateRange, ModelError, ModelReport, RunSettings, write};
use crate::decl::{AsofJoin, Fold, Materialization, Model, ScopeInput, sql_columns, sql_relations};
use crate::lake::table::ModelTable;
use polars::prelude::*;
use polars::sql::SQLContext;
use std::collections::{BTreeMap, BTreeSet};

pub async fn run(
    model: &Model,
    sql: &str,
    asof: &[AsofJoin],
    scope: &[ScopeInput],
    folds: &[(String, Fold)],
    catalog: &Catalog,
    s: &RunSettings,
) -> Result<ModelReport, ModelError> {
    let job = Job {
        model,
        sql,
        asof,
        scope,
        folds,
        catalog,
        s,
    };
    job.run().await
}

/// One run of a SQL model: its declaration and where it runs.
struct Job<'a> {
    model: &'a Model,
    sql: &'a str,
    asof: &'a [AsofJoin],
    scope: &'a [ScopeInput],
    folds: &'a [(String, Fold)],
    catalog: &'a Catalog,
    s: &'a RunSettings,
}

/// After the plan: recompute (in scope, or whole with `None`), or the run
/// is over (its report says what it wrote).
enum Next {
    Recompute(Option<Scoped>),
    Done,
}

/// A backfill's range and the model's date partition column.
type Ranged<'a> = Option<(&'a DateRange, &'a str)>;

impl Job<'_> {
    async fn run(&self) -> Result<ModelReport, ModelError> {
        let (model, s) = (self.model, self.s);
        let inputs = inputs(model, self.sql, self.asof)?;
        let mut tables = BTreeMap::new();
        let mut versions = BTreeMap::new();
        for name in &inputs {
            let t = self.catalog.open_input(name, s).await?;
            versions.insert(name.clone(), t.version());
            tables.insert(name.clone(), t);
        }
        let mut out = self.catalog.open_output(&model.name, s).await?;
        let mut report = ModelReport::default();
        let mut current = true;
        for (name, v) in &versions {
            current &= out.txn(name).await? == Some(*v);
        }
        if current && out.version() > 0 && !s.full_refresh {
            report.note = Some("inputs unchanged".into());
            return Ok(report);
        }
        let started = std::time::Instant::now();
        // As-of joins whose right side the query reads only through the join
        // (and `scope` does not map): scoped runs read that side only as far
        // back as the left rows in scope need.
        let direct = direct_inputs(model, self.sql, self.asof)?;
        let asof_only: Vec<&AsofJoin> = self
            .asof
            .iter()
            .filter(|a| {
                !direct.contains(&a.right) && !self.scope.iter().any(|m| m.input == a.right)
            })
            .collect();
        let run = Run {
            tables: &tables,
            versions: &versions,
            asof_only: &asof_only,
            started,
        };
        let scoped = match self.plan(&run, &mut out, &mut report).await? {
            Next::Recompute(scoped) => scoped,
            Next::Done => return Ok(report),
        };
        self.recompute(&run, &mut out, scoped, &mut report).await?;
        Ok(report)
    }

    /// Chooses between a whole recompute, a scoped one, an accumulating
    /// step (written here) and nothing to recompute (the watermarks
    /// committed here).
    async fn plan(
        &self,
        run: &Run<'_>,
        out: &mut ModelTable,
        report: &mut ModelReport,
    ) -> Result<Next, ModelError> {
        let model = self.model;
        let incremental =
            model.materialized == Materialization::Incremental && !self.s.full_refresh;
        let plan = if !incremental || out.files().await?.is_empty() {
            Plan::Full(String::new())
        } else if !self.folds.is_empty() {
            match accumulate_new_rows(model, self.sql, self.folds, run.tables, out, run.versions)
                .await?
            {
                Step::Full(why) => Plan::Full(why),
                Step::Nothing => Plan::Nothing,
                Step::New((rows_in, written)) => {
                    tracing::debug!(model = %model.name, seconds = run.started.elapsed().as_secs_f64(), "accumulated");
                    report.rows_in = rows_in;
                    report.rows_out = written.rows;
                    report.version = Some(written.version);
                    return Ok(Next::Done);
                }
            }
        } else if self.scope.is_empty() {
            Plan::Full(String::new())
        } else {
            scope::plan(self.scope, run.asof_only, run.tables, out, self.catalog).await?
        };
        Ok(match plan {
            Plan::Nothing => {
                // Commits without data changes upstream: nothing to recompute.
                report.version = Some(out.commit(Vec::new(), &[], run.versions, false).await?);
                report.note = Some("no input rows changed".into());
                Next::Done
            }
            Plan::Full(why) => {
                if !why.is_empty() {
                    report.note = Some(format!("full recompute: {why}"));
                }
                Next::Recompute(None)
            }
            Plan::Scoped(scoped) => Next::Recompute(Some(scoped)),
        })
    }

    /// Reads the inputs (in scope, or whole), runs the query and writes
    /// the result: row-wise batches for a row-wise model rebuilt whole,
    /// else one frame per input.
    async fn recompute(
        &self,
        run: &Run<'_>,
        out: &mut ModelTable,
        scoped: Option<Scoped>,
        report: &mut ModelReport,
    ) -> Result<(), ModelError> {
        let (model, s) = (self.model, self.s);
        let needed = columns_read(model, self.sql, self.asof)?;
        // A backfill over a range of dates replaces only those partitions.
        let ranged = match &s.range {
            Some(range) => range.column_of(model)?.map(|c| (range, c)),
            None => None,
        };
        if let (Some(range), None) = (&s.range, &ranged) {
            report.note = Some(format!(
                "rebuilt whole: no date partition column for the range {range}"
            ));
        }
        let ranged = ranged.as_ref().map(|(r, c)| (*r, c.as_str()));
        // A row-wise model over one input (its scope maps that input's key),
        // rebuilt whole: computed batch by batch of input files, so memory
        // stays bounded whatever the table's size; one commit at the end.
        let whole = s.full_refresh || out.files().await?.is_empty();
        if whole
            && scoped.is_none()
            && self.asof.is_empty()
            && let Some(input) = self.rowwise_input(run.tables)?
        {
            let cols = columns_of(input.1, input.0, &needed);
            self.rebuild_rowwise(input, &cols, out, run.versions, ranged, report)
                .await?;
            tracing::debug!(model = %model.name, seconds = run.started.elapsed().as_secs_f64(), "row-wise rebuild");
            return Ok(());
        }
        let frames = self.frames(run, scoped.as_ref(), &needed, report).await?;
        let read = run.started.elapsed().as_secs_f64();
        let result = execute(model, self.sql, self.asof, &frames)?;
        let executed = run.started.elapsed().as_secs_f64();
        let written = self
            .materialize(out, result, scoped.as_ref(), ranged, run.versions)
            .await?;
        tracing::debug!(model = %model.name, read, executed, written = run.started.elapsed().as_secs_f64(), scoped = scoped.is_some(), "sql model");
        report.rows_out = written.rows + written.deleted;
        report.version = Some(written.version);
        Ok(())
    }

    /// The one input of a row-wise model: the scope maps exactly that
    /// input, and maps its key.
    fn rowwise_input<'t>(
        &self,
        tables: &'t BTreeMap<String, ModelTable>,
    ) -> Result<Option<(&'t String, &'t ModelTable)>, ModelError> {
        if let ([mapping], [(name, table)]) =
            (self.scope, tables.iter().collect::<Vec<_>>().as_slice())
            && &mapping.input == *name
            && scope::maps_own_key(self.catalog.model(name)?, mapping)
        {
            return Ok(Some((*name, *table)));
        }
        Ok(None)
    }

    /// Rebuilds the model from its one input, batch by batch of the
    /// input's files, in one commit.
    async fn rebuild_rowwise(
        &self,
        (name, table): (&String, &ModelTable),
        cols: &[&str],
        out: &mut ModelTable,
        versions: &BTreeMap<String, i64>,
        ranged: Ranged<'_>,
        report: &mut ModelReport,
    ) -> Result<(), ModelError> {
        let files = table.files().await?;
        let mut adds = Vec::new();
        for batch in size_batches(files, ROWWISE_BATCH_BYTES) {
            let df = table.read(&batch, Some(cols)).await?;
            report.rows_in += df.height() as u64;
            let frames = BTreeMap::from([(name.clone(), df)]);
            let mut result = execute(self.model, self.sql, self.asof, &frames)?;
            if let Some((range, column)) = ranged {
                result = range.rows_in(result, column)?;
            }
            report.rows_out += result.height() as u64;
            adds.extend(out.write_files(&result).await?);
        }
        let old = out.files().await?;
        report.version = Some(match ranged {
            Some((range, column)) => {
                let (old, _) = range.split(old, column);
                out.commit(adds, &old, versions, false).await?
            }
            None => out.commit(adds, &old, versions, true).await?,
        });
        Ok(())
    }

    /// Each input's rows the query reads, by name: in scope when the run
    /// is scoped, and the right sides read only through their as-of join
    /// last, once their left rows are known.
    async fn frames(
        &self,
        run: &Run<'_>,
        scoped: Option<&Scoped>,
        needed: &impl Fn(&str, &str) -> bool,
        report: &mut ModelReport,
    ) -> Result<BTreeMap<String, DataFrame>, ModelError> {
        let (scope, asof_only) = (self.scope, run.asof_only);
        let mut frames = BTreeMap::new();
        let mut deferred = Vec::new();
        for (name, t) in run.tables {
            let cols = columns_of(t, name, needed);
            let mapped = scope.iter().find(|m| &m.input == name);
            // The right side of an as-of join the query reads only through the
            // join waits for its left rows: scoped, it is read as far back as
            // they need; whole, only the rows that match one of them.
            if let Some(a) = asof_only.iter().find(|a| &a.right == name)
                && (scoped.is_none() || scope.iter().any(|m| m.input == a.left))
                && !asof_only.iter().any(|b| b.right == a.left)
            {
                deferred.push((*a, t, cols));
                continue;
            }
            let df = match (scoped, mapped) {
                (Some(sc), Some(mapping)) => {
                    let files = sc.files.get(name).map(Vec::as_slice).unwrap_or_default();
                    scope::read_in_scope(t, files, &cols, mapping, &sc.affected).await?
                }
                _ => t.read_all(Some(&cols)).await?,
            };
            report.rows_in += df.height() as u64;
            frames.insert(name.clone(), df);
        }
        // Right sides of scoped as-of joins, once their left rows are known.
        for (a, t, cols) in deferred {
            let left = frames.get(&a.left).cloned().unwrap_or_default();
            let df = super::asof_scope::right_rows(a, t, &cols, &left, scoped.is_some()).await?;
            report.rows_in += df.height() as u64;
            frames.insert(a.right.clone(), df);
        }
        Ok(frames)
    }

    /// Writes the query's `result`: over the range's partitions in a
    /// backfill, else as the model is materialized (a full refresh
    /// replaces the table; rows of only new keys are appended).
    async fn materialize(
        &self,
        out: &mut ModelTable,
        mut result: DataFrame,
        scoped: Option<&Scoped>,
        ranged: Ranged<'_>,
        versions: &BTreeMap<String, i64>,
    ) -> Result<write::Written, ModelError> {
        let mut how = if self.s.full_refresh {
            Materialization::Table
        } else {
            self.model.materialized
        };
        let mut key: &[String] = &self.model.unique_key;
        let affected = match scoped {
            Some(sc) if sc.new_keys_only => {
                result = scope::restrict(result, &sc.affected)?;
                (how, key) = (Materialization::Append, &[]);
                None
            }
            Some(sc) => {
                result = scope::restrict(result, &sc.affected)?;
                Some(&sc.affected)
            }
            None => None,
        };
        Ok(match ranged {
            Some((range, column)) => {
                super::range::replace(out, result, range, column, versions).await?
            }
            None => write::write(out, result, how, key, versions, affected).await?,
        })
    }
}

/// What the steps of one run share once its inputs are open.
struct Run<'a> {
    tables: &'a BTreeMap<String, ModelTable>,
    /// Each input's loaded version: the watermarks every commit records.
    versions: &'a BTreeMap<String, i64>,
    asof_only: &'a [&'a AsofJoin],
    started: std::time::Instant,
}

/// An `accumulate` model's incremental run: when its one input only added
/// rows, the query over those rows folded into the table (rows read and
/// the write); otherwise what the run does instead.
async fn accumulate_new_rows(
    model: &Model,
    sql: &str,
    folds: &[(String, Fold)],
    tables: &BTreeMap<String, ModelTable>,
    out: &mut ModelTable,
    versions: &BTreeMap<String, i64>,
) -> Result<Step<(u64, write::Written)>, ModelError> {
    // The spec checked that an accumulating query reads one input.
    let Some((name, input)) = tables.iter().next() else {
        return Ok(Step::Full(String::new()));
    };
    let files = match accumulate::step(name, input, out).await? {
        Step::New(files) => files,
        Step::Full(why) => return Ok(Step::Full(why)),
        Step::Nothing => return Ok(Step::Nothing),
    };
    let needed = columns_read(model, sql, &[])?;
    let rows = input
        .read(&files, Some(&columns_of(input, name, &needed)))
        .await?;
    let rows_in = rows.height() as u64;
    let partial = execute(model, sql, &[], &BTreeMap::from([(name.clone(), rows)]))?;
    let written = write::fold_merge(out, partial, &model.unique_key, folds, versions).await?;
    Ok(Step::New((rows_in, written)))
}

/// The columns of input `name` the query needs, in table order; at least
/// one (a query that only counts rows still needs the row count).
fn columns_of<'t>(
    table: &'t ModelTable,
    name: &str,
    needed: &impl Fn(&str, &str) -> bool,
) -> Vec<&'t str> {
    let fields = table.schema().fields();
    let mut cols: Vec<&str> = fields
        .iter()
        .map(|f| f.name().as_str())
        .filter(|c| needed(name, c))
        .collect();
    if cols.is_empty() {
        cols.extend(fields.first().map(|f| f.name().as_str()));
    }
    cols
}

/// Input read per batch when a row-wise model is rebuilt.
const ROWWISE_BATCH_BYTES: i64 = 48 << 20;

/// Whether the model may read column (table, column): the query's words,
/// its `*` tables, and the columns of its as-of joins. Only these are read,
/// so a query over one column of a wide table reads that column.
fn columns_read<'a>(
    model: &Model,
    sql: &str,
    asof: &'a [AsofJoin],
) -> Result<impl Fn(&str, &str) -> bool + 'a, ModelError> {
    let used =
        sql_columns(sql).map_err(|e| ModelError::Input(format!("model {}: {e}", model.name)))?;
    Ok(move |table: &str, column: &str| {
        used.reads(table, column)
            || asof.iter().any(|a| {
                let side_keys = a.by.iter().any(|b| b == column)
                    || (table == a.left
                        && (column == a.left_on || used.wildcard_tables.contains(&a.name)))
                    || (table == a.right
                        && (column == a.right_on
                            || a.tie_break.as_deref() == Some(column)
                            || a.select.iter().any(|c| c == column)));
                (table == a.left || table == a.right) && side_keys
            })
    })
}

/// The tables a SQL model reads: its query's relations (its as-of names
/// excluded) and the two sides of each as-of join.
pub fn inputs(model: &Model, sql: &str, asof: &[AsofJoin]) -> Result<BTreeSet<String>, ModelError> {
    let mut out = direct_inputs(model, sql, asof)?;
    for a in asof {
        out.insert(a.left.clone());
        out.insert(a.right.clone());
    }
    Ok(out)
}

/// The tables the query itself names (its as-of names excluded).
fn direct_inputs(
    model: &Model,
    sql: &str,
    asof: &[AsofJoin],
) -> Result<BTreeSet<String>, ModelError> {
    let named: BTreeSet<&str> = asof.iter().map(|a| a.name.as_str()).collect();
    Ok(sql_relations(sql)
        .map_err(|e| ModelError::Input(format!("model {}: {e}", model.name)))?
        .into_iter()
        .map(|r| r.name)
        .filter(|n| !named.contains(n.as_str()))
        .collect())
}

/// Runs the query over `frames` (input name -> rows) and returns the
/// declared columns, in order. CPU-bound.
pub fn execute(
    model: &Model,
    sql: &str,
    asof: &[AsofJoin],
    frames: &BTreeMap<String, DataFrame>,
) -> Result<DataFrame, ModelError> {
    let df = query(model, sql, asof, frames)?;
    let names: Vec<&str> = model.columns.iter().map(|c| c.name.as_str()).collect();
    Ok(df.select(names)?)
}

/// What the query returns over `frames`: every column it gives (those the
/// model does not declare too), once it gives every declared one.
pub fn query(
    model: &Model,
    sql: &str,
    asof: &[AsofJoin],
    frames: &BTreeMap<String, DataFrame>,
) -> Result<DataFrame, ModelError> {
    let fail = |e: PolarsError| ModelError::Input(format!("model {}: {e}", model.name));
    let mut ctx = SQLContext::new();
    for (name, df) in frames {
        ctx.register(name, df.clone().lazy());
    }
    for a in asof {
        let left = frames.get(&a.left).cloned().unwrap_or_default();
        let right = frames.get(&a.right).cloned().unwrap_or_default();
        ctx.register(&a.name, asof_join(a, left, right).map_err(fail)?);
    }
    let df = ctx.execute(sql).and_then(|lf| lf.collect()).map_err(fail)?;
    let names: Vec<&str> = model.columns.iter().map(|c| c.name.as_str()).collect();
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| df.column(n).is_err())
        .collect();
    if !missing.is_empty() {
        let have: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        return Err(ModelError::Input(format!(
            "model {}: the query does not return declared column(s) {} (it returns {})",
            model.name,
            missing.join(", "),
            have.join(", ")
        )));
    }
    Ok(df)
}
