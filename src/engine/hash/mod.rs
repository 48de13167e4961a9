//! Stage identity.
//!
//! A stage instance is identified by its [`StageKey`]: the blake3 digest of the canonical
//! encoding of its [`StageFingerprint`], one struct that names every ingredient (cache-schema
//! version, kind, implementation version, params, command, outputs, upstream keys by port,
//! digests of declared file dependencies, seed and compute class).
//!
//! The encoding is produced by the [`StableHash`] trait, which is implemented only for types
//! with a canonical form: no `HashMap`, floats by their bits with `-0.0` normalised, strings
//! length-prefixed, every enum variant tagged. Nothing hashes mtimes, absolute paths, `Debug`
//! output or iteration order. Golden digests in the tests pin the scheme: any change to it must
//! bump [`CACHE_SCHEMA_VERSION`].
//!
//! [`dirty`] compares two fingerprints and returns typed reasons; rendering them into
//! sentences is separate (cargo's `DirtyReason`).

pub mod content;
pub mod dirty;
pub mod fingerprint;
pub mod stable;

pub use content::{digest_file, digest_path};
pub use dirty::{DirtyReason, compare};
pub use fingerprint::{CACHE_SCHEMA_VERSION, Digest, InputKey, StageFingerprint, StageKey};
pub use stable::{StableHash, StableHasher};
