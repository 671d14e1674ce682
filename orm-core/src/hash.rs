//! A fast hasher for the identity maps and the statement cache.

use std::hash::{BuildHasher, Hasher};
use std::sync::LazyLock;

const K: u64 = 0xf135_7aea_2e62_a9c5;

/// A multiplicative hasher (in the style of rustc's FxHash): a few cycles per word instead of
/// SipHash's dozens. Maps built with [`KeyHashState`] start from a seed drawn once per process,
/// so the positions of keys are not predictable from outside.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyHasher {
    hash: u64,
}

impl KeyHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(26) ^ word).wrapping_mul(K);
    }
}

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
        self.add(bytes.len() as u64);
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        #[allow(clippy::cast_possible_truncation)]
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // Fold the high bits down: hashbrown takes its control byte from the top bits and
        // its bucket from the bottom ones.
        self.hash ^ (self.hash >> 29)
    }
}

static SEED: LazyLock<u64> = LazyLock::new(|| {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x6f72_6d5f_6b65_7973);
    h.finish()
});

/// Builds [`KeyHasher`]s from a per-process seed.
///
/// ```
/// use std::collections::HashMap;
/// use orm_core::{Key, KeyHashState};
/// let mut m: HashMap<Key, u32, KeyHashState> = HashMap::default();
/// m.insert(Key::Int(7), 1);
/// assert_eq!(m.get(&Key::Int(7)), Some(&1));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyHashState;

impl BuildHasher for KeyHashState {
    type Hasher = KeyHasher;
    #[inline]
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher { hash: *SEED }
    }
}
