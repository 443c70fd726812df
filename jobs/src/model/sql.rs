//! SQL models: a SELECT in polars SQL over other models, plus the as-of
//! joins a model declares (made available to its query by name).
//!
//! Inputs are read whole and the query recomputes the model; the
//! materialization then writes only what changed (see [`super::write`]).
//! A model whose inputs all sit at the versions its last commit recorded
//! is skipped without writing.

use super::{Catalog, ModelError, ModelReport, Settings, write};
use crate::spec::{AsofJoin, Materialization, Model, sql_relations};
use polars::prelude::*;
use polars::sql::SQLContext;
use std::collections::{BTreeMap, BTreeSet};

pub async fn run(
    model: &Model,
    sql: &str,
    asof: &[AsofJoin],
    catalog: &Catalog,
    s: &Settings,
) -> Result<ModelReport, ModelError> {
    let inputs = inputs(model, sql, asof)?;
    let mut tables = BTreeMap::new();
    let mut versions = BTreeMap::new();
    for name in &inputs {
        let t = catalog.open_input(name, s).await?;
        versions.insert(name.clone(), t.version());
        tables.insert(name.clone(), t);
    }
    let mut out = catalog.open_output(&model.name, s).await?;
    let mut report = ModelReport::default();
    let mut current = true;
    for (name, v) in &versions {
        current &= out.txn(name).await? == Some(*v);
    }
    if current && out.version() > 0 && !s.full_refresh {
        report.note = Some("inputs unchanged".into());
        return Ok(report);
    }
    let mut frames = BTreeMap::new();
    for (name, t) in &tables {
        let df = t.read_all(None).await?;
        report.rows_in += df.height() as u64;
        frames.insert(name.clone(), df);
    }
    let result = execute(model, sql, asof, &frames)?;
    let how = if s.full_refresh {
        Materialization::Table
    } else {
        model.materialized
    };
    let written = write::write(&mut out, result, how, &model.unique_key, &versions).await?;
    report.rows_out = written.rows + written.deleted;
    report.version = Some(written.version);
    Ok(report)
}

/// The tables a SQL model reads: its query's relations (its as-of names
/// excluded) and the two sides of each as-of join.
pub fn inputs(model: &Model, sql: &str, asof: &[AsofJoin]) -> Result<BTreeSet<String>, ModelError> {
    let named: BTreeSet<&str> = asof.iter().map(|a| a.name.as_str()).collect();
    let mut out: BTreeSet<String> = sql_relations(sql)
        .map_err(|e| ModelError::Input(format!("model {}: {e}", model.name)))?
        .into_iter()
        .map(|r| r.name)
        .filter(|n| !named.contains(n.as_str()))
        .collect();
    for a in asof {
        out.insert(a.left.clone());
        out.insert(a.right.clone());
    }
    Ok(out)
}

/// Runs the query over `frames` (input name -> rows) and returns the
/// declared columns, in order. CPU-bound.
pub fn execute(
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
    Ok(df.select(names)?)
}

/// Each left row with the right row of the same `by` values and the latest
/// `right_on` at or before its `left_on`; among equal `right_on`, the
/// greatest `tie_break`. Left rows without a match get nulls.
pub fn asof_join(a: &AsofJoin, left: DataFrame, right: DataFrame) -> PolarsResult<LazyFrame> {
    const ON: &str = "__asof_right_on";
    let mut keep: Vec<Expr> = a.by.iter().map(|c| col(c.as_str())).collect();
    keep.push(col(a.right_on.as_str()).alias(ON));
    keep.extend(a.select.iter().map(|c| col(c.as_str())));
    let mut order: Vec<PlSmallStr> = a.by.iter().map(|c| c.as_str().into()).collect();
    order.push(a.right_on.as_str().into());
    if let Some(t) = &a.tie_break {
        order.push(t.as_str().into());
    }
    // One right row per (by, right_on): the greatest tie_break.
    let mut dedup_key: Vec<String> = a.by.clone();
    dedup_key.push(ON.into());
    let right = right
        .sort(
            order,
            SortMultipleOptions::default().with_maintain_order(true),
        )?
        .lazy()
        .select(keep)
        .collect()?
        .unique_stable(Some(&dedup_key), UniqueKeepStrategy::Last, None)?
        .sort(
            [ON],
            SortMultipleOptions::default().with_maintain_order(true),
        )?;
    let left = left.sort(
        [a.left_on.as_str()],
        SortMultipleOptions::default().with_maintain_order(true),
    )?;
    let by: Vec<PlSmallStr> = a.by.iter().map(|c| c.as_str().into()).collect();
    let options = AsOfOptions {
        strategy: AsofStrategy::Backward,
        tolerance: None,
        tolerance_str: None,
        left_by: Some(by.clone()),
        right_by: Some(by),
        allow_eq: true,
        // Sorted above; polars cannot check sortedness within `by` groups
        // and would only print a warning.
        check_sortedness: false,
    };
    let joined = left.lazy().join(
        right.lazy(),
        [col(a.left_on.as_str())],
        [col(ON)],
        JoinArgs::new(JoinType::AsOf(Box::new(options))),
    );
    Ok(joined.select([all().exclude_cols([ON]).as_expr()]))
}
