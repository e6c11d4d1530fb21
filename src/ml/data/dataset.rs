//! The binary ratings artifact `ingest` writes and `train` reads.
//!
//! Hand-written rather than a serialization crate: it is three flat little-endian columns that the
//! trainer reads straight into vectors, and a fixed layout keeps the bytes (and so the cache key
//! of everything downstream) stable across crate upgrades.
//!
//! Layout (all little-endian):
//!
//! | bytes        | field                                              |
//! |--------------|----------------------------------------------------|
//! | 8            | magic `WZRATE01`                                   |
//! | 8            | `rows`: u64                                        |
//! | 4            | `n_customers`: u32 (size of the customer map)      |
//! | 4            | `n_products`: u32 (size of the product map)        |
//! | 4 × rows     | customer index per row, u32, in file order         |
//! | 4 × rows     | product index per row, u32                         |
//! | 4 × rows     | rating per row, f32                                |

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{anyhow, bail, ensure, Context, Result};

const MAGIC: &[u8; 8] = b"WZRATE01";

/// Ratings with customers and products as dense indices (their maps' first-seen order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ratings {
    pub n_customers: u32,
    pub n_products: u32,
    pub customers: Vec<u32>,
    pub products: Vec<u32>,
    pub ratings: Vec<f32>,
}

impl Ratings {
    pub fn len(&self) -> usize {
        self.ratings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ratings.is_empty()
    }

    /// The header `write` puts before these ratings.
    pub fn header(&self) -> Header {
        Header {
            rows: self.len() as u64,
            n_customers: self.n_customers,
            n_products: self.n_products,
        }
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        out.write_all(MAGIC)?;
        out.write_all(&(self.len() as u64).to_le_bytes())?;
        out.write_all(&self.n_customers.to_le_bytes())?;
        out.write_all(&self.n_products.to_le_bytes())?;
        for column in [&self.customers, &self.products] {
            for value in column.iter() {
                out.write_all(&value.to_le_bytes())?;
            }
        }
        for value in &self.ratings {
            out.write_all(&value.to_le_bytes())?;
        }
        out.flush()
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Reads the header alone, checked against the file's length: what a run over the file
    /// will need is known before anything is allocated.
    pub fn read_header(path: &Path) -> Result<Header> {
        let mut file =
            std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
        Header::read(&mut file).with_context(|| not_a_ratings_artifact(path))
    }

    /// Reads the whole file. A truncated, padded or corrupt file is an error naming it; the
    /// columns are allocated fallibly, so a header claiming more rows than memory holds is an
    /// error too, never an abort.
    pub fn read(path: &Path) -> Result<Self> {
        let mut file =
            std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
        Header::read(&mut file)
            .and_then(|header| Self::read_body(header, std::io::BufReader::new(file)))
            .with_context(|| not_a_ratings_artifact(path))
    }

    fn read_body(header: Header, mut input: impl Read) -> Result<Self> {
        let rows = usize::try_from(header.rows).with_context(|| {
            format!(
                "{} rows are more than this machine can address",
                header.rows
            )
        })?;
        let input = &mut input;
        let customers = read_column(input, rows, u32::from_le_bytes)?;
        let products = read_column(input, rows, u32::from_le_bytes)?;
        let ratings = read_column(input, rows, f32::from_le_bytes)?;
        ensure!(
            input.read(&mut [0u8; 1])? == 0,
            "the file is longer than its header says"
        );
        if let Some(row) = customers.iter().position(|&c| c >= header.n_customers) {
            bail!(
                "row {row}: customer index {} is out of range (the header says {} customers)",
                customers[row],
                header.n_customers
            );
        }
        if let Some(row) = products.iter().position(|&p| p >= header.n_products) {
            bail!(
                "row {row}: product index {} is out of range (the header says {} products)",
                products[row],
                header.n_products
            );
        }
        if let Some(row) = ratings.iter().position(|r| !(r.is_finite() && *r >= 0.0)) {
            bail!(
                "row {row}: rating {} is not a finite number ≥ 0",
                ratings[row]
            );
        }
        Ok(Self {
            n_customers: header.n_customers,
            n_products: header.n_products,
            customers,
            products,
            ratings,
        })
    }
}

/// The fixed-size start of the file: how many rows and ids the body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub rows: u64,
    pub n_customers: u32,
    pub n_products: u32,
}

impl Header {
    const LEN: u64 = 24;
    /// Three 4-byte columns.
    const ROW_BYTES: u64 = 12;

    /// Reads the header from the start of `file` and checks the file's length against it.
    fn read(file: &mut std::fs::File) -> Result<Self> {
        let mut bytes = [0u8; Self::LEN as usize];
        let length = file.metadata()?.len();
        file.read_exact(&mut bytes)
            .map_err(|_| anyhow!("{length} bytes are too short for the WZRATE01 header"))?;
        ensure!(&bytes[..8] == MAGIC, "missing the WZRATE01 header");
        let word = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let header = Self {
            rows: u64::from(word(8)) | (u64::from(word(12)) << 32),
            n_customers: word(16),
            n_products: word(20),
        };
        let expected = header
            .rows
            .checked_mul(Self::ROW_BYTES)
            .and_then(|body| body.checked_add(Self::LEN));
        if expected != Some(length) {
            bail!(
                "the header says {} rows ({} bytes) but the file holds {length} bytes",
                header.rows,
                expected.map_or_else(|| "more than 2^64".to_string(), |bytes| bytes.to_string())
            );
        }
        Ok(header)
    }
}

fn not_a_ratings_artifact(path: &Path) -> String {
    format!(
        "{} is not a valid ratings artifact (written by `ingest`)",
        path.display()
    )
}

/// `rows` little-endian 4-byte values, allocated fallibly, in huge pages (the trainer reads
/// them at shuffled positions).
fn read_column<T>(input: &mut impl Read, rows: usize, decode: fn([u8; 4]) -> T) -> Result<Vec<T>> {
    let mut column = super::memory::try_vec_huge(rows)?;
    let mut chunk = [0u8; 1 << 14];
    let mut left = rows;
    while left > 0 {
        let take = left.min(chunk.len() / 4);
        let bytes = &mut chunk[..take * 4];
        input
            .read_exact(bytes)
            .context("the file ends before its last row")?;
        column.extend(
            bytes
                .chunks_exact(4)
                .map(|word| decode([word[0], word[1], word[2], word[3]])),
        );
        left -= take;
    }
    Ok(column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_file() {
        let ratings = Ratings {
            n_customers: 3,
            n_products: 2,
            customers: vec![0, 1, 2, 1],
            products: vec![0, 0, 1, 1],
            ratings: vec![0.5, 0.25, 1.0, 0.0],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ratings.bin");
        ratings.write(&path).unwrap();
        assert_eq!(Ratings::read(&path).unwrap(), ratings);
    }

    #[test]
    fn rejects_a_truncated_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ratings.bin");
        let ratings = Ratings {
            n_customers: 1,
            n_products: 1,
            customers: vec![0],
            products: vec![0],
            ratings: vec![1.0],
        };
        ratings.write(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(Ratings::read(&path).is_err());
    }

    /// The error for `bytes` written as `ratings.bin`, which must name the file.
    fn error_for(bytes: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ratings.bin");
        std::fs::write(&path, bytes).unwrap();
        let error = format!("{:#}", Ratings::read(&path).unwrap_err());
        assert!(error.contains(&path.display().to_string()), "{error}");
        error
    }

    fn header(rows: u64, n_customers: u32, n_products: u32) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&rows.to_le_bytes());
        bytes.extend_from_slice(&n_customers.to_le_bytes());
        bytes.extend_from_slice(&n_products.to_le_bytes());
        bytes
    }

    #[test]
    fn hostile_headers_are_errors_not_panics_or_aborts() {
        let error = error_for(&header(u64::MAX, 1, 1));
        assert!(error.contains("more than 2^64"), "{error}");
        // A plausible row count whose body would need 12 · 2^60 bytes: refused before allocating.
        let error = error_for(&header(1 << 60, 1, 1));
        assert!(error.contains("but the file holds 24 bytes"), "{error}");
        assert!(error_for(b"garbage").contains("too short"));
        assert!(error_for(&[b'x'; 40]).contains("WZRATE01"));
        assert!(error_for(b"").contains("too short"));
    }

    #[test]
    fn a_body_that_disagrees_with_its_header_is_an_error() {
        let mut bytes = header(1, 1, 1);
        bytes.extend_from_slice(&[0; 12]);
        bytes.push(0);
        assert!(error_for(&bytes).contains("(36 bytes) but the file holds 37 bytes"));
        bytes.pop();
        bytes[16..20].copy_from_slice(&0u32.to_le_bytes());
        assert!(error_for(&bytes).contains("customer index 0 is out of range"));
        let mut bytes = header(1, 1, 1);
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&f32::NAN.to_le_bytes());
        assert!(error_for(&bytes).contains("not a finite number"));
    }
}
