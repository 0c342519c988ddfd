//! A keyed random permutation of `0..n` computed on demand, so probes go out in a random
//! order across hosts and ports without storing the order (n can be hosts × 65535).
//!
//! A small Feistel network over the next even power of two, with cycle-walking to stay
//! inside `0..n`; the domain is at most 4n, so a lookup takes a few rounds on average.

/// Random order of `0..n`, fixed by a seed.
#[derive(Debug, Clone)]
pub(crate) struct Permutation {
    n: u64,
    half_bits: u32,
    keys: [u64; 4],
}

impl Permutation {
    pub(crate) fn new(n: u64, seed: u64) -> Self {
        let bits = if n <= 1 {
            2
        } else {
            64 - (n - 1).leading_zeros()
        };
        let half_bits = bits.div_ceil(2).max(1);
        let mut state = seed;
        let keys = [(); 4].map(|_| {
            state = splitmix64(state);
            state
        });
        Permutation { n, half_bits, keys }
    }

    pub(crate) fn len(&self) -> u64 {
        self.n
    }

    /// The element at position `index` (< n) of the permuted order.
    pub(crate) fn at(&self, index: u64) -> u64 {
        debug_assert!(index < self.n);
        let mut x = index;
        loop {
            x = self.encrypt(x);
            if x < self.n {
                return x;
            }
        }
    }

    fn encrypt(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let mut left = x >> self.half_bits;
        let mut right = x & mask;
        for key in self.keys {
            let next = left ^ (splitmix64(right ^ key) & mask);
            left = right;
            right = next;
        }
        (left << self.half_bits) | right
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_permutation_for_many_sizes() {
        for n in [1u64, 2, 3, 7, 100, 1000, 65535, 65536 * 3 + 5] {
            let p = Permutation::new(n, 42);
            let mut seen = vec![false; n as usize];
            for i in 0..n {
                let v = p.at(i);
                assert!(v < n, "n={n}: {v} out of range");
                assert!(!seen[v as usize], "n={n}: {v} twice");
                seen[v as usize] = true;
            }
        }
    }

    #[test]
    fn order_is_shuffled_and_seeded() {
        let a: Vec<u64> = (0..1000).map(|i| Permutation::new(1000, 1).at(i)).collect();
        let b: Vec<u64> = (0..1000).map(|i| Permutation::new(1000, 2).at(i)).collect();
        let again: Vec<u64> = (0..1000).map(|i| Permutation::new(1000, 1).at(i)).collect();
        assert_eq!(a, again, "same seed, same order");
        assert_ne!(a, b, "different seeds, different orders");
        let in_place = a
            .iter()
            .enumerate()
            .filter(|(i, v)| *i as u64 == **v)
            .count();
        assert!(in_place < 20, "{in_place} of 1000 elements did not move");
    }
}
