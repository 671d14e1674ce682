//! The hasher of the identity maps and the statement cache.
//!
//! foldhash's `quality` hasher: a few cycles per key, with a seed drawn per map from a
//! per-process random seed, and a finishing multiply that mixes every input bit into the bits
//! hashbrown uses for buckets and control bytes. (Its `fast` variant skips that step: keys
//! of the form `i << 47` then filled a third of the buckets random keys fill.)

/// Builds the hashers of the identity maps and the statement cache (foldhash's
/// `quality::RandomState`).
///
/// ```
/// use std::collections::HashMap;
/// use orm_core::{Key, KeyHashState};
/// let mut m: HashMap<Key, u32, KeyHashState> = HashMap::default();
/// m.insert(Key::Int(7), 1);
/// assert_eq!(m.get(&Key::Int(7)), Some(&1));
/// ```
pub type KeyHashState = foldhash::quality::RandomState;

/// The hasher [`KeyHashState`] builds.
pub type KeyHasher = foldhash::quality::FoldHasher<'static>;

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;
    use crate::Key;

    // Keys that differ only in their high bits (`i << 47`) land in as many buckets as any
    // other keys would: the low bits of their hashes differ.
    #[test]
    fn high_key_bits_spread_over_buckets() {
        let state = KeyHashState::default();
        let buckets: std::collections::HashSet<u64> = (0..5000_i64)
            .map(|i| state.hash_one(Key::Int(i << 47)) & 0xfff)
            .collect();
        // 5,000 random hashes fill about 2,900 of 4,096 buckets.
        assert!(buckets.len() > 2500, "{} buckets", buckets.len());
    }
}
