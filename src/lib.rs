//! pav-pipeline: declarative, cached experiment pipelines for process-verifier research.
//!
//! # Architecture
//!
//! ```text
//! cli/      one file per subcommand: parse args (clap), fill an options struct, call ops::*
//! ops/      one user-level operation per file: run, plan, explain, status, show, log, diff, report, dag,
//!           verify, gc, check (a directory: baseline file, measure, report, update)
//! engine/   the ML-free core
//!   spec/     YAML (marked-yaml, every node with a span) -> validated Pipeline; params,
//!             `${...}` interpolation, sweeps; all errors collected with file:line:column
//!   dag/      stage graph (petgraph), cycle errors, expansion into stage instances per sweep
//!             point, fingerprints and keys, target selection
//!   hash/     StableHash, StageFingerprint -> StageKey (blake3), DirtyReason
//!   cache/    on-disk layout, atomic commit (temp + rename, manifest last), locks, views,
//!             last/ pointers, verify, gc
//!   schedule/ the coordinator: ready instances to workers up to --jobs, dedup by key,
//!             failure propagation
//!   exec/     the Executor trait and the local executor (command stages, built-in kinds)
//! kinds.rs  the registry of built-in kinds: the only module that touches `pav_stages`
//! table.rs  Parquet inspection (schema, row count, head, typed columns) for manifests, `show`, `check`
//! ui/       the only writer to the terminal: printer, progress, diagnostics
//! ```
//!
//! # Dependency rule
//!
//! `engine/**` imports neither burn nor polars nor `pav_stages`; it reaches the built-in
//! kinds and table inspection only through traits ([`engine::exec::KindRegistry`],
//! [`engine::cache::RowCounter`]). `pav_stages` never imports the engine. An engine change
//! therefore never rebuilds model code, which keeps 2-core builds short.

pub mod cli;
pub mod engine;
pub mod kinds;
pub mod ops;
pub mod table;
pub mod ui;
