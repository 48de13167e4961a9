//! Tasks: what a problem is, what a step is, and how an answer is checked.
//!
//! - [`planted`]: the paper's didactic task (one step = one token), with its hint prover and
//!   exact values.
//!
//! `arith` (multi-step arithmetic with a noisy teacher) and `jsonl` (external problems with a
//! MATH-style checker) follow with the rest of issue 3.

pub mod planted;
