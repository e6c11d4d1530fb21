//! warez-pipe: a declarative, build-system-style task runner for machine-learning artifacts.
//!
//! The engine (`spec` → `dag` → `fingerprint` → `store` → `exec`) knows nothing about
//! recommenders: it reads a YAML pipeline, builds a DAG, fingerprints every stage and reruns only
//! what changed. Stage kinds plug in through one trait ([`stages::StageKind`]); the recommender's
//! kinds are built from `data` (CSV ingest, id maps, synthetic data) and `model` (ONNX training
//! graphs run in ONNX Runtime, TensorFlow export, Avro packaging).

pub mod cli;
pub mod dag;
pub mod data;
pub mod exec;
pub mod fingerprint;
pub mod model;
pub mod remote;
pub mod spec;
pub mod stages;
pub mod store;
