//! `expression`: every row in scope satisfies a SQL boolean expression.
//!
//! Reads the files committed since the test's base (every file without
//! one), in chunks, with only the columns the expression and the `where`
//! name. A row whose expression is NULL fails: an unknown is not a pass.

use super::common::{Context, Outcome, Target, rowwise};
use crate::model::ModelError;

pub(crate) async fn check(
    ctx: &Context<'_>,
    t: &Target<'_>,
    sql: &str,
) -> Result<Outcome, ModelError> {
    let cond = format!("NOT COALESCE(({sql}), FALSE)");
    rowwise(ctx, t, &cond, &[]).await
}
