//! A scoped run's read of one input: only the rows whose scope values are
//! affected, unless a sample says (nearly) all of them are.

use super::{evaluate, expression_columns, hidden};
use crate::decl::ScopeInput;
use crate::lake::table::{DataFile, ModelTable};
use crate::model::ModelError;
use polars::prelude::*;

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
            return crate::model::frame::semi_join(rows, self.wanted.clone(), self.keys);
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
