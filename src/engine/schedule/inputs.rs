//! Inputs are read-only: a stage must not change the cache entries it reads.
//!
//! Commands get paths straight into `objects/` (no copy), so a script that opens its input
//! for writing would silently rewrite an upstream entry. Committed entries are sealed
//! read-only, but root — CI, containers — ignores file modes. So before a job runs, the
//! scheduler takes a [`Snapshot`] of every input file (size, mtime, ctime, inode: one `stat`
//! each, no reading); after it, files whose stamp changed are re-digested through
//! [`Cache::verify`]. A changed entry fails the job with an error naming the input and is
//! removed, so it is recomputed, never served.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::engine::cache::{Cache, GatherTree, VerifyMemo};
use crate::engine::dag::{Binding, Dag};
use crate::engine::hash::StageKey;

/// What a `stat` says about one file, enough to notice a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let m = fs::symlink_metadata(path).ok()?;
        Some(Stamp {
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            ino: m.ino(),
        })
    }
}

/// The stamps of every file under a path (`None`: it could not be stat'ed).
type Stamps = Vec<(PathBuf, Option<Stamp>)>;

/// One upstream output file a job reads.
#[derive(Debug)]
struct Watched {
    port: String,
    upstream: usize,
    key: StageKey,
    /// The output's path inside `objects/<key>` (a file, or a directory walked in full).
    path: PathBuf,
    stamps: Stamps,
}

/// The stamps of every input file of one job, taken before it runs.
#[derive(Debug)]
pub struct Snapshot {
    watched: Vec<Watched>,
    /// Gathered-input trees (their directories and links): a stage that adds, removes or
    /// replaces anything there would leave a tree that no longer matches its index.
    trees: Vec<(PathBuf, Stamps)>,
}

/// An input the job changed.
#[derive(Debug)]
pub struct Changed {
    pub port: String,
    pub upstream: String,
    pub file: PathBuf,
    /// Whether the damaged entry was removed (so the next run recomputes it).
    pub removed: bool,
}

impl Snapshot {
    pub fn take(dag: &Dag, i: usize, cache: &Cache, trees: &[GatherTree]) -> Snapshot {
        let mut watched = Vec::new();
        for (port, b) in &dag.instances[i].inputs {
            let mut add = |up: usize, file: &str| {
                let key = dag.instances[up].key.clone();
                let path = cache.object_dir(&key).join(file);
                let stamps = stamp_tree(&path);
                watched.push(Watched { port: port.clone(), upstream: up, key, path, stamps });
            };
            match b {
                Binding::Single { instance, file } => add(*instance, file),
                Binding::Gather { file, points } => {
                    for (_, up) in points {
                        add(*up, file);
                    }
                }
            }
        }
        let trees = trees.iter().map(|t| (t.dir.clone(), stamp_dirs(&t.dirs))).collect();
        Snapshot { watched, trees }
    }

    /// The first gathered-input tree the job changed, if any. Its index is dropped, so the next
    /// use rebuilds it from scratch.
    pub fn check_trees(&self) -> Option<PathBuf> {
        let changed = self.trees.iter().find(|(_, stamps)| {
            let dirs: Vec<PathBuf> = stamps.iter().map(|(d, _)| d.clone()).collect();
            stamp_dirs(&dirs) != *stamps
        })?;
        GatherTree::invalidate(&changed.0);
        Some(changed.0.clone())
    }

    /// Compare with the files now; re-digest entries whose stamps moved, and remove the ones
    /// that no longer verify. Returns the first changed input, if any.
    pub fn check(&self, dag: &Dag, cache: &Cache, memo: &VerifyMemo) -> Option<Changed> {
        let mut checked: BTreeSet<&StageKey> = BTreeSet::new();
        let mut first = None;
        for w in &self.watched {
            if stamp_tree(&w.path) == w.stamps || !checked.insert(&w.key) {
                continue;
            }
            // A stamp also moves on chmod or a rewrite with the same bytes: only a failed
            // verification counts as a change. A damaged entry is removed under its key's lock
            // (another process may have replaced it with a good one meanwhile).
            let damaged = match super::verify_under_lock(cache, &w.key, memo) {
                Err(super::EntryProblem::Broken(_)) => Some(!cache.has_entry(&w.key)),
                Ok(()) | Err(super::EntryProblem::Unreadable(_)) => None,
            };
            if let (Some(removed), None) = (damaged, &first) {
                first = Some(Changed {
                    port: w.port.clone(),
                    upstream: dag.instances[w.upstream].name.clone(),
                    file: w.path.clone(),
                    removed,
                });
            }
        }
        first
    }
}

impl Changed {
    pub fn message(&self) -> String {
        let file = self.file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let fate = if self.removed {
            format!("the damaged entry of `{}` was removed and will be recomputed", self.upstream)
        } else {
            format!("the damaged entry of `{}` could not be removed; run `pipeline verify --fix`", self.upstream)
        };
        format!(
            "the stage changed its input `{}` (`{file}`, an output of `{}`); inputs are read-only: write to ${{outputs.<port>}} (or a copy) instead. Its result was not saved, and {fate}",
            self.port, self.upstream
        )
    }
}

/// Stamps of the directories of a gathered-input tree: adding, removing or replacing anything
/// in a directory moves its mtime and ctime, so the links themselves need no `stat`.
fn stamp_dirs(dirs: &[PathBuf]) -> Stamps {
    dirs.iter().map(|d| (d.clone(), Stamp::of(d))).collect()
}

/// Stamps of a file, or of every file under a directory (sorted, links not followed).
fn stamp_tree(path: &Path) -> Stamps {
    let mut out = Vec::new();
    walk(path, &mut out);
    out
}

fn walk(path: &Path, out: &mut Stamps) {
    let stamp = Stamp::of(path);
    out.push((path.to_path_buf(), stamp));
    if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
        && let Ok(entries) = fs::read_dir(path)
    {
        let mut children: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        children.sort();
        for c in children {
            walk(&c, out);
        }
    }
}
