//! Seeded randomness. Every random draw of a stage comes from a generator derived from the
//! stage's seed and the index of the item being generated (a problem, a sample, a rollout), so
//! the result never depends on the order in which items are processed or on the thread count.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The generator for item `item` of stream `stream` under `seed`.
///
/// `stream` separates independent uses inside one stage (e.g. problems vs teacher noise), so
/// that adding draws to one never shifts the other.
pub fn item_rng(seed: u64, stream: u64, item: u64) -> ChaCha8Rng {
    // ChaCha's 64-bit stream id keeps items apart; mixing the stream into the seed keeps
    // streams apart.
    let mut rng = ChaCha8Rng::seed_from_u64(splitmix64(seed ^ splitmix64(stream)));
    rng.set_stream(item);
    rng
}

/// The generator for item `item` of the work identified by the 64-bit `key` (for example a
/// prefix's hash): the same key gives the same draws wherever the work appears.
pub fn keyed_rng(seed: u64, stream: u64, key: u64, item: u64) -> ChaCha8Rng {
    item_rng(seed ^ splitmix64(key ^ splitmix64(stream)), stream, item)
}

/// SplitMix64 finaliser: a bijective mix so nearby seeds give unrelated generators.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    #[test]
    fn same_inputs_same_draws_different_items_differ() {
        let draws = |mut r: ChaCha8Rng| -> Vec<u64> { (0..4).map(|_| r.random()).collect() };
        let a = draws(item_rng(7, 1, 3));
        // The same (seed, stream, item) gives the same sequence, not only the same first draw.
        assert_eq!(a, draws(item_rng(7, 1, 3)));
        assert!(a.windows(2).all(|w| w[0] != w[1]), "a sequence, not one value repeated: {a:?}");
        // Changing any one coordinate changes every draw of the sequence.
        for other in [item_rng(7, 1, 4), item_rng(7, 2, 3), item_rng(8, 1, 3), keyed_rng(7, 1, 0, 3)] {
            let b = draws(other);
            assert!(a.iter().zip(&b).all(|(x, y)| x != y), "{a:?} vs {b:?}");
        }
        // keyed_rng separates keys for the same item.
        assert_ne!(draws(keyed_rng(7, 1, 1, 3)), draws(keyed_rng(7, 1, 2, 3)));
    }
}
