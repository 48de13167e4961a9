//! Human views: `R/views/<pipeline>/<stage>/<axis>=<value>/.../<file>`, relative symlinks to
//! `R/objects/<key>/<file>`.
//!
//! The hive-style directories let Parquet readers see every sweep point with its values as
//! columns, e.g. `pl.scan_parquet("cache/views/provers/search-eval/**/*.parquet",
//! hive_partitioning=True)`. Links are relative, so the cache can be moved or mounted
//! elsewhere. Names and values are escaped by [`escape_segment`](super::escape_segment); a
//! stage without sweep axes has its files directly in `<stage>/`.
//!
//! Updating a view is on the no-op rerun path: when the link is already right it costs one
//! `readlink` per file and writes nothing.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::Cache;
use super::layout::check_key;
use super::link::ensure_symlink;
use super::segment::{check_file_name, climb_to_root, instance_path};
use crate::engine::hash::StageKey;

impl Cache {
    /// The view directory of one stage instance (it may not exist).
    pub fn view_dir(&self, pipeline: &str, stage: &str, point: &[(String, String)]) -> PathBuf {
        instance_path(self.layout.views.clone(), pipeline, stage, point)
    }

    /// Make `<view dir>/<file>` link to `objects/<key>/<file>` for each file. `point` is the
    /// ordered list of (axis, rendered value). Returns whether any link was created or changed.
    pub fn update_view(
        &self,
        pipeline: &str,
        stage: &str,
        point: &[(String, String)],
        key: &StageKey,
        files: &[String],
    ) -> io::Result<bool> {
        check_key(key)?;
        let dir = self.view_dir(pipeline, stage, point);
        let mut target = format!("{}objects/{}/", climb_to_root(point.len()), key.0);
        let prefix = target.len();
        let mut changed = false;
        for file in files {
            check_file_name(file).map_err(|reason| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("view file name `{file}`: {reason}"))
            })?;
            target.truncate(prefix);
            target.push_str(file);
            changed |= ensure_symlink(&dir.join(file), Path::new(&target), &self.layout.tmp)?;
        }
        Ok(changed)
    }
}

impl Cache {
    /// Remove every link under `views/<pipeline>/` that is not in `live` (full paths, as
    /// [`Cache::view_dir`]`.join(file)` gives them), then the directories left empty. Sweep
    /// points and stages that left the pipeline thus leave its views, so a glob over a view
    /// never returns a point the pipeline no longer has. Returns the number of links removed.
    pub fn prune_views(&self, pipeline: &str, live: &HashSet<PathBuf>) -> io::Result<usize> {
        let root = instance_path(self.layout.views.clone(), pipeline, "", &[]);
        let root = root.parent().map(Path::to_path_buf).unwrap_or(root);
        match fs::symlink_metadata(&root) {
            Ok(m) if m.is_dir() => prune_dir(&root, live).map(|(n, _)| n),
            _ => Ok(0),
        }
    }
}

/// Returns (links removed, whether the directory is now empty).
fn prune_dir(dir: &Path, live: &HashSet<PathBuf>) -> io::Result<(usize, bool)> {
    let mut removed = 0;
    let mut left = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            let (n, empty) = prune_dir(&path, live)?;
            removed += n;
            if empty && fs::remove_dir(&path).is_ok() {
                continue;
            }
            left += 1;
        } else if !live.contains(&path) {
            fs::remove_file(&path)?;
            removed += 1;
        } else {
            left += 1;
        }
    }
    Ok((removed, left == 0))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::super::fixture::{commit_entry, open_cache};

    fn point(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, v)| (a.to_string(), v.to_string())).collect()
    }

    #[test]
    fn update_is_idempotent_and_follows_the_key() {
        let (dir, cache) = open_cache();
        let (k1, _) = commit_entry(&cache, "a", &[("table", "t.csv", b"first")]);
        let (k2, _) = commit_entry(&cache, "b", &[("table", "t.csv", b"second")]);
        let pt = point(&[("lr", "0.1"), ("seed", "3")]);
        let files = vec!["t.csv".to_string()];
        assert!(cache.update_view("p", "train", &pt, &k1, &files).unwrap());
        let link = dir.path().join("views/p/train/lr=0.1/seed=3/t.csv");
        assert_eq!(fs::read_to_string(&link).unwrap(), "first");
        assert!(fs::read_link(&link).unwrap().is_relative());
        assert!(!cache.update_view("p", "train", &pt, &k1, &files).unwrap());
        assert!(cache.update_view("p", "train", &pt, &k2, &files).unwrap());
        assert_eq!(fs::read_to_string(&link).unwrap(), "second");
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn links_resolve_after_the_cache_moves() {
        let (dir, cache) = open_cache();
        let (k, _) = commit_entry(&cache, "a", &[("table", "t.csv", b"x")]);
        cache.update_view("p", "s", &point(&[("a", "1")]), &k, &["t.csv".into()]).unwrap();
        let moved = dir.path().with_extension("moved");
        fs::rename(dir.path(), &moved).unwrap();
        let content = fs::read_to_string(moved.join("views/p/s/a=1/t.csv"));
        fs::rename(&moved, dir.path()).unwrap();
        assert_eq!(content.unwrap(), "x");
    }

    #[test]
    fn empty_point_puts_files_in_the_stage_dir() {
        let (dir, cache) = open_cache();
        let (k, _) = commit_entry(&cache, "a", &[("table", "t.csv", b"x")]);
        assert!(cache.update_view("p", "s", &[], &k, &["t.csv".into()]).unwrap());
        assert_eq!(fs::read_to_string(dir.path().join("views/p/s/t.csv")).unwrap(), "x");
    }

    #[test]
    fn prune_removes_points_that_left_the_pipeline() {
        let (dir, cache) = open_cache();
        let (k, _) = commit_entry(&cache, "a", &[("table", "t.csv", b"x")]);
        let files = vec!["t.csv".to_string()];
        for lr in ["0.1", "0.2"] {
            cache.update_view("p", "train", &point(&[("lr", lr)]), &k, &files).unwrap();
        }
        cache.update_view("p", "gone", &[], &k, &files).unwrap();
        let keep = cache.view_dir("p", "train", &point(&[("lr", "0.1")])).join("t.csv");
        let live: std::collections::HashSet<_> = [keep.clone()].into_iter().collect();
        assert_eq!(cache.prune_views("p", &live).unwrap(), 2);
        assert!(keep.exists());
        assert!(!dir.path().join("views/p/train/lr=0.2").exists());
        assert!(!dir.path().join("views/p/gone").exists());
        assert_eq!(cache.prune_views("p", &live).unwrap(), 0);
        assert_eq!(cache.prune_views("other", &live).unwrap(), 0);
    }

    #[test]
    fn hostile_values_stay_inside_the_view_dir() {
        let (dir, cache) = open_cache();
        let (k, _) = commit_entry(&cache, "a", &[("table", "t.csv", b"x")]);
        let pt = point(&[("a", "../../../../.."), ("b", "x/y"), ("..", "..")]);
        assert!(cache.update_view("..", "/etc", &pt, &k, &["t.csv".into()]).unwrap());
        let vdir = cache.view_dir("..", "/etc", &pt);
        let views = dir.path().join("views");
        assert!(vdir.starts_with(&views));
        assert_eq!(vdir.strip_prefix(&views).unwrap().components().count(), 5, "{}", vdir.display());
        assert_eq!(fs::read_to_string(vdir.join("t.csv")).unwrap(), "x");
        // Nothing was created outside views/ apart from the cache's own directories.
        let mut top: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        top.sort();
        assert_eq!(top, ["CACHEDIR.TAG", "failed", "last", "locks", "objects", "tmp", "views"]);
        assert!(cache.update_view("p", "s", &[], &k, &["../t.csv".into()]).is_err());
    }
}
