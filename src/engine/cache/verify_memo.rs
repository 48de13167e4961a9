//! Remembering which entries are known good, so that an unchanged entry is not re-digested.
//!
//! Before a stage runs, every cached entry it reads is verified: its manifest parsed and every
//! output re-digested. A gather over 10^4 points would read 10^4 manifests and outputs on each
//! rerun. The memo (`R/last/<pipeline>.verified.json`) records, for each entry that verified
//! (or that this engine just committed), the `stat` stamp (size, mtime, ctime, inode) of its
//! manifest and outputs and when they were taken. An entry whose files all still carry their
//! stamps has not been written since — a write moves mtime and ctime, a replacement the inode —
//! so it is taken as good with one `stat` per file.
//!
//! Timestamps come from a coarse clock (one tick is a few ms), so a write in the same tick as
//! the previous change could leave every stamp as it was. As git does for its index, a stamp
//! is only trusted when the file's last change (ctime) lies at least [`RACY`] before the stamp
//! was taken; otherwise the entry is verified in full. Anything else — no memo entry, a moved
//! stamp, a directory output — is verified in full too. The memo is a cache, never the truth:
//! missing or unreadable, it is empty; it is saved atomically.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use super::layout::unique_name;
use super::manifest::{MANIFEST_FILE, Manifest};
use super::segment::escape_segment;
use super::verify::{CacheFault, verify_entry};
use super::{Cache, PathContext};
use crate::engine::hash::StageKey;

/// How long before a stamp was taken the file must have last changed for the stamp to be
/// trusted: several ticks of the kernel's coarse clock.
const RACY: i128 = 50_000_000;

/// What `stat` says of one file: size, mtime (ns), ctime (ns), inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp(u64, i128, i128, u64);

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let m = fs::symlink_metadata(path).ok()?;
        let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
        m.is_file().then(|| Stamp(m.len(), ns(m.mtime(), m.mtime_nsec()), ns(m.ctime(), m.ctime_nsec()), m.ino()))
    }
}

/// The stamps of one entry's files, and when they were taken (unix ns).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Remembered {
    at: i128,
    files: Vec<(String, Stamp)>,
}

impl Remembered {
    fn take(dir: &Path, files: impl IntoIterator<Item = String>) -> Option<Remembered> {
        let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos() as i128;
        let files: Option<Vec<(String, Stamp)>> =
            files.into_iter().map(|f| Stamp::of(&dir.join(&f)).map(|s| (f, s))).collect();
        Some(Remembered { at, files: files? })
    }

    fn still_holds(&self, dir: &Path) -> bool {
        self.files.iter().all(|(f, s)| s.2 + RACY <= self.at && Stamp::of(&dir.join(f)) == Some(*s))
    }
}

/// Key -> the stamps of its manifest and outputs when it was last known good. Shared by the
/// scheduler's threads.
#[derive(Debug, Default)]
pub struct VerifyMemo {
    entries: Mutex<BTreeMap<StageKey, Remembered>>,
    dirty: AtomicBool,
}

impl VerifyMemo {
    fn get(&self, key: &StageKey) -> Option<Remembered> {
        self.entries.lock().ok()?.get(key).cloned()
    }

    fn set(&self, key: &StageKey, value: Option<Remembered>) {
        if let Ok(mut m) = self.entries.lock() {
            let changed = match value {
                Some(v) => {
                    m.insert(key.clone(), v);
                    true
                }
                None => m.remove(key).is_some(),
            };
            if changed {
                self.dirty.store(true, Ordering::Relaxed);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map(|m| m.len()).unwrap_or(0)
    }
}

impl Cache {
    fn verify_memo_path(&self, pipeline: &str) -> std::path::PathBuf {
        self.layout.last.join(format!("{}.verified.json", escape_segment(pipeline)))
    }

    /// The memo of a pipeline; empty when there is none or it cannot be read.
    pub fn read_verify_memo(&self, pipeline: &str) -> VerifyMemo {
        let entries = fs::read(self.verify_memo_path(pipeline))
            .ok()
            .and_then(|b| serde_json::from_slice::<BTreeMap<StageKey, Remembered>>(&b).ok())
            .unwrap_or_default();
        VerifyMemo { entries: Mutex::new(entries), dirty: AtomicBool::new(false) }
    }

    /// Save the memo atomically, if anything changed.
    pub fn write_verify_memo(&self, pipeline: &str, memo: &VerifyMemo) -> io::Result<()> {
        if !memo.dirty.load(Ordering::Relaxed) {
            return Ok(());
        }
        let path = self.verify_memo_path(pipeline);
        let tmp = self.layout.tmp.join(unique_name("verify-memo"));
        let bytes = {
            let m = memo.entries.lock().map_err(|_| io::Error::other("the memo's lock is poisoned"))?;
            serde_json::to_vec(&*m).map_err(io::Error::other)?
        };
        fs::File::create(&tmp).and_then(|mut f| f.write_all(&bytes)).at("cannot write", &tmp)?;
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(e).at("cannot replace", &path);
        }
        Ok(())
    }

    /// [`Cache::verify`], skipped when every file of the entry still has the stamp it had when
    /// it was last known good; a full verification that passes records the stamps.
    pub fn verify_remembered(&self, key: &StageKey, memo: &VerifyMemo) -> Result<(), CacheFault> {
        let dir = self.layout.object_dir(key);
        if memo.get(key).is_some_and(|r| r.still_holds(&dir)) {
            return Ok(());
        }
        // Stamps before the digest: a write during it moves them, and the next check re-reads.
        let before = self.read_manifest(key).ok().and_then(|m| Remembered::take(&dir, files_of(&m)));
        let result = verify_entry(&self.layout, key);
        memo.set(key, if result.is_ok() { before } else { None });
        result.map(|_| ())
    }

    /// Record an entry this process just committed (its digests were computed from the bytes on
    /// disk a moment ago), so that its readers need not digest it again.
    pub fn remember_committed(&self, manifest: &Manifest, memo: &VerifyMemo) {
        let dir = self.layout.object_dir(&manifest.key);
        memo.set(&manifest.key, Remembered::take(&dir, files_of(manifest)));
    }
}

/// The manifest and the plain-file outputs; an entry with a directory output is never
/// remembered (its stamps would not cover the files inside).
fn files_of(m: &Manifest) -> Vec<String> {
    std::iter::once(MANIFEST_FILE.to_string()).chain(m.outputs.iter().map(|o| o.file.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{commit_entry, open_cache};
    use super::*;

    #[test]
    fn a_remembered_entry_is_rechecked_once_a_file_changes() {
        let (_dir, cache) = open_cache();
        let (key, _) = commit_entry(&cache, "a", &[("table", "t.csv", b"1,2,3")]);
        let memo = cache.read_verify_memo("p");
        cache.verify_remembered(&key, &memo).unwrap();
        cache.write_verify_memo("p", &memo).unwrap();
        let memo = cache.read_verify_memo("p");
        assert_eq!(memo.len(), 1, "saved and read back");
        // Other bytes of another size: the stamp moves, so the digest is checked.
        let path = cache.object_dir(&key).join("t.csv");
        let mut perm = fs::metadata(&path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        fs::set_permissions(&path, perm).unwrap();
        fs::write(&path, b"1,2,34").unwrap();
        let fault = cache.verify_remembered(&key, &memo).unwrap_err();
        assert!(matches!(fault, CacheFault::SizeMismatch { .. }), "{fault:?}");
        assert_eq!(memo.len(), 0, "a failed entry is forgotten");
    }

    #[test]
    fn a_stamp_taken_right_after_a_change_is_not_trusted() {
        let (_dir, cache) = open_cache();
        let (key, _) = commit_entry(&cache, "a", &[("table", "t.csv", b"1,2,3")]);
        let dir = cache.object_dir(&key);
        let fresh = Remembered::take(&dir, vec!["t.csv".to_string()]).unwrap();
        assert!(!fresh.still_holds(&dir), "the file changed within RACY of the stamp");
        let old = Remembered { at: fresh.at + RACY, ..fresh };
        assert!(old.still_holds(&dir));
    }
}
