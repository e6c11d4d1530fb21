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

use anyhow::{bail, ensure, Context, Result};

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

    pub fn read(path: &Path) -> Result<Self> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|mut file| file.read_to_end(&mut bytes))
            .with_context(|| format!("reading {}", path.display()))?;
        Self::decode(&bytes)
            .with_context(|| format!("{} is not a ratings artifact", path.display()))
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        ensure!(
            bytes.len() >= 24 && &bytes[..8] == MAGIC,
            "missing the WZRATE01 header"
        );
        let rows = u64::from_le_bytes(bytes[8..16].try_into()?) as usize;
        let n_customers = u32::from_le_bytes(bytes[16..20].try_into()?);
        let n_products = u32::from_le_bytes(bytes[20..24].try_into()?);
        let body = &bytes[24..];
        if body.len() != rows * 12 {
            bail!(
                "header says {rows} rows but the body holds {} bytes",
                body.len()
            );
        }
        let words =
            |column: usize| body[column * rows * 4..(column + 1) * rows * 4].chunks_exact(4);
        let customers: Vec<u32> = words(0)
            .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
            .collect();
        let products: Vec<u32> = words(1)
            .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
            .collect();
        let ratings = words(2)
            .map(|w| f32::from_le_bytes(w.try_into().unwrap()))
            .collect();
        ensure!(
            customers.iter().all(|&c| c < n_customers),
            "a customer index is out of range"
        );
        ensure!(
            products.iter().all(|&p| p < n_products),
            "a product index is out of range"
        );
        Ok(Self {
            n_customers,
            n_products,
            customers,
            products,
            ratings,
        })
    }
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
}
