//! The manifest: the record of one stage execution, written last as the commit point.
//!
//! `objects/<key>/manifest.json` holds the fingerprint in full (so `explain` can compare it
//! with a later one), a digest, size and row count per output, the log file name, the run time
//! and the engine version. It is pretty-printed JSON, meant to be read by people and scripts.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::engine::hash::{Digest, StageFingerprint, StageKey};

/// Name of the manifest inside an object directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Name of the stage log inside an object directory (and inside `Pending::out_dir`).
pub const STAGE_LOG: &str = "stage.log";
/// Version of the engine that wrote a manifest.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// One stage execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// `CACHE_SCHEMA_VERSION` of the engine that wrote it.
    pub schema: u32,
    pub key: StageKey,
    pub engine_version: String,
    /// Stage name in the pipeline.
    pub stage: String,
    /// The instance, as shown to users (the stage name with its sweep point).
    pub instance: String,
    pub fingerprint: StageFingerprint,
    /// One record per declared output, in the fingerprint's port order.
    pub outputs: Vec<OutputRecord>,
    /// File name of the stage log inside the object directory.
    pub log: String,
    /// Wall-clock duration of the execution.
    pub seconds: f64,
    /// When the entry was committed, in seconds since the Unix epoch.
    pub created_unix: u64,
}

/// One output of a stage execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub port: String,
    /// File (or directory) name inside the object directory.
    pub file: String,
    /// blake3 of the content; for a directory see `digest.rs` for the listing that is hashed.
    pub blake3: Digest,
    /// Size in bytes (for a directory: the sum over its files).
    pub bytes: u64,
    /// Row count for Parquet tables, when a [`RowCounter`] could tell.
    pub rows: Option<u64>,
}

impl Manifest {
    /// The record of output `port`.
    pub fn output(&self, port: &str) -> Option<&OutputRecord> {
        self.outputs.iter().find(|o| o.port == port)
    }

    /// Sum of the output sizes.
    pub fn output_bytes(&self) -> u64 {
        self.outputs.iter().map(|o| o.bytes).sum()
    }
}

/// Counts the rows of a table output. Implemented outside the engine (with the parquet crate)
/// so that the engine does not depend on table formats.
pub trait RowCounter: Send + Sync {
    /// Rows in the table at `path`, or `None` when it cannot tell.
    fn rows(&self, path: &Path) -> Option<u64>;
}

/// Counts nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRows;

impl RowCounter for NoRows {
    fn rows(&self, _path: &Path) -> Option<u64> {
        None
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::super::fixture::fingerprint;
    use super::*;

    #[test]
    fn manifest_roundtrips_through_json() {
        let fp = fingerprint("a", &[("table", "t.parquet")]);
        let m = Manifest {
            schema: 1,
            key: fp.key(),
            engine_version: ENGINE_VERSION.into(),
            stage: "train".into(),
            instance: "train[lr=0.1]".into(),
            fingerprint: fp,
            outputs: vec![OutputRecord {
                port: "table".into(),
                file: "t.parquet".into(),
                blake3: Digest("00".repeat(32)),
                bytes: 3,
                rows: Some(2),
            }],
            log: STAGE_LOG.into(),
            seconds: 1.5,
            created_unix: 7,
        };
        let text = serde_json::to_string_pretty(&m).unwrap();
        assert!(text.contains("\"blake3\""), "{text}");
        let back: Manifest = serde_json::from_str(&text).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.output("table").map(|o| o.rows), Some(Some(2)));
        assert_eq!(back.output_bytes(), 3);
    }
}
