//! Writing a user-facing file (a report, a baseline, a JUnit file) atomically, with the
//! permissions any other program would give it.
//!
//! A temp file in the same directory, fsync, rename: a reader never sees half a file. The temp
//! file is created with mode 0666 minus the umask (0644 usually), or the mode of the file it
//! replaces, not tempfile's private 0600, so that a web server can serve the HTML report and
//! teammates can read the baseline.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Write `bytes` to `path` through a temp file and a rename; creates the parent directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let mode = fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o666);
    let mut tmp =
        tempfile::Builder::new().prefix(".pipeline-").permissions(fs::Permissions::from_mode(mode)).tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn umask() -> u32 {
        // SAFETY: umask only swaps the process's file mode mask; set it back at once.
        unsafe {
            let old = libc::umask(0o022);
            libc::umask(old);
            old as u32
        }
    }

    #[test]
    fn new_file_gets_0666_minus_the_umask_and_replacing_keeps_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/report.html");
        write_atomic(&path, b"<html>").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask(), "mode {mode:o}");
        assert_eq!(fs::read(&path).unwrap(), b"<html>");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&path, b"v2").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(fs::read(&path).unwrap(), b"v2");
        assert_eq!(fs::read_dir(dir.path().join("sub")).unwrap().count(), 1, "no temp file left");
    }
}
