//! Integration tests of the `pipeline` binary: one test binary, one module per topic.
//!
//! Every test builds a small pipeline in a temp directory with [`fixture::Project`] and runs
//! the real binary on it. Cache hits are proven by making recomputation impossible (deleting
//! the script a stage runs, or counting executions in files outside the cache), never by
//! timing.

mod builtin;
mod cache;
mod check;
mod commands;
mod completions;
mod concurrency;
mod crash;
mod diff;
mod failures;
mod fixture;
mod hardening;
mod incremental;
mod jobs_env;
mod log;
mod parquet;
mod report;
mod shipped;
mod spec_errors;
mod sweeps;
