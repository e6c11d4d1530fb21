//! The recommender: what the engine runs for `pipelines/recommender.yaml`. It uses the engine
//! (its [`crate::engine::kind::StageKind`] trait, params and progress) and the engine knows
//! nothing of it: the CLI hands the engine [`registry`]'s kinds.
//!
//! - [`kinds`]: one file per built-in kind (generate, ingest, train, export_tf, write_avro);
//! - [`data`]: the ratings CSV reader, id maps, `ratings.bin`, the synthetic data generator;
//! - [`model`]: ONNX training graphs, the ONNX Runtime trainer, metrics, TensorFlow export, the
//!   Avro record.

pub mod data;
pub mod kinds;
pub mod model;

use crate::engine::kind::Registry;

/// The recommender's kinds, in the order "did you mean" lists them.
pub fn registry() -> Registry {
    Registry::new(vec![
        &kinds::generate::Generate,
        &kinds::ingest::Ingest,
        &kinds::train::Train,
        &kinds::export_tf::ExportTf,
        &kinds::write_avro::WriteAvro,
    ])
}
