//! The engine core: spec, DAG, hashing, cache, scheduling and execution. Free of ML code.

pub mod cache;
pub mod dag;
pub mod exec;
pub mod hash;
pub mod schedule;
pub mod spec;
pub mod value;
