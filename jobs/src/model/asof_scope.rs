//! Incremental scope through an as-of join.
//!
//! A model whose `scope` maps the left side of an as-of join (fact_fines:
//! `silver_fines` by `fine_id`) need not map the right side: the engine
//! knows what a change there can affect. A right row gained or lost with
//! `by` values B at `right_on` t can change the match of exactly the left
//! rows with `by` = B and `left_on` >= t (a backward join takes the latest
//! right row at or before `left_on`). Those left rows join the affected
//! scope ([`affected_left`]).
//!
//! The run then reads the right side only as far back as the left rows in
//! scope need ([`read_right`]): files in descending order of their
//! `right_on` statistics, until every left row has a match that no unread
//! file can beat. New fines at the end of the timeline read the newest
//! telemetry files, not the whole fact table.

use super::ModelError;
use super::frame::semi_join;
use crate::decl::AsofJoin;
use crate::lake::table::{DataFile, ModelTable, STATS_SLACK_US};
use polars::prelude::*;

/// The lowest byte budget of a step of [`read_right`] after the first. The
/// first step reads the newest file alone (most runs settle within it);
/// each next step takes files in order while they fit a budget of all the
/// bytes read before it (this floor at least), and always at least one
/// file, so a long look back still takes few steps, and an incremental
/// run whose matches sit in the previous run's small file does not also
/// read a 128k-row file beside it.
const MIN_STEP_BYTES: i64 = 1 << 20;

/// The rows of `left` (columns `cols`, which must hold `by` and `left_on`)
/// whose match can change because `changed` (right rows gained or lost:
/// `by` and `right_on`) changed.
pub async fn affected_left(
    a: &AsofJoin,
    changed: DataFrame,
    left: &ModelTable,
    cols: &[&str],
) -> Result<DataFrame, ModelError> {
    const EARLIEST: &str = "__asof_earliest";
    let by: Vec<Expr> = a.by.iter().map(|c| col(c.as_str())).collect();
    let earliest = changed
        .lazy()
        .group_by(by.clone())
        .agg([col(a.right_on.as_str()).min().alias(EARLIEST)])
        .collect()?;
    let Some(from) = micros(earliest.column(EARLIEST)?.as_materialized_series())?.min() else {
        return Ok(left.read(&[], Some(cols)).await?);
    };
    // Files whose every left_on precedes the earliest change cannot hold
    // an affected row.
    let files: Vec<DataFile> = left
        .files()
        .await?
        .into_iter()
        .filter(|f| {
            f.bounds(&a.left_on)
                .is_none_or(|(_, hi)| hi + STATS_SLACK_US >= from)
        })
        .collect();
    let rows = left.read(&files, Some(cols)).await?;
    let left_type = rows.column(&a.left_on)?.dtype().clone();
    let keep: Vec<Expr> = cols.iter().map(|c| col(*c)).collect();
    Ok(rows
        .lazy()
        .join(
            earliest.lazy(),
            by.clone(),
            by,
            JoinArgs::new(JoinType::Inner),
        )
        .filter(col(a.left_on.as_str()).gt_eq(col(EARLIEST).cast(left_type)))
        .select(keep)
        .collect()?)
}

/// The right rows (columns `cols`) the as-of join of `left` needs: in a
/// scoped run the newest ones as far back as the matches go
/// ([`read_right`]), in a full rebuild only the matches ([`read_matches`]).
pub async fn right_rows(
    a: &AsofJoin,
    right: &ModelTable,
    cols: &[&str],
    left: &DataFrame,
    scoped: bool,
) -> Result<DataFrame, ModelError> {
    let acc = right.read(&[], Some(cols)).await?;
    let Some(hi) = micros(left.column(&a.left_on)?.as_materialized_series())?.max() else {
        return Ok(acc);
    };
    let by_values = left
        .select(a.by.iter().map(String::as_str))?
        .unique_stable(None, UniqueKeepStrategy::First, None)?;
    let files = right
        .files()
        .await?
        .into_iter()
        .filter(|f| f.bounds(&a.right_on).is_none_or(|(lo, _)| lo <= hi))
        .collect();
    let scan = Scan {
        a,
        right,
        cols,
        left,
        hi,
        by_values,
        files,
    };
    if scoped {
        read_right(scan, acc).await
    } else {
        read_matches(scan, acc).await
    }
}

/// Where both right-side reads start: the join, the right table and the
/// columns read, the left rows, their latest `left_on` (`hi`) and distinct
/// `by` values, and the right files that may hold a row at or before `hi`
/// (by statistics; files without them may).
struct Scan<'s> {
    a: &'s AsofJoin,
    right: &'s ModelTable,
    cols: &'s [&'s str],
    left: &'s DataFrame,
    hi: i64,
    by_values: DataFrame,
    files: Vec<DataFile>,
}

impl Scan<'_> {
    /// The rows of `files` at or before `hi` whose `by` values a left row has.
    async fn rows(&self, files: &[DataFile]) -> Result<DataFrame, ModelError> {
        let a = self.a;
        let rows = self.right.read(files, Some(self.cols)).await?;
        let early = micros(rows.column(&a.right_on)?.as_materialized_series())?.lt_eq(self.hi);
        semi_join(rows.filter(&early)?, self.by_values.clone(), &a.by)
    }
}

/// The right rows (columns `cols`) the as-of join of `left` needs: rows
/// with `by` values `left` has and `right_on` at or before its latest
/// `left_on`, read newest file first and only until each left row's match
/// is certain (found, and later than anything an unread file holds).
async fn read_right(scan: Scan<'_>, mut acc: DataFrame) -> Result<DataFrame, ModelError> {
    let (a, left) = (scan.a, scan.left);
    let mut files = scan.files.clone();
    let bound = |f: &DataFile| f.bounds(&a.right_on);
    // Newest first; files without statistics first of all (they could
    // hold anything).
    files.sort_by_key(|f| std::cmp::Reverse(bound(f).map_or(i64::MAX, |(_, max)| max)));
    let mut rest = files.as_slice();
    let mut read_bytes = 0;
    while !rest.is_empty() {
        // At least one file; more while they fit the step's budget.
        let budget = if read_bytes == 0 {
            0
        } else {
            read_bytes.max(MIN_STEP_BYTES)
        };
        let mut take = 1;
        let mut bytes = rest[0].size;
        while take < rest.len() && bytes + rest[take].size <= budget {
            bytes += rest[take].size;
            take += 1;
        }
        let (step, later) = rest.split_at(take);
        rest = later;
        read_bytes += bytes;
        acc.vstack_mut_owned(scan.rows(step).await?)?;
        let Some(next) = rest.first() else { break };
        let unread_max =
            bound(next).map_or(i64::MAX, |(_, max)| max.saturating_add(STATS_SLACK_US));
        if settled(a, left, &acc, unread_max)? {
            break;
        }
    }
    Ok(acc)
}

/// Right-side bytes (of files) [`read_matches`] reads at a time.
const MATCH_BATCH_BYTES: i64 = 64 << 20;

/// The right rows (columns `cols`) that are the match of some row of
/// `left`, the only ones the join can pick, read a batch of files at a
/// time: memory holds one batch and at most the matches (and their ties)
/// of the left rows, not the whole right side (a full rebuild of
/// fact_fines held all 10M telemetry rows, 2.4 GB, to attribute 200k
/// fines). The join over these rows gives each left row the same match as
/// over all of them: a kept row that beat a left row's match would have
/// been its match. Rows after the latest `left_on` or of `by` values no
/// left row has are never a match, so the batch goes to [`matches_only`]
/// as read: filtering them first cost more than it saved.
async fn read_matches(scan: Scan<'_>, mut acc: DataFrame) -> Result<DataFrame, ModelError> {
    let a = scan.a;
    let mut probe: Vec<&str> = a.by.iter().map(String::as_str).collect();
    probe.push(&a.left_on);
    let left = scan
        .left
        .select(probe)?
        .sort([a.left_on.as_str()], SortMultipleOptions::default())?;
    for batch in super::frame::size_batches(scan.files.clone(), MATCH_BATCH_BYTES) {
        let rows = scan.right.read(&batch, Some(scan.cols)).await?;
        time_unit(rows.column(&a.right_on)?.as_materialized_series())?;
        acc.vstack_mut_owned(rows)?;
        acc = matches_only(a, &left, acc)?;
    }
    Ok(acc)
}

/// The rows of `right` that are the as-of match of a row of `left`
/// (sorted on `left_on`), or tie with one on `by` and `right_on`. The
/// match's time comes from a join on `right_on` alone (a sort of
/// integers; sorting a million rows by time and the tie-break's text
/// was most of a full rebuild's read), and the rows at those times are
/// then kept by a semi join: the tie-break picks among them later, in the
/// model's own join.
fn matches_only(a: &AsofJoin, left: &DataFrame, right: DataFrame) -> Result<DataFrame, ModelError> {
    const MATCH: &str = "__asof_match";
    let times = by_and_time(a, right.clone(), MATCH);
    let mut matched: Vec<Expr> = a.by.iter().map(|c| col(c.as_str())).collect();
    matched.push(col(MATCH).alias(a.right_on.as_str()));
    let matched = super::frame::backward_asof(left.clone().lazy(), times, &a.left_on, MATCH, &a.by)
        .drop_nulls(Some(cols([MATCH])))
        .select(matched)
        .unique(None, UniqueKeepStrategy::Any)
        .collect()?;
    let mut on = a.by.clone();
    on.push(a.right_on.clone());
    super::frame::semi_join(right, matched, &on)
}

/// The `by` columns of `right` and its `right_on` as `alias`, sorted on
/// it (as a backward as-of join needs them).
fn by_and_time(a: &AsofJoin, right: DataFrame, alias: &str) -> LazyFrame {
    let mut keep: Vec<Expr> = a.by.iter().map(|c| col(c.as_str())).collect();
    keep.push(col(a.right_on.as_str()).alias(alias));
    right
        .lazy()
        .select(keep)
        .sort([alias], SortMultipleOptions::default())
}

/// Whether every left row already has a match in `acc` later than
/// `unread_max`: a right row no unread file can displace (ties on
/// `right_on` go by tie_break, so equal is not enough).
fn settled(
    a: &AsofJoin,
    left: &DataFrame,
    acc: &DataFrame,
    unread_max: i64,
) -> Result<bool, ModelError> {
    const MATCH: &str = "__asof_match";
    let right = by_and_time(a, acc.clone(), MATCH);
    let mut lkeep: Vec<Expr> = a.by.iter().map(|c| col(c.as_str())).collect();
    lkeep.push(col(a.left_on.as_str()));
    let left = left
        .clone()
        .lazy()
        .select(lkeep)
        .sort([a.left_on.as_str()], SortMultipleOptions::default())
        .collect()?;
    let joined =
        super::frame::backward_asof(left.lazy(), right, &a.left_on, MATCH, &a.by).collect()?;
    let matches = micros(joined.column(MATCH)?.as_materialized_series())?;
    Ok(matches.null_count() == 0 && matches.min().is_none_or(|m| m > unread_max))
}

/// The unit of a timestamp column; any other column is refused, naming it.
fn time_unit(s: &Series) -> Result<TimeUnit, ModelError> {
    match s.dtype() {
        DataType::Datetime(unit, _) => Ok(*unit),
        other => Err(ModelError::Input(format!(
            "as-of column `{}` is {other}, not a timestamp",
            s.name()
        ))),
    }
}

/// A timestamp column as microseconds since the epoch (the unit of the
/// Delta statistics).
fn micros(s: &Series) -> Result<Int64Chunked, ModelError> {
    let unit = time_unit(s)?;
    let phys = s.to_physical_repr();
    let v = phys.i64()?;
    Ok(match unit {
        TimeUnit::Nanoseconds => v / 1000,
        TimeUnit::Microseconds => v.clone(),
        TimeUnit::Milliseconds => v * 1000,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::frame::asof_join;

    fn join() -> AsofJoin {
        AsofJoin {
            name: "j".into(),
            left: "l".into(),
            right: "r".into(),
            left_on: "at".into(),
            right_on: "t".into(),
            by: vec!["v".into(), "w".into()],
            tie_break: Some("id".into()),
            select: vec!["d".into()],
        }
    }

    /// Microseconds as a timestamp column.
    fn times(name: &str, us: Vec<Option<i64>>) -> Column {
        Column::new(name.into(), us)
            .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
            .expect("test value")
    }

    /// A small generator of pseudo-random numbers (a fixed sequence).
    struct Lcg(u64);
    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    #[test]
    fn the_joined_matches_alone_give_every_left_row_its_match_over_all_rows() {
        let a = join();
        let mut g = Lcg(7);
        for round in 0..40 {
            // Few by values and few times, so that ties on `t` (decided
            // by `id`) and rows of by values no left row has are common;
            // some by values and times are null.
            let n = 50 + 40 * round;
            let key = |g: &mut Lcg, k: u64| match g.below(k + 1) {
                0 => None,
                x => Some(format!("v{x}")),
            };
            let (mut v, mut w, mut t, mut id, mut d) = (vec![], vec![], vec![], vec![], vec![]);
            for i in 0..n {
                v.push(key(&mut g, 6));
                w.push(key(&mut g, 2));
                t.push((g.below(20) > 0).then(|| g.below(30) as i64 * 1_000_000));
                // Unique, as a tie-break must be for one answer.
                id.push(format!("e{:03}.{i}", g.below(50)));
                d.push(format!("d{i}"));
            }
            let right = DataFrame::new_infer_height(vec![
                Column::new("v".into(), v),
                Column::new("w".into(), w),
                times("t", t),
                Column::new("id".into(), id),
                Column::new("d".into(), d),
            ])
            .expect("test value");
            let (mut lv, mut lw, mut at, mut k) = (vec![], vec![], vec![], vec![]);
            for i in 0..n / 5 {
                lv.push(key(&mut g, 4));
                lw.push(key(&mut g, 2));
                at.push((g.below(20) > 0).then(|| g.below(34) as i64 * 1_000_000));
                k.push(i as u32);
            }
            let left = DataFrame::new_infer_height(vec![
                Column::new("k".into(), k),
                Column::new("v".into(), lv),
                Column::new("w".into(), lw),
                times("at", at),
            ])
            .expect("test value");
            let sorted = left
                .select(["v", "w", "at"])
                .and_then(|l| l.sort(["at"], SortMultipleOptions::default()))
                .expect("test value");
            let kept = matches_only(&a, &sorted, right.clone()).expect("matches");
            assert!(kept.height() <= right.height());
            let over = |r: DataFrame| {
                asof_join(&a, left.clone(), r)
                    .and_then(|j| j.sort(["k"], SortMultipleOptions::default()).collect())
                    .expect("join")
            };
            let (all, reduced) = (over(right.clone()), over(kept));
            assert!(
                all.equals_missing(&reduced),
                "round {round}: over all rows {all:?}\nover the matches {reduced:?}"
            );
        }
    }

    #[test]
    fn an_as_of_column_that_is_not_a_timestamp_is_refused_by_name() {
        let day = Series::new("issued_on".into(), [19_000i32])
            .cast(&DataType::Date)
            .expect("test value");
        let err = time_unit(&day).expect_err("a date is not a timestamp");
        assert_eq!(
            err.to_string(),
            "as-of column `issued_on` is date, not a timestamp"
        );
        let at = times("at", vec![Some(1)]);
        assert_eq!(
            time_unit(at.as_materialized_series()).expect("a timestamp"),
            TimeUnit::Microseconds
        );
    }
}
