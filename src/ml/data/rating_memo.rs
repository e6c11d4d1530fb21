//! Ratings already parsed, by their exact text.
//!
//! A rating column holds few distinct texts (the generator's and the notebook's ratings are a
//! few multiples of 1/15, written with 17 significant digits: `0.06666666666666667`), and such
//! a text is past the float parser's fast path: parsing it was ~12% of reading a 10M-row file.
//! So the reader looks a field up here first. Direct-mapped and hand-written: a field of at most
//! [`MAX_MEMO_BYTES`] bytes is loaded as three words, hashed to one of [`SLOTS`] slots and
//! compared word by word; a miss parses and takes the slot. A general map (hashing the bytes,
//! owning them) costs about what the parse does. Only successful parses are kept: a bad field is
//! parsed (and its error worded) every time, exactly as without the memo.

/// Fields longer than this are always parsed.
pub const MAX_MEMO_BYTES: usize = 24;
const SLOTS: usize = 64;

#[derive(Clone, Copy, Default)]
struct Slot {
    /// The field's bytes, zero-padded, as little-endian words; `len` 0 marks an empty slot.
    words: [u64; 3],
    len: u8,
    value: f32,
}

pub struct RatingMemo {
    slots: Box<[Slot; SLOTS]>,
}

impl Default for RatingMemo {
    fn default() -> Self {
        Self {
            slots: Box::new([Slot::default(); SLOTS]),
        }
    }
}

impl RatingMemo {
    /// `parse(field)`, or what it returned for the same bytes before.
    pub fn parse(
        &mut self,
        field: &[u8],
        parse: impl FnOnce(&[u8]) -> Result<f32, String>,
    ) -> Result<f32, String> {
        if field.is_empty() || field.len() > MAX_MEMO_BYTES {
            return parse(field);
        }
        let mut padded = [0u8; MAX_MEMO_BYTES];
        padded[..field.len()].copy_from_slice(field);
        let word = |index: usize| {
            let bytes: [u8; 8] = padded[index * 8..index * 8 + 8].try_into().unwrap();
            u64::from_le_bytes(bytes)
        };
        let words = [word(0), word(1), word(2)];
        let mixed = (words[0] ^ words[1].rotate_left(21) ^ words[2].rotate_left(42))
            .wrapping_add(field.len() as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let slot = &mut self.slots[(mixed >> 58) as usize % SLOTS];
        if usize::from(slot.len) == field.len() && slot.words == words {
            return Ok(slot.value);
        }
        let value = parse(field)?;
        *slot = Slot {
            words,
            len: field.len() as u8,
            value,
        };
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse(field: &[u8]) -> Result<f32, String> {
        let text = std::str::from_utf8(field).map_err(|error| error.to_string())?;
        text.parse::<f64>()
            .map(|value| value as f32)
            .map_err(|error| format!("{text}: {error}"))
    }

    proptest! {
        /// Through the memo, every field (repeated, colliding, near-equal, bad, long) gives
        /// exactly what parsing it alone gives.
        #[test]
        fn the_memo_answers_as_the_parser_does(
            fields in proptest::collection::vec(
                prop_oneof![
                    "[0-9]{0,3}(\\.[0-9]{0,20})?",
                    "0\\.0666666666666666[0-9]",
                    "[0-9a-z. \u{0}-]{0,30}",
                ],
                1..400,
            ),
            repeats in proptest::collection::vec(0usize..400, 0..400),
        ) {
            let mut memo = RatingMemo::default();
            let order = (0..fields.len()).chain(repeats.into_iter().map(|i| i % fields.len()));
            for index in order {
                let field = fields[index].as_bytes();
                prop_assert_eq!(memo.parse(field, parse), parse(field), "{:?}", fields[index]);
            }
        }
    }

    #[test]
    fn a_bad_field_is_parsed_every_time() {
        let mut memo = RatingMemo::default();
        let mut calls = 0;
        for _ in 0..3 {
            let result = memo.parse(b"x", |field| {
                calls += 1;
                parse(field)
            });
            assert!(result.is_err());
        }
        assert_eq!(calls, 3);
        let mut calls = 0;
        for _ in 0..3 {
            memo.parse(b"0.2", |field| {
                calls += 1;
                parse(field)
            })
            .unwrap();
        }
        assert_eq!(calls, 1, "a good one once");
    }
}
