//! Frame operations the model layer builds on: keyed semi and anti joins
//! (nulls equal, left order kept), as-of joins, and grouping data files
//! into batches of a size. They know frames and files, no model kind:
//! every other file of `model` may use them, and they use none of the
//! files that run a model kind.

use super::ModelError;
use crate::decl::AsofJoin;
use crate::lake::table::DataFile;
use polars::prelude::*;

/// The rows of `left` whose `on` values are not in `right`.
pub fn anti_join(
    left: DataFrame,
    right: DataFrame,
    on: &[String],
) -> Result<DataFrame, ModelError> {
    keyed_join(left, right, on, JoinType::Anti)
}

/// The rows of `left` whose `on` values are in `right`.
pub fn semi_join(
    left: DataFrame,
    right: DataFrame,
    on: &[String],
) -> Result<DataFrame, ModelError> {
    keyed_join(left, right, on, JoinType::Semi)
}

fn keyed_join(
    left: DataFrame,
    right: DataFrame,
    on: &[String],
    how: JoinType,
) -> Result<DataFrame, ModelError> {
    let keys: Vec<Expr> = on.iter().map(|c| col(c.as_str())).collect();
    let mut args = JoinArgs::new(how);
    args.nulls_equal = true;
    args.maintain_order = MaintainOrderJoin::Left;
    Ok(left
        .lazy()
        .join(right.lazy(), &keys, &keys, args)
        .collect()?)
}

/// `files` in groups of about `limit` bytes, in the order given.
pub fn size_batches(files: Vec<DataFile>, limit: i64) -> Vec<Vec<DataFile>> {
    let mut out: Vec<Vec<DataFile>> = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for f in files {
        if !current.is_empty() && bytes >= limit {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += f.size;
        current.push(f);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Each left row with the right row of the same `by` values and the latest
/// `right_on` at or before its `left_on`; among equal `right_on`, the
/// greatest `tie_break`. Left rows without a match get nulls.
pub fn asof_join(a: &AsofJoin, left: DataFrame, right: DataFrame) -> PolarsResult<LazyFrame> {
    const ON: &str = "__asof_right_on";
    const TIE: &str = "__asof_tie_break";
    let mut keep: Vec<Expr> = a.by.iter().map(|c| col(c.as_str())).collect();
    keep.push(col(a.right_on.as_str()).alias(ON));
    keep.extend(a.select.iter().map(|c| col(c.as_str())));
    let mut order = vec![col(ON)];
    if let Some(t) = &a.tie_break {
        keep.push(col(t.as_str()).alias(TIE));
        order.push(col(TIE));
    }
    // A backward as-of join takes the last right row at or before the left
    // key, so with equal `right_on` the last in this order wins: the
    // greatest tie_break. Sorting on `right_on` first also sorts it within
    // each `by` group, which the join needs.
    let right = right
        .lazy()
        .select(keep)
        .sort_by_exprs(order, SortMultipleOptions::default())
        .collect()?;
    let left = left.sort(
        [a.left_on.as_str()],
        SortMultipleOptions::default().with_maintain_order(true),
    )?;
    let joined = backward_asof(left.lazy(), right.lazy(), &a.left_on, ON, &a.by);
    Ok(joined.select([all().exclude_cols([ON, TIE]).as_expr()]))
}

/// A backward as-of join (allow equal keys) of `left` on `left_on` with
/// `right` on `right_on`, within equal `by` values. Both sides must be
/// sorted on their key: polars cannot check sortedness within `by` groups
/// and would only print a warning, so the check is off.
pub fn backward_asof(
    left: LazyFrame,
    right: LazyFrame,
    left_on: &str,
    right_on: &str,
    by: &[String],
) -> LazyFrame {
    let by: Vec<PlSmallStr> = by.iter().map(|c| c.as_str().into()).collect();
    let options = AsOfOptions {
        strategy: AsofStrategy::Backward,
        tolerance: None,
        tolerance_str: None,
        left_by: Some(by.clone()),
        right_by: Some(by),
        allow_eq: true,
        check_sortedness: false,
    };
    left.join(
        right,
        [col(left_on)],
        [col(right_on)],
        JoinArgs::new(JoinType::AsOf(Box::new(options))),
    )
}
