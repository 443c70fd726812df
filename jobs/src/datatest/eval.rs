//! A test's evaluation: the table version it checks, the rows in scope
//! (the files committed after the test's base, or every file), and the
//! kind that judges them (one file each, under `kinds/`).
//!
//! Row-wise kinds become one SQL condition a failing row satisfies
//! (`where` AND the kind's condition), run by polars SQL on each chunk.
//! Statistics answer without reading when they can: a `not_null` whose
//! files record no nulls, a `row_count` or `freshness` without `where`.

pub use super::kinds::common::{Context, Findings};

use super::kinds;
use super::kinds::common::{Scope, Target, input_error};
use super::results::Base;
use crate::decl::{DataTest, Model};
use crate::model::ModelError;

pub async fn evaluate(
    ctx: &Context<'_>,
    model: &Model,
    test: &DataTest,
    passes: &[Base],
) -> Result<Findings, ModelError> {
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
    let Some(kind) = kinds::find(test.kind.name()) else {
        let msg = format!("unknown test kind `{}`", test.kind.name());
        return Err(input_error(test, msg));
    };
    let mut out = (kind.check)(ctx, &t).await?;
    out.version = version;
    if let Some(since) = out.since_version
        && out.rows_checked == 0
        && out.failing == 0
    {
        out.message = format!("nothing committed since v{since}, where it passed");
    }
    Ok(out)
}
