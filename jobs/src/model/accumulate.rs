//! `accumulate` models: an aggregate over an input that only gains rows,
//! kept current by aggregating the new rows alone and folding the result
//! into the rows the table holds for the same keys (sums added, the
//! smaller or greater of min and max kept).
//!
//! A `scope` re-aggregates an affected key from every input row it has:
//! exact, but a day of telemetry re-read because one event of each driver
//! arrived. Folding reads only what is new and the table's rows of the new
//! keys. It holds while the input's commits since the consumed version
//! only add rows (as a deduplicated, insert-only fact's do); a commit that
//! removed rows (a rewrite, a full refresh of the input) cannot be taken
//! back out of a sum, so the run recomputes the model from every row and
//! says why. The fold and the watermark are one commit, as every write is:
//! a run killed before it leaves the table as it was, and the next run
//! folds the same new rows once. The fold itself happens in the merge
//! ([`super::write::fold_merge`]), which reads the held rows of the new
//! keys anyway.

use super::ModelError;
use crate::decl::Fold;
use crate::lake::table::{DataFile, ModelTable};
use polars::prelude::*;

/// What an incremental run of an `accumulate` model does.
pub enum Step<T = Vec<DataFile>> {
    /// Recompute from every input row (the reason, for the run's report).
    Full(String),
    /// The input has no data changes: only the watermark moves.
    Nothing,
    /// Aggregate and fold the new rows: the files holding them (all the
    /// input gained), and once folded, what the run did.
    New(T),
}

/// The files `input` (named `name`) added since the version `out` last
/// consumed, if it only added.
pub async fn step(name: &str, input: &ModelTable, out: &ModelTable) -> Result<Step, ModelError> {
    let Some(from) = out.txn(name).await? else {
        return Ok(Step::Full(format!("{name} was never consumed")));
    };
    if from >= input.version() {
        return Ok(Step::Nothing);
    }
    let changes = input.changes(from).await?;
    if !changes.removed.is_empty() {
        return Ok(Step::Full(format!(
            "{name} removed or rewrote rows, which an accumulated sum cannot take back"
        )));
    }
    if changes.added.is_empty() {
        return Ok(Step::Nothing);
    }
    Ok(Step::New(changes.added))
}

/// `held` and `partial` (same columns) combined per key: each folded column
/// as its fold says, nulls ignored as SQL's aggregates ignore them (a sum
/// of nulls only is null). Rows come out in `partial`'s column order.
pub fn fold(
    held: DataFrame,
    partial: DataFrame,
    key: &[String],
    folds: &[(String, Fold)],
) -> Result<DataFrame, ModelError> {
    let names: Vec<PlSmallStr> = partial.get_column_names_owned();
    let types: Vec<DataType> = partial.dtypes();
    let mut both = held;
    both.vstack_mut_owned(partial)?;
    let aggs: Vec<Expr> = folds
        .iter()
        .map(|(name, how)| {
            let c = col(name.as_str());
            let folded = match how {
                Fold::Sum => when(c.clone().count().eq(lit(0)))
                    .then(lit(NULL))
                    .otherwise(c.sum()),
                Fold::Min => c.min(),
                Fold::Max => c.max(),
            };
            folded.alias(name.as_str())
        })
        .collect();
    let by: Vec<Expr> = key.iter().map(|k| col(k.as_str())).collect();
    let casts: Vec<Expr> = names
        .iter()
        .zip(types)
        .map(|(n, t)| col(n.clone()).cast(t))
        .collect();
    Ok(both
        .lazy()
        .group_by_stable(by)
        .agg(aggs)
        .select(casts)
        .collect()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Vec<String> {
        vec!["driver_id".into()]
    }

    #[test]
    fn sums_add_min_and_max_keep_the_extreme_and_new_keys_pass_through() {
        let held = df!(
            "driver_id" => ["d1", "d2"],
            "events" => [3i64, 5],
            "top" => [Some(90.0f64), None],
            "low" => [10i32, 20],
        )
        .unwrap();
        let partial = df!(
            "driver_id" => ["d2", "d3", "d1"],
            "events" => [1i64, 2, 4],
            "top" => [Some(130.0f64), Some(50.0), Some(80.0)],
            "low" => [25i32, 7, 5],
        )
        .unwrap();
        let folds = vec![
            ("events".to_string(), Fold::Sum),
            ("top".to_string(), Fold::Max),
            ("low".to_string(), Fold::Min),
        ];
        let out = fold(held, partial, &key(), &folds)
            .unwrap()
            .sort(["driver_id"], SortMultipleOptions::default())
            .unwrap();
        let expected = df!(
            "driver_id" => ["d1", "d2", "d3"],
            "events" => [7i64, 6, 2],
            "top" => [Some(90.0f64), Some(130.0), Some(50.0)],
            "low" => [5i32, 20, 7],
        )
        .unwrap();
        assert!(out.equals_missing(&expected), "{out}");
    }

    #[test]
    fn a_sum_of_nulls_only_stays_null_and_types_are_kept() {
        let held = df!("driver_id" => ["d1"], "fines" => [None::<i32>]).unwrap();
        let partial = df!("driver_id" => ["d1"], "fines" => [None::<i32>]).unwrap();
        let out = fold(held, partial, &key(), &[("fines".into(), Fold::Sum)]).unwrap();
        assert_eq!(out.column("fines").unwrap().dtype(), &DataType::Int32);
        assert_eq!(out.column("fines").unwrap().null_count(), 1);
    }
}
