//! The generic engine: a YAML pipeline in, its stages brought up to date. It knows nothing of
//! recommenders; stage kinds plug in through [`kind::StageKind`] and a [`kind::Registry`] value
//! the caller builds.
//!
//! [`spec`] (YAML → validated pipeline) → [`dag`] (graph, selection, cycles) → [`fingerprint`]
//! (what is hashed, stat cache, rerun reasons) → [`store`] (objects, run records, lock file, run
//! lock, gc) → [`exec`] (one decision per stage, scheduler, staging, progress, `--check`).
//! [`kind`] holds the trait every kind implements, its params and progress, the registry, and
//! the `cmd:` shell stages.

#[macro_use]
pub mod console;
pub mod dag;
pub mod exec;
pub mod files;
pub mod fingerprint;
pub mod kind;
pub mod remote;
pub mod spec;
pub mod store;
