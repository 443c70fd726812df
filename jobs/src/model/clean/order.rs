//! The order in which a batch's rows are deduplicated: the model's
//! declared `dedupe.order`, ties kept in read order.

use crate::model::ModelError;
use polars::prelude::*;
use std::collections::HashMap;

/// Row numbers of `rows` in the dedupe order (stable: equal keys keep
/// their read order). Only the order columns are sorted; the raw values
/// are visited in this order, never moved.
pub(super) fn dedupe_order(rows: &DataFrame, order: &[String]) -> Result<Vec<IdxSize>, ModelError> {
    if let Some(idx) = integer_order(rows, order)? {
        return Ok(idx);
    }
    const ROW: &str = "__row";
    let keys = rows.select(order.iter().map(String::as_str))?;
    let mut keys = keys.with_row_index(ROW.into(), None)?;
    if !order.is_empty() {
        keys = keys.sort(
            order.iter().map(String::as_str),
            SortMultipleOptions::default().with_maintain_order(true),
        )?;
    }
    Ok(keys.column(ROW)?.idx()?.into_no_null_iter().collect())
}

/// The same order, for the usual case of up to three integer-like columns
/// (timestamps, partition, offset) without nulls: bronze's own layout put
/// in order in two passes ([`order_by_runs`]), else a plain tuple sort,
/// either a fraction of the cost of a general multi-column sort. `None`
/// otherwise.
fn integer_order(rows: &DataFrame, order: &[String]) -> Result<Option<Vec<IdxSize>>, ModelError> {
    if order.len() > 3 {
        return Ok(None);
    }
    let mut columns = Vec::with_capacity(order.len());
    for name in order {
        let column = rows
            .column(name)?
            .as_materialized_series()
            .to_physical_repr();
        if !column.dtype().is_integer()
            || column.null_count() > 0
            || column.dtype() == &DataType::UInt64
        {
            return Ok(None);
        }
        columns.push(column.cast(&DataType::Int64)?.i64()?.rechunk().into_owned());
    }
    let slices: Vec<&[i64]> = columns
        .iter()
        .map(|c| c.cont_slice())
        .collect::<Result<_, _>>()?;
    let key = |i: usize| -> [i64; 3] {
        let at = |k: usize| slices.get(k).map_or(0, |s| s[i]);
        [at(0), at(1), at(2)]
    };
    if let Some(idx) = order_by_runs(rows.height(), key) {
        return Ok(Some(idx));
    }
    // Row numbers break ties, so the unstable sort is the stable order.
    let mut keys: Vec<([i64; 3], IdxSize)> =
        (0..rows.height()).map(|i| (key(i), i as IdxSize)).collect();
    if !keys.is_sorted() {
        crate::cores::sort_on_two_cores(&mut keys);
    }
    Ok(Some(keys.into_iter().map(|(_, i)| i).collect()))
}

/// Distinct second-key values a run may hold for [`order_by_runs`]
/// (Kafka partitions of one topic, say); more and the rows are sorted.
const MAX_GROUPS: usize = 1024;

/// Groups of a run looked up by a scan below this many, by a map above.
const SCANNED_GROUPS: usize = 8;

// A row's group is kept as a u16.
const _: () = assert!(MAX_GROUPS <= u16::MAX as usize + 1);

/// The row numbers of `len` rows in the order of their keys (`key(i)`),
/// in two passes and without sorting, when the rows are laid out as an
/// ingester writes bronze: runs of equal first key (one ingest batch's
/// `ingested_at`) in ascending order, and inside a run the rows of each
/// second-key value (a partition) in ascending third-key order (its
/// offsets), the values interleaved as messages arrived. Each run is then
/// a stable counting sort by its second key. Rows already in order are
/// such a layout. `None` for any other layout.
fn order_by_runs(len: usize, key: impl Fn(usize) -> [i64; 3]) -> Option<Vec<IdxSize>> {
    let mut out: Vec<IdxSize> = vec![0; len];
    // Per run: (second key, last third key, rows) of each value, in order
    // of first appearance, and each row's value as an index into it.
    let mut groups: Vec<(i64, i64, usize)> = Vec::new();
    let mut index: HashMap<i64, usize> = HashMap::new();
    let mut group_of: Vec<u16> = Vec::new();
    let (mut by_key, mut at): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
    let (mut start, mut placed) = (0, 0);
    let mut last_first = i64::MIN;
    while start < len {
        let first = key(start)[0];
        if first < last_first {
            return None;
        }
        last_first = first;
        groups.clear();
        index.clear();
        group_of.clear();
        // Rows of one partition mostly come in bursts: the last row's
        // group is looked at first.
        let mut hint = 0usize;
        let mut end = start;
        while end < len {
            let [k0, k1, k2] = key(end);
            if k0 != first {
                break;
            }
            let g = match groups.get(hint) {
                Some(g) if g.0 == k1 => hint,
                _ => {
                    let found = if groups.len() <= SCANNED_GROUPS {
                        groups.iter().position(|g| g.0 == k1)
                    } else {
                        index.get(&k1).copied()
                    };
                    match found {
                        Some(g) => g,
                        None if groups.len() < MAX_GROUPS => {
                            groups.push((k1, k2, 0));
                            if groups.len() > SCANNED_GROUPS {
                                if index.is_empty() {
                                    index.extend(groups.iter().enumerate().map(|(g, v)| (v.0, g)));
                                } else {
                                    index.insert(k1, groups.len() - 1);
                                }
                            }
                            groups.len() - 1
                        }
                        None => return None,
                    }
                }
            };
            let group = &mut groups[g];
            if k2 < group.1 {
                return None;
            }
            group.1 = k2;
            group.2 += 1;
            group_of.push(g as u16);
            hint = g;
            end += 1;
        }
        if groups.len() == 1 {
            // One group (rows already in order, a first key unique per
            // row): the run stays as read.
            for (slot, row) in out[placed..end].iter_mut().zip(start..end) {
                *slot = row as IdxSize;
            }
            placed = end;
            start = end;
            continue;
        }
        // Where each group's rows go in the output: groups in ascending
        // second key, each in read order (so equal keys keep theirs).
        by_key.clear();
        by_key.extend(0..groups.len());
        by_key.sort_unstable_by_key(|&g| groups[g].0);
        at.clear();
        at.resize(groups.len(), 0);
        for &g in &by_key {
            at[g] = placed;
            placed += groups[g].2;
        }
        for (row, &g) in (start..end).zip(&group_of) {
            let slot = &mut at[g as usize];
            out[*slot] = row as IdxSize;
            *slot += 1;
        }
        start = end;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), for layouts.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// The row numbers of `rows` in the stable order of their keys.
    fn sorted(rows: &[[i64; 3]]) -> Vec<IdxSize> {
        let mut idx: Vec<IdxSize> = (0..rows.len() as IdxSize).collect();
        idx.sort_by_key(|&i| rows[i as usize]);
        idx
    }

    /// Batches of an ingester: one `ingested_at` per batch, partitions
    /// interleaved in bursts, each partition's offsets ascending (with
    /// repeats: a redelivered message), are put in the sorted order.
    #[test]
    fn an_ingesters_layout_is_ordered_by_runs_as_a_sort_would() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for partitions in [1, 3, 8, 9, 64, 700] {
            let mut offsets = vec![0i64; partitions];
            let mut rows = Vec::new();
            for batch in 0..5 {
                let at = 1_700_000_000_000_000 + batch * 1_000_000;
                for _ in 0..3000 {
                    let p = rng.below(partitions as u64) as usize;
                    for _ in 0..=rng.below(4) {
                        offsets[p] += rng.below(2) as i64;
                        rows.push([at, p as i64, offsets[p]]);
                    }
                }
            }
            let got = order_by_runs(rows.len(), |i| rows[i]);
            assert_eq!(got, Some(sorted(&rows)), "{partitions} partitions");
        }
        // Rows already in order, and no rows.
        let rows: Vec<[i64; 3]> = (0..100).map(|i| [i / 10, i % 10 / 3, i]).collect();
        assert_eq!(order_by_runs(rows.len(), |i| rows[i]), Some(sorted(&rows)));
        // A first key unique per row: runs of one row, one group each.
        let rows: Vec<[i64; 3]> = (0..100).map(|i| [i, 0, 0]).collect();
        assert_eq!(order_by_runs(rows.len(), |i| rows[i]), Some(sorted(&rows)));
        assert_eq!(order_by_runs(0, |_| [0; 3]), Some(Vec::new()));
    }

    /// Any other layout is left to the sort.
    #[test]
    fn other_layouts_are_left_to_the_sort() {
        // A first key that goes back.
        let back = vec![[2, 0, 0], [1, 0, 1]];
        // A partition whose offsets go back inside a run.
        let offsets_back = vec![[1, 0, 5], [1, 1, 0], [1, 0, 4]];
        // More distinct second keys in one run than counted.
        let wide: Vec<[i64; 3]> = (0..=MAX_GROUPS as i64)
            .map(|p| [1, MAX_GROUPS as i64 - p, 0])
            .collect();
        for rows in [back, offsets_back, wide] {
            assert_eq!(order_by_runs(rows.len(), |i| rows[i]), None);
        }
    }

    /// Through `integer_order`, on either path: the row numbers in the
    /// stable order of the columns.
    #[test]
    fn integer_order_is_the_stable_order_of_the_columns() {
        let mut rng = Rng(7);
        let n = 5000;
        let a: Vec<i64> = (0..n).map(|i| i / 1000).collect();
        let b: Vec<i32> = (0..n).map(|_| rng.below(5) as i32).collect();
        // Offsets that only grow (the layout) or jump about (a sort).
        let growing: Vec<i64> = (0..n).collect();
        let random: Vec<i64> = (0..n).map(|_| rng.below(50) as i64).collect();
        for c in [growing, random] {
            let df = DataFrame::new(
                n as usize,
                vec![
                    Column::new("a".into(), &a),
                    Column::new("b".into(), &b),
                    Column::new("c".into(), &c),
                ],
            )
            .expect("frame");
            let order = ["a", "b", "c"].map(String::from);
            let got = integer_order(&df, &order)
                .expect("order")
                .expect("integers");
            let rows: Vec<[i64; 3]> = (0..n as usize)
                .map(|i| [a[i], i64::from(b[i]), c[i]])
                .collect();
            assert_eq!(got, sorted(&rows));
        }
    }
}
