//! UUIDv7 keys generated without a system call per key.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

thread_local! {
    /// (last millisecond used, counter within it, PRNG state)
    static STATE: Cell<(u64, u16, u64)> = const { Cell::new((0, 0, 0)) };
}

fn seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x7575_6964_7637);
    h.finish() | 1
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A new UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, a 12-bit counter that keeps keys
/// made by one thread in the same millisecond increasing, and 62 random bits from a
/// generator seeded once per thread. Keys sort by creation time, so they append to B-trees.
///
/// ```
/// let a = orm_core::uuid_v7();
/// let b = orm_core::uuid_v7();
/// assert_eq!(a.get_version_num(), 7);
/// assert!(a < b);
/// ```
pub fn uuid_v7() -> Uuid {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    STATE.with(|cell| {
        let (mut ms, mut counter, mut rng) = cell.get();
        if rng == 0 {
            rng = seed();
        }
        if now > ms {
            ms = now;
            // Start low in the counter's range, leaving room to count up.
            counter = u16::try_from(splitmix(&mut rng) & 0x1ff).unwrap_or(0);
        } else if counter >= 0xfff {
            // 4096 keys in one millisecond: borrow the next millisecond.
            ms += 1;
            counter = 0;
        } else {
            counter += 1;
        }
        let random = splitmix(&mut rng);
        cell.set((ms, counter, rng));
        let high = ((ms & 0xffff_ffff_ffff) << 16) | 0x7000 | u64::from(counter);
        let low = (random & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        Uuid::from_u64_pair(high, low)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_version_7_variant_rfc_and_increasing() {
        let keys: Vec<Uuid> = (0..10_000).map(|_| uuid_v7()).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert!(keys.iter().all(|k| k.get_version_num() == 7));
        assert!(
            keys.iter()
                .all(|k| k.get_variant() == uuid::Variant::RFC4122)
        );
        let ms = keys[0].get_timestamp().map(|t| t.to_unix().0).unwrap_or(0);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(now.abs_diff(ms) < 5);
    }
}
