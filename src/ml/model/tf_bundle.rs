//! An empty TensorFlow tensor bundle (the V2 checkpoint format) for the SavedModel's
//! `variables/` folder: `variables.index` holding only the bundle header, and an empty data
//! shard `variables.data-00000-of-00001`.
//!
//! The frozen graph has no variables, and TensorFlow's own `SavedModelBuilder` leaves
//! `variables/` empty for such a graph. But an empty folder does not survive tools that store
//! files only: git, many artifact stores, and warez-pipe's content-addressed cache, which
//! restores folder outputs file by file. A valid empty bundle keeps the folder, and anything that
//! opens it (`tf.train.load_checkpoint`, `saved_model_cli`) finds a checkpoint with no tensors.
//! No loader restores from it: the SavedModel has no `saver_def`.
//!
//! # Format
//! The index is a sorted-string table in the format of TensorFlow's `tsl/lib/io/table_builder`
//! (LevelDB's): data block, metaindex block, index block, footer. Each block is followed by a
//! trailer: a compression byte (0, none) and the masked CRC-32C of block and compression byte.
//! The one entry maps the empty key to a `BundleHeaderProto`. Written by hand: no Rust crate
//! writes this table format, and one entry needs a few dozen lines.

use prost::encoding::encode_varint;
use prost::Message;

use super::tf_proto::{bundle_header_proto::Endianness, BundleHeaderProto, VersionDef};

/// File names inside `variables/` (the bundle prefix is `variables/variables`).
pub const INDEX_FILE: &str = "variables.index";
pub const DATA_FILE: &str = "variables.data-00000-of-00001";

/// `kTensorBundleVersion`, the bundle format version TensorFlow writes.
const BUNDLE_VERSION: i32 = 1;
/// `kTableMagicNumber`, closing every table file.
const TABLE_MAGIC: u64 = 0xdb47_7524_8b80_fb57;
/// The footer holds two block handles padded to their maximum length (2 × 20 bytes), then the
/// magic number.
const FOOTER_HANDLES_LENGTH: usize = 40;

/// The index of a bundle with no tensors in one (empty) data shard.
pub fn empty_bundle_index() -> Vec<u8> {
    let header = BundleHeaderProto {
        num_shards: 1,
        endianness: Endianness::Little as i32,
        version: Some(VersionDef {
            producer: BUNDLE_VERSION,
        }),
    };
    table(&[(b"", &header.encode_to_vec())])
}

/// A table holding `entries` (sorted by key) in one data block.
fn table(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut file = Vec::new();
    let data = write_block(&mut file, &block(entries));
    let metaindex = write_block(&mut file, &block(&[]));
    // The index maps a key ≥ every key of the data block to the block's handle.
    let last_key = entries.last().map_or(&b""[..], |(key, _)| key);
    let index = write_block(&mut file, &block(&[(last_key, &encode_handle(data))]));

    let mut footer = encode_handle(metaindex);
    footer.extend(encode_handle(index));
    footer.resize(FOOTER_HANDLES_LENGTH, 0);
    footer.extend((TABLE_MAGIC as u32).to_le_bytes());
    footer.extend(((TABLE_MAGIC >> 32) as u32).to_le_bytes());
    file.extend(footer);
    file
}

/// A block's contents: every entry stored whole (no key prefix shared with the one before) and
/// listed as a restart point, then the restart offsets and their count.
fn block(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut contents = Vec::new();
    let mut restarts = Vec::new();
    for (key, value) in entries {
        restarts.push(contents.len() as u32);
        encode_varint(0, &mut contents); // bytes shared with the previous key
        encode_varint(key.len() as u64, &mut contents);
        encode_varint(value.len() as u64, &mut contents);
        contents.extend_from_slice(key);
        contents.extend_from_slice(value);
    }
    if restarts.is_empty() {
        restarts.push(0);
    }
    for restart in &restarts {
        contents.extend(restart.to_le_bytes());
    }
    contents.extend((restarts.len() as u32).to_le_bytes());
    contents
}

/// Appends `contents` and its trailer to `file`; returns the block's (offset, size).
fn write_block(file: &mut Vec<u8>, contents: &[u8]) -> (u64, u64) {
    const NO_COMPRESSION: u8 = 0;
    let handle = (file.len() as u64, contents.len() as u64);
    file.extend_from_slice(contents);
    file.push(NO_COMPRESSION);
    let crc = crc32c::crc32c_append(crc32c::crc32c(contents), &[NO_COMPRESSION]);
    file.extend(mask_crc(crc).to_le_bytes());
    handle
}

/// LevelDB's CRC masking, so that CRCs of data holding CRCs stay well distributed.
fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn encode_handle((offset, size): (u64, u64)) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_varint(offset, &mut bytes);
    encode_varint(size, &mut bytes);
    bytes
}
