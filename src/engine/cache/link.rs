//! Making a symlink point somewhere, touching the file system only when it does not already.
//!
//! Views and last pointers are checked on every run, so the no-change path is one `readlink`.
//! A change is made atomically: the new link is created under `tmp/` (a relative link's text
//! means the same thing wherever the link is later moved) and renamed over the old one, so a
//! reader sees the old link or the new one, never none; a crash leaves the temp link in
//! `tmp/`, where gc removes it.

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::Path;

use super::PathContext;
use super::layout::unique_name;

/// Make `link` a symlink whose text is `target`. Returns whether anything changed.
pub(crate) fn ensure_symlink(link: &Path, target: &Path, tmp_dir: &Path) -> io::Result<bool> {
    match fs::read_link(link) {
        Ok(current) if current.as_os_str() == target.as_os_str() => return Ok(false),
        // A different link, or (InvalidInput) a file that is not a link: replaced below.
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = link.parent() {
                fs::create_dir_all(parent).at("cannot create", parent)?;
            }
        }
        Err(e) => return Err(e).at("cannot read link", link),
    }
    let tmp = tmp_dir.join(unique_name("link"));
    symlink(target, &tmp).at("cannot create link", &tmp)?;
    if let Err(e) = fs::rename(&tmp, link) {
        let _ = fs::remove_file(&tmp);
        return Err(e).at("cannot replace link", link);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_keeps_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        let link = dir.path().join("a/b/l");
        assert!(ensure_symlink(&link, Path::new("../../x"), &tmp).unwrap());
        assert!(!ensure_symlink(&link, Path::new("../../x"), &tmp).unwrap());
        assert!(ensure_symlink(&link, Path::new("../../y"), &tmp).unwrap());
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("../../y"));
        fs::remove_file(&link).unwrap();
        fs::write(&link, b"a plain file").unwrap();
        assert!(ensure_symlink(&link, Path::new("../../y"), &tmp).unwrap());
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("../../y"));
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    }
}
