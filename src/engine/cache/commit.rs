//! Writing an entry: a [`Pending`] owns a temp dir until its outputs are committed.
//!
//! See the module docs of `engine::cache` for the protocol. The declared outputs are the
//! fingerprint's `outputs` (port -> file name), so what is stored can never disagree with what
//! was hashed into the key. Files the stage writes into `out/` besides its outputs and
//! `stage.log` are kept in the object but not digested.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::digest::{DigestError, digest_output};
use super::layout::{
    Layout, check_key, make_dir_writable, move_to, seal, sync_dir, sync_filesystem, unique_name, unseal,
};
use super::manifest::{ENGINE_VERSION, MANIFEST_FILE, Manifest, OutputRecord, RowCounter, STAGE_LOG, now_unix};
use super::segment::check_file_name;
use super::verify::{CacheFault, verify_entry};
use super::{Cache, PathContext};
use crate::engine::hash::{CACHE_SCHEMA_VERSION, StageFingerprint, StageKey};

const MANIFEST_TMP: &str = "manifest.json.tmp";

/// What the caller knows about an execution, beyond its outputs.
#[derive(Debug, Clone)]
pub struct CommitMeta {
    pub stage: String,
    pub instance: String,
    /// The fingerprint; its `key()` must be the key given to [`Cache::begin`].
    pub fingerprint: StageFingerprint,
    /// Wall-clock duration of the execution (non-finite values are stored as 0).
    pub seconds: f64,
}

/// How a commit ended.
#[derive(Debug)]
pub enum CommitOutcome {
    /// Our entry is now in `objects/`.
    Stored,
    /// A valid entry for the key was already there (another process won); ours was dropped.
    AlreadyPresent,
    /// A broken entry was there; it was removed and ours took its place. Worth a warning.
    ReplacedBroken(CacheFault),
    /// A valid entry was there and [`Pending::replace_existing`] asked for ours to take its
    /// place (`run --force`); it was swapped out in one step.
    Replaced,
}

/// A successful commit: the outcome and the manifest that is now in `objects/<key>`.
#[derive(Debug)]
pub struct Committed {
    pub outcome: CommitOutcome,
    pub manifest: Manifest,
}

/// Why a commit failed. Nothing was added to `objects/`.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("the stage did not write its declared output `{port}` ({})", .path.display())]
    MissingOutput { port: String, path: PathBuf },
    #[error("output `{port}` is or contains a symbolic link ({}); outputs must be real files", .path.display())]
    SymlinkOutput { port: String, path: PathBuf },
    #[error("output `{port}` is or contains something that is neither a file nor a directory ({})", .path.display())]
    NotAFile { port: String, path: PathBuf },
    #[error("output `{port}` has an unusable file name `{file}`: {reason}")]
    BadOutputName { port: String, file: String, reason: &'static str },
    #[error("the fingerprint hashes to {} but the entry was begun for {}", .actual.short(), .expected.short())]
    KeyMismatch { expected: StageKey, actual: StageKey },
    #[error("entry {} was already committed", .key.short())]
    AlreadyCommitted { key: StageKey },
    #[error("{context} {}: {source}", .path.display())]
    Io { context: String, path: PathBuf, source: io::Error },
}

impl CommitError {
    fn io(context: &str, path: &Path) -> impl FnOnce(io::Error) -> CommitError {
        let (context, path) = (context.to_string(), path.to_path_buf());
        move |source| CommitError::Io { context, path, source }
    }

    fn from_digest(port: &str, e: DigestError) -> CommitError {
        let port = port.to_string();
        match e {
            DigestError::Symlink(path) => CommitError::SymlinkOutput { port, path },
            DigestError::Special(path) => CommitError::NotAFile { port, path },
            DigestError::Io { path, source } if source.kind() == io::ErrorKind::NotFound => {
                CommitError::MissingOutput { port, path }
            }
            DigestError::Io { path, source } => {
                CommitError::Io { context: format!("cannot digest output `{port}`"), path, source }
            }
        }
    }
}

/// An entry being written. Dropping it removes its temp dir, whether or not it was committed.
pub struct Pending {
    key: StageKey,
    dir: PathBuf,
    out: PathBuf,
    scratch: PathBuf,
    layout: Arc<Layout>,
    rows: Arc<dyn RowCounter>,
    committed: bool,
    /// Replace a valid entry for the key instead of deferring to it.
    replace: bool,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("key", &self.key).field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Cache {
    /// Start writing the entry for `key`: creates `tmp/<key>.<pid>.<n>/out` (and `scratch/` on
    /// first use of [`Pending::scratch_dir`]).
    /// The caller should hold the key lock (and the run lock).
    pub fn begin(&self, key: &StageKey) -> io::Result<Pending> {
        check_key(key)?;
        let dir = self.layout.unique_tmp(&key.0);
        let out = dir.join("out");
        let scratch = dir.join("scratch");
        fs::create_dir(&dir).at("cannot create", &dir)?;
        let pending = Pending {
            key: key.clone(),
            dir,
            out,
            scratch,
            layout: Arc::clone(&self.layout),
            rows: Arc::clone(&self.rows),
            committed: false,
            replace: false,
        };
        fs::create_dir(&pending.out).at("cannot create", &pending.out)?;
        Ok(pending)
    }
}

impl Cache {
    /// Make the renames of committed entries into `objects/` durable: one `fsync` of the
    /// directory for every commit since the last call (group durability, once a wave).
    pub fn sync_objects(&self) -> io::Result<()> {
        sync_dir(&self.layout.objects)
    }
}

impl Pending {
    pub fn key(&self) -> &StageKey {
        &self.key
    }

    /// On commit, replace a valid entry already stored for the key (`run --force`) instead of
    /// keeping it. The swap is one `renameat2(RENAME_EXCHANGE)`, so readers see the old entry or
    /// the new one, never none; the old one leaves with this temp dir.
    pub fn replace_existing(&mut self) {
        self.replace = true;
    }

    /// Where the stage writes its outputs and log; becomes `objects/<key>` on commit.
    pub fn out_dir(&self) -> &Path {
        &self.out
    }

    /// Scratch space for the caller (gathered inputs, temp files); never committed.
    pub fn scratch_dir(&self) -> &Path {
        // Made on first use: most stages need none, and each directory costs a mkdir and an
        // unlink per stage.
        let _ = fs::create_dir(&self.scratch);
        &self.scratch
    }

    /// `out/stage.log`: where the stage's output should go. Valid until a successful commit.
    pub fn log_path(&self) -> PathBuf {
        self.out.join(STAGE_LOG)
    }

    /// Digest the declared outputs, write the manifest last and move `out/` into `objects/`.
    /// On error nothing is added to `objects/` and the temp dir stays (with the stage log)
    /// until this `Pending` is dropped.
    pub fn commit(&mut self, meta: CommitMeta) -> Result<Committed, CommitError> {
        if self.committed {
            return Err(CommitError::AlreadyCommitted { key: self.key.clone() });
        }
        let actual = meta.fingerprint.key();
        if actual != self.key {
            return Err(CommitError::KeyMismatch { expected: self.key.clone(), actual });
        }
        let outputs = self.digest_outputs(&meta.fingerprint)?;
        let log = self.log_path();
        OpenOptions::new().create(true).append(true).open(&log).map_err(CommitError::io("cannot write", &log))?;
        let manifest = Manifest {
            schema: CACHE_SCHEMA_VERSION,
            key: self.key.clone(),
            engine_version: ENGINE_VERSION.to_string(),
            stage: meta.stage,
            instance: meta.instance,
            fingerprint: meta.fingerprint,
            outputs,
            log: STAGE_LOG.to_string(),
            seconds: if meta.seconds.is_finite() { meta.seconds } else { 0.0 },
            created_unix: now_unix(),
        };
        self.write_manifest(&manifest)?;
        // Read-only before it becomes visible (the top directory after the move: moving a
        // directory to another parent needs its write bit).
        if let Ok(entries) = fs::read_dir(&self.out) {
            for entry in entries.flatten() {
                seal(&entry.path());
            }
        }
        let committed = self.place(manifest)?;
        if matches!(
            committed.outcome,
            CommitOutcome::Stored | CommitOutcome::ReplacedBroken(_) | CommitOutcome::Replaced
        ) {
            seal(&self.layout.object_dir(&self.key));
        }
        Ok(committed)
    }

    /// Remove the temp dir now, reporting failure (drop does the same silently).
    pub fn discard(mut self) -> io::Result<()> {
        let dir = std::mem::take(&mut self.dir);
        unseal(&dir);
        fs::remove_dir_all(&dir).at("cannot remove", &dir)
    }

    fn digest_outputs(&self, fp: &StageFingerprint) -> Result<Vec<OutputRecord>, CommitError> {
        let mut records = Vec::with_capacity(fp.outputs.len());
        for (port, file) in &fp.outputs {
            let bad = |reason| CommitError::BadOutputName { port: port.clone(), file: file.clone(), reason };
            check_file_name(file).map_err(bad)?;
            if [MANIFEST_FILE, MANIFEST_TMP, STAGE_LOG].contains(&file.as_str()) {
                return Err(bad("the name is reserved by the cache"));
            }
            let path = self.out.join(file);
            // Not synced file by file: `write_manifest` makes the whole entry durable at once.
            let digested = digest_output(&path, false).map_err(|e| CommitError::from_digest(port, e))?;
            let rows = if file.ends_with(".parquet") && path.is_file() { self.rows.rows(&path) } else { None };
            records.push(OutputRecord {
                port: port.clone(),
                file: file.clone(),
                blake3: digested.digest,
                bytes: digested.bytes,
                rows,
            });
        }
        Ok(records)
    }

    fn write_manifest(&self, manifest: &Manifest) -> Result<(), CommitError> {
        let tmp = self.out.join(MANIFEST_TMP);
        let path = self.out.join(MANIFEST_FILE);
        let text = serde_json::to_vec_pretty(manifest)
            .map_err(|e| CommitError::io("cannot encode", &path)(io::Error::other(e)))?;
        File::create(&tmp).and_then(|mut f| f.write_all(&text)).map_err(CommitError::io("cannot write", &tmp))?;
        fs::rename(&tmp, &path).map_err(CommitError::io("cannot create", &path))?;
        // One syncfs makes the outputs, the log, the manifest and their directory entries
        // durable before the entry can appear in objects/ (five fsyncs a stage before).
        sync_filesystem(&self.out).map_err(CommitError::io("cannot sync", &self.out))
    }

    /// Rename `out/` to `objects/<key>`, deferring to a valid entry already there and replacing
    /// a broken one. Tries a few times in case another process replaces it meanwhile.
    fn place(&mut self, manifest: Manifest) -> Result<Committed, CommitError> {
        let dest = self.layout.object_dir(&self.key);
        let mut replaced = None;
        for _ in 0..3 {
            match fs::rename(&self.out, &dest) {
                Ok(()) => {
                    // The rename's durability is left to `Cache::sync_objects` (once a wave):
                    // until then a power loss can only drop the whole entry, never half of it.
                    self.committed = true;
                    let outcome = replaced.map_or(CommitOutcome::Stored, CommitOutcome::ReplacedBroken);
                    return Ok(Committed { outcome, manifest });
                }
                Err(e) if occupied(&e) && self.replace => {
                    make_dir_writable(&dest);
                    match exchange(&self.out, &dest) {
                        // `self.out` now holds the old entry, deleted with our temp dir.
                        Ok(()) => {
                            self.committed = true;
                            return Ok(Committed { outcome: CommitOutcome::Replaced, manifest });
                        }
                        // No atomic exchange on this filesystem: move the old one aside first.
                        Err(_) => {
                            let aside = self.dir.join(unique_name("replaced"));
                            move_to(&dest, &aside).map_err(CommitError::io("cannot move aside", &dest))?;
                        }
                    }
                }
                Err(e) if occupied(&e) => match verify_entry(&self.layout, &self.key) {
                    Ok(existing) => {
                        self.committed = true;
                        return Ok(Committed { outcome: CommitOutcome::AlreadyPresent, manifest: existing });
                    }
                    Err(CacheFault::Io { path, source, .. }) => {
                        // Unreadable, not shown to be broken: keep it, and keep ours out.
                        return Err(CommitError::Io {
                            context: "an entry for this key exists but cannot be read, so it was kept;".into(),
                            path,
                            source,
                        });
                    }
                    Err(fault) => {
                        // Into our own temp dir: dropping `self` deletes it.
                        let aside = self.dir.join(unique_name("replaced"));
                        if move_to(&dest, &aside).map_err(CommitError::io("cannot move aside", &dest))?.is_some() {
                            replaced = Some(fault);
                        }
                    }
                },
                Err(e) => return Err(CommitError::io("cannot move the new entry to", &dest)(e)),
            }
        }
        Err(CommitError::Io {
            context: "another process keeps replacing".into(),
            path: dest,
            source: io::Error::other("gave up after 3 attempts"),
        })
    }
}

/// Swap two paths in one step (Linux `renameat2` with `RENAME_EXCHANGE`).
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let (ca, cb) = (c(a)?, c(b)?);
    // SAFETY: both pointers are valid NUL-terminated paths for the duration of the call.
    let rc =
        unsafe { libc::renameat2(libc::AT_FDCWD, ca.as_ptr(), libc::AT_FDCWD, cb.as_ptr(), libc::RENAME_EXCHANGE) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// The rename failed because something is already at the destination.
fn occupied(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(e.kind(), AlreadyExists | DirectoryNotEmpty | NotADirectory | IsADirectory)
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.dir.as_os_str().is_empty() {
            // Best effort: anything left in tmp/ is removed by gc.
            unseal(&self.dir);
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
#[path = "commit_tests.rs"]
mod tests;
