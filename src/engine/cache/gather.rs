//! Gathered inputs, kept between runs and updated in place.
//!
//! A stage that gathers (`needs: {runs: "s[*]"}`) reads a directory of `axis=value/.../<file>`
//! links, one per upstream point. Built afresh for every run, a gather over 10^4 points costs
//! 10^4 `mkdir`s and `symlink`s (and as many removals) even when one point changed. So the
//! tree of each (pipeline, instance, port) lives under
//!
//! ```text
//! R/gathers/<pipeline>/<instance>/<port>/                 the tree the stage reads
//! R/gathers/<pipeline>/<instance>/<port>.index.json       relative path -> link target
//! R/gathers/<pipeline>/<instance>/<port>.lock             held while a job uses the tree
//! ```
//!
//! and [`Cache::gather_tree`] changes only the links that differ from the index; its directories
//! are read-only between updates, and the scheduler drops the index of a tree that a stage
//! changed anyway (as root). The index is
//! removed before the tree is touched and written (atomically) after, so a crash mid-update
//! leaves no index and the next use rebuilds the tree from scratch. The lock keeps two runs of
//! different versions of the same pipeline (different keys, same instance) from changing a tree
//! the other is reading. Everything here can be rebuilt: gc removes all of `gathers/`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use super::layout::{make_dir_writable, remove_any, seal_dir, unique_name};
use super::lock::open_lock_file;
use super::segment::{escape_segment, point_segment};
use super::{Cache, PathContext};

/// A gather tree ready to read; holds its lock until dropped.
#[derive(Debug)]
pub struct GatherTree {
    pub dir: PathBuf,
    /// Every directory of the tree, the top one first (from the index: no listing needed).
    pub dirs: Vec<PathBuf>,
    _lock: File,
}

/// Relative path in the tree -> the link's target.
type GatherIndex = BTreeMap<String, PathBuf>;

impl Cache {
    /// Bring the tree of `port` of `instance` to exactly `points` (each an ordered list of
    /// (axis, rendered value) and the file the link points to), touching only what changed
    /// since its last use. `file` is the name of the link in each point's directory.
    pub fn gather_tree(
        &self,
        pipeline: &str,
        instance: &str,
        port: &str,
        file: &str,
        points: &[(Vec<(String, String)>, PathBuf)],
    ) -> io::Result<GatherTree> {
        let base = self.layout.root.join("gathers").join(&*escape_segment(pipeline)).join(&*escape_segment(instance));
        fs::create_dir_all(&base).at("cannot create", &base)?;
        let port = escape_segment(port);
        let lock_path = base.join(format!("{port}.lock"));
        let lock = open_lock_file(&lock_path)?;
        lock.lock().at("cannot lock", &lock_path)?;
        let dir = base.join(&*port);
        let index_path = base.join(format!("{port}.index.json"));

        let mut want = GatherIndex::new();
        for (point, target) in points {
            let mut rel: Vec<String> = point.iter().map(|(a, v)| point_segment(a, v)).collect();
            rel.push(file.to_string());
            want.insert(rel.join("/"), target.clone());
        }
        // The old index, only if its tree is there; otherwise start from an empty tree.
        let old: GatherIndex = match fs::read(&index_path).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
            Some(index) if dir.is_dir() => index,
            _ => {
                if fs::symlink_metadata(&dir).is_ok() {
                    remove_any(&dir)?;
                }
                GatherIndex::new()
            }
        };
        let dirs = tree_dirs(&dir, &want);
        if old == want && dir.is_dir() {
            return Ok(GatherTree { dir, dirs, _lock: lock });
        }
        // From here until the new index is written the tree may be half-updated.
        match fs::remove_file(&index_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).at("cannot remove", &index_path),
        }
        fs::create_dir_all(&dir).at("cannot create", &dir)?;
        // Only the directories on the way to a changed link get their write bit back (and lose
        // it again below): one edit of a 10^4-point gather touches a few, not 10^4.
        let changed: Vec<&String> = old
            .iter()
            .filter(|(rel, t)| want.get(*rel) != Some(*t))
            .chain(want.iter().filter(|(rel, t)| old.get(*rel) != Some(*t)))
            .map(|(rel, _)| rel)
            .collect();
        let touched: BTreeSet<PathBuf> = changed.iter().flat_map(|rel| ancestors(&dir, rel)).collect();
        for d in &touched {
            make_dir_writable(d);
        }
        for (rel, target) in &old {
            if want.get(rel) != Some(target) {
                let link = dir.join(rel);
                match fs::remove_file(&link) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).at("cannot remove", &link),
                }
                remove_empty_parents(&link, &dir);
            }
        }
        for (rel, target) in &want {
            if old.get(rel) != Some(target) {
                let link = dir.join(rel);
                if let Some(parent) = link.parent() {
                    fs::create_dir_all(parent).at("cannot create", parent)?;
                }
                symlink(target, &link).at("cannot create link", &link)?;
            }
        }
        // Read-only like the entries it points into (directories only: links have no mode).
        for d in &touched {
            seal_dir(d);
        }
        let tmp = self.layout.tmp.join(unique_name("gather-index"));
        let bytes = serde_json::to_vec(&want).map_err(io::Error::other)?;
        File::create(&tmp).and_then(|mut f| f.write_all(&bytes)).at("cannot write", &tmp)?;
        if let Err(e) = fs::rename(&tmp, &index_path) {
            let _ = fs::remove_file(&tmp);
            return Err(e).at("cannot replace", &index_path);
        }
        Ok(GatherTree { dir, dirs, _lock: lock })
    }
}

impl GatherTree {
    /// Forget the index of the tree at `dir` (a stage changed the tree): its next use rebuilds
    /// it from scratch.
    pub fn invalidate(dir: &Path) {
        if let (Some(base), Some(port)) = (dir.parent(), dir.file_name()) {
            let _ = fs::remove_file(base.join(format!("{}.index.json", port.to_string_lossy())));
        }
    }
}

/// The tree's directories: the top one and every ancestor of a link.
fn tree_dirs(top: &Path, index: &GatherIndex) -> Vec<PathBuf> {
    let set: BTreeSet<PathBuf> = index.keys().flat_map(|rel| ancestors(top, rel)).collect();
    std::iter::once(top.to_path_buf()).chain(set.into_iter().filter(|d| d != top)).collect()
}

/// `top` and the directories between it and the link at `rel`.
fn ancestors(top: &Path, rel: &str) -> Vec<PathBuf> {
    let mut out = vec![top.to_path_buf()];
    let parts: Vec<&str> = rel.split('/').collect();
    let mut d = top.to_path_buf();
    for part in &parts[..parts.len().saturating_sub(1)] {
        d.push(part);
        out.push(d.clone());
    }
    out
}

/// Remove the directories between `link` and `top` that are now empty.
fn remove_empty_parents(link: &Path, top: &Path) {
    let mut d = link.parent();
    while let Some(dir) = d {
        if dir == top || !dir.starts_with(top) || fs::remove_dir(dir).is_err() {
            break;
        }
        d = dir.parent();
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::open_cache;
    use super::*;

    fn tree(root: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        walk(root, root, &mut out);
        out.sort();
        out
    }

    fn walk(root: &Path, d: &Path, out: &mut Vec<(String, String)>) {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, fs::read_link(&p).unwrap().to_string_lossy().into_owned()));
            }
        }
    }

    fn pt(x: &str) -> Vec<(String, String)> {
        vec![("x".to_string(), x.to_string())]
    }

    #[test]
    fn the_tree_is_updated_in_place_and_rebuilt_without_its_index() {
        let (dir, cache) = open_cache();
        let t = |n: &str| dir.path().join("objects").join(n).join("t.txt");
        let points = vec![(pt("1"), t("a")), (pt("2"), t("b")), (pt("a/b"), t("c"))];
        let g = cache.gather_tree("p", "g", "runs", "t.txt", &points).unwrap();
        let want = vec![
            ("x=1/t.txt".to_string(), t("a").display().to_string()),
            ("x=2/t.txt".to_string(), t("b").display().to_string()),
            ("x=a%2Fb/t.txt".to_string(), t("c").display().to_string()),
        ];
        assert_eq!(tree(&g.dir), want);
        let gdir = g.dir.clone();
        drop(g);

        // One point changes, one leaves: the untouched link keeps its inode.
        let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::symlink_metadata(p).unwrap());
        let kept = ino(&gdir.join("x=1/t.txt"));
        let points = vec![(pt("1"), t("a")), (pt("2"), t("z"))];
        let g = cache.gather_tree("p", "g", "runs", "t.txt", &points).unwrap();
        assert_eq!(
            tree(&g.dir),
            vec![
                ("x=1/t.txt".to_string(), t("a").display().to_string()),
                ("x=2/t.txt".to_string(), t("z").display().to_string())
            ]
        );
        assert_eq!(ino(&g.dir.join("x=1/t.txt")), kept, "an unchanged link was recreated");
        assert!(!g.dir.join("x=a%2Fb").exists(), "the directory of a point that left is removed");
        drop(g);

        // A crash mid-update leaves no index: the next use rebuilds from scratch.
        fs::remove_file(gdir.parent().unwrap().join("runs.index.json")).unwrap();
        super::super::fixture::make_writable(&gdir);
        fs::write(gdir.join("x=1/junk"), "left by a crash").unwrap();
        let g = cache.gather_tree("p", "g", "runs", "t.txt", &points).unwrap();
        assert_eq!(tree(&g.dir).len(), 2, "{:?}", tree(&g.dir));
    }
}
