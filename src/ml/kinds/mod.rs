//! The recommender's built-in stage kinds, one file each; [`super::registry`] lists them.

pub mod export_tf;
pub mod generate;
pub mod ingest;
pub mod train;
pub mod write_avro;
