//! The content-addressed cache: on-disk layout, atomic commit, manifests, locks, views, gc.
//!
//! # Layout
//!
//! Everything lives under one root `R` (created by [`Cache::open`], which is idempotent):
//!
//! ```text
//! R/CACHEDIR.TAG                 tells backup tools to skip the cache
//! R/objects/<key>/               one stage execution: its output files, stage.log, manifest.json
//! R/tmp/<key>.<pid>.<n>/         a commit in progress: out/ (becomes the object) and scratch/
//! R/locks/<key>.lock             per-key lock: one process computes a key at a time
//! R/gc.lock                      shared by every run, exclusive for gc
//! R/views/<pipeline>/<stage>/<axis>=<value>/.../<file>   relative symlinks into objects/
//! R/last/<pipeline>/<stage>/<axis>=<value>/.../@last     symlink to objects/<key>
//! R/failed/<key>.log             the log of a failed execution
//! R/gathers/<pipeline>/<instance>/<port>/   gathered inputs, updated in place (see gather.rs)
//! ```
//!
//! An entry is complete iff `objects/<key>/manifest.json` exists and parses; [`Cache::has_entry`]
//! is the one-stat fast check, [`Cache::verify`] also re-digests every output. Path segments
//! taken from names and sweep values are escaped by [`escape_segment`], so no view or pointer
//! can leave its directory.
//!
//! # Commit protocol
//!
//! 1. [`Cache::begin`] makes `R/tmp/<key>.<pid>.<n>/` with `out/` and `scratch/`; the stage
//!    writes its declared outputs and `stage.log` into `out/`.
//! 2. [`Pending::commit`] digests every declared output (refusing missing outputs and links),
//!    writes `out/manifest.json.tmp`, renames it to `manifest.json`, makes all of it durable
//!    with one `syncfs`, seals it read-only and renames `out/` to `R/objects/<key>`. The
//!    scheduler fsyncs `objects/` once a wave ([`Cache::sync_objects`]): a power loss before
//!    that can drop a whole entry (it is recomputed), never leave half of one.
//! 3. If `objects/<key>` already exists and verifies, the old entry wins and ours is dropped; if
//!    it is broken, it is renamed into our temp dir and ours takes its place.
//! 4. Dropping the [`Pending`] removes its temp dir, committed or not.
//!
//! The manifest is written last and the entry appears in `objects/` by one rename, so a crash
//! at any point leaves either nothing or a complete entry there; leftovers stay in `tmp/` until
//! gc. Removal (quarantine, gc) is the same in reverse: rename into `tmp/` first, then delete.
//!
//! # Concurrency
//!
//! Every process that writes to the cache holds [`Cache::run_lock`] (shared) for its lifetime
//! and [`Cache::lock_key`] while it computes a key; gc holds the exclusive [`GcLock`], so while
//! it runs nobody else writes and everything in `tmp/` is garbage. Locks are `flock`s on files
//! that stay in place; the kernel releases them when the process dies.
//!
//! Nothing here prints: faults come back as values ([`CacheFault`], [`CommitOutcome`]) and the
//! caller decides how to warn. A broken entry is a miss, never a failed run.

mod commit;
mod digest;
mod gather;
mod gc;
mod last;
mod layout;
mod link;
mod lock;
mod manifest;
mod segment;
mod verify;
mod verify_memo;
mod view_index;
mod views;

#[cfg(test)]
mod fixture;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use commit::{CommitError, CommitMeta, CommitOutcome, Committed, Pending};
pub use gather::GatherTree;
pub use gc::{GcOptions, GcRemoved, GcReport};
pub use lock::{GcLock, KeyLock, RunLock};
pub use manifest::{ENGINE_VERSION, MANIFEST_FILE, Manifest, NoRows, OutputRecord, RowCounter, STAGE_LOG};
pub use segment::{escape_segment, point_segment};
pub use verify::CacheFault;
pub use verify_memo::VerifyMemo;
pub use view_index::{ViewEntry, ViewIndex};

use crate::engine::hash::StageKey;
use layout::{Layout, check_key};

/// A handle on a cache root. Cheap to clone; every method takes `&self`.
#[derive(Clone)]
pub struct Cache {
    layout: Arc<Layout>,
    rows: Arc<dyn RowCounter>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache").field("root", &self.layout.root).finish_non_exhaustive()
    }
}

impl Cache {
    /// Open (and create if needed) the cache at `root`. Idempotent; counts no rows until
    /// [`Cache::with_row_counter`] supplies a counter.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Cache> {
        let layout = Layout::new(root.into());
        layout.create()?;
        Ok(Cache { layout: Arc::new(layout), rows: Arc::new(NoRows) })
    }

    /// A handle on an existing cache, creating nothing: `None` if `root` holds no cache (no
    /// `objects/` directory). For read-only commands, which must not leave an empty cache
    /// behind when run from the wrong directory or with a mistyped `--cache`.
    pub fn open_existing(root: impl Into<PathBuf>) -> Option<Cache> {
        let cache = Cache::at(root);
        cache.exists().then_some(cache)
    }

    /// A handle on `root` that creates nothing, whether or not a cache is there (every lookup
    /// in a missing cache is a miss).
    pub fn at(root: impl Into<PathBuf>) -> Cache {
        Cache { layout: Arc::new(Layout::new(root.into())), rows: Arc::new(NoRows) }
    }

    /// Whether a cache is at the root (its `objects/` directory exists).
    pub fn exists(&self) -> bool {
        fs::metadata(&self.layout.objects).is_ok_and(|m| m.is_dir())
    }

    /// Use `rows` to count the rows of `.parquet` outputs at commit time.
    pub fn with_row_counter(mut self, rows: Arc<dyn RowCounter>) -> Cache {
        self.rows = rows;
        self
    }

    /// The cache root, as given to [`Cache::open`].
    pub fn root(&self) -> &Path {
        &self.layout.root
    }

    /// `R/objects/<key>`, whether or not it exists.
    pub fn object_dir(&self, key: &StageKey) -> PathBuf {
        self.layout.object_dir(key)
    }

    /// True if `objects/<key>/manifest.json` exists: one `stat`, for the no-op rerun hot path.
    /// It does not parse the manifest or check the outputs; [`Cache::verify`] does.
    pub fn has_entry(&self, key: &StageKey) -> bool {
        StageKey::is_valid(&key.0) && fs::metadata(self.layout.manifest_path(key)).is_ok()
    }

    /// Every key with a directory in `objects/`, sorted; names that are not keys are ignored.
    /// Includes broken entries (use [`Cache::verify`] to tell).
    pub fn list_objects(&self) -> io::Result<Vec<StageKey>> {
        let dir = &self.layout.objects;
        let mut keys = Vec::new();
        for entry in fs::read_dir(dir).at("cannot list", dir)? {
            let entry = entry.at("cannot list", dir)?;
            if let Some(name) = entry.file_name().to_str()
                && StageKey::is_valid(name)
            {
                keys.push(StageKey(name.to_string()));
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// `R/failed/<key>.log`: where the log of a failed run of `key` is kept.
    pub fn failed_log_path(&self, key: &StageKey) -> PathBuf {
        self.layout.failed_log_path(key)
    }

    /// Move a failed stage's log to `R/failed/<key>.log` and return that path. The log is in
    /// the entry's temp dir, on the cache's filesystem, so a rename moves it without writing a
    /// byte: the log survives a full disk (the usual reason a stage fails late). Logs outside
    /// `tmp/` are copied into `tmp/` and renamed.
    pub fn save_failed_log(&self, key: &StageKey, log: &Path) -> io::Result<PathBuf> {
        check_key(key)?;
        let dest = self.layout.failed_log_path(key);
        if log.starts_with(&self.layout.tmp)
            && fs::symlink_metadata(log).is_ok_and(|m| m.is_file())
            && fs::rename(log, &dest).is_ok()
        {
            return Ok(dest);
        }
        let tmp = self.layout.unique_tmp(&format!("{key}.log"));
        if let Err(e) = fs::copy(log, &tmp) {
            let _ = fs::remove_file(&tmp);
            return Err(e).at("cannot copy the stage log", log);
        }
        if let Err(e) = fs::rename(&tmp, &dest) {
            let _ = fs::remove_file(&tmp);
            return Err(e).at("cannot save the failed log to", &dest);
        }
        Ok(dest)
    }
}

/// Adds the operation and the path to an I/O error, keeping its kind.
pub(crate) trait PathContext<T> {
    fn at(self, what: &str, path: &Path) -> io::Result<T>;
}

impl<T> PathContext<T> for io::Result<T> {
    fn at(self, what: &str, path: &Path) -> io::Result<T> {
        self.map_err(|e| io::Error::new(e.kind(), format!("{what} {}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::{commit_entry, open_cache};
    use super::*;

    #[test]
    fn open_creates_layout_and_is_idempotent() {
        let (dir, cache) = open_cache();
        let tag = fs::read_to_string(dir.path().join("CACHEDIR.TAG")).unwrap();
        assert!(tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55"));
        for sub in ["objects", "tmp", "locks", "views", "last", "failed"] {
            assert!(dir.path().join(sub).is_dir(), "{sub} missing");
        }
        let (key, _) = commit_entry(&cache, "a", &[("table", "t.csv", b"x")]);
        let again = Cache::open(dir.path()).unwrap();
        assert!(again.has_entry(&key));
        assert_eq!(fs::read_to_string(dir.path().join("CACHEDIR.TAG")).unwrap(), tag);
    }

    #[test]
    fn list_objects_ignores_names_that_are_not_keys() {
        let (dir, cache) = open_cache();
        let (k1, _) = commit_entry(&cache, "a", &[("table", "t.csv", b"x")]);
        let (k2, _) = commit_entry(&cache, "b", &[("table", "t.csv", b"y")]);
        fs::create_dir(dir.path().join("objects/not-a-key")).unwrap();
        fs::create_dir(dir.path().join("objects").join("AB".repeat(32))).unwrap();
        let mut want = vec![k1, k2];
        want.sort();
        assert_eq!(cache.list_objects().unwrap(), want);
    }

    #[test]
    fn has_entry_rejects_invalid_keys_without_escaping() {
        let (dir, cache) = open_cache();
        fs::write(dir.path().join("manifest.json"), "{}").unwrap();
        assert!(!cache.has_entry(&StageKey("..".into())));
        assert!(!cache.has_entry(&StageKey("ab".repeat(32))));
    }

    #[test]
    fn failed_log_is_saved() {
        let (dir, cache) = open_cache();
        let log = dir.path().join("some.log");
        fs::write(&log, "boom\n").unwrap();
        let key = StageKey("cd".repeat(32));
        let saved = cache.save_failed_log(&key, &log).unwrap();
        assert_eq!(saved, dir.path().join("failed").join(format!("{key}.log")));
        assert_eq!(fs::read_to_string(&saved).unwrap(), "boom\n");
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        let err = cache.save_failed_log(&key, &dir.path().join("absent.log")).unwrap_err();
        assert!(err.to_string().contains("absent.log"), "{err}");
        // A log in a commit's temp dir is moved, not copied: no new bytes on a full disk.
        let pending = cache.begin(&key).unwrap();
        fs::write(pending.log_path(), "late failure\n").unwrap();
        let saved = cache.save_failed_log(&key, &pending.log_path()).unwrap();
        assert_eq!(fs::read_to_string(&saved).unwrap(), "late failure\n");
        assert!(!pending.log_path().exists(), "moved");
    }
}
