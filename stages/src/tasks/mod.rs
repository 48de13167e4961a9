//! Tasks: what a problem is, what a step is, and how an answer is checked.
//!
//! - [`planted`]: the paper's didactic task (one step = one token), with its hint prover and
//!   exact values.
//! - [`arith`]: multi-step modular arithmetic (one line per step), with a noisy teacher.
//! - [`jsonl`]: problems from a JSONL file with a MATH-style answer checker.

pub mod arith;
pub mod jsonl;
pub mod planted;
