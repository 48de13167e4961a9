//! Content digests of files and directories (blake3), for declared deps and stage outputs.
//! A directory's digest covers the sorted relative paths and the digest of each file, so it
//! does not depend on the order in which the filesystem lists entries.

use std::io;
use std::path::Path;

use super::fingerprint::Digest;

/// Digest of a file's bytes, or of a directory tree.
pub fn digest_path(path: &Path) -> io::Result<Digest> {
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        let mut files = Vec::new();
        collect(path, path, &mut files)?;
        files.sort();
        let mut h = blake3::Hasher::new();
        for rel in &files {
            let d = digest_file(&path.join(rel))?;
            h.update(&(rel.len() as u64).to_le_bytes());
            h.update(rel.as_bytes());
            h.update(d.0.as_bytes());
        }
        Ok(Digest(h.finalize().to_hex().to_string()))
    } else {
        digest_file(path)
    }
}

/// Digest of one file, streamed.
pub fn digest_file(path: &Path) -> io::Result<Digest> {
    let mut h = blake3::Hasher::new();
    let mut f = std::fs::File::open(path)?;
    io::copy(&mut f, &mut h)?;
    Ok(Digest(h.finalize().to_hex().to_string()))
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            collect(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            // '/' separators on every platform keep digests portable.
            let rel: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            out.push(rel.join("/"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_digest_tracks_content_and_names() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("a.txt"), "a").unwrap();
        std::fs::write(d.path().join("sub/b.txt"), "b").unwrap();
        let one = digest_path(d.path()).unwrap();
        std::fs::write(d.path().join("sub/b.txt"), "B").unwrap();
        let two = digest_path(d.path()).unwrap();
        assert_ne!(one, two);
        std::fs::rename(d.path().join("a.txt"), d.path().join("c.txt")).unwrap();
        assert_ne!(two, digest_path(d.path()).unwrap());
    }
}
