//! `pav-stages`: the built-in stage kinds of pav-pipeline.
//!
//! This crate holds the science (tasks, burn models, rollout labelling, verifiers, search, RL)
//! and never depends on the engine. The engine talks to it only through the [`Stage`] contract
//! in [`contract`]: a kind name, an implementation version that enters every cache key, the
//! ports a kind reads and writes, and a `run` that turns input files into output files.
//!
//! So far: the contract, seeded randomness ([`rng`]), the tasks ([`tasks`], chosen by the
//! `task:` param through [`task`]), the burn models ([`models`]), supervised training
//! ([`train`]) and batched sampling ([`generate`]), and the kinds `problems`, `train-policy`
//! and `sample`; the other kinds arrive with later issues. `figure` draws line charts of any
//! kind's tables: [`figure`] (params, outputs), [`figure_data`] (reading inputs),
//! [`figure_points`] (filter, series, aggregation) and [`figure_draw`] (plotters).

pub mod contract;
pub mod figure;
pub mod figure_data;
pub mod figure_draw;
pub mod figure_points;
pub mod generate;
pub mod labels;
pub mod models;
pub mod params;
pub mod policy_gradient;
pub mod problems;
pub mod prover_values;
pub mod rl;
pub mod rng;
pub mod rollout_label;
pub mod rollouts;
pub mod sample;
pub mod search;
pub mod search_eval;
pub mod stats;
pub mod table;
pub mod task;
pub mod tasks;
pub mod tokenizer;
pub mod train;
pub mod train_policy;
pub mod train_verifier;
pub mod verifier_eval;

pub use contract::{PortSpec, Stage, StageContext, StageError, StageInfo};

/// Every built-in kind, in the order `pipeline kinds` lists them.
pub fn builtin_kinds() -> Vec<Box<dyn Stage>> {
    vec![
        Box::new(problems::Problems),
        Box::new(train_policy::TrainPolicy),
        Box::new(sample::Sample),
        Box::new(rollout_label::RolloutLabel),
        Box::new(prover_values::ProverValues),
        Box::new(train_verifier::TrainVerifier),
        Box::new(search_eval::SearchEval),
        Box::new(rl::Rl),
        Box::new(figure::Figure),
    ]
}
