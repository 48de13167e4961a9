//! Where everything lives under a cache root, and the moves every writer shares: unique temp
//! names, moving an entry aside into `tmp/` before deleting it, fsync of a directory.
//!
//! Every temp name has the form `<stem>.<pid>.<n>` with `n` from a process-wide counter, so
//! two threads or two processes never pick the same one. Everything in `tmp/` belongs to a
//! live process or is garbage that gc removes.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::PathContext;
use super::manifest::MANIFEST_FILE;
use crate::engine::hash::StageKey;

const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by pav-pipeline.\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The paths of a cache root.
#[derive(Debug)]
pub(crate) struct Layout {
    pub root: PathBuf,
    pub objects: PathBuf,
    pub tmp: PathBuf,
    pub locks: PathBuf,
    pub views: PathBuf,
    pub last: PathBuf,
    pub failed: PathBuf,
    pub gc_lock: PathBuf,
}

impl Layout {
    pub fn new(root: PathBuf) -> Layout {
        Layout {
            objects: root.join("objects"),
            tmp: root.join("tmp"),
            locks: root.join("locks"),
            views: root.join("views"),
            last: root.join("last"),
            failed: root.join("failed"),
            gc_lock: root.join("gc.lock"),
            root,
        }
    }

    /// Create the directories and `CACHEDIR.TAG`; a no-op when they exist.
    pub fn create(&self) -> io::Result<()> {
        for dir in [&self.objects, &self.tmp, &self.locks, &self.views, &self.last, &self.failed] {
            fs::create_dir_all(dir).at("cannot create cache directory", dir)?;
        }
        let tag = self.root.join("CACHEDIR.TAG");
        if fs::symlink_metadata(&tag).is_err() {
            let tmp = self.unique_tmp("CACHEDIR.TAG");
            fs::write(&tmp, CACHEDIR_TAG).at("cannot write", &tmp)?;
            fs::rename(&tmp, &tag).at("cannot create", &tag)?;
        }
        Ok(())
    }

    pub fn object_dir(&self, key: &StageKey) -> PathBuf {
        self.objects.join(&key.0)
    }

    pub fn manifest_path(&self, key: &StageKey) -> PathBuf {
        let mut p = self.object_dir(key);
        p.push(MANIFEST_FILE);
        p
    }

    pub fn key_lock_path(&self, key: &StageKey) -> PathBuf {
        self.locks.join(format!("{key}.lock"))
    }

    pub fn failed_log_path(&self, key: &StageKey) -> PathBuf {
        self.failed.join(format!("{key}.log"))
    }

    /// A fresh, unused path `tmp/<stem>.<pid>.<n>`.
    pub fn unique_tmp(&self, stem: &str) -> PathBuf {
        self.tmp.join(unique_name(stem))
    }

    /// Rename `path` to a fresh name in `tmp/` and return it; `None` if `path` did not exist.
    /// After this returns, nothing remains at `path`, however the later deletion goes.
    pub fn move_aside(&self, path: &Path) -> io::Result<Option<PathBuf>> {
        let stem = path.file_name().and_then(|n| n.to_str()).unwrap_or("entry");
        move_to(path, &self.unique_tmp(&format!("{stem}.trash")))
    }

    /// Remove an entry by moving it aside first, so a crash never leaves half of it in place.
    /// Returns false if there was nothing to remove.
    pub fn remove_via_tmp(&self, path: &Path) -> io::Result<bool> {
        match self.move_aside(path)? {
            Some(trash) => {
                remove_any(&trash)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// `<stem>.<pid>.<n>`, unique within this machine for the life of the process.
pub(crate) fn unique_name(stem: &str) -> String {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{stem}.{}.{n}", std::process::id())
}

/// Rename `from` to `to`; `None` if `from` did not exist. A sealed directory gets its owner's
/// write bit back first: moving a directory to another parent rewrites its `..` entry.
pub(crate) fn move_to(from: &Path, to: &Path) -> io::Result<Option<PathBuf>> {
    make_dir_writable(from);
    match fs::rename(from, to) {
        Ok(()) => Ok(Some(to.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).at(&format!("cannot move {} to", from.display()), to),
    }
}

/// Refuse anything that is not a well-formed key before it becomes a path component.
pub(crate) fn check_key(key: &StageKey) -> io::Result<()> {
    if StageKey::is_valid(&key.0) {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, format!("invalid stage key `{}`", key.0)))
    }
}

/// fsync a directory, making the renames and creations inside it durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at("cannot sync directory", dir)
}

/// Make everything written to the filesystem that holds `dir` durable, in one call
/// (`syncfs`): the outputs, log and manifest of an entry together, instead of one `fsync` each.
pub(crate) fn sync_filesystem(dir: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let d = File::open(dir).at("cannot open", dir)?;
    // SAFETY: the descriptor is valid for the duration of the call.
    if unsafe { libc::syncfs(d.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error()).at("cannot sync the filesystem of", dir)
    }
}

/// Delete a directory tree, a file or a link (links are not followed). Sealed or read-only
/// directories (a committed entry, or a stage's temp dir that a command made read-only) get
/// their owner's permissions back first, so that their entries can be deleted.
pub(crate) fn remove_any(path: &Path) -> io::Result<()> {
    let is_dir = fs::symlink_metadata(path).at("cannot stat", path)?.is_dir();
    if is_dir {
        unseal(path);
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
    .at("cannot delete", path)
}

/// Make a committed tree read-only: every file and directory under `path` (and `path`
/// itself) loses its write bits. Links are not followed. Files opened for writing by a later
/// stage then fail with EACCES instead of silently changing an entry (root is not stopped by
/// modes; the scheduler checks inputs after each stage for that). Best effort: a filesystem
/// that ignores modes keeps working.
pub(crate) fn seal(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else { return };
    if meta.is_dir()
        && let Ok(entries) = fs::read_dir(path)
    {
        for entry in entries.flatten() {
            seal(&entry.path());
        }
    }
    if !meta.file_type().is_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o222 != 0 {
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode & !0o222));
        }
    }
}

/// Give every directory under `path` (and `path`) its owner's rwx back, so that the tree can
/// be deleted. Files keep their modes (deleting a file needs only its directory's write bit).
pub(crate) fn unseal(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else { return };
    if !meta.is_dir() {
        return;
    }
    let _ = add_mode(path, &meta, 0o700);
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                unseal(&entry.path());
            }
        }
    }
}

/// Give a directory its owner's rwx back (a sealed one cannot be moved to another parent or
/// have entries added or removed). Best effort; links and files are left alone.
pub(crate) fn make_dir_writable(dir: &Path) {
    if let Ok(meta) = fs::symlink_metadata(dir)
        && meta.is_dir()
    {
        let _ = add_mode(dir, &meta, 0o700);
    }
}

/// Take the write bits of one directory (not of what it holds). Best effort.
pub(crate) fn seal_dir(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::symlink_metadata(dir)
        && meta.is_dir()
    {
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(meta.permissions().mode() & !0o222));
    }
}

fn add_mode(path: &Path, meta: &fs::Metadata, bits: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode();
    if mode & bits == bits {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode | bits))
}

/// Total size in bytes of the regular files under `path` (links are not followed).
pub(crate) fn tree_size(path: &Path) -> io::Result<u64> {
    let meta = fs::symlink_metadata(path).at("cannot stat", path)?;
    if !meta.is_dir() {
        return Ok(if meta.is_file() { meta.len() } else { 0 });
    }
    let mut total = 0;
    for entry in fs::read_dir(path).at("cannot list", path)? {
        let entry = entry.at("cannot list", path)?;
        total += tree_size(&entry.path())?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_tree_is_read_only_and_remove_any_still_deletes_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("entry");
        fs::create_dir_all(entry.join("sub")).unwrap();
        fs::write(entry.join("t.parquet"), b"x").unwrap();
        fs::write(entry.join("sub/f.bin"), b"y").unwrap();
        seal(&entry);
        for p in [entry.clone(), entry.join("sub"), entry.join("t.parquet"), entry.join("sub/f.bin")] {
            let mode = fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o222, 0, "{} is still writable ({mode:o})", p.display());
        }
        let layout = Layout::new(dir.path().join("cache"));
        layout.create().unwrap();
        assert!(layout.remove_via_tmp(&entry).unwrap());
        assert!(!entry.exists());
        assert_eq!(fs::read_dir(&layout.tmp).unwrap().count(), 0);
    }

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name("a"), unique_name("a"));
        assert!(unique_name("k").starts_with(&format!("k.{}.", std::process::id())));
    }

    #[test]
    fn remove_via_tmp_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().to_path_buf());
        layout.create().unwrap();
        let victim = layout.objects.join("x");
        fs::create_dir_all(victim.join("sub")).unwrap();
        fs::write(victim.join("sub/f"), b"12345").unwrap();
        assert_eq!(tree_size(&victim).unwrap(), 5);
        assert!(layout.remove_via_tmp(&victim).unwrap());
        assert!(!victim.exists());
        assert_eq!(fs::read_dir(&layout.tmp).unwrap().count(), 0);
        assert!(!layout.remove_via_tmp(&victim).unwrap());
    }

    #[test]
    fn check_key_refuses_paths() {
        assert!(check_key(&StageKey("../x".into())).is_err());
        assert!(check_key(&StageKey("0f".repeat(32))).is_ok());
    }
}
