//! Source files of a pipeline and positions inside them.
//!
//! Every YAML node keeps a marker (source index, line, column) from marked-yaml; a [`Loc`]
//! carries it through validation so that any error can point at the exact place, and the
//! diagnostics renderer turns it back into a byte span of the file's text.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One loaded YAML file.
#[derive(Debug)]
pub struct SourceFile {
    /// Absolute, normalised path.
    pub path: PathBuf,
    /// Path as shown to the user (relative to the working directory when possible).
    pub display: String,
    pub text: Arc<String>,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: PathBuf, display: String, text: String) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { path, display, text: Arc::new(text), line_starts }
    }

    /// Byte offset of a 1-based (line, column-in-chars) position, clamped to the text.
    pub fn offset(&self, line: usize, column: usize) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let rest = &self.text[start..];
        let line_text = rest.split('\n').next().unwrap_or("");
        let col_bytes: usize = line_text.chars().take(column.saturating_sub(1)).map(char::len_utf8).sum();
        start + col_bytes
    }

    /// Directory that holds the file.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

/// All files of one pipeline (the main file and whatever it extends).
#[derive(Debug, Default)]
pub struct Sources {
    pub files: Vec<SourceFile>,
}

impl Sources {
    pub fn add(&mut self, file: SourceFile) -> usize {
        self.files.push(file);
        self.files.len() - 1
    }

    pub fn get(&self, index: usize) -> Option<&SourceFile> {
        self.files.get(index)
    }
}

/// A position in a source file: 1-based line and column (in characters), plus a length in
/// characters used to underline the offending text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc {
    pub source: usize,
    pub line: usize,
    pub column: usize,
    pub len: usize,
}

impl Loc {
    pub fn from_marker(m: &marked_yaml::Marker, len: usize) -> Self {
        Loc { source: m.source(), line: m.line(), column: m.column(), len }
    }

    /// The location of a node (its start), underlining `len` characters.
    pub fn of_span(span: &marked_yaml::Span, len: usize) -> Option<Self> {
        span.start().map(|m| Loc::from_marker(m, len))
    }

    /// Shift right by `chars` on the same line (for a `${...}` inside a one-line scalar).
    pub fn shifted(self, chars: usize, len: usize) -> Self {
        Loc { column: self.column + chars, len, ..self }
    }

    /// `file:line:column` for messages.
    pub fn render(&self, sources: &Sources) -> String {
        let file = sources.get(self.source).map(|f| f.display.as_str()).unwrap_or("<unknown>");
        format!("{file}:{}:{}", self.line, self.column)
    }
}

/// Normalise a path lexically (resolve `.` and `..` without touching the filesystem).
pub fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Show `path` relative to the working directory when it is below it.
pub fn display_path(path: &Path) -> String {
    if let Ok(cwd) = std::env::current_dir()
        && let Ok(rel) = path.strip_prefix(&cwd)
    {
        return rel.display().to_string();
    }
    path.display().to_string()
}
