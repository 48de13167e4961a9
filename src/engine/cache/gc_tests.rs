use std::collections::BTreeSet;
use std::fs;
use std::time::Duration;

use super::super::fixture::{commit_entry, open_cache};
use super::super::{MANIFEST_FILE, Manifest};
use super::*;

fn pt(v: &str) -> Vec<(String, String)> {
    vec![("lr".to_string(), v.to_string())]
}

/// Two entries `a` (kept as a root) and `b`, each with a view, a last pointer and a lock file,
/// plus a leftover temp dir.
fn populated() -> (tempfile::TempDir, Cache, StageKey, StageKey) {
    let (dir, cache) = open_cache();
    let (a, _) = commit_entry(&cache, "a", &[("table", "t.csv", b"aaaa")]);
    let (b, _) = commit_entry(&cache, "b", &[("table", "t.csv", b"bbbbbbbb")]);
    for (key, v) in [(&a, "0.1"), (&b, "0.2")] {
        cache.update_view("p", "s", &pt(v), key, &["t.csv".into()]).unwrap();
        cache.set_last("p", "s", &pt(v), key).unwrap();
        drop(cache.lock_key(key).unwrap());
    }
    fs::create_dir_all(dir.path().join("tmp/crashed.1.1/out")).unwrap();
    fs::write(dir.path().join("tmp/crashed.1.1/out/x"), b"123").unwrap();
    (dir, cache, a, b)
}

fn count(dir: &std::path::Path) -> usize {
    fs::read_dir(dir).unwrap().count()
}

#[test]
fn dry_run_reports_and_changes_nothing() {
    let (dir, cache, a, b) = populated();
    let lock = cache.gc_lock().unwrap().unwrap();
    let opts = GcOptions { roots: Some(BTreeSet::from([a.clone()])), older_than: None, dry_run: true };
    let report = cache.gc(&lock, &opts).unwrap();
    assert!(report.dry_run);
    assert_eq!(report.removed.len(), 1);
    assert_eq!(report.removed[0].key, b);
    assert!(!report.removed[0].broken);
    let b_bytes = report.removed[0].bytes;
    assert!(b_bytes > 8, "outputs, log and manifest: {b_bytes}");
    assert_eq!(report.bytes_freed, b_bytes + 3);
    assert_eq!((report.tmp_removed, report.links_removed, report.lock_files_removed), (1, 1, 1));
    assert!(cache.has_entry(&a) && cache.has_entry(&b));
    assert_eq!(count(&dir.path().join("tmp")), 1);
    assert_eq!(count(&dir.path().join("locks")), 2);
    assert!(dir.path().join("views/p/s/lr=0.2/t.csv").exists());
    assert_eq!(cache.last("p", "s", &pt("0.2")), Some(b.clone()));
    // The real run removes exactly what the dry run listed.
    let real = cache.gc(&lock, &GcOptions { dry_run: false, ..opts }).unwrap();
    assert_eq!(GcReport { dry_run: true, ..real }, report);
}

#[test]
fn gc_removes_unreachable_and_keeps_roots() {
    let (dir, cache, a, b) = populated();
    let lock = cache.gc_lock().unwrap().unwrap();
    let opts = GcOptions { roots: Some(BTreeSet::from([a.clone()])), ..GcOptions::default() };
    let report = cache.gc(&lock, &opts).unwrap();
    assert_eq!(report.removed.iter().map(|r| &r.key).collect::<Vec<_>>(), [&b]);
    assert!(!cache.has_entry(&b) && !cache.object_dir(&b).exists());
    assert!(cache.verify(&a).is_ok());
    assert_eq!(count(&dir.path().join("tmp")), 0);
    assert_eq!(cache.list_objects().unwrap(), std::slice::from_ref(&a));
    // b's view is gone with its (now empty) directory; a's remains. b's last/ pointer stays so
    // that `explain` can say the previous result was removed.
    assert!(!dir.path().join("views/p/s/lr=0.2").exists());
    assert!(fs::symlink_metadata(dir.path().join("last/p/s/lr=0.2/@last")).is_ok());
    assert_eq!(fs::read_to_string(dir.path().join("views/p/s/lr=0.1/t.csv")).unwrap(), "aaaa");
    assert_eq!(cache.last("p", "s", &pt("0.1")), Some(a.clone()));
    assert_eq!(cache.last("p", "s", &pt("0.2")), Some(b.clone()));
    assert!(dir.path().join(format!("locks/{a}.lock")).exists());
    assert!(!dir.path().join(format!("locks/{b}.lock")).exists());
    // Nothing left to do.
    let again = cache.gc(&lock, &opts).unwrap();
    assert_eq!(again, GcReport::default());
}

#[test]
fn age_filter_combines_with_roots() {
    let (_dir, cache) = open_cache();
    let (old, m) = commit_entry(&cache, "old", &[("table", "t.csv", b"o")]);
    let (new, _) = commit_entry(&cache, "new", &[("table", "t.csv", b"n")]);
    let backdated = Manifest { created_unix: 1_000, ..m };
    fs::write(cache.object_dir(&old).join(MANIFEST_FILE), serde_json::to_vec_pretty(&backdated).unwrap()).unwrap();
    let lock = cache.gc_lock_blocking().unwrap();
    let day = Some(Duration::from_secs(86_400));
    let rooted = GcOptions { roots: Some(BTreeSet::from([old.clone()])), older_than: day, dry_run: false };
    assert!(cache.gc(&lock, &rooted).unwrap().removed.is_empty(), "old but reachable stays");
    let report = cache.gc(&lock, &GcOptions { older_than: day, ..GcOptions::default() }).unwrap();
    assert_eq!(report.removed.iter().map(|r| &r.key).collect::<Vec<_>>(), [&old]);
    assert!(cache.has_entry(&new));
}

#[test]
fn without_a_selection_only_garbage_goes() {
    let (dir, cache) = open_cache();
    let (good, _) = commit_entry(&cache, "a", &[("table", "t.csv", b"x")]);
    let broken = StageKey("0e".repeat(32));
    fs::create_dir_all(cache.object_dir(&broken)).unwrap();
    fs::write(cache.object_dir(&broken).join("t.csv"), b"partial").unwrap();
    let stray = dir.path().join("views/p/gone/t.csv");
    fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("../../../objects/missing/t.csv", &stray).unwrap();
    let lock = cache.gc_lock().unwrap().unwrap();
    let report = cache.gc(&lock, &GcOptions::default()).unwrap();
    assert_eq!(report.removed, [GcRemoved { key: broken.clone(), bytes: 7, broken: true }]);
    assert_eq!(report.links_removed, 1);
    assert!(!stray.exists() && !dir.path().join("views/p").exists());
    assert!(cache.verify(&good).is_ok());
    assert!(!cache.object_dir(&broken).exists());
}

#[test]
fn failed_logs_follow_the_object_rule() {
    let (dir, cache) = open_cache();
    let log = dir.path().join("l");
    fs::write(&log, b"err").unwrap();
    let (k1, k2) = (StageKey("a1".repeat(32)), StageKey("b2".repeat(32)));
    cache.save_failed_log(&k1, &log).unwrap();
    let kept = cache.save_failed_log(&k2, &log).unwrap();
    let lock = cache.gc_lock().unwrap().unwrap();
    let report = cache.gc(&lock, &GcOptions { roots: Some(BTreeSet::from([k2])), ..GcOptions::default() }).unwrap();
    assert_eq!((report.failed_logs_removed, report.bytes_freed), (1, 3));
    assert!(kept.exists() && !dir.path().join(format!("failed/{k1}.log")).exists());
}
