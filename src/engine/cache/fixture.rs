//! Test fixtures: a cache in a temp dir, fingerprints, and committed entries.

use std::collections::BTreeMap;
use std::fs;

use tempfile::TempDir;

use super::{Cache, CommitMeta, Manifest};
use crate::engine::hash::{CACHE_SCHEMA_VERSION, StageFingerprint, StageKey};
use crate::engine::value::Value;

pub(crate) fn open_cache() -> (TempDir, Cache) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    (dir, cache)
}

/// A fingerprint that differs by `tag`, declaring `outputs` as (port, file).
pub(crate) fn fingerprint(tag: &str, outputs: &[(&str, &str)]) -> StageFingerprint {
    StageFingerprint {
        schema: CACHE_SCHEMA_VERSION,
        kind: "command".into(),
        version: 0,
        params: BTreeMap::from([("tag".to_string(), Value::Str(tag.to_string()))]),
        cmd: Some("make ${outputs.table}".into()),
        outputs: outputs.iter().map(|(p, f)| (p.to_string(), f.to_string())).collect(),
        inputs: Vec::new(),
        deps: Vec::new(),
        seed: 0,
        compute: "cpu".into(),
    }
}

pub(crate) fn meta(fp: StageFingerprint) -> CommitMeta {
    CommitMeta { stage: "train".into(), instance: "train[x]".into(), fingerprint: fp, seconds: 0.25 }
}

/// Commit an entry whose outputs are (port, file, content).
pub(crate) fn commit_entry(cache: &Cache, tag: &str, outputs: &[(&str, &str, &[u8])]) -> (StageKey, Manifest) {
    let fp = fingerprint(tag, &outputs.iter().map(|(p, f, _)| (*p, *f)).collect::<Vec<_>>());
    let key = fp.key();
    let mut pending = cache.begin(&key).unwrap();
    for (_, file, content) in outputs {
        fs::write(pending.out_dir().join(file), content).unwrap();
    }
    let committed = pending.commit(meta(fp)).unwrap();
    // Committed entries are read-only; these tests corrupt them on purpose (as a non-root user
    // too, whom the modes would stop).
    make_writable(&cache.object_dir(&key));
    (key, committed.manifest)
}

/// Give the owner write access to everything under `path` again.
pub(crate) fn make_writable(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = fs::symlink_metadata(path) else { return };
    if meta.file_type().is_symlink() {
        return;
    }
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(meta.permissions().mode() | 0o700));
    if meta.is_dir() {
        for e in fs::read_dir(path).unwrap().flatten() {
            make_writable(&e.path());
        }
    }
}
