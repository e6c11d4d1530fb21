//! Ratings data: the CSV reader behind `ingest`, the id maps, the compact binary ratings
//! artifact the trainer reads, and the seeded synthetic data generator.

pub mod dataset;
pub mod generator;
pub mod idmap;
pub mod reader;
