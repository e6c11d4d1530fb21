//! Packs: a folder output's small files travel as a few large objects.
//!
//! An object store answers a few hundred small requests per second, so one request per file
//! makes a folder of 10,000 files take minutes (DVC's best-known complaint). On upload, the
//! distinct files of a tree smaller than [`SMALL_FILE`] are concatenated, in manifest order,
//! into packs of about [`PACK_SIZE`]; larger files stay objects of their own (`cas/<hash>`).
//! Each tree's packs are `packs/v1/<tree>.<n>` and its index `packs/v1/<tree>`:
//!
//! ```text
//! warez-packs 1
//! <pack number> <file hash> <size>      one line per packed file, in pack order
//! ```
//!
//! The packing is a function of the tree and the constants below (hence `v1` in the names), so
//! two machines pushing the same tree write the same packs, and an index that exists means
//! its packs exist (it is uploaded after them). Nothing in a pack is trusted: on download every
//! file is cut out by the sizes the index gives and checked against its own hash.

use crate::engine::fingerprint::ContentHash;

/// Files below this size go into packs.
pub const SMALL_FILE: u64 = 1 << 20;
/// A pack is closed once it holds this many bytes.
pub const PACK_SIZE: u64 = 16 << 20;
const HEADER: &str = "warez-packs 1";

/// One file inside a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    pub pack: usize,
    pub hash: ContentHash,
    pub size: u64,
}

/// Remote name of a tree's pack index.
pub fn index_path(tree: &ContentHash) -> String {
    format!("packs/v1/{tree}")
}

/// Remote name of a tree's pack `number`.
pub fn pack_path(tree: &ContentHash, number: usize) -> String {
    format!("packs/v1/{tree}.{number}")
}

/// Assigns small files (distinct, in manifest order, with their sizes) to packs.
pub fn plan(files: &[(ContentHash, u64)]) -> Vec<Packed> {
    let mut packed = Vec::new();
    let (mut pack, mut filled) = (0, 0);
    for (hash, size) in files {
        if filled > 0 && filled + size > PACK_SIZE {
            pack += 1;
            filled = 0;
        }
        filled += size;
        packed.push(Packed {
            pack,
            hash: hash.clone(),
            size: *size,
        });
    }
    packed
}

/// The index text of a plan.
pub fn render_index(packed: &[Packed]) -> String {
    let mut text = format!("{HEADER}\n");
    for file in packed {
        text.push_str(&format!("{} {} {}\n", file.pack, file.hash, file.size));
    }
    text
}

/// Parses an index; `None` when it is not one.
pub fn parse_index(text: &str) -> Option<Vec<Packed>> {
    let mut lines = text.lines();
    if lines.next()? != HEADER {
        return None;
    }
    lines
        .map(|line| {
            let mut fields = line.split(' ');
            let packed = Packed {
                pack: fields.next()?.parse().ok()?,
                hash: ContentHash::parse(fields.next()?)?,
                size: fields.next()?.parse().ok()?,
            };
            fields.next().is_none().then_some(packed)
        })
        .collect()
}

/// Cuts a downloaded pack into its files: `(hash, bytes)` for those whose bytes match their
/// hash; `Err(hash)` names the first that does not (or that the pack is too short for).
pub fn unpack<'a>(
    bytes: &'a [u8],
    files: &[&'a Packed],
) -> Result<Vec<(&'a ContentHash, &'a [u8])>, ContentHash> {
    let mut offset = 0usize;
    let mut out = Vec::with_capacity(files.len());
    for file in files {
        let end = usize::try_from(file.size)
            .ok()
            .and_then(|size| offset.checked_add(size))
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| file.hash.clone())?;
        let slice = &bytes[offset..end];
        if ContentHash::of_bytes(slice) != file.hash {
            return Err(file.hash.clone());
        }
        out.push((&file.hash, slice));
        offset = end;
    }
    if offset != bytes.len() {
        return Err(files
            .last()
            .map(|f| f.hash.clone())
            .unwrap_or_else(|| ContentHash::of_bytes(bytes)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_fill_up_and_round_trip_through_the_index() {
        let files: Vec<(ContentHash, u64)> = (0..40u8)
            .map(|i| (ContentHash::of_bytes(&[i]), PACK_SIZE / 10))
            .collect();
        let plan = plan(&files);
        assert_eq!(
            plan.iter().map(|p| p.pack).max(),
            Some(3),
            "10 files a pack"
        );
        assert_eq!(parse_index(&render_index(&plan)), Some(plan));
        assert_eq!(parse_index("warez-packs 1\n0 nothex 3\n"), None);
        assert_eq!(parse_index("other\n"), None);
    }

    #[test]
    fn unpack_checks_every_file_by_its_own_hash() {
        let (a, b) = (b"alpha".as_slice(), b"beta".as_slice());
        let packed = plan(&[
            (ContentHash::of_bytes(a), a.len() as u64),
            (ContentHash::of_bytes(b), b.len() as u64),
        ]);
        let refs: Vec<&Packed> = packed.iter().collect();
        let good = [a, b].concat();
        let files = unpack(&good, &refs).unwrap();
        assert_eq!(files[1].1, b);
        let mut bad = good.clone();
        bad[6] ^= 1;
        assert_eq!(unpack(&bad, &refs).unwrap_err(), packed[1].hash);
        assert!(unpack(&good[..7], &refs).is_err(), "a short pack");
        assert!(
            unpack(&[good.as_slice(), b"x"].concat(), &refs).is_err(),
            "a long pack"
        );
    }
}
