//! Path segments made from names and sweep values, so that no view or pointer can leave its
//! directory.
//!
//! [`escape_segment`] percent-encodes `%`, `/`, `\`, `=`, NUL and the other ASCII control
//! characters as `%XX` (upper-case hex), and writes a whole segment equal to `.` or `..` as
//! `%2E` / `%2E%2E`. A literal `%` always becomes `%25`, so the encoding is reversible and two
//! different values never share a directory; an empty name becomes a lone `%`, which no other
//! input produces. `=` is escaped so that `<axis>=<value>` splits at the first `=`, as Hive
//! partitioning readers (polars, pyarrow, DuckDB) expect, and those readers percent-decode the
//! value. A segment longer than the file system allows (255 bytes on most) fails with the OS
//! error when the link is made.
//!
//! Output file names are not escaped (the link must carry the same name as the file in the
//! object) but checked by [`check_file_name`]: one plain path component.

use std::borrow::Cow;
use std::fmt::Write;
use std::path::PathBuf;

/// Escape one path segment; see the module docs. Borrows when nothing needs escaping.
pub fn escape_segment(s: &str) -> Cow<'_, str> {
    match s {
        "" => return Cow::Borrowed("%"),
        "." => return Cow::Borrowed("%2E"),
        ".." => return Cow::Borrowed("%2E%2E"),
        _ => {}
    }
    if !s.bytes().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_ascii() && needs_escape(c as u8) {
            let _ = write!(out, "%{:02X}", c as u8);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(b: u8) -> bool {
    matches!(b, b'%' | b'/' | b'\\' | b'=') || b.is_ascii_control()
}

/// Append `<pipeline>/<stage>/<a>=<v>/...` (each part escaped) to `base`.
pub(crate) fn instance_path(mut base: PathBuf, pipeline: &str, stage: &str, point: &[(String, String)]) -> PathBuf {
    base.push(&*escape_segment(pipeline));
    base.push(&*escape_segment(stage));
    for (axis, value) in point {
        base.push(point_segment(axis, value));
    }
    base
}

/// One `axis=value` directory name, escaped. Views and gathered inputs both use it, so a sweep
/// point has one name everywhere; an empty value stays empty (`axis=`, which hive
/// partitioning reads as null), not `%`.
pub fn point_segment(axis: &str, value: &str) -> String {
    let value = if value.is_empty() { Cow::Borrowed("") } else { escape_segment(value) };
    format!("{}={value}", escape_segment(axis))
}

/// `../` repeated enough to climb from `R/<area>/<pipeline>/<stage>/<point...>/` to `R/`.
pub(crate) fn climb_to_root(point_len: usize) -> String {
    "../".repeat(3 + point_len)
}

/// Accept only a single, plain path component (no `/`, NUL, `.` or `..`).
pub(crate) fn check_file_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("the name is empty")
    } else if name == "." || name == ".." {
        Err("`.` and `..` are not file names")
    } else if name.contains('/') || name.contains('\\') {
        Err("the name must not contain a path separator")
    } else if name.contains('\0') {
        Err("the name must not contain NUL")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_segments_are_borrowed() {
        assert!(matches!(escape_segment("lr"), Cow::Borrowed("lr")));
        assert_eq!(escape_segment("0.1"), "0.1");
        assert_eq!(escape_segment("Bo-32 x"), "Bo-32 x");
    }

    #[test]
    fn separators_dots_and_percent_are_escaped() {
        assert_eq!(escape_segment("a/b"), "a%2Fb");
        assert_eq!(escape_segment("../.."), "..%2F..");
        assert_eq!(escape_segment(".."), "%2E%2E");
        assert_eq!(escape_segment("."), "%2E");
        assert_eq!(escape_segment("50%"), "50%25");
        assert_eq!(escape_segment("a=b"), "a%3Db");
        assert_eq!(escape_segment("x\0y\n"), "x%00y%0A");
        assert_eq!(escape_segment("a\\b"), "a%5Cb");
        assert_eq!(escape_segment("é/ü"), "é%2Fü");
        assert_eq!(escape_segment(""), "%");
        // Distinct inputs stay distinct.
        assert_ne!(escape_segment("%2F"), escape_segment("/"));
    }

    #[test]
    fn instance_path_keeps_every_part_one_component() {
        let p = instance_path(
            PathBuf::from("R/views"),
            "p",
            "..",
            &[("lr".into(), "../../../etc".into()), ("m".into(), "".into())],
        );
        assert_eq!(p, PathBuf::from("R/views/p/%2E%2E/lr=..%2F..%2F..%2Fetc/m="));
        assert_eq!(p.components().count(), 6);
        assert_eq!(climb_to_root(2), "../../../../../");
    }

    #[test]
    fn file_names_must_be_one_component() {
        assert!(check_file_name("table.parquet").is_ok());
        for bad in ["", ".", "..", "a/b", "/abs", "a\0b", "a\\b"] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
    }
}
