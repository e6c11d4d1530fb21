//! warez-pipe: a declarative, build-system-style task runner for machine-learning artifacts.
//!
//! Two layers, one direction: [`engine`] reads a YAML pipeline, builds a DAG, fingerprints every
//! stage and reruns only what changed, knowing nothing about recommenders; [`ml`] is the
//! recommender (its stage kinds, data and model), built on the engine. [`cli`] wires them: it
//! builds the registry of the ML kinds and hands it to the engine.

// First, with its macros: `errln!`, `outln!` (see `engine::console`) are used everywhere.
#[macro_use]
pub mod engine;
pub mod cli;
pub mod ml;
