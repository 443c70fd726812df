//! A test's evaluation: the table version it checks, the rows in scope
//! (the files committed after the test's base, or every file), and the
//! kind that judges them (one file each, under `kinds/`).
//!
//! Row-wise kinds become one SQL condition a failing row satisfies
//! (`where` AND the kind's condition), run by polars SQL on each chunk.
//! Statistics answer without reading when they can: a `not_null` whose
//! files record no nulls, a `row_count` or `freshness` without `where`.

pub use super::kinds::common::{Context, Outcome};

use super::kinds::common::{Scope, Target};
use super::kinds::{
    accepted_values, expression, freshness, not_null, relationships, row_count, unique,
};
use super::results::Base;
use crate::decl::{DataTest, Model, TestKind};
use crate::model::ModelError;

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
    let t = Target {
        model,
        test,
        table: &table,
        all: &all,
        scope: &scope,
        base: base.as_ref(),
    };
    // Each kind reports the scope it read (`since_version`).
    let mut out = match &test.kind {
        TestKind::NotNull { column } => not_null::check(ctx, &t, column).await?,
        TestKind::AcceptedValues { column, allowed } => {
            accepted_values::check(ctx, &t, column, allowed).await?
        }
        TestKind::Expression { sql } => expression::check(ctx, &t, sql).await?,
        TestKind::Unique { columns } => unique::check(ctx, &t, columns).await?,
        TestKind::Relationships { column, to, field } => {
            relationships::check(ctx, &t, column, to, field).await?
        }
        TestKind::RowCount { min, max, equal_to } => {
            row_count::check(ctx, &t, *min, *max, equal_to.as_ref()).await?
        }
        TestKind::Freshness { column, max_lag } => {
            freshness::check(ctx, &t, column, *max_lag).await?
        }
    };
    out.version = version;
    if let Some(since) = out.since_version
        && out.rows_checked == 0
        && out.failing == 0
    {
        out.message = format!("nothing committed since v{since}, where it passed");
    }
    Ok(out)
}
