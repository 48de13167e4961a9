//! `pav-stages`: the built-in stage kinds of pav-pipeline.
//!
//! This crate holds the science (tasks, burn models, rollout labelling, verifiers, search, RL)
//! and never depends on the engine. The engine talks to it only through the [`Stage`] contract
//! in [`contract`]: a kind name, an implementation version that enters every cache key, the
//! ports a kind reads and writes, and a `run` that turns input files into output files.
//!
//! So far: the contract, seeded randomness ([`rng`]) and the planted task ([`tasks`]); the
//! kinds arrive with later issues.

pub mod contract;
pub mod rng;
pub mod tasks;

pub use contract::{PortSpec, Stage, StageContext, StageError, StageInfo};

/// Every built-in kind, in the order `pipeline kinds` lists them.
pub fn builtin_kinds() -> Vec<Box<dyn Stage>> {
    Vec::new()
}
