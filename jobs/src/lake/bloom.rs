//! Probing parquet split-block bloom filters with keys hashed once.
//!
//! The parquet crate's `Sbbf::check` hashes the value on every call; a
//! lookup of 100k keys in 80 files would hash each key 80 times. Here each
//! key's xxHash64 (seed 0, as the parquet spec says) is computed once and
//! tested against each filter's blocks directly. The block layout and
//! salts are the spec's (parquet-format BloomFilter.md); a test checks
//! every answer against `Sbbf::check`.

use deltalake::parquet::bloom_filter::Sbbf;
use twox_hash::XxHash64;

const SALT: [u32; 8] = [
    0x47b6137b, 0x44974d91, 0x8824ad5b, 0xa2b7289d, 0x705495c7, 0x2df1424b, 0x9efc4947, 0x5c6bfb31,
];

/// A key's hash as bloom filters use it.
pub fn key_hash(key: &[u8]) -> u64 {
    XxHash64::oneshot(0, key)
}

/// One column chunk's filter: 256-bit blocks of eight words.
pub struct Filter {
    blocks: Vec<[u32; 8]>,
}

impl Filter {
    pub fn from_sbbf(sbbf: &Sbbf) -> Option<Self> {
        let mut bytes = Vec::new();
        sbbf.write_bitset(&mut bytes).ok()?;
        if bytes.is_empty() || bytes.len() % 32 != 0 {
            return None;
        }
        let blocks = bytes
            .chunks_exact(32)
            .map(|b| {
                std::array::from_fn(|i| {
                    u32::from_le_bytes([b[i * 4], b[i * 4 + 1], b[i * 4 + 2], b[i * 4 + 3]])
                })
            })
            .collect();
        Some(Self { blocks })
    }

    /// Whether a key with this hash may be in the column chunk (`false`:
    /// certainly not).
    pub fn may_hold(&self, hash: u64) -> bool {
        let n = self.blocks.len() as u64;
        let block = &self.blocks[(((hash >> 32) * n) >> 32) as usize];
        let x = hash as u32;
        (0..8).all(|i| block[i] & (1u32 << (x.wrapping_mul(SALT[i]) >> 27)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_exactly_as_the_parquet_crate() {
        for (ndv, fpp) in [(1_000u64, 0.01), (50_000, 1e-6), (10, 0.3)] {
            let mut sbbf = Sbbf::new_with_ndv_fpp(ndv, fpp).expect("filter");
            for i in 0..ndv {
                sbbf.insert(format!("key-{i}").as_str());
            }
            let ours = Filter::from_sbbf(&sbbf).expect("bitset");
            let mut positives = 0;
            for i in 0..(ndv * 3) {
                let k = format!("key-{i}");
                let theirs = sbbf.check(k.as_str());
                assert_eq!(ours.may_hold(key_hash(k.as_bytes())), theirs, "{k}");
                positives += theirs as u64;
            }
            assert!(positives >= ndv, "every inserted key is held");
        }
    }
}
