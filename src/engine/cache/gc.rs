//! Garbage collection: remove objects the caller no longer wants, and every leftover.
//!
//! Objects are selected by reachability (`roots`), by age (`older_than`, from the manifest's
//! `created_unix`), or both (unreachable AND old); with neither, no complete object is touched.
//! Always removed: broken objects (no or unparsable manifest), everything in `tmp/` and
//! `gathers/` (the caller holds the [`GcLock`], so no run is active), view links that dangle or point
//! into a removed object, and lock files of keys without an object. Failed logs follow the
//! object rule, with the file's mtime as its age.
//!
//! An object is removed by renaming it into `tmp/` and then deleting it, so a crash mid-gc
//! never leaves a half-deleted entry that looks complete. A dry run changes nothing and reports
//! exactly what a real run would remove.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Component, Path};
use std::time::{Duration, SystemTime};

use super::layout::{remove_any, tree_size};
use super::lock::{GcLock, open_lock_file};
use super::manifest::now_unix;
use super::verify::{CacheFault, read_manifest_at};
use super::{Cache, PathContext};
use crate::engine::hash::StageKey;

/// What gc removes; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct GcOptions {
    /// Keys to keep; every other object is removed (subject to `older_than`).
    pub roots: Option<BTreeSet<StageKey>>,
    /// Remove only objects committed longer ago than this.
    pub older_than: Option<Duration>,
    /// Report, change nothing.
    pub dry_run: bool,
}

/// One removed (or, in a dry run, removable) object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcRemoved {
    pub key: StageKey,
    pub bytes: u64,
    /// It had no readable manifest.
    pub broken: bool,
}

/// What gc removed, or would remove in a dry run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub dry_run: bool,
    /// Objects, sorted by key.
    pub removed: Vec<GcRemoved>,
    /// Bytes of objects, temp files and failed logs.
    pub bytes_freed: u64,
    pub tmp_removed: usize,
    pub links_removed: usize,
    pub lock_files_removed: usize,
    pub failed_logs_removed: usize,
    /// Leftovers that could not be removed, one sentence each.
    pub warnings: Vec<String>,
}

impl GcOptions {
    /// Whether an intact object (or failed log) with this key and age goes.
    fn selects(&self, key: &StageKey, age: Duration) -> bool {
        (self.roots.is_some() || self.older_than.is_some())
            && self.roots.as_ref().is_none_or(|roots| !roots.contains(key))
            && self.older_than.is_none_or(|limit| age > limit)
    }
}

impl Cache {
    /// Collect garbage. Takes the [`GcLock`] as proof that no run is active.
    pub fn gc(&self, _lock: &GcLock, opts: &GcOptions) -> io::Result<GcReport> {
        let mut report = GcReport { dry_run: opts.dry_run, ..GcReport::default() };
        self.gc_tmp(&mut report)?;
        // Gathered-input trees are rebuilt on demand; with no run active, all of them go.
        let gathers = self.layout.root.join("gathers");
        if fs::symlink_metadata(&gathers).is_ok() {
            report.bytes_freed += tree_size(&gathers).unwrap_or(0);
            if !opts.dry_run
                && let Err(e) = remove_any(&gathers)
            {
                report.warnings.push(format!("could not remove the gathered-input trees: {e}"));
            }
        }
        let removed = self.gc_objects(opts, &mut report)?;
        // Dangling view links go. last/ pointers stay: `explain` then says the previous result
        // was removed instead of "never ran". The view indexes describe links that may just
        // have been removed, so they are dropped and the next run re-checks every link.
        sweep_links(&self.layout.views, &removed, opts.dry_run, &mut report.links_removed)?;
        if !removed.is_empty() && !opts.dry_run {
            for entry in fs::read_dir(&self.layout.last).at("cannot list", &self.layout.last)? {
                let path = entry.at("cannot list", &self.layout.last)?.path();
                if path.to_string_lossy().ends_with(".index.json") {
                    remove_any(&path)?;
                }
            }
        }
        self.gc_locks(&removed, &mut report)?;
        self.gc_failed_logs(opts, &mut report)?;
        Ok(report)
    }

    /// Everything in `tmp/` is garbage (no run is active). One leftover that cannot be removed
    /// (a directory a command made unreadable, a full disk) is a warning: it must not stop
    /// every later gc from collecting the rest.
    fn gc_tmp(&self, report: &mut GcReport) -> io::Result<()> {
        let tmp = &self.layout.tmp;
        for entry in fs::read_dir(tmp).at("cannot list", tmp)? {
            let path = entry.at("cannot list", tmp)?.path();
            let bytes = tree_size(&path).unwrap_or(0);
            if !report.dry_run
                && let Err(e) = remove_any(&path)
            {
                report.warnings.push(format!("could not remove the leftover {}: {e}", path.display()));
                continue;
            }
            report.bytes_freed += bytes;
            report.tmp_removed += 1;
        }
        Ok(())
    }

    fn gc_objects(&self, opts: &GcOptions, report: &mut GcReport) -> io::Result<BTreeSet<StageKey>> {
        let now = now_unix();
        let mut removed = BTreeSet::new();
        for key in self.list_objects()? {
            let broken = match read_manifest_at(&self.layout, &key) {
                Ok(m) => {
                    if !opts.selects(&key, Duration::from_secs(now.saturating_sub(m.created_unix))) {
                        continue;
                    }
                    false
                }
                Err(CacheFault::Missing { .. } | CacheFault::BadManifest { .. }) => true,
                Err(CacheFault::Io { source, .. }) if source.kind() == io::ErrorKind::NotADirectory => true,
                // Unreadable for another reason (permissions?): not ours to judge.
                Err(_) => continue,
            };
            let dir = self.layout.object_dir(&key);
            let bytes = tree_size(&dir)?;
            if !report.dry_run {
                self.layout.remove_via_tmp(&dir)?;
            }
            report.bytes_freed += bytes;
            report.removed.push(GcRemoved { key: key.clone(), bytes, broken });
            removed.insert(key);
        }
        Ok(removed)
    }

    fn gc_locks(&self, removed: &BTreeSet<StageKey>, report: &mut GcReport) -> io::Result<()> {
        let locks = &self.layout.locks;
        for entry in fs::read_dir(locks).at("cannot list", locks)? {
            let path = entry.at("cannot list", locks)?.path();
            let Some(key) = key_from_name(&path, ".lock") else {
                continue;
            };
            let kept = fs::symlink_metadata(self.layout.object_dir(&key)).is_ok() && !removed.contains(&key);
            if kept {
                continue;
            }
            if !report.dry_run {
                // Never unlink a lock someone holds (a process outside the run-lock discipline).
                let file = open_lock_file(&path)?;
                if file.try_lock().is_err() {
                    continue;
                }
                fs::remove_file(&path).at("cannot delete", &path)?;
            }
            report.lock_files_removed += 1;
        }
        Ok(())
    }

    fn gc_failed_logs(&self, opts: &GcOptions, report: &mut GcReport) -> io::Result<()> {
        let failed = &self.layout.failed;
        let now = SystemTime::now();
        for entry in fs::read_dir(failed).at("cannot list", failed)? {
            let path = entry.at("cannot list", failed)?.path();
            let Some(key) = key_from_name(&path, ".log") else {
                continue;
            };
            let meta = fs::symlink_metadata(&path).at("cannot stat", &path)?;
            let age = meta.modified().ok().and_then(|t| now.duration_since(t).ok()).unwrap_or_default();
            if !opts.selects(&key, age) {
                continue;
            }
            if !report.dry_run {
                remove_any(&path)?;
            }
            report.bytes_freed += meta.len();
            report.failed_logs_removed += 1;
        }
        Ok(())
    }
}

/// `<key><suffix>` -> key.
fn key_from_name(path: &Path, suffix: &str) -> Option<StageKey> {
    let name = path.file_name()?.to_str()?.strip_suffix(suffix)?;
    StageKey::is_valid(name).then(|| StageKey(name.to_string()))
}

/// Remove dangling links under `dir` (and directories left empty). Returns whether `dir` is
/// now empty.
fn sweep_links(dir: &Path, removed: &BTreeSet<StageKey>, dry_run: bool, count: &mut usize) -> io::Result<bool> {
    let mut left = 0;
    for entry in fs::read_dir(dir).at("cannot list", dir)? {
        let entry = entry.at("cannot list", dir)?;
        let path = entry.path();
        let kind = entry.file_type().at("cannot stat", &path)?;
        if kind.is_symlink() && is_dangling(&path, removed)? {
            *count += 1;
            if !dry_run {
                fs::remove_file(&path).at("cannot delete", &path)?;
                continue;
            }
        } else if kind.is_dir() && sweep_links(&path, removed, dry_run, count)? && !dry_run {
            fs::remove_dir(&path).at("cannot delete", &path)?;
            continue;
        }
        left += 1;
    }
    Ok(left == 0)
}

/// The link points into a removed object, or does not resolve.
fn is_dangling(link: &Path, removed: &BTreeSet<StageKey>) -> io::Result<bool> {
    let target = fs::read_link(link).at("cannot read link", link)?;
    let parts: Vec<Component> = target.components().collect();
    let into_removed = parts.windows(2).any(|w| match (w[0], w[1]) {
        (Component::Normal(a), Component::Normal(k)) => {
            a == "objects" && k.to_str().is_some_and(|k| removed.contains(&StageKey(k.to_string())))
        }
        _ => false,
    });
    Ok(into_removed || fs::metadata(link).is_err())
}

#[cfg(test)]
#[path = "gc_tests.rs"]
mod tests;
