//! A table of UUIDs seen so far, a UUID's 128 bits → its index (the CSV reader's id lookups, and
//! the id maps' check for an id listed twice); and those 128 bits of a UUID in its usual text
//! form.
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
        Self::with_capacity(0)
    }
}

impl UuidTable {
    /// A table with room for `len` keys before it grows.
    pub fn with_capacity(len: usize) -> Self {
        Self {
            slots: vec![Slot::default(); (2 * len).next_power_of_two().max(1 << 10)],
            len: 0,
            hasher: Default::default(),
        }
    }

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

/// The 16 bytes of `field`, as one number, when it is a UUID in the hyphenated lowercase form.
///
/// Hand-written rather than `Uuid::try_parse_ascii`, which accepts every form and both cases:
/// this key needs the one form, and checking it while decoding eight digits at a time takes a
/// fraction of the crate's parser plus a scan for upper case (a fifth of the whole read, per
/// profile).
pub fn canonical_uuid(field: &[u8]) -> Option<u128> {
    let field: &[u8; 36] = field.try_into().ok()?;
    if [field[8], field[13], field[18], field[23]] != [b'-'; 4] {
        return None;
    }
    let eight = |at: usize| u64::from_le_bytes(field[at..at + 8].try_into().unwrap());
    let four = |at: usize| u64::from(u32::from_le_bytes(field[at..at + 4].try_into().unwrap()));
    // The 32 digits in four groups of eight, around the hyphens at 8, 13, 18 and 23.
    let groups = [
        eight(0),
        four(9) | four(14) << 32,
        four(19) | four(24) << 32,
        eight(28),
    ];
    let mut key = 0u128;
    for group in groups {
        key = key << 32 | u128::from(hex_digits(group)?);
    }
    Some(key)
}

/// The value of eight lowercase hex digits, the first in the lowest byte of `chars` and the
/// most significant; `None` unless every byte is `0-9` or `a-f`. All eight bytes are tested and
/// decoded at once, as lanes of one word (no byte is 0x80 or more, so no lane carries into the
/// next).
fn hex_digits(chars: u64) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    if chars & HIGH != 0 {
        return None;
    }
    // Each lane's high bit: whether that byte is at least `byte`.
    let at_least = |byte: u8| chars.wrapping_add(ONES * u64::from(0x80 - byte)) & HIGH;
    let digit = at_least(b'0') & !at_least(b'9' + 1);
    let letter = at_least(b'a') & !at_least(b'f' + 1);
    if digit | letter != HIGH {
        return None;
    }
    let nibbles = (chars & (ONES * 0x0F)) + (letter >> 7) * 9;
    // Pairs of nibbles into bytes (the first of each pair high), then the four bytes together.
    let bytes = ((nibbles << 4) | (nibbles >> 8)) & 0x00FF_00FF_00FF_00FF;
    let bytes = (bytes | (bytes >> 8)) & 0x0000_FFFF_0000_FFFF;
    let bytes = (bytes | (bytes >> 16)) as u32;
    // Lowest byte first in memory: as a number, the first digits most significant.
    Some(bytes.swap_bytes())
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
