//! Last pointers: which key each stage instance had when it last ran, for `explain`.
//!
//! `R/last/<pipeline>/<stage>/<axis>=<value>/.../@last` is a relative symlink to
//! `R/objects/<key>`: reading it is one `readlink`, writing happens only when the key changed
//! (atomically, see `link.rs`). The key is read back from the link text's last component and
//! validated, so a damaged pointer reads as "no previous run" rather than as a bad key. The
//! pointer survives gc of its object only until gc removes dangling links.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::Cache;
use super::layout::check_key;
use super::link::ensure_symlink;
use super::segment::{climb_to_root, instance_path};
use crate::engine::hash::StageKey;

const LAST: &str = "@last";

impl Cache {
    fn last_link(&self, pipeline: &str, stage: &str, point: &[(String, String)]) -> PathBuf {
        let mut p = instance_path(self.layout.last.clone(), pipeline, stage, point);
        p.push(LAST);
        p
    }

    /// The key this instance had when [`Cache::set_last`] was last called, if any.
    pub fn last(&self, pipeline: &str, stage: &str, point: &[(String, String)]) -> Option<StageKey> {
        let target = fs::read_link(self.last_link(pipeline, stage, point)).ok()?;
        let name = target.file_name()?.to_str()?;
        StageKey::is_valid(name).then(|| StageKey(name.to_string()))
    }

    /// Record `key` as this instance's latest. Returns whether the pointer changed.
    pub fn set_last(
        &self,
        pipeline: &str,
        stage: &str,
        point: &[(String, String)],
        key: &StageKey,
    ) -> io::Result<bool> {
        check_key(key)?;
        let target = format!("{}objects/{}", climb_to_root(point.len()), key.0);
        ensure_symlink(&self.last_link(pipeline, stage, point), Path::new(&target), &self.layout.tmp)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{commit_entry, open_cache};
    use super::*;

    #[test]
    fn set_last_roundtrips_and_writes_only_on_change() {
        let (dir, cache) = open_cache();
        let pt = vec![("lr".to_string(), "0.1".to_string())];
        assert_eq!(cache.last("p", "train", &pt), None);
        let (k1, _) = commit_entry(&cache, "a", &[("table", "t.csv", b"x")]);
        let k2 = StageKey("ef".repeat(32));
        assert!(cache.set_last("p", "train", &pt, &k1).unwrap());
        assert_eq!(cache.last("p", "train", &pt), Some(k1.clone()));
        assert!(!cache.set_last("p", "train", &pt, &k1).unwrap());
        // The pointer resolves to the object directory.
        let link = dir.path().join("last/p/train/lr=0.1/@last");
        assert!(link.join("manifest.json").is_file());
        assert!(cache.set_last("p", "train", &pt, &k2).unwrap());
        assert_eq!(cache.last("p", "train", &pt), Some(k2));
        assert_eq!(cache.last("p", "train", &[]), None);
    }

    #[test]
    fn damaged_pointer_reads_as_none() {
        let (dir, cache) = open_cache();
        let link = dir.path().join("last/p/s/@last");
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink("../../../objects/not-a-key", &link).unwrap();
        assert_eq!(cache.last("p", "s", &[]), None);
        assert!(cache.set_last("p", "s", &[], &StageKey("12".repeat(32))).unwrap());
        assert_eq!(cache.last("p", "s", &[]), Some(StageKey("12".repeat(32))));
        assert!(cache.set_last("p", "s", &[], &StageKey("bad".into())).is_err());
    }
}
