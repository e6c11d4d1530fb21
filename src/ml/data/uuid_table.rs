//! The reader's table of UUIDs seen so far: a UUID's 128 bits → its index.
//!
//! Hand-written rather than a `HashMap` because reading a big file is bound by this table's cache
//! misses (1M customers spread over 10M rows miss the cache on nearly every row), and the way to
//! hide them is to have many in flight at once: the reader [`prefetch`](UuidTable::prefetch)es the
//! slots of a whole batch of rows before it looks any of them up. No map crate exposes where a
//! key's slot is, so none can be prefetched. Here a key's slot is one 32-byte, aligned entry
//! (key and index side by side, never across two cache lines) in one flat array, probed
//! linearly and kept at most half full, so a lookup is usually that one cache line.

use std::hash::BuildHasher;

/// One entry: the key and its index plus one, 0 marking an empty slot (every key, the nil UUID
/// too, is a valid key).
#[derive(Clone, Copy, Default)]
#[repr(align(32))]
struct Slot {
    key: u128,
    index_plus_one: u32,
}

pub struct UuidTable {
    /// A power of two long, at most half full.
    slots: Vec<Slot>,
    len: usize,
    /// Keys are hashed, not used as slot numbers as they are: only version-4 UUIDs are random
    /// in every part, a time-based one (v1, v7) starts with its timestamp.
    hasher: foldhash::fast::RandomState,
}

impl Default for UuidTable {
    fn default() -> Self {
        Self {
            slots: vec![Slot::default(); 1 << 10],
            len: 0,
            hasher: Default::default(),
        }
    }
}

impl UuidTable {
    fn home(&self, key: u128) -> usize {
        self.hasher.hash_one(key) as usize & (self.slots.len() - 1)
    }

    /// Starts loading `key`'s slot into the cache, for a lookup soon after.
    pub fn prefetch(&self, key: u128) {
        let slot: *const Slot = &self.slots[self.home(key)];
        // SAFETY: SSE, which the instruction needs, is part of every x86_64 CPU; a prefetch is
        // a hint that reads nothing, and `slot` points into the table anyway.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(slot.cast())
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = slot;
    }

    pub fn get(&self, key: u128) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut at = self.home(key);
        loop {
            let slot = self.slots[at];
            if slot.index_plus_one == 0 {
                return None;
            }
            if slot.key == key {
                return Some(slot.index_plus_one - 1);
            }
            at = (at + 1) & mask;
        }
    }

    /// Adds `key`, which must not be in the table yet, with `index` (below `u32::MAX`).
    pub fn insert(&mut self, key: u128, index: u32) {
        if (self.len + 1) * 2 > self.slots.len() {
            let grown = vec![Slot::default(); self.slots.len() * 2];
            let old = std::mem::replace(&mut self.slots, grown);
            for slot in old.into_iter().filter(|slot| slot.index_plus_one != 0) {
                self.place(slot);
            }
        }
        self.place(Slot {
            key,
            index_plus_one: index + 1,
        });
        self.len += 1;
    }

    fn place(&mut self, slot: Slot) {
        let mask = self.slots.len() - 1;
        let mut at = self.home(slot.key);
        while self.slots[at].index_plus_one != 0 {
            at = (at + 1) & mask;
        }
        self.slots[at] = slot;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_key_through_growth_and_collisions() {
        let mut table = UuidTable::default();
        // Keys differing only in their high bits, the nil key among them.
        let keys: Vec<u128> = (0..5000u128).map(|n| n << 100).collect();
        for (index, &key) in keys.iter().enumerate() {
            assert_eq!(table.get(key), None);
            table.insert(key, index as u32);
        }
        for (index, &key) in keys.iter().enumerate() {
            table.prefetch(key);
            assert_eq!(table.get(key), Some(index as u32));
        }
        assert_eq!(table.get(1), None);
        assert!(table.slots.len() >= 2 * keys.len());
    }
}
