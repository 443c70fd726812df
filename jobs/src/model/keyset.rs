//! The dedupe keys one cleaning run has let through so far, held once.
//!
//! A cleaning run reads bronze in batches and must judge each batch's rows
//! against every key an earlier batch let through. Keeping the winners as a
//! frame and anti-joining each batch against it rebuilt a hash table of all
//! of them per batch (quadratic in the number of batches) and held each
//! UUID as a polars string view (~52 bytes, plus the join's table at its
//! peak). Here each key's bytes are copied once into an arena, indexed by
//! one hash table of packed (offset, length) entries: ~46 bytes per UUID
//! key, built once, probed once per row. Exact: equal hashes are confirmed
//! on the bytes, so no key is ever taken for another.
//!
//! The set is split by hash into one shard per core: a big batch's keys are
//! hashed on every core, then each shard takes its rows in row order on its
//! own thread (a key's copies all fall in one shard, so the first in row
//! order still wins). One thread for the whole set took a third of a
//! silver run's dedupe time while the other cores idled.

use super::ModelError;
use hashbrown::{DefaultHashBuilder, HashTable};
use polars::prelude::*;
use std::hash::BuildHasher;

/// Bits of a packed entry that hold the key's length (up to 16 MiB); the
/// rest hold its offset in the arena (up to 1 TiB).
const LEN_BITS: u32 = 24;
const MAX_LEN: usize = (1 << LEN_BITS) - 1;

/// An exact set of keys (one or more columns of a frame's rows), in one
/// shard per core: a key's hash picks its shard, so each shard is filled
/// by its own thread and the first copy of a key is still the first in
/// row order.
pub struct KeySet {
    shards: Vec<Shard>,
    hasher: DefaultHashBuilder,
    /// A one-column key that is null (kept apart: no encoding is free for
    /// it). Nulls equal each other, as in the joins this replaces.
    null: bool,
    columns: Vec<String>,
}

/// The keys of one hash range.
#[derive(Default)]
struct Shard {
    /// Every key's encoding, back to back.
    arena: Vec<u8>,
    /// `offset << LEN_BITS | len` of each key in `arena`.
    table: HashTable<u64>,
}

/// Below this many rows a batch is inserted on the calling thread.
const PARALLEL_ROWS: usize = 16 * 1024;

impl KeySet {
    /// An empty set of keys made of `columns`.
    pub fn new(columns: &[String]) -> Self {
        let shards = crate::cores::count();
        Self {
            shards: (0..shards).map(|_| Shard::default()).collect(),
            hasher: DefaultHashBuilder::default(),
            null: false,
            columns: columns.to_vec(),
        }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.table.len()).sum::<usize>() + usize::from(self.null)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// For each row of `df`, in order: true when its key is neither in the
    /// set nor on an earlier row (the row is the first copy), and adds it.
    pub fn insert_new(&mut self, df: &DataFrame) -> Result<BooleanChunked, ModelError> {
        let encoded = Encoded::of(df, &self.columns)?;
        let rows = df.height();
        // The same rule as the hashing pass (`cores::map_parts`).
        let parallel = crate::cores::worth_splitting(rows, PARALLEL_ROWS);
        let hashes = self.hashes(&encoded, rows);
        let (hasher, columns, shard_count) = (&self.hasher, &self.columns, self.shards.len());
        // A shard's share of the batch's key bytes (and as much again as
        // the rows' margin), reserved once: grown by doubling, the arena
        // was copied at every step (a twentieth of a silver run's CPU).
        let bytes = encoded.bytes(rows);
        let expected_bytes = bytes / shard_count + bytes / 16;
        // Each shard takes its rows in order and returns those whose key
        // it held already.
        let fill = |at: usize, shard: &mut Shard| -> Result<Vec<usize>, ModelError> {
            let mut taken = Vec::new();
            let mut buf = Vec::new();
            let Shard { arena, table } = &mut *shard;
            let expected = rows / shard_count + rows / 16;
            table.reserve(expected, |&e| hasher.hash_one(slice(arena, e)));
            arena.reserve(expected_bytes);
            for (row, hash) in hashes.iter().enumerate() {
                let Some(hash) = *hash else { continue };
                if shard_of(hash, shard_count) != at {
                    continue;
                }
                buf.clear();
                encoded.write(row, &mut buf);
                if !shard.insert(hash, &buf, hasher, columns)? {
                    taken.push(row);
                }
            }
            Ok(taken)
        };
        let taken: Vec<Result<Vec<usize>, ModelError>> = if parallel {
            std::thread::scope(|scope| {
                let handles: Vec<_> = self
                    .shards
                    .iter_mut()
                    .enumerate()
                    .map(|(at, shard)| scope.spawn(move || fill(at, shard)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(ModelError::Input("a dedupe thread panicked".into()))
                        })
                    })
                    .collect()
            })
        } else {
            self.shards
                .iter_mut()
                .enumerate()
                .map(|(at, shard)| fill(at, shard))
                .collect()
        };
        let mut firsts = vec![true; rows];
        for taken in taken {
            for row in taken? {
                firsts[row] = false;
            }
        }
        for (row, hash) in hashes.iter().enumerate() {
            if hash.is_none() {
                firsts[row] = !std::mem::replace(&mut self.null, true);
            }
        }
        Ok(BooleanChunked::from_slice("first".into(), &firsts))
    }

    /// Each row's key hash (`None`: a one-column null key), on every core
    /// for a big batch.
    fn hashes(&self, encoded: &Encoded, rows: usize) -> Vec<Option<u64>> {
        crate::cores::map_parts(rows, PARALLEL_ROWS, |range| {
            let mut buf = Vec::new();
            range
                .map(|row| {
                    buf.clear();
                    encoded
                        .write(row, &mut buf)
                        .then(|| self.hasher.hash_one(&buf[..]))
                })
                .collect()
        })
    }
}

/// The shard of a key's hash: bits hashbrown uses for neither the bucket
/// (low bits) nor the tag (top seven).
fn shard_of(hash: u64, shards: usize) -> usize {
    ((hash >> 32) as usize & 0xFF_FFFF) % shards
}

impl Shard {
    /// Adds `key` (hashed to `hash`); false when it was there already.
    fn insert(
        &mut self,
        hash: u64,
        key: &[u8],
        hasher: &DefaultHashBuilder,
        columns: &[String],
    ) -> Result<bool, ModelError> {
        let arena = &self.arena;
        if self.table.find(hash, |&e| slice(arena, e) == key).is_some() {
            return Ok(false);
        }
        if key.len() > MAX_LEN {
            return Err(ModelError::Input(format!(
                "a dedupe key of {} bytes on {columns:?}: keys are limited to {MAX_LEN} bytes",
                key.len(),
            )));
        }
        let entry = ((self.arena.len() as u64) << LEN_BITS) | key.len() as u64;
        self.arena.extend_from_slice(key);
        let arena = &self.arena;
        self.table
            .insert_unique(hash, entry, |&e| hasher.hash_one(slice(arena, e)));
        Ok(true)
    }
}

fn slice(arena: &[u8], entry: u64) -> &[u8] {
    let start = (entry >> LEN_BITS) as usize;
    let len = (entry as usize) & MAX_LEN;
    &arena[start..start + len]
}

/// The key columns of a frame, ready to be written row by row as bytes.
enum Encoded {
    /// One column: its value's bytes (a null has none: see `KeySet::null`).
    One(Part),
    /// Several: each value as a null flag, then length and bytes, so that
    /// no two different rows can encode alike.
    Many(Vec<Part>),
}

/// One key column: strings as their bytes, integers as 8 bytes, anything
/// else through its text form.
enum Part {
    Text(StringChunked),
    Int(Int64Chunked),
}

impl Encoded {
    fn of(df: &DataFrame, columns: &[String]) -> Result<Self, ModelError> {
        let mut parts = columns
            .iter()
            .map(|c| Part::of(df.column(c)?.as_materialized_series()))
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(if parts.len() == 1 {
            Encoded::One(parts.remove(0))
        } else {
            Encoded::Many(parts)
        })
    }

    /// The bytes the keys of `rows` rows take written (nulls' values none).
    fn bytes(&self, rows: usize) -> usize {
        match self {
            Encoded::One(part) => part.bytes(),
            Encoded::Many(parts) => parts.iter().map(|p| p.bytes() + 5 * rows).sum(),
        }
    }

    /// Writes row `row`'s key into `buf`; false for a one-column null key.
    fn write(&self, row: usize, buf: &mut Vec<u8>) -> bool {
        match self {
            Encoded::One(part) => part.write(row, buf),
            Encoded::Many(parts) => {
                for part in parts {
                    let at = buf.len();
                    buf.extend_from_slice(&[1, 0, 0, 0, 0]);
                    if part.write(row, buf) {
                        let len = (buf.len() - at - 5) as u32;
                        buf[at + 1..at + 5].copy_from_slice(&len.to_le_bytes());
                    } else {
                        buf[at] = 0;
                    }
                }
                true
            }
        }
    }
}

impl Part {
    fn of(s: &Series) -> Result<Self, ModelError> {
        let physical = s.to_physical_repr();
        Ok(if s.dtype() == &DataType::String {
            Part::Text(s.str()?.rechunk().into_owned())
        } else if physical.dtype().is_integer() && physical.dtype() != &DataType::UInt64 {
            Part::Int(
                physical
                    .cast(&DataType::Int64)?
                    .i64()?
                    .rechunk()
                    .into_owned(),
            )
        } else {
            Part::Text(s.cast(&DataType::String)?.str()?.rechunk().into_owned())
        })
    }

    /// The bytes of all its values written.
    fn bytes(&self) -> usize {
        match self {
            Part::Text(ca) => ca.downcast_iter().map(|a| a.total_bytes_len()).sum(),
            Part::Int(ca) => 8 * ca.len(),
        }
    }

    /// Appends the value's bytes; false (nothing written) for a null.
    fn write(&self, row: usize, buf: &mut Vec<u8>) -> bool {
        match self {
            Part::Text(ca) => ca.get(row).map(|v| buf.extend_from_slice(v.as_bytes())),
            Part::Int(ca) => ca.get(row).map(|v| buf.extend_from_slice(&v.to_le_bytes())),
        }
        .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firsts(set: &mut KeySet, df: &DataFrame) -> Vec<bool> {
        let mask = set.insert_new(df).unwrap();
        (0..mask.len()).map(|i| mask.get(i).unwrap()).collect()
    }

    #[test]
    fn one_string_column_across_batches() {
        let mut set = KeySet::new(&["id".into()]);
        let a = df!("id" => [Some("a"), Some("b"), Some("a"), None, None]).unwrap();
        assert_eq!(firsts(&mut set, &a), [true, true, false, true, false]);
        let b = df!("id" => [Some("b"), Some("c"), None, Some("")]).unwrap();
        assert_eq!(firsts(&mut set, &b), [false, true, false, true]);
        assert_eq!(set.len(), 5);
    }

    /// A batch big enough for the shards' threads: the first copy in row
    /// order wins, whatever shard its key falls in; nulls are one key.
    #[test]
    fn the_first_copy_in_row_order_wins_in_a_big_batch() {
        let mut set = KeySet::new(&["id".into()]);
        let ids: Vec<Option<String>> = (0..60_000)
            .map(|i| (i % 1000 != 7).then(|| format!("k{}", (i * 7919) % 40_000)))
            .collect();
        let got = firsts(&mut set, &df!("id" => &ids).unwrap());
        let mut seen = std::collections::HashSet::new();
        let want: Vec<bool> = ids.iter().map(|k| seen.insert(k.clone())).collect();
        assert_eq!(got, want);
        assert_eq!(set.len(), seen.len());
        let again = firsts(&mut set, &df!("id" => &ids).unwrap());
        assert!(again.iter().all(|f| !f));
    }

    #[test]
    fn composite_keys_never_run_together() {
        let mut set = KeySet::new(&["a".into(), "b".into()]);
        // "ab"+"c" and "a"+"bc" are different keys; so are null and "".
        let df = df!(
            "a" => [Some("ab"), Some("a"), None, Some(""), Some("ab")],
            "b" => [Some(1i64), Some(1), Some(1), Some(1), Some(1)]
        )
        .unwrap();
        assert_eq!(firsts(&mut set, &df), [true, true, true, true, false]);
        let df = df!(
            "a" => [Some("x"), Some("x"), Some("x")],
            "b" => [Some(1i64), Some(256), None]
        )
        .unwrap();
        assert_eq!(firsts(&mut set, &df), [true, true, true]);
    }

    #[test]
    fn integers_and_dates_are_keys_too() {
        let mut set = KeySet::new(&["n".into()]);
        let df = df!("n" => [3i32, -1, 3, 70000]).unwrap();
        assert_eq!(firsts(&mut set, &df), [true, true, false, true]);
        let mut set = KeySet::new(&["d".into()]);
        let df = df!("d" => [1.5f64, 2.0, 1.5]).unwrap();
        assert_eq!(firsts(&mut set, &df), [true, true, false]);
    }

    #[test]
    fn many_keys_survive_the_table_growing() {
        let mut set = KeySet::new(&["id".into()]);
        let ids: Vec<String> = (0..50_000).map(|i| format!("key-{i}")).collect();
        let df = df!("id" => &ids).unwrap();
        assert!(firsts(&mut set, &df).iter().all(|f| *f));
        let again: Vec<String> = (25_000..75_000).map(|i| format!("key-{i}")).collect();
        let got = firsts(&mut set, &df!("id" => &again).unwrap());
        assert_eq!(got.iter().filter(|f| !**f).count(), 25_000);
        assert!(got[25_000..].iter().all(|f| *f));
        assert_eq!(set.len(), 75_000);
    }
}
