//! The view index: `R/last/<pipeline>.index.json`, the key each instance's view and last/
//! pointer were last set to, keyed by the instance's path below `views/<pipeline>/`.
//!
//! It turns a no-op rerun of 10^4 instances from ~3 `readlink`s per instance plus a walk of the
//! view tree into one file read: an instance whose key equals its index entry is skipped, and
//! only entries that left the pipeline need their links removed. The index is a cache of the
//! links, never the truth: a missing or unreadable index means "check every link", and it is
//! replaced atomically (temp file + rename), so a crash leaves the old or the new one.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Cache;
use super::PathContext;
use super::layout::unique_name;
use super::segment::escape_segment;
use crate::engine::hash::StageKey;

/// What the views and last/ pointer of one instance were set to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewEntry {
    pub key: StageKey,
    pub stage: String,
    pub point: Vec<(String, String)>,
    pub files: Vec<String>,
}

/// Instance name (`train[lr=0.1]`) -> its view entry.
pub type ViewIndex = BTreeMap<String, ViewEntry>;

impl Cache {
    fn view_index_path(&self, pipeline: &str) -> PathBuf {
        self.layout.last.join(format!("{}.index.json", escape_segment(pipeline)))
    }

    /// The index of a pipeline's views; `None` when there is none or it cannot be read.
    pub fn read_view_index(&self, pipeline: &str) -> Option<ViewIndex> {
        let bytes = fs::read(self.view_index_path(pipeline)).ok()?;
        let index: ViewIndex = serde_json::from_slice(&bytes).ok()?;
        index.values().all(|e| StageKey::is_valid(&e.key.0)).then_some(index)
    }

    /// Replace the index atomically.
    pub fn write_view_index(&self, pipeline: &str, index: &ViewIndex) -> io::Result<()> {
        let path = self.view_index_path(pipeline);
        let tmp = self.layout.tmp.join(unique_name("view-index"));
        let bytes = serde_json::to_vec(index).map_err(io::Error::other)?;
        let mut f = fs::File::create(&tmp).at("cannot create", &tmp)?;
        f.write_all(&bytes).at("cannot write", &tmp)?;
        drop(f);
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(e).at("cannot replace", &path);
        }
        Ok(())
    }

    /// Remove the view links of one instance (`files` in its view directory) and the
    /// directories that leaves empty, up to `views/<pipeline>/`.
    pub fn remove_view(
        &self,
        pipeline: &str,
        stage: &str,
        point: &[(String, String)],
        files: &[String],
    ) -> io::Result<()> {
        let dir = self.view_dir(pipeline, stage, point);
        for f in files {
            match fs::remove_file(dir.join(f)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).at("cannot remove", &dir.join(f)),
            }
        }
        let top = self.layout.views.join(&*escape_segment(pipeline));
        let mut d = dir.as_path();
        while d.starts_with(&top) && d != top {
            if fs::remove_dir(d).is_err() {
                break;
            }
            match d.parent() {
                Some(p) => d = p,
                None => break,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{commit_entry, open_cache};
    use super::*;

    #[test]
    fn index_roundtrip_and_garbage_reads_as_none() {
        let (dir, cache) = open_cache();
        assert!(cache.read_view_index("p").is_none());
        let mut index = ViewIndex::new();
        let entry = ViewEntry {
            key: StageKey("ab".repeat(32)),
            stage: "train".into(),
            point: vec![("lr".into(), "0.1".into())],
            files: vec!["t.csv".into()],
        };
        index.insert("train[lr=0.1]".into(), entry);
        cache.write_view_index("p", &index).unwrap();
        assert_eq!(cache.read_view_index("p"), Some(index));
        fs::write(dir.path().join("last/p.index.json"), b"{not json").unwrap();
        assert!(cache.read_view_index("p").is_none());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn remove_view_removes_links_and_empty_dirs_only() {
        let (dir, cache) = open_cache();
        let (k, _) = commit_entry(&cache, "a", &[("table", "t.csv", b"x")]);
        let files = vec!["t.csv".to_string()];
        let p1 = vec![("lr".to_string(), "0.1".to_string())];
        let p2 = vec![("lr".to_string(), "0.2".to_string())];
        cache.update_view("p", "train", &p1, &k, &files).unwrap();
        cache.update_view("p", "train", &p2, &k, &files).unwrap();
        cache.remove_view("p", "train", &p1, &files).unwrap();
        assert!(!dir.path().join("views/p/train/lr=0.1").exists());
        assert!(dir.path().join("views/p/train/lr=0.2/t.csv").exists());
        cache.remove_view("p", "train", &p2, &files).unwrap();
        assert!(!dir.path().join("views/p/train").exists());
        assert!(dir.path().join("views").exists());
    }
}
