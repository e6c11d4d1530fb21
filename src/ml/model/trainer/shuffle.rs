//! The epoch's shuffle of the training order, with the permutation `rand`'s
//! `SliceRandom::shuffle` gives, its swaps' random reads prefetched.
//!
//! `shuffle` swaps every entry with one at a random earlier position: at 100M ratings the order
//! is 300 MB and each of its 75M swaps waits out a cache miss, one after the other (15–20× the
//! time of a 10× smaller shuffle here). The positions depend only on the random draws, never on
//! the entries, so they can be drawn a few swaps ahead and their entries prefetched; that needs
//! the draws themselves, which `rand` keeps private (`IncreasingUniform`, rand 0.9.5). So
//! [`Chooser`] is that algorithm, written out over `rand`'s public `random_range`: the same
//! draws from the same stream, hence the same permutation and the same trained bytes. The tests
//! compare the two on many lengths and seeds, so a `rand` upgrade that changes its shuffle fails
//! them rather than silently moving every trained model.

use rand::Rng;

use crate::ml::data::memory::prefetch_at;

/// How many swaps ahead the entry a swap reads is prefetched.
const SWAPS_AHEAD: usize = 64;

/// Shuffles `order` into the permutation `order.shuffle(rng)` gives, leaving `rng` where that
/// leaves it.
pub fn shuffle(order: &mut [u32], rng: &mut impl Rng) {
    let len = order.len();
    if len >= u32::MAX as usize {
        // `rand` draws each position on its own there; no such order reaches the trainer.
        rand::seq::SliceRandom::shuffle(order, rng);
        return;
    }
    if len <= 1 {
        return;
    }
    let mut chooser = Chooser::new();
    // `ahead[i % SWAPS_AHEAD]`: the position swapped with entry `i`, drawn `SWAPS_AHEAD` swaps
    // before that swap.
    let mut ahead = [0usize; SWAPS_AHEAD];
    for slot in ahead.iter_mut().take(len) {
        *slot = chooser.next_index(rng);
        prefetch_at(order, *slot);
    }
    for i in 0..len {
        let slot = i % SWAPS_AHEAD;
        let index = ahead[slot];
        let later = i + SWAPS_AHEAD;
        if later < len {
            ahead[slot] = chooser.next_index(rng);
            prefetch_at(order, ahead[slot]);
        }
        order.swap(i, index);
    }
}

/// `rand` 0.9's `IncreasingUniform` from `n = 0`: a number in `[0, n]`, then `n` grows by one;
/// several consecutive numbers are drawn as one uniform number below their ranges' product.
struct Chooser {
    n: u32,
    /// A uniform number in `[0, (n + 1)·(n + 2)·…·(n + chunk_remaining))`.
    chunk: u32,
    chunk_remaining: u8,
}

impl Chooser {
    fn new() -> Self {
        // With n = 0 the first number is 0, drawn from nothing.
        Self {
            n: 0,
            chunk: 0,
            chunk_remaining: 1,
        }
    }

    fn next_index(&mut self, rng: &mut impl Rng) -> usize {
        let next_n = self.n + 1;
        let next_chunk_remaining = self.chunk_remaining.checked_sub(1).unwrap_or_else(|| {
            let (bound, remaining) = chunk_bound(next_n);
            self.chunk = rng.random_range(..bound);
            remaining - 1
        });
        let result = if next_chunk_remaining == 0 {
            self.chunk as usize
        } else {
            let r = self.chunk % next_n;
            self.chunk /= next_n;
            r as usize
        };
        self.chunk_remaining = next_chunk_remaining;
        self.n = next_n;
        result
    }
}

/// The largest product `m·(m + 1)·…·(m + count − 1)` that fits a `u32`, and its `count`.
fn chunk_bound(m: u32) -> (u32, u8) {
    let (mut product, mut current) = (m, m + 1);
    loop {
        match product.checked_mul(current) {
            Some(next) => {
                product = next;
                current += 1;
            }
            None => return (product, (current - m) as u8),
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::seq::SliceRandom;
    use rand::{RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn gives_rands_permutation_and_leaves_the_stream_where_rand_does() {
        let lengths = [0, 1, 2, 3, 4, 5, 15, 16, 17, 33, 64, 1000, 65_537, 300_001];
        for len in lengths {
            for seed in [0, 1, 42, 7_000_000_007] {
                let mut ours_rng = ChaCha8Rng::seed_from_u64(seed);
                ours_rng.set_stream(1);
                let mut rands_rng = ours_rng.clone();
                // Already shuffled once, as from the second epoch on.
                let start: Vec<u32> = (0..len as u32).rev().map(|x| x ^ 5).collect();
                let (mut ours, mut rands) = (start.clone(), start);
                for _ in 0..2 {
                    shuffle(&mut ours, &mut ours_rng);
                    rands.shuffle(&mut rands_rng);
                    assert_eq!(ours, rands, "length {len}, seed {seed}");
                }
                assert_eq!(ours_rng.next_u64(), rands_rng.next_u64());
            }
        }
    }
}
