//! Ratings data: the CSV reader behind `ingest`, the id maps, the compact binary ratings
//! artifact the trainer reads, the seeded synthetic data generator, and how data is shown in
//! messages.

pub mod dataset;
pub mod generator;
pub mod idmap;
pub mod memory;
pub mod rating_memo;
pub mod reader;
pub mod shown;
pub mod uuid_table;

/// An empty vector with room for `len` values, or an error when memory runs out, where
/// `Vec::with_capacity` would abort the process: for every buffer whose size comes from a data
/// file or a param (here and in the trainer).
pub fn try_vec<T>(len: usize) -> anyhow::Result<Vec<T>> {
    let mut values = Vec::new();
    values.try_reserve_exact(len).map_err(|_| {
        anyhow::anyhow!(
            "out of memory allocating {len} values of {} bytes",
            std::mem::size_of::<T>()
        )
    })?;
    Ok(values)
}
