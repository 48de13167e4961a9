//! Locks between processes that share a cache.
//!
//! - A key lock (`R/locks/<key>.lock`, exclusive) is held while a key is computed, so two runs
//!   never compute the same key at once: the second waits, then finds the entry.
//! - The run lock (`R/gc.lock`, shared) is held by every process that writes to the cache, for
//!   its whole life; gc takes the same file exclusively, so gc and runs exclude each other
//!   while runs share freely.
//!
//! All are `flock`s through `std::fs::File::lock*`: the lock files stay in place, the lock is
//! released when the handle is dropped or the process dies, and two handles in one process
//! exclude each other like two processes. On NFS, Linux maps `flock` to POSIX byte-range locks,
//! which the server arbitrates.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use super::layout::check_key;
use super::{Cache, PathContext};
use crate::engine::hash::StageKey;

/// Exclusive lock on one key; released on drop.
#[derive(Debug)]
pub struct KeyLock {
    _file: File,
    key: StageKey,
}

impl KeyLock {
    pub fn key(&self) -> &StageKey {
        &self.key
    }
}

/// Shared lock held by a run for its duration; keeps gc out. Released on drop.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// Exclusive lock on the whole cache, required by [`Cache::gc`]. Released on drop.
#[derive(Debug)]
pub struct GcLock {
    _file: File,
}

pub(crate) fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).at("cannot open lock", path)
}

/// `Ok(None)` when someone else holds a conflicting lock.
fn try_locked(file: File, path: &Path, exclusive: bool) -> io::Result<Option<File>> {
    let attempt = if exclusive { file.try_lock() } else { file.try_lock_shared() };
    match attempt {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e).at("cannot lock", path),
    }
}

impl Cache {
    fn key_lock_file(&self, key: &StageKey) -> io::Result<(File, PathBuf)> {
        check_key(key)?;
        let path = self.layout.key_lock_path(key);
        Ok((open_lock_file(&path)?, path))
    }

    /// Wait for and take the lock on `key`.
    pub fn lock_key(&self, key: &StageKey) -> io::Result<KeyLock> {
        let (file, path) = self.key_lock_file(key)?;
        file.lock().at("cannot lock", &path)?;
        Ok(KeyLock { _file: file, key: key.clone() })
    }

    /// Take the lock on `key` if nobody holds it; `Ok(None)` if someone does.
    pub fn try_lock_key(&self, key: &StageKey) -> io::Result<Option<KeyLock>> {
        let (file, path) = self.key_lock_file(key)?;
        Ok(try_locked(file, &path, true)?.map(|file| KeyLock { _file: file, key: key.clone() }))
    }

    /// Wait until no gc runs, then hold the shared run lock.
    pub fn run_lock(&self) -> io::Result<RunLock> {
        let path = &self.layout.gc_lock;
        let file = open_lock_file(path)?;
        file.lock_shared().at("cannot lock", path)?;
        Ok(RunLock { _file: file })
    }

    /// The run lock if no gc runs now; `Ok(None)` if one does (so the caller can say so, then
    /// call [`Cache::run_lock`] to wait).
    pub fn try_run_lock(&self) -> io::Result<Option<RunLock>> {
        let path = &self.layout.gc_lock;
        Ok(try_locked(open_lock_file(path)?, path, false)?.map(|file| RunLock { _file: file }))
    }

    /// The gc lock if no run holds the cache; `Ok(None)` if one does.
    pub fn gc_lock(&self) -> io::Result<Option<GcLock>> {
        let path = &self.layout.gc_lock;
        Ok(try_locked(open_lock_file(path)?, path, true)?.map(|file| GcLock { _file: file }))
    }

    /// Wait until no run holds the cache, then take the gc lock.
    pub fn gc_lock_blocking(&self) -> io::Result<GcLock> {
        let path = &self.layout.gc_lock;
        let file = open_lock_file(path)?;
        file.lock().at("cannot lock", path)?;
        Ok(GcLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::thread;
    use std::time::Duration;

    use super::super::fixture::open_cache;
    use super::*;

    #[test]
    fn try_lock_key_fails_while_held_and_succeeds_after() {
        let (_dir, cache) = open_cache();
        let key = StageKey("ab".repeat(32));
        let other = StageKey("cd".repeat(32));
        let held = cache.lock_key(&key).unwrap();
        assert!(cache.try_lock_key(&key).unwrap().is_none());
        assert!(cache.try_lock_key(&other).unwrap().is_some());
        drop(held);
        assert_eq!(cache.try_lock_key(&key).unwrap().map(|l| l.key().clone()), Some(key));
        assert!(cache.lock_key(&StageKey("../../x".into())).is_err());
    }

    #[test]
    fn lock_key_waits_for_the_holder() {
        let (_dir, cache) = open_cache();
        let key = StageKey("ab".repeat(32));
        let held = cache.lock_key(&key).unwrap();
        let (tx, rx) = mpsc::channel();
        let waiter = {
            let (cache, key) = (cache.clone(), key.clone());
            thread::spawn(move || {
                let lock = cache.lock_key(&key);
                tx.send(lock.is_ok()).unwrap();
            })
        };
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err(), "took a held lock");
        drop(held);
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(true));
        waiter.join().unwrap();
    }

    #[test]
    fn runs_share_and_exclude_gc() {
        let (_dir, cache) = open_cache();
        let run1 = cache.run_lock().unwrap();
        let run2 = cache.try_run_lock().unwrap();
        assert!(run2.is_some(), "runs must share the lock");
        assert!(cache.gc_lock().unwrap().is_none());
        drop(run1);
        assert!(cache.gc_lock().unwrap().is_none());
        drop(run2);
        let gc = cache.gc_lock().unwrap();
        assert!(gc.is_some());
        assert!(cache.try_run_lock().unwrap().is_none());
        drop(gc);
        assert!(cache.try_run_lock().unwrap().is_some());
    }
}
