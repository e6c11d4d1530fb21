//! Dropout masks for every training step, drawn ahead on a helper thread.
//!
//! The masks only depend on the seed and the batch sizes, which are known before training
//! starts, so one thread draws them in step order from one ChaCha8 stream while the trainer's
//! thread runs ONNX Runtime: on two cores the draws cost no step time, and the masks are exactly
//! those drawn inline would be. They travel in blocks of [`STEPS_PER_BLOCK`] steps, so the two
//! threads wake each other rarely, and used buffers travel back to the helper to be refilled,
//! so the steady state allocates nothing.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use anyhow::{anyhow, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Steps per message between the threads.
const STEPS_PER_BLOCK: usize = 32;
/// How many blocks the helper may draw ahead.
const BLOCKS_AHEAD: usize = 2;
/// Used steps' buffers waiting to be refilled.
const RECYCLED: usize = (BLOCKS_AHEAD + 2) * STEPS_PER_BLOCK;
/// The most steps' masks alive at once: those queued, being drawn and being consumed, and the
/// used ones waiting to be refilled.
pub(super) const MASKS_IN_FLIGHT: usize = (BLOCKS_AHEAD + 2) * STEPS_PER_BLOCK + RECYCLED;

/// One step's masks, already scaled: 0 (dropped) or 1/(1 − rate) (kept).
#[derive(Default)]
pub struct Masks {
    /// After the concatenation: `[batch, 2k]`.
    pub first: Vec<f32>,
    /// After `dense_1`'s ReLU: `[batch, k]`.
    pub second: Vec<f32>,
}

/// The steps a training run takes, for drawing their masks in order.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub epochs: usize,
    pub train_rows: usize,
    pub batch_size: usize,
    pub n_factors: usize,
}

/// Masks for every step of a [`Schedule`], in order.
pub struct MaskStream {
    ready: Option<Receiver<Vec<Masks>>>,
    /// The rest of the block being consumed, in reverse step order (popped from the back).
    block: Vec<Masks>,
    recycle: SyncSender<Masks>,
    worker: Option<JoinHandle<()>>,
}

impl MaskStream {
    /// Starts drawing: rate `rate`, ChaCha8 seeded with `seed` on `stream`.
    pub fn start(schedule: Schedule, rate: f32, seed: u64, stream: u64) -> Self {
        let (ready_sender, ready) = mpsc::sync_channel(BLOCKS_AHEAD);
        let (recycle, recycled) = mpsc::sync_channel(RECYCLED);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        let drawer = Drawer::new(rng, rate);
        let worker = std::thread::Builder::new()
            .name("dropout-masks".into())
            .spawn(move || drawer.run(schedule, &ready_sender, &recycled))
            .expect("spawning the dropout mask thread");
        Self {
            ready: Some(ready),
            block: Vec::new(),
            recycle,
            worker: Some(worker),
        }
    }

    /// The next step's masks.
    pub fn next(&mut self) -> Result<Masks> {
        if self.block.is_empty() {
            self.block = self
                .ready
                .as_ref()
                .and_then(|ready| ready.recv().ok())
                .ok_or_else(|| anyhow!("the dropout mask thread stopped before training ended"))?;
            self.block.reverse();
        }
        Ok(self.block.pop().expect("blocks are never empty"))
    }

    /// Hands a used step's buffers back for refilling.
    pub fn recycle(&mut self, masks: Masks) {
        // A full queue only means the helper has enough buffers already.
        let _ = self.recycle.try_send(masks);
    }
}

impl Drop for MaskStream {
    fn drop(&mut self) {
        // Closing the queue makes the helper's next send fail, which ends it.
        drop(self.ready.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

struct Drawer {
    rng: ChaCha8Rng,
    /// A unit is dropped when a uniform u32 is below this (rate · 2³²).
    drop_below: u64,
    keep_scale: f32,
    /// The draws of the mask being filled.
    words: Vec<u32>,
}

impl Drawer {
    fn new(rng: ChaCha8Rng, rate: f32) -> Self {
        Self {
            rng,
            drop_below: (f64::from(rate) * 4_294_967_296.0).round() as u64,
            keep_scale: 1.0 / (1.0 - rate),
            words: Vec::new(),
        }
    }

    fn run(
        mut self,
        schedule: Schedule,
        ready: &SyncSender<Vec<Masks>>,
        recycled: &Receiver<Masks>,
    ) {
        let k = schedule.n_factors;
        let mut block = Vec::with_capacity(STEPS_PER_BLOCK);
        for _ in 0..schedule.epochs {
            let mut start = 0;
            while start < schedule.train_rows {
                let batch = schedule.batch_size.min(schedule.train_rows - start);
                start += batch;
                let mut masks = recycled.try_recv().unwrap_or_default();
                self.fill(&mut masks.first, batch * 2 * k);
                self.fill(&mut masks.second, batch * k);
                block.push(masks);
                if block.len() == STEPS_PER_BLOCK {
                    let full = std::mem::replace(&mut block, Vec::with_capacity(STEPS_PER_BLOCK));
                    if ready.send(full).is_err() {
                        return;
                    }
                }
            }
        }
        if !block.is_empty() {
            let _ = ready.send(block);
        }
    }

    /// `len` mask values from the next `len` u32 draws. The draws are taken in bulk
    /// (`fill_bytes` consumes ChaCha8's output words in the order `next_u32` returns them, so
    /// the masks are those of one `next_u32` per unit) and compared in one tight loop: half the
    /// time of a call per unit (22–25 µs instead of 45 µs per step at batch 64, k = 50, on a
    /// Xeon), which matters on a shared 2-core machine, where the trainer waits whenever this
    /// thread falls behind.
    fn fill(&mut self, mask: &mut Vec<f32>, len: usize) {
        self.words.clear();
        self.words.resize(len, 0);
        self.rng.fill(&mut self.words[..]);
        let (drop_below, keep_scale) = (self.drop_below, self.keep_scale);
        mask.clear();
        mask.extend(self.words.iter().map(|&word| {
            if u64::from(word) >= drop_below {
                keep_scale
            } else {
                0.0
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two epochs of 32 full batches and one of 2 rows: 66 steps, more than two blocks.
    fn schedule() -> Schedule {
        Schedule {
            epochs: 2,
            train_rows: 130,
            batch_size: 4,
            n_factors: 3,
        }
    }

    const STEPS: usize = 66;

    fn draw_all(rate: f32, seed: u64) -> Vec<(Vec<f32>, Vec<f32>)> {
        let mut stream = MaskStream::start(schedule(), rate, seed, 2);
        (0..STEPS)
            .map(|_| {
                let masks = stream.next().unwrap();
                let copy = (masks.first.clone(), masks.second.clone());
                stream.recycle(masks);
                copy
            })
            .collect()
    }

    #[test]
    fn masks_follow_the_batch_sizes_and_the_seed() {
        let masks = draw_all(0.5, 1);
        let sizes: Vec<(usize, usize)> = masks.iter().map(|(a, b)| (a.len(), b.len())).collect();
        let mut epoch = vec![(24, 12); 32];
        epoch.push((12, 6));
        assert_eq!(sizes, epoch.repeat(2));
        assert!(masks
            .iter()
            .flat_map(|(a, b)| a.iter().chain(b))
            .all(|&value| value == 0.0 || value == 2.0));
        assert_eq!(masks, draw_all(0.5, 1));
        assert_ne!(masks, draw_all(0.5, 2));
    }

    /// The bulk draws give the masks of one `next_u32` per unit, in order, across blocks of
    /// ChaCha8's output and odd lengths.
    #[test]
    fn bulk_draws_match_one_draw_per_unit() {
        use rand::RngCore;
        let rate = 0.3;
        let mut drawer = Drawer::new(ChaCha8Rng::seed_from_u64(9), rate);
        let mut reference = ChaCha8Rng::seed_from_u64(9);
        let drop_below = (f64::from(rate) * 4_294_967_296.0).round() as u64;
        let mut mask = Vec::new();
        for len in [7, 64, 150, 1, 33, 300] {
            drawer.fill(&mut mask, len);
            let expected: Vec<f32> = (0..len)
                .map(|_| {
                    if u64::from(reference.next_u32()) >= drop_below {
                        1.0 / (1.0 - rate)
                    } else {
                        0.0
                    }
                })
                .collect();
            assert_eq!(mask, expected, "a mask of {len} units");
        }
    }

    #[test]
    fn a_zero_rate_keeps_every_unit_unscaled() {
        assert!(draw_all(0.0, 3)
            .iter()
            .flat_map(|(a, b)| a.iter().chain(b))
            .all(|&value| value == 1.0));
    }

    #[test]
    fn reading_past_the_schedule_is_an_error() {
        let mut stream = MaskStream::start(schedule(), 0.2, 1, 2);
        for _ in 0..STEPS {
            stream.next().unwrap();
        }
        assert!(stream.next().is_err());
    }
}
