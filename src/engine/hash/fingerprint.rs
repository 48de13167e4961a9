//! The fingerprint of a stage instance and the key derived from it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::stable::{StableHash, StableHasher};
use crate::engine::value::Value;

/// Version of the key scheme and the on-disk layout. Bump it whenever the fingerprint's
/// fields or their encoding change: every old key then misses, which is the point.
pub const CACHE_SCHEMA_VERSION: u32 = 1;

/// The identity of one stage execution: 64 hex characters of blake3.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StageKey(pub String);

impl StageKey {
    /// The first 12 hex characters, for humans.
    pub fn short(&self) -> &str {
        // By characters: a key read from a damaged manifest may hold anything.
        self.0.char_indices().nth(12).map_or(&self.0, |(i, _)| &self.0[..i])
    }

    /// True if `s` looks like a key (64 lowercase hex characters).
    pub fn is_valid(s: &str) -> bool {
        s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }
}

impl fmt::Display for StageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StableHash for StageKey {
    fn stable_hash(&self, h: &mut StableHasher) {
        h.tag(b'K');
        h.bytes(self.0.as_bytes());
    }
}

/// A blake3 content digest of a file or directory, as hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Digest(pub String);

impl StableHash for Digest {
    fn stable_hash(&self, h: &mut StableHasher) {
        h.tag(b'D');
        h.bytes(self.0.as_bytes());
    }
}

/// What feeds one input port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum InputKey {
    /// One upstream output file.
    Single { key: StageKey, file: String },
    /// Every point of a swept upstream stage: `(hive path such as "lr=0.1", key)`, sorted.
    Gather { file: String, points: Vec<(String, StageKey)> },
}

impl StableHash for InputKey {
    fn stable_hash(&self, h: &mut StableHasher) {
        match self {
            InputKey::Single { key, file } => {
                h.tag(1);
                key.stable_hash(h);
                file.stable_hash(h);
            }
            InputKey::Gather { file, points } => {
                h.tag(2);
                file.stable_hash(h);
                points.stable_hash(h);
            }
        }
    }
}

/// Every ingredient of a stage key, in one place. See the module docs of `engine::hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageFingerprint {
    /// [`CACHE_SCHEMA_VERSION`] at the time of hashing.
    pub schema: u32,
    /// Stage kind: `command` or a built-in kind.
    pub kind: String,
    /// Implementation version of the kind.
    pub version: u32,
    /// The stage's params after interpolation, plus the global params its command reads
    /// (sorted keys).
    pub params: BTreeMap<String, Value>,
    /// For `command` stages: the command with sweep values rendered and `${params.*}`,
    /// `${seed}`, `${inputs.*}`, `${outputs.*}` left symbolic (their values are hashed as
    /// params, seed and input keys; paths are never hashed).
    pub cmd: Option<String>,
    /// Output port -> file name, sorted by port.
    pub outputs: Vec<(String, String)>,
    /// Input port -> upstream keys, sorted by port.
    pub inputs: Vec<(String, InputKey)>,
    /// Declared file dependency (pipeline-relative path) -> content digest, sorted by path.
    pub deps: Vec<(String, Digest)>,
    /// Seed handed to the stage.
    pub seed: u64,
    /// Compute class where results differ across devices (`cpu` by default).
    pub compute: String,
}

impl StableHash for StageFingerprint {
    fn stable_hash(&self, h: &mut StableHasher) {
        // No `..`: a new field fails to compile here until someone decides how it is hashed.
        let StageFingerprint { schema, kind, version, params, cmd, outputs, inputs, deps, seed, compute } = self;
        h.tag(b'F');
        schema.stable_hash(h);
        kind.stable_hash(h);
        version.stable_hash(h);
        params.stable_hash(h);
        cmd.stable_hash(h);
        outputs.stable_hash(h);
        inputs.stable_hash(h);
        deps.stable_hash(h);
        seed.stable_hash(h);
        compute.stable_hash(h);
    }
}

impl StageFingerprint {
    /// The key: blake3 of the canonical encoding.
    pub fn key(&self) -> StageKey {
        let mut h = StableHasher::new();
        self.stable_hash(&mut h);
        StageKey(h.finish().to_hex().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StageFingerprint {
        let mut params = BTreeMap::new();
        params.insert("lr".to_string(), Value::Float(0.1));
        params.insert("n".to_string(), Value::Int(3));
        StageFingerprint {
            schema: CACHE_SCHEMA_VERSION,
            kind: "command".into(),
            version: 0,
            params,
            cmd: Some("python3 train.py ${inputs.src} 0.1 ${outputs.table}".into()),
            outputs: vec![("table".into(), "table.parquet".into())],
            inputs: vec![(
                "src".into(),
                InputKey::Single { key: StageKey("ab".repeat(32)), file: "table.parquet".into() },
            )],
            deps: vec![("train.py".into(), Digest("cd".repeat(32)))],
            seed: 0,
            compute: "cpu".into(),
        }
    }

    /// Pins the key scheme. If this fails, the encoding changed: bump CACHE_SCHEMA_VERSION
    /// and update the digest (every user's cache is invalidated by such a change).
    #[test]
    fn golden_digest_command_stage() {
        assert_eq!(sample().key().0, "676be7acf50e1202bb6a794e55b5a5664ecdc4215465390017cc823c94d49e78");
    }

    #[test]
    fn golden_digest_gather_stage() {
        let mut fp = sample();
        fp.cmd = None;
        fp.kind = "figure".into();
        fp.inputs = vec![(
            "runs".into(),
            InputKey::Gather {
                file: "table.parquet".into(),
                points: vec![
                    ("lr=0.01".into(), StageKey("01".repeat(32))),
                    ("lr=0.1".into(), StageKey("02".repeat(32))),
                ],
            },
        )];
        assert_eq!(fp.key().0, "10d933054027dbefd2689357c801e0493c25c6bf56c58057e82dc149610b64e9");
    }

    #[test]
    fn every_field_changes_the_key() {
        let base = sample().key();
        let mut fps = Vec::new();
        let mut f = sample();
        f.schema += 1;
        fps.push(f);
        let mut f = sample();
        f.kind = "other".into();
        fps.push(f);
        let mut f = sample();
        f.version = 1;
        fps.push(f);
        let mut f = sample();
        f.params.insert("lr".into(), Value::Float(0.2));
        fps.push(f);
        let mut f = sample();
        f.cmd = None;
        fps.push(f);
        let mut f = sample();
        f.outputs[0].1 = "t.csv".into();
        fps.push(f);
        let mut f = sample();
        f.inputs.clear();
        fps.push(f);
        let mut f = sample();
        f.deps[0].1 = Digest("ce".repeat(32));
        fps.push(f);
        let mut f = sample();
        f.seed = 1;
        fps.push(f);
        let mut f = sample();
        f.compute = "cuda".into();
        fps.push(f);
        for f in fps {
            assert_ne!(f.key(), base, "{f:?}");
        }
    }
}
