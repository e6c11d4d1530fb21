//! Ratings data: the CSV reader behind `ingest`, the id maps, the compact binary ratings
//! artifact the trainer reads, the seeded synthetic data generator, and how data is shown in
//! messages.

pub mod dataset;
pub mod generator;
pub mod idmap;
pub mod reader;
pub mod shown;
