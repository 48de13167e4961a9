//! Remembering which entries were verified, so that an unchanged entry is not re-digested.
//!
//! Before a stage runs, every cached entry it reads is verified: its manifest parsed and every
//! output re-digested. A gather over 10^4 points would read 10^4 manifests and outputs on each
//! rerun. The memo (`R/last/<pipeline>.verified.json`) records, for each entry that verified,
//! the `stat` stamp (size, mtime, ctime, inode) of its manifest and outputs. An entry whose
//! files all still carry their stamps has not been written since (a write moves mtime and
//! ctime; a replacement moves the inode), so it is taken as verified with one `stat` per file.
//! Anything else — no memo, a moved stamp, a directory output — is verified in full. The memo
//! is a cache, never the truth: missing or unreadable, it is empty; it is saved atomically.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::layout::unique_name;
use super::manifest::MANIFEST_FILE;
use super::segment::escape_segment;
use super::verify::{CacheFault, verify_entry};
use super::{Cache, PathContext};
use crate::engine::hash::StageKey;

/// What `stat` says of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp(u64, i64, i64, i64, i64, u64);

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let m = fs::symlink_metadata(path).ok()?;
        m.is_file().then(|| Stamp(m.len(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec(), m.ino()))
    }
}

/// Key -> (file name, stamp) of its manifest and outputs when it last verified.
#[derive(Debug, Default)]
pub struct VerifyMemo {
    entries: BTreeMap<StageKey, Vec<(String, Stamp)>>,
    dirty: bool,
}

impl Cache {
    fn verify_memo_path(&self, pipeline: &str) -> std::path::PathBuf {
        self.layout.last.join(format!("{}.verified.json", escape_segment(pipeline)))
    }

    /// The memo of a pipeline; empty when there is none or it cannot be read.
    pub fn read_verify_memo(&self, pipeline: &str) -> VerifyMemo {
        let entries = fs::read(self.verify_memo_path(pipeline))
            .ok()
            .and_then(|b| serde_json::from_slice::<BTreeMap<StageKey, Vec<(String, Stamp)>>>(&b).ok())
            .unwrap_or_default();
        VerifyMemo { entries, dirty: false }
    }

    /// Save the memo atomically, if anything changed.
    pub fn write_verify_memo(&self, pipeline: &str, memo: &VerifyMemo) -> io::Result<()> {
        if !memo.dirty {
            return Ok(());
        }
        let path = self.verify_memo_path(pipeline);
        let tmp = self.layout.tmp.join(unique_name("verify-memo"));
        let bytes = serde_json::to_vec(&memo.entries).map_err(io::Error::other)?;
        fs::File::create(&tmp).and_then(|mut f| f.write_all(&bytes)).at("cannot write", &tmp)?;
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(e).at("cannot replace", &path);
        }
        Ok(())
    }

    /// [`Cache::verify`], skipped when every file of the entry still has the stamp it had when
    /// it last verified; a full verification that passes records the stamps.
    pub fn verify_remembered(&self, key: &StageKey, memo: &mut VerifyMemo) -> Result<(), CacheFault> {
        let dir = self.layout.object_dir(key);
        if let Some(stamps) = memo.entries.get(key)
            && stamps.iter().all(|(file, stamp)| Stamp::of(&dir.join(file)) == Some(*stamp))
        {
            return Ok(());
        }
        // Stamps first: a write during the digest then moves them, and the next run re-checks.
        let manifest_stamp = Stamp::of(&dir.join(MANIFEST_FILE));
        let before: Vec<(String, Option<Stamp>)> = match self.read_manifest(key) {
            Ok(m) => m.outputs.iter().map(|o| (o.file.clone(), Stamp::of(&dir.join(&o.file)))).collect(),
            Err(_) => Vec::new(),
        };
        let result = verify_entry(&self.layout, key);
        if memo.entries.remove(key).is_some() {
            memo.dirty = true;
        }
        if result.is_ok()
            && let Some(ms) = manifest_stamp
            && before.iter().all(|(_, s)| s.is_some())
        {
            let mut stamps = vec![(MANIFEST_FILE.to_string(), ms)];
            stamps.extend(before.into_iter().filter_map(|(f, s)| s.map(|s| (f, s))));
            memo.entries.insert(key.clone(), stamps);
            memo.dirty = true;
        }
        result.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{commit_entry, open_cache};
    use super::*;

    #[test]
    fn a_remembered_entry_is_rechecked_once_a_file_changes() {
        let (_dir, cache) = open_cache();
        let (key, _) = commit_entry(&cache, "a", &[("table", "t.csv", b"1,2,3")]);
        let mut memo = cache.read_verify_memo("p");
        cache.verify_remembered(&key, &mut memo).unwrap();
        cache.write_verify_memo("p", &memo).unwrap();
        let mut memo = cache.read_verify_memo("p");
        assert_eq!(memo.entries.len(), 1);
        cache.verify_remembered(&key, &mut memo).unwrap();
        // Same size, other bytes: the stamp moves (mtime, ctime), so the digest is checked.
        let path = cache.object_dir(&key).join("t.csv");
        fs::write(&path, b"1,2,4").unwrap();
        let fault = cache.verify_remembered(&key, &mut memo).unwrap_err();
        assert!(matches!(fault, CacheFault::DigestMismatch { .. }), "{fault:?}");
        assert!(memo.entries.is_empty(), "a failed entry is forgotten");
    }
}
