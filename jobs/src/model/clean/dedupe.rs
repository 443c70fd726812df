//! One batch of bronze rows through the rules: checked, deduplicated in
//! the declared order against the run and silver, and derived.

use super::check::{Judged, check_rows};
use super::columns::{COORDS, HIDDEN};
use super::order::dedupe_order;
use crate::decl::{Dedupe, Derived, FieldRule, Model, RecordFormat};
use crate::lake::table::{DataFile, ModelTable};
use crate::model::ModelError;
use crate::model::dates::DateRange;
use crate::model::frame::anti_join;
use crate::model::keyset::KeySet;
use crate::model::scope::conform_to;
use polars::prelude::*;
use polars::sql::SQLContext;

/// What one pass produced.
pub struct Cleaned {
    pub silver: DataFrame,
    pub quarantine: DataFrame,
    pub duplicates: u64,
    /// In a backfill over a range: bronze coordinates of the rows that
    /// passed into the range.
    pub in_range: Option<DataFrame>,
}

/// Columns `from` of `df`, renamed `to` (nothing else).
fn renamed(df: DataFrame, from: &[&str], to: &[&str]) -> Result<DataFrame, ModelError> {
    let columns: Vec<Expr> = from
        .iter()
        .zip(to)
        .map(|(f, t)| col(*f).alias(*t))
        .collect();
    Ok(df.lazy().select(columns).collect()?)
}

/// A cleaning model's rules, as its spec declares them.
pub(super) struct Rules<'a> {
    pub(super) format: RecordFormat,
    pub(super) fields: &'a [FieldRule],
    pub(super) dedupe: &'a Dedupe,
    pub(super) derive: &'a [Derived],
    pub(super) model: &'a Model,
}

impl Rules<'_> {
    /// Checks `rows` (bronze columns) and dedupes them, in the declared
    /// order, against themselves, the keys earlier batches of this run let
    /// through (`won`, given this batch's) and the keys silver's committed
    /// files hold (none when silver is replaced).
    ///
    /// With a `range` (a backfill over dates of `column`), only the silver
    /// rows in the range are returned, and `in_range` holds the bronze
    /// coordinates of every row that passes into it (duplicates included).
    pub(super) async fn clean(
        &self,
        rows: &DataFrame,
        silver: &ModelTable,
        silver_files: &[DataFile],
        won: &mut KeySet,
        range: Option<(&DateRange, &str)>,
    ) -> Result<Cleaned, ModelError> {
        let started = std::time::Instant::now();
        let order = dedupe_order(rows, &self.dedupe.order)?;
        let sorted = started.elapsed().as_secs_f64();
        let Judged {
            valid,
            accepted,
            quarantine,
        } = check_rows(rows, self.fields, self.format, &order)?;
        tracing::debug!(model = %self.model.name, sorted, checked = started.elapsed().as_secs_f64(), "rows checked");
        let (valid, in_range) = match range {
            None => (valid, None),
            Some((range, column)) => {
                // Derived before the dedupe: the range column may be a
                // derived one, and every passing row's place matters.
                let idx = IdxCa::from_vec("idx".into(), accepted);
                let coords = renamed(rows.select(COORDS)?.take(&idx)?, &COORDS, &HIDDEN)?;
                let valid = self.derive(valid.hstack(coords.columns())?)?;
                let in_range = renamed(
                    valid
                        .clone()
                        .lazy()
                        .filter(range.predicate(column))
                        .collect()?,
                    &HIDDEN,
                    &COORDS,
                )?;
                (valid, Some(in_range))
            }
        };
        let passed = valid.height();
        let key = &self.dedupe.key;
        // A key silver holds stays in `won` too: any later copy of it is a
        // duplicate either way.
        let new = won.insert_new(&valid)?;
        let mut firsts = if new.all() {
            valid
        } else {
            valid.filter(&new)?
        };
        if firsts.height() > 0 && !silver_files.is_empty() {
            let key_cols = firsts.select(key.iter().map(String::as_str))?;
            let held = silver.held(silver_files, &key_cols).await?;
            if held.height() > 0 {
                let held = conform_to(&held, &firsts)?;
                firsts = anti_join(firsts, held, key)?;
            }
        }
        let mut duplicates = (passed - firsts.height()) as u64;
        tracing::debug!(model = %self.model.name, seconds = started.elapsed().as_secs_f64(), "deduplicated");
        let silver_rows = match range {
            None => self.derive(firsts)?,
            Some((range, column)) => {
                let rows = range.rows_in(firsts, column)?;
                // Rows outside the range are neither written nor dropped.
                duplicates = in_range.as_ref().map_or(0, |r| r.height() - rows.height()) as u64;
                let keep: Vec<PlSmallStr> = rows
                    .get_column_names()
                    .into_iter()
                    .filter(|c| !HIDDEN.contains(&c.as_str()))
                    .cloned()
                    .collect();
                rows.select(keep)?
            }
        };
        tracing::debug!(model = %self.model.name, seconds = started.elapsed().as_secs_f64(), "derived");
        Ok(Cleaned {
            silver: silver_rows,
            quarantine,
            duplicates,
            in_range,
        })
    }

    /// Adds the derived columns (SQL expressions over the parsed fields).
    fn derive(&self, df: DataFrame) -> Result<DataFrame, ModelError> {
        derived(df, self.derive, &self.model.name)
    }
}

/// `df` (a cleaning model's parsed fields) with the `derive` columns of
/// model `model` added.
pub fn derived(df: DataFrame, derive: &[Derived], model: &str) -> Result<DataFrame, ModelError> {
    if derive.is_empty() {
        return Ok(df);
    }
    let ctx = SQLContext::new();
    ctx.register("parsed", df.lazy());
    let mut ctx = ctx;
    let select: Vec<String> = derive
        .iter()
        .map(|d| format!("{} AS {}", d.sql, d.name))
        .collect();
    let q = format!("SELECT *, {} FROM parsed", select.join(", "));
    ctx.execute(&q)
        .and_then(|lf| lf.collect())
        .map_err(|e| ModelError::Input(format!("model {model}: derive: {e}")))
}
