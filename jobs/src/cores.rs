//! Work split over the machine's cores with scoped threads, for the few
//! steps that are one pass over a whole batch (sorting row orders, hashing
//! keys) and would otherwise leave every core but one idle.

/// The number of cores this process may use.
pub fn count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Sorts `v`: below 64k items on this thread, else each half on its own
/// thread, then merged (a serial sort of a million row keys was a tenth
/// of a silver run's checking time).
pub fn sort_on_two_cores<T: Ord + Copy + Send>(v: &mut [T]) {
    const PARALLEL_SORT: usize = 64 * 1024;
    if v.len() < PARALLEL_SORT || count() < 2 {
        v.sort_unstable();
        return;
    }
    let half = v.len() / 2;
    let (a, b) = v.split_at_mut(half);
    std::thread::scope(|scope| {
        scope.spawn(|| a.sort_unstable());
        b.sort_unstable();
    });
    let mut merged = Vec::with_capacity(v.len());
    let (mut i, mut j) = (0, half);
    while i < half && j < v.len() {
        // Equal items: the left half's first, so the merge is stable.
        if v[j] < v[i] {
            merged.push(v[j]);
            j += 1;
        } else {
            merged.push(v[i]);
            i += 1;
        }
    }
    merged.extend_from_slice(&v[i..half]);
    merged.extend_from_slice(&v[j..]);
    v.copy_from_slice(&merged);
}

/// Whether a pass over `len` items is worth splitting over the cores: at
/// least `min_len` of them and more than one core.
pub fn worth_splitting(len: usize, min_len: usize) -> bool {
    len >= min_len && count() >= 2
}

/// `f` over `0..len` in one contiguous part per core (one part below
/// `min_len`), results concatenated in order.
pub fn map_parts<T: Send>(
    len: usize,
    min_len: usize,
    f: impl Fn(std::ops::Range<usize>) -> Vec<T> + Sync,
) -> Vec<T> {
    if !worth_splitting(len, min_len) {
        return f(0..len);
    }
    let parts = count();
    let per = len.div_ceil(parts);
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = (0..len)
            .step_by(per)
            .map(|from| scope.spawn(move || f(from..(from + per).min(len))))
            .collect();
        let mut out = Vec::with_capacity(len);
        for h in handles {
            // A panic in `f` is re-raised here, as if it ran on this thread.
            out.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_halves_merge_into_one_order() {
        let mut state = 88_172_645_463_325_252u64;
        for len in [0, 1, 1000, 64 * 1024, 100_001] {
            let mut v: Vec<(u64, u32)> = (0..len)
                .map(|i| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % 5000, i)
                })
                .collect();
            let mut want = v.clone();
            want.sort();
            sort_on_two_cores(&mut v);
            assert_eq!(v, want, "{len}");
        }
    }

    #[test]
    fn parts_come_back_in_order() {
        for len in [0, 5, 99_999] {
            let got = map_parts(len, 10, |r| r.collect());
            assert_eq!(got, (0..len).collect::<Vec<_>>());
        }
    }
}
