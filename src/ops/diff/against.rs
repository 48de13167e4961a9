//! The other side of `pipeline diff`: another pipeline file, or FILE as committed at a git
//! revision.
//!
//! A revision is read with `git archive REV | tar -x` of the repository that contains FILE
//! into a temp directory, and FILE's path relative to the repository root is loaded from
//! there, so `extends`, `deps` and scripts resolve as they were at that revision. Files git
//! does not track (ignored or never added) are not in the archive, nor are submodules.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::ops::OpError;

/// A pipeline file to load as the old side, and the temp tree that holds it (if any).
pub(super) struct OldSide {
    pub file: PathBuf,
    /// What the reader calls it: the revision as given, or the file path.
    pub label: String,
    /// The file as the reader knows it: the path as given, or its path in the repository.
    pub shown: String,
    /// The extracted tree; deleted when this is dropped.
    _tree: Option<tempfile::TempDir>,
}

/// `--against X`: an existing path is a pipeline file, anything else a git revision.
pub(super) fn resolve(file: &Path, against: &str) -> Result<OldSide, OpError> {
    let as_path = Path::new(against);
    if as_path.exists() {
        return Ok(OldSide {
            file: as_path.to_path_buf(),
            label: against.to_string(),
            shown: against.to_string(),
            _tree: None,
        });
    }
    if against.ends_with(".yaml") || against.ends_with(".yml") {
        return Err(OpError::Usage {
            message: format!("--against {against}: no such file"),
            help: Some("give an existing pipeline file, or a git revision such as HEAD, main or a commit hash".into()),
        });
    }
    at_revision(file, against)
}

fn at_revision(file: &Path, rev: &str) -> Result<OldSide, OpError> {
    let abs = file.canonicalize().map_err(|e| OpError::Failed(format!("cannot read {}: {e}", file.display())))?;
    let dir = abs.parent().unwrap_or(Path::new("/"));
    let top = git(dir, &["rev-parse", "--show-toplevel"]).map_err(|e| match e {
        GitError::NotRun(msg) => OpError::Failed(msg),
        GitError::Failed => OpError::Usage {
            message: format!(
                "{} is not in a git repository, so there is no `{rev}` to compare it with",
                file.display()
            ),
            help: Some("compare with another file instead: `pipeline diff FILE --against OTHER.yaml`".into()),
        },
    })?;
    let top = PathBuf::from(top.trim())
        .canonicalize()
        .map_err(|e| OpError::Failed(format!("cannot resolve the repository root {}: {e}", top.trim())))?;
    let rel = abs.strip_prefix(&top).map_err(|_| {
        OpError::Failed(format!("{} is not under its repository's root {}", abs.display(), top.display()))
    })?;
    let rel = rel.to_string_lossy().into_owned();
    let commit = git(&top, &["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")]).map_err(|e| match e {
        GitError::NotRun(msg) => OpError::Failed(msg),
        GitError::Failed => OpError::Usage {
            message: format!("no commit `{rev}` in the git repository at {}", top.display()),
            help: Some(
                "give a branch, a tag or a commit (`git log --oneline` lists them; a repository with no commits has no HEAD), or an existing pipeline file"
                    .into(),
            ),
        },
    })?;
    let commit = commit.trim().to_string();
    let short = &commit[..12.min(commit.len())];
    if git(&top, &["cat-file", "-e", &format!("{commit}:{rel}")]).is_err() {
        return Err(OpError::Usage {
            message: format!("{rel} is not in `{rev}` (commit {short}) of the repository at {}", top.display()),
            help: Some("it was added or renamed after that commit: compare with a later revision, or with a file via `--against OTHER.yaml`".into()),
        });
    }
    let tree = tempfile::Builder::new()
        .prefix("pipeline-diff-")
        .tempdir()
        .map_err(|e| OpError::Failed(format!("cannot create a temp directory for `{rev}`: {e}")))?;
    extract(&top, &commit, tree.path())?;
    Ok(OldSide { file: tree.path().join(&rel), label: rev.to_string(), shown: rel, _tree: Some(tree) })
}

/// `git archive COMMIT | tar -x -C DEST`.
fn extract(top: &Path, commit: &str, dest: &Path) -> Result<(), OpError> {
    let fail = |what: &str| OpError::Failed(format!("cannot extract commit {commit} of {}: {what}", top.display()));
    let mut archive = Command::new("git")
        .arg("-C")
        .arg(top)
        .args(["archive", "--format=tar", commit])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(&format!("cannot run git: {e}")))?;
    let stdout = archive.stdout.take().ok_or_else(|| fail("no output from git archive"))?;
    let untar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(dest)
        .stdin(stdout)
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| fail(&format!("cannot run tar: {e}")))?;
    let archived = archive.wait_with_output().map_err(|e| fail(&format!("git archive: {e}")))?;
    if !archived.status.success() {
        return Err(fail(&format!("git archive: {}", String::from_utf8_lossy(&archived.stderr).trim())));
    }
    if !untar.status.success() {
        return Err(fail(&format!("tar: {}", String::from_utf8_lossy(&untar.stderr).trim())));
    }
    Ok(())
}

enum GitError {
    /// git could not be started (not installed?).
    NotRun(String),
    /// git ran and said no.
    Failed,
}

/// Run git in `dir`; stdout on success.
fn git(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| GitError::NotRun(format!("cannot run git (is it installed and on PATH?): {e}")))?;
    if out.status.success() { Ok(String::from_utf8_lossy(&out.stdout).into_owned()) } else { Err(GitError::Failed) }
}
