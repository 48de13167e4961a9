//! burn models of the built-in kinds: the autoregressive MLPs of the didactic task
//! ([`mlp`]; its MADE masks in [`made`]), the decoder-only transformer of the text tasks ([`transformer`]) with its
//! preallocated key/value cache ([`kv`]), its CPU decoding step ([`host`]) and CPU training
//! pass ([`host_train`], its loops in `host_kernels`), the backend and device ([`device`], the only place
//! that picks one) checkpoints on disk ([`checkpoint`]) and the process verifiers ([`verifier`]).

pub mod checkpoint;
pub mod device;
pub mod host;
mod host_kernels;
pub mod host_train;
pub mod kv;
pub mod made;
pub mod mlp;
pub mod transformer;
pub mod verifier;
