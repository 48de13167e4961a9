use std::fs;
use std::path::Path;
use std::sync::Arc;

use super::super::RowCounter;
use super::super::fixture::{commit_entry, fingerprint, meta, open_cache};
use super::*;

struct SevenRows;

impl RowCounter for SevenRows {
    fn rows(&self, _path: &Path) -> Option<u64> {
        Some(7)
    }
}

fn tmp_entries(cache: &Cache) -> usize {
    fs::read_dir(cache.root().join("tmp")).unwrap().count()
}

fn object_count(cache: &Cache) -> usize {
    fs::read_dir(cache.root().join("objects")).unwrap().count()
}

#[test]
fn commit_then_has_entry_and_verify() {
    let (_dir, cache) = open_cache();
    let cache = cache.with_row_counter(Arc::new(SevenRows));
    let fp = fingerprint("a", &[("summary", "s.csv"), ("table", "t.parquet")]);
    let key = fp.key();
    assert!(!cache.has_entry(&key));
    let mut pending = cache.begin(&key).unwrap();
    fs::write(pending.out_dir().join("t.parquet"), b"PAR1 pretend").unwrap();
    fs::write(pending.out_dir().join("s.csv"), b"a,b\n").unwrap();
    fs::write(pending.log_path(), b"training...\n").unwrap();
    fs::write(pending.scratch_dir().join("input.parquet"), b"gathered").unwrap();
    let committed = pending.commit(meta(fp.clone())).unwrap();
    assert!(matches!(committed.outcome, CommitOutcome::Stored));
    drop(pending);
    assert_eq!(tmp_entries(&cache), 0);
    assert!(cache.has_entry(&key));
    let m = cache.verify(&key).unwrap();
    assert_eq!(m, committed.manifest);
    assert_eq!((m.key.clone(), m.schema, m.fingerprint.clone()), (key.clone(), CACHE_SCHEMA_VERSION, fp));
    assert_eq!((m.stage.as_str(), m.instance.as_str(), m.seconds), ("train", "train[x]", 0.25));
    let table = m.output("table").unwrap();
    assert_eq!(table.blake3.0, blake3::hash(b"PAR1 pretend").to_hex().to_string());
    assert_eq!((table.bytes, table.rows), (12, Some(7)));
    assert_eq!(m.output("summary").unwrap().rows, None, "only .parquet files are counted");
    let obj = cache.object_dir(&key);
    assert_eq!(fs::read_to_string(obj.join(&m.log)).unwrap(), "training...\n");
    assert!(!obj.join("input.parquet").exists() && !obj.join("scratch").exists());
    assert!(!obj.join("manifest.json.tmp").exists());
}

#[test]
fn missing_output_is_an_error_and_leaves_nothing_in_objects() {
    let (_dir, cache) = open_cache();
    let fp = fingerprint("a", &[("table", "t.parquet"), ("fig", "f.png")]);
    let mut pending = cache.begin(&fp.key()).unwrap();
    fs::write(pending.out_dir().join("t.parquet"), b"x").unwrap();
    fs::write(pending.log_path(), b"oops").unwrap();
    let err = pending.commit(meta(fp.clone())).unwrap_err();
    assert!(
        matches!(&err, CommitError::MissingOutput { port, path } if port == "fig" && path.ends_with("f.png")),
        "{err:?}"
    );
    assert!(err.to_string().contains("f.png"), "{err}");
    assert_eq!(object_count(&cache), 0);
    assert!(!cache.has_entry(&fp.key()));
    // The log survives the failed commit, for save_failed_log.
    assert_eq!(fs::read_to_string(pending.log_path()).unwrap(), "oops");
    drop(pending);
    assert_eq!(tmp_entries(&cache), 0);
}

#[test]
fn symlink_output_is_refused() {
    let (dir, cache) = open_cache();
    let fp = fingerprint("a", &[("table", "t.parquet")]);
    let mut pending = cache.begin(&fp.key()).unwrap();
    fs::write(dir.path().join("outside"), b"secret").unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside"), pending.out_dir().join("t.parquet")).unwrap();
    let err = pending.commit(meta(fp)).unwrap_err();
    assert!(matches!(err, CommitError::SymlinkOutput { ref port, .. } if port == "table"), "{err:?}");
    assert_eq!(object_count(&cache), 0);
}

#[test]
fn directory_output_is_digested_and_verified() {
    let (_dir, cache) = open_cache();
    let fp = fingerprint("a", &[("ckpt", "model")]);
    let key = fp.key();
    let mut pending = cache.begin(&key).unwrap();
    let model = pending.out_dir().join("model");
    fs::create_dir_all(model.join("layers")).unwrap();
    fs::write(model.join("config.json"), b"{}").unwrap();
    fs::write(model.join("layers/0.bin"), b"0123").unwrap();
    let m = pending.commit(meta(fp)).unwrap().manifest;
    assert_eq!(m.output("ckpt").unwrap().bytes, 6);
    assert!(cache.verify(&key).is_ok());
    super::super::fixture::make_writable(&cache.object_dir(&key));
    fs::write(cache.object_dir(&key).join("model/layers/0.bin"), b"0124").unwrap();
    assert!(matches!(cache.verify(&key), Err(CacheFault::DigestMismatch { ref file, .. }) if file == "model"));
}

#[test]
fn commit_when_a_valid_entry_exists_keeps_the_old_one() {
    let (_dir, cache) = open_cache();
    let (key, first) = commit_entry(&cache, "a", &[("table", "t.csv", b"old")]);
    let fp = fingerprint("a", &[("table", "t.csv")]);
    let mut pending = cache.begin(&key).unwrap();
    fs::write(pending.out_dir().join("t.csv"), b"new").unwrap();
    let committed = pending.commit(meta(fp)).unwrap();
    assert!(matches!(committed.outcome, CommitOutcome::AlreadyPresent), "{:?}", committed.outcome);
    assert_eq!(committed.manifest, first);
    drop(pending);
    assert_eq!(fs::read_to_string(cache.object_dir(&key).join("t.csv")).unwrap(), "old");
    assert_eq!(cache.verify(&key).unwrap(), first);
    assert_eq!(tmp_entries(&cache), 0);
}

#[test]
fn commit_over_a_broken_entry_replaces_it() {
    let (_dir, cache) = open_cache();
    let fp = fingerprint("a", &[("table", "t.csv")]);
    let key = fp.key();
    for junk_manifest in [None, Some("{ truncated")] {
        let obj = cache.object_dir(&key);
        fs::create_dir_all(&obj).unwrap();
        fs::write(obj.join("junk"), b"half-written").unwrap();
        if let Some(text) = junk_manifest {
            fs::write(obj.join("manifest.json"), text).unwrap();
        }
        let mut pending = cache.begin(&key).unwrap();
        fs::write(pending.out_dir().join("t.csv"), b"fresh").unwrap();
        let committed = pending.commit(meta(fp.clone())).unwrap();
        assert!(matches!(committed.outcome, CommitOutcome::ReplacedBroken(_)), "{:?}", committed.outcome);
        drop(pending);
        assert!(cache.verify(&key).is_ok());
        assert!(!obj.join("junk").exists());
        assert_eq!(fs::read_to_string(obj.join("t.csv")).unwrap(), "fresh");
        assert_eq!(tmp_entries(&cache), 0);
        fs::remove_dir_all(&obj).unwrap();
    }
}

#[test]
fn dropping_an_uncommitted_pending_leaves_tmp_empty() {
    let (_dir, cache) = open_cache();
    let key = fingerprint("a", &[]).key();
    let pending = cache.begin(&key).unwrap();
    fs::write(pending.out_dir().join("partial"), b"x").unwrap();
    fs::write(pending.scratch_dir().join("s"), b"x").unwrap();
    assert_eq!(tmp_entries(&cache), 1);
    drop(pending);
    assert_eq!(tmp_entries(&cache), 0);
    assert_eq!(object_count(&cache), 0);
    let pending = cache.begin(&key).unwrap();
    pending.discard().unwrap();
    assert_eq!(tmp_entries(&cache), 0);
}

#[test]
fn wrong_key_reserved_names_and_double_commit_are_refused() {
    let (_dir, cache) = open_cache();
    let fp = fingerprint("a", &[("table", "t.csv")]);
    let mut pending = cache.begin(&fingerprint("b", &[]).key()).unwrap();
    assert!(matches!(pending.commit(meta(fp.clone())), Err(CommitError::KeyMismatch { .. })));

    for bad in ["manifest.json", "stage.log", "../t.csv", ""] {
        let fp = fingerprint("a", &[("table", bad)]);
        let mut pending = cache.begin(&fp.key()).unwrap();
        let err = pending.commit(meta(fp)).unwrap_err();
        assert!(matches!(err, CommitError::BadOutputName { .. }), "{bad:?}: {err:?}");
    }
    assert_eq!(object_count(&cache), 0);

    let mut pending = cache.begin(&fp.key()).unwrap();
    fs::write(pending.out_dir().join("t.csv"), b"x").unwrap();
    let mut m = meta(fp.clone());
    m.seconds = f64::NAN;
    assert_eq!(pending.commit(m).unwrap().manifest.seconds, 0.0);
    assert!(matches!(pending.commit(meta(fp.clone())), Err(CommitError::AlreadyCommitted { .. })));
    assert!(cache.verify(&fp.key()).is_ok(), "a NaN duration must not break the manifest");
    assert!(cache.begin(&StageKey("../escape".into())).is_err());
}

#[test]
fn racing_commits_of_one_key_store_it_once() {
    let (_dir, cache) = open_cache();
    let fp = fingerprint("race", &[("table", "t.csv")]);
    let key = fp.key();
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let (cache, fp) = (cache.clone(), fp.clone());
            std::thread::spawn(move || {
                let mut pending = cache.begin(&fp.key()).unwrap();
                fs::write(pending.out_dir().join("t.csv"), format!("writer {i}")).unwrap();
                pending.commit(meta(fp)).unwrap().outcome
            })
        })
        .collect();
    let outcomes: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let stored = outcomes.iter().filter(|o| matches!(o, CommitOutcome::Stored)).count();
    let present = outcomes.iter().filter(|o| matches!(o, CommitOutcome::AlreadyPresent)).count();
    assert_eq!((stored, present), (1, 5), "{outcomes:?}");
    assert!(cache.verify(&key).is_ok());
    assert_eq!(tmp_entries(&cache), 0);
}
