//! Content digests of stage outputs.
//!
//! A file's digest is blake3 of its bytes. A directory's digest is blake3 over a listing of
//! its regular files sorted by relative path: the tag `pav-dir-v1`, then per file its path
//! relative to the directory (`/`-separated bytes, prefixed by their length as u64 LE) and
//! its 32-byte blake3. Empty subdirectories contribute nothing. Symlinks and special files are
//! refused: an output is what the stage wrote, never what a link points at.
//!
//! At commit time every file (and directory) is fsynced after it is hashed, so the manifest
//! that follows never describes bytes that are not yet on disk.

use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::layout::sync_dir;
use crate::engine::hash::Digest;

const DIR_TAG: &[u8] = b"pav-dir-v1";

/// Digest and size of one output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Digested {
    pub digest: Digest,
    pub bytes: u64,
}

/// Why an output could not be digested.
#[derive(Debug)]
pub(crate) enum DigestError {
    Io {
        path: PathBuf,
        source: io::Error,
    },
    /// A symlink at or under the output.
    Symlink(PathBuf),
    /// A fifo, socket or device at or under the output.
    Special(PathBuf),
}

impl DigestError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> DigestError + '_ {
        move |source| DigestError::Io { path: path.to_path_buf(), source }
    }
}

/// Digest the file or directory at `path`; with `sync`, fsync what was read.
pub(crate) fn digest_output(path: &Path, sync: bool) -> Result<Digested, DigestError> {
    let kind = fs::symlink_metadata(path).map_err(DigestError::io(path))?.file_type();
    if kind.is_symlink() {
        Err(DigestError::Symlink(path.to_path_buf()))
    } else if kind.is_file() {
        let (hash, bytes) = hash_file(path, sync)?;
        Ok(Digested { digest: Digest(hash.to_hex().to_string()), bytes })
    } else if kind.is_dir() {
        digest_dir(path, sync)
    } else {
        Err(DigestError::Special(path.to_path_buf()))
    }
}

fn hash_file(path: &Path, sync: bool) -> Result<(blake3::Hash, u64), DigestError> {
    let mut file = File::open(path).map_err(DigestError::io(path))?;
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(&mut file).map_err(DigestError::io(path))?;
    if sync {
        file.sync_all().map_err(DigestError::io(path))?;
    }
    Ok((hasher.finalize(), hasher.count()))
}

fn digest_dir(root: &Path, sync: bool) -> Result<Digested, DigestError> {
    let mut files = Vec::new();
    walk(root, &[], &mut files, sync)?;
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hasher = blake3::Hasher::new();
    hasher.update(DIR_TAG);
    let mut bytes = 0;
    for (rel, hash, size) in &files {
        hasher.update(&(rel.len() as u64).to_le_bytes());
        hasher.update(rel);
        hasher.update(hash.as_bytes());
        bytes += size;
    }
    Ok(Digested { digest: Digest(hasher.finalize().to_hex().to_string()), bytes })
}

type Listing = Vec<(Vec<u8>, blake3::Hash, u64)>;

fn walk(dir: &Path, prefix: &[u8], out: &mut Listing, sync: bool) -> Result<(), DigestError> {
    for entry in fs::read_dir(dir).map_err(DigestError::io(dir))? {
        let entry = entry.map_err(DigestError::io(dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(DigestError::io(&path))?;
        let mut rel = prefix.to_vec();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(entry.file_name().as_bytes());
        if kind.is_symlink() {
            return Err(DigestError::Symlink(path));
        } else if kind.is_dir() {
            walk(&path, &rel, out, sync)?;
        } else if kind.is_file() {
            let (hash, size) = hash_file(&path, sync)?;
            out.push((rel, hash, size));
        } else {
            return Err(DigestError::Special(path));
        }
    }
    if sync {
        sync_dir(dir).map_err(DigestError::io(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_digest_is_blake3_of_content() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, b"hello").unwrap();
        let d = digest_output(&f, true).unwrap();
        assert_eq!(d.digest.0, blake3::hash(b"hello").to_hex().to_string());
        assert_eq!(d.bytes, 5);
    }

    #[test]
    fn dir_digest_depends_on_names_and_content_not_creation_order() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::create_dir_all(a.join("sub")).unwrap();
        fs::write(a.join("x"), b"1").unwrap();
        fs::write(a.join("sub/y"), b"22").unwrap();
        fs::create_dir_all(b.join("sub")).unwrap();
        fs::write(b.join("sub/y"), b"22").unwrap();
        fs::write(b.join("x"), b"1").unwrap();
        let da = digest_output(&a, false).unwrap();
        assert_eq!(da, digest_output(&b, false).unwrap());
        assert_eq!(da.bytes, 3);
        fs::rename(b.join("x"), b.join("z")).unwrap();
        assert_ne!(da, digest_output(&b, false).unwrap());
    }

    #[test]
    fn links_are_refused_at_any_depth() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("d");
        fs::create_dir_all(d.join("sub")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.join("sub/l")).unwrap();
        assert!(matches!(digest_output(&d, false), Err(DigestError::Symlink(p)) if p.ends_with("sub/l")));
        assert!(matches!(digest_output(&d.join("sub/l"), false), Err(DigestError::Symlink(_))));
    }
}
