//! Reading and checking entries, and removing broken ones.
//!
//! A fault is a value, never a panic or a failed run: the caller warns, treats the entry as a
//! miss, and may [`quarantine`](Cache::quarantine) it. [`Cache::read_manifest`] only parses
//! (so `explain` can read manifests of an older schema); [`Cache::verify`] also checks the
//! schema and re-digests every output.

use std::fs;
use std::io;
use std::path::PathBuf;

use super::Cache;
use super::digest::{DigestError, digest_output};
use super::layout::{Layout, check_key};
use super::manifest::{MANIFEST_FILE, Manifest};
use super::segment::check_file_name;
use crate::engine::hash::{CACHE_SCHEMA_VERSION, StageKey};

/// Why a cache entry cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheFault {
    #[error("cache entry {} is missing", .key.short())]
    Missing { key: StageKey },
    #[error("cache entry {} has a bad manifest: {reason}", .key.short())]
    BadManifest { key: StageKey, reason: String },
    #[error("cache entry {}: output `{file}` is missing", .key.short())]
    MissingOutput { key: StageKey, file: String },
    #[error("cache entry {}: output `{file}` has {actual} bytes, its manifest says {expected}", .key.short())]
    SizeMismatch { key: StageKey, file: String, expected: u64, actual: u64 },
    #[error("cache entry {}: output `{file}` does not match its recorded digest", .key.short())]
    DigestMismatch { key: StageKey, file: String },
    #[error("cache entry {}: cannot read {}: {source}", .key.short(), .path.display())]
    Io { key: StageKey, path: PathBuf, source: io::Error },
}

impl CacheFault {
    /// Whether the entry itself is damaged (missing, bad manifest, missing output, wrong size or
    /// digest): only then may it be removed. An I/O error while reading (EACCES, EMFILE, EIO)
    /// says nothing about the entry, which may be good: removing it could destroy an expensive
    /// result on a shared cache, so it is kept and the caller reports the error.
    pub fn is_damage(&self) -> bool {
        !matches!(self, CacheFault::Io { .. })
    }

    /// The key of the faulty entry.
    pub fn key(&self) -> &StageKey {
        match self {
            CacheFault::Missing { key }
            | CacheFault::BadManifest { key, .. }
            | CacheFault::MissingOutput { key, .. }
            | CacheFault::SizeMismatch { key, .. }
            | CacheFault::DigestMismatch { key, .. }
            | CacheFault::Io { key, .. } => key,
        }
    }
}

pub(crate) fn read_manifest_at(layout: &Layout, key: &StageKey) -> Result<Manifest, CacheFault> {
    if !StageKey::is_valid(&key.0) {
        return Err(CacheFault::Missing { key: key.clone() });
    }
    let path = layout.manifest_path(key);
    let text = match fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(CacheFault::Missing { key: key.clone() });
        }
        Err(source) => {
            return Err(CacheFault::Io { key: key.clone(), path, source });
        }
    };
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| CacheFault::BadManifest { key: key.clone(), reason: format!("{MANIFEST_FILE}: {e}") })?;
    if manifest.key != *key {
        let reason = format!("it records key {}", manifest.key.short());
        return Err(CacheFault::BadManifest { key: key.clone(), reason });
    }
    Ok(manifest)
}

pub(crate) fn verify_entry(layout: &Layout, key: &StageKey) -> Result<Manifest, CacheFault> {
    let manifest = read_manifest_at(layout, key)?;
    let bad = |reason: String| CacheFault::BadManifest { key: key.clone(), reason };
    if manifest.schema != CACHE_SCHEMA_VERSION {
        return Err(bad(format!("schema {}, this engine reads {CACHE_SCHEMA_VERSION}", manifest.schema)));
    }
    let dir = layout.object_dir(key);
    for out in &manifest.outputs {
        check_file_name(&out.file).map_err(|r| bad(format!("output file `{}`: {r}", out.file)))?;
        let path = dir.join(&out.file);
        let file = || out.file.clone();
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(CacheFault::MissingOutput { key: key.clone(), file: file() });
            }
            Err(source) => {
                return Err(CacheFault::Io { key: key.clone(), path, source });
            }
        };
        // Cheap check first: a file of the wrong size needs no hashing.
        if meta.is_file() && meta.len() != out.bytes {
            return Err(CacheFault::SizeMismatch {
                key: key.clone(),
                file: file(),
                expected: out.bytes,
                actual: meta.len(),
            });
        }
        match digest_output(&path, false) {
            Ok(d) if d.digest == out.blake3 && d.bytes == out.bytes => {}
            Ok(_) | Err(DigestError::Symlink(_) | DigestError::Special(_)) => {
                return Err(CacheFault::DigestMismatch { key: key.clone(), file: file() });
            }
            Err(DigestError::Io { path, source }) => {
                return Err(CacheFault::Io { key: key.clone(), path, source });
            }
        }
    }
    Ok(manifest)
}

impl Cache {
    /// Parse `objects/<key>/manifest.json` (any schema); no output is checked.
    pub fn read_manifest(&self, key: &StageKey) -> Result<Manifest, CacheFault> {
        read_manifest_at(&self.layout, key)
    }

    /// The manifest, if it parses, is of this engine's schema, and every output is present with
    /// its recorded size and digest. Reads every output in full.
    pub fn verify(&self, key: &StageKey) -> Result<Manifest, CacheFault> {
        verify_entry(&self.layout, key)
    }

    /// Remove an entry (typically a damaged one, see [`CacheFault::is_damage`]): rename it into
    /// `tmp/`, then delete it.
    /// Once the rename is done no process can see the entry, whatever happens to the delete.
    pub fn quarantine(&self, key: &StageKey) -> io::Result<()> {
        check_key(key)?;
        let dir = self.layout.object_dir(key);
        self.layout.remove_via_tmp(&dir).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{commit_entry, open_cache};
    use super::*;

    #[test]
    fn corrupted_output_fails_verify_and_quarantine_removes_it() {
        let (dir, cache) = open_cache();
        let (key, _) = commit_entry(&cache, "a", &[("table", "t.csv", b"1,2,3")]);
        assert!(cache.verify(&key).is_ok());
        fs::write(cache.object_dir(&key).join("t.csv"), b"1,2,4").unwrap();
        let fault = cache.verify(&key).unwrap_err();
        assert!(matches!(&fault, CacheFault::DigestMismatch { file, .. } if file == "t.csv"), "{fault:?}");
        let text = fault.to_string();
        assert!(text.contains(key.short()) && text.contains("t.csv") && !text.contains(&key.0), "{text}");
        assert!(cache.has_entry(&key), "a fault alone removes nothing");
        cache.quarantine(&key).unwrap();
        assert!(!cache.has_entry(&key));
        assert!(!cache.object_dir(&key).exists());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert!(matches!(cache.verify(&key), Err(CacheFault::Missing { .. })));
        cache.quarantine(&key).unwrap();
    }

    #[test]
    fn manifest_with_a_non_ascii_key_is_a_fault_not_a_panic() {
        let (_dir, cache) = open_cache();
        let (key, mut m) = commit_entry(&cache, "a", &[("table", "t.csv", b"abc")]);
        // 11 ASCII bytes, then a 2-byte character across byte 12.
        m.key = StageKey(format!("{}é{}", "a".repeat(11), "b".repeat(51)));
        fs::write(cache.object_dir(&key).join(MANIFEST_FILE), serde_json::to_vec(&m).unwrap()).unwrap();
        let fault = cache.verify(&key).unwrap_err();
        assert!(matches!(fault, CacheFault::BadManifest { .. }), "{fault:?}");
        assert!(fault.to_string().contains("aaaaaaaaaaa"), "{fault}");
    }

    #[test]
    fn size_change_and_deleted_output_are_reported() {
        let (_dir, cache) = open_cache();
        let (key, _) = commit_entry(&cache, "a", &[("table", "t.csv", b"abc"), ("fig", "f.txt", b"z")]);
        fs::write(cache.object_dir(&key).join("t.csv"), b"abcd").unwrap();
        assert!(matches!(
            cache.verify(&key),
            Err(CacheFault::SizeMismatch { expected: 3, actual: 4, ref file, .. }) if file == "t.csv"
        ));
        fs::write(cache.object_dir(&key).join("t.csv"), b"abc").unwrap();
        fs::remove_file(cache.object_dir(&key).join("f.txt")).unwrap();
        assert!(matches!(cache.verify(&key), Err(CacheFault::MissingOutput { ref file, .. }) if file == "f.txt"));
    }

    #[test]
    fn bad_manifests_are_faults_not_panics() {
        let (_dir, cache) = open_cache();
        let (key, m) = commit_entry(&cache, "a", &[("table", "t.csv", b"abc")]);
        let path = cache.object_dir(&key).join(MANIFEST_FILE);
        fs::write(&path, b"{ not json").unwrap();
        assert!(cache.has_entry(&key), "has_entry only stats");
        assert!(matches!(cache.read_manifest(&key), Err(CacheFault::BadManifest { .. })));
        let mut old = m.clone();
        old.schema = CACHE_SCHEMA_VERSION + 1;
        fs::write(&path, serde_json::to_vec(&old).unwrap()).unwrap();
        assert!(cache.read_manifest(&key).is_ok(), "read_manifest accepts any schema");
        assert!(matches!(cache.verify(&key), Err(CacheFault::BadManifest { reason, .. }) if reason.contains("schema")));
        let mut wrong = m.clone();
        wrong.key = StageKey("00".repeat(32));
        fs::write(&path, serde_json::to_vec(&wrong).unwrap()).unwrap();
        assert!(matches!(cache.read_manifest(&key), Err(CacheFault::BadManifest { .. })));
        let mut escape = m;
        escape.outputs[0].file = "../../CACHEDIR.TAG".into();
        fs::write(&path, serde_json::to_vec(&escape).unwrap()).unwrap();
        assert!(matches!(cache.verify(&key), Err(CacheFault::BadManifest { .. })));
        assert!(matches!(cache.read_manifest(&StageKey("nope".into())), Err(CacheFault::Missing { .. })));
    }
}
