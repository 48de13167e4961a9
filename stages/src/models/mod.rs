//! burn models of the built-in kinds: the autoregressive MLP of the didactic task
//! ([`mlp`]), the decoder-only transformer of the text tasks ([`transformer`]) with its
//! preallocated key/value cache ([`kv`]), the backend and device ([`device`], the only place
//! that picks one) and checkpoints on disk ([`checkpoint`]).

pub mod checkpoint;
pub mod device;
pub mod kv;
pub mod mlp;
pub mod transformer;
