//! The test fixture: a [`Project`] is a temp directory that holds pipeline files and scripts,
//! with its cache at `<root>/cache`. It runs the real `pipeline` binary there (working
//! directory = the project root, colour off, `PIPELINE_CACHE` unset) and hands back exit code,
//! stdout and stderr, or the parsed `--json` summary.
//!
//! Commands in fixture pipelines count their executions by appending a line to
//! `counts/<name>` (outside the cache), so a test can tell "served from cache" from "ran".

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

pub const BIN: &str = env!("CARGO_BIN_EXE_pipeline");

/// A pipeline project in a temp directory.
pub struct Project {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

/// What one invocation of the binary produced.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panic with both streams unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Output {
        assert_eq!(self.code, code, "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    #[track_caller]
    pub fn json<T: for<'de> Deserialize<'de>>(&self) -> T {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("stdout is not the expected JSON ({e})\n{}\n--- stderr\n{}", self.stdout, self.stderr)
        })
    }
}

/// `pipeline --json run` summary.
#[derive(Debug, Deserialize)]
pub struct RunReport {
    pub pipeline: String,
    pub ok: bool,
    pub cached: usize,
    pub ran: usize,
    pub failed: usize,
    pub skipped: usize,
    pub stages: Vec<StageOutcome>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StageOutcome {
    pub stage: String,
    pub instance: String,
    pub key: String,
    pub status: String,
    pub error: Option<String>,
    pub log: Option<String>,
}

impl RunReport {
    /// Instance -> status.
    pub fn statuses(&self) -> BTreeMap<String, String> {
        self.stages.iter().map(|s| (s.instance.clone(), s.status.clone())).collect()
    }

    /// Instance -> key.
    pub fn keys(&self) -> BTreeMap<String, String> {
        self.stages.iter().map(|s| (s.instance.clone(), s.key.clone())).collect()
    }

    #[track_caller]
    pub fn get(&self, instance: &str) -> &StageOutcome {
        self.stages
            .iter()
            .find(|s| s.instance == instance)
            .unwrap_or_else(|| panic!("no instance `{instance}` in the run summary: {:?}", self.statuses()))
    }

    #[track_caller]
    pub fn status(&self, instance: &str) -> &str {
        &self.get(instance).status
    }

    #[track_caller]
    pub fn key(&self, instance: &str) -> &str {
        &self.get(instance).key
    }
}

/// One row of `pipeline --json plan`.
#[derive(Debug, Clone, Deserialize)]
pub struct PlanRow {
    pub stage: String,
    pub instance: String,
    pub key: String,
    pub status: String,
    pub reasons: Vec<String>,
}

/// `[(instance, status)]` pairs as an ordered map, for readable assertions.
pub fn expect_statuses(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(i, s)| (i.to_string(), s.to_string())).collect()
}

impl Project {
    pub fn new() -> Project {
        let dir = tempfile::Builder::new().prefix("pav-cli-").tempdir().expect("create temp dir");
        // Canonical, so that paths the binary prints (from its working directory) match.
        let root = dir.path().canonicalize().expect("canonicalize temp dir");
        fs::create_dir(root.join("counts")).expect("create counts/");
        Project { _dir: dir, root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn cache(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// Write a file (parents created); the text is dedented, so tests can indent YAML.
    pub fn write(&self, rel: &str, text: &str) -> &Project {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent dir");
        }
        fs::write(&path, dedent(text)).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        self
    }

    #[track_caller]
    pub fn read(&self, rel: &str) -> String {
        let path = self.path(rel);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// Lines in `counts/<name>`: how often the command that appends to it ran.
    pub fn count(&self, name: &str) -> usize {
        fs::read_to_string(self.root.join("counts").join(name)).map(|t| t.lines().count()).unwrap_or(0)
    }

    /// The binary with `--cache <root>/cache`, run in the project root.
    pub fn command(&self) -> Command {
        let mut c = self.bare_command();
        c.arg("--cache").arg(self.cache());
        c
    }

    /// The binary without `--cache` (for tests of how the cache root is chosen).
    pub fn bare_command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(&self.root).env_remove("PIPELINE_CACHE").env("NO_COLOR", "1").stdin(Stdio::null());
        c
    }

    /// Run `pipeline --cache <cache> ARGS...` to completion.
    pub fn pipeline(&self, args: &[&str]) -> Output {
        output(self.command().args(args))
    }

    /// Start `pipeline --cache <cache> ARGS...` without waiting (streams discarded).
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command().args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn pipeline")
    }

    /// `pipeline --json run FILE EXTRA...`, which must exit 0.
    #[track_caller]
    pub fn run(&self, file: &str, extra: &[&str]) -> RunReport {
        let report: RunReport = self.run_code(file, extra, 0).json();
        assert!(report.ok, "run reported failure: {report:?}");
        report
    }

    /// `pipeline --json run FILE EXTRA...`, which must exit with `code`.
    #[track_caller]
    pub fn run_code(&self, file: &str, extra: &[&str], code: i32) -> Output {
        let mut args = vec!["--json", "run", file];
        args.extend_from_slice(extra);
        self.pipeline(&args).expect_code(code)
    }

    /// `pipeline --json plan FILE`.
    #[track_caller]
    pub fn plan(&self, file: &str) -> Vec<PlanRow> {
        self.pipeline(&["--json", "plan", file]).expect_code(0).json()
    }

    /// Instance -> key, from `plan --json` (runs nothing).
    #[track_caller]
    pub fn keys(&self, file: &str) -> BTreeMap<String, String> {
        self.plan(file).into_iter().map(|r| (r.instance, r.key)).collect()
    }

    /// Instance names from `plan --json`, in plan order.
    #[track_caller]
    pub fn instances(&self, file: &str) -> Vec<String> {
        self.plan(file).into_iter().map(|r| r.instance).collect()
    }

    /// Directory names in `cache/objects/`, sorted.
    pub fn objects(&self) -> Vec<String> {
        list_dir(&self.cache().join("objects"))
    }

    pub fn object_dir(&self, key: &str) -> PathBuf {
        self.cache().join("objects").join(key)
    }

    /// Content of `cache/views/<rel>`.
    #[track_caller]
    pub fn view(&self, rel: &str) -> String {
        self.read(&format!("cache/views/{rel}"))
    }

    /// The manifest of an entry, as JSON.
    #[track_caller]
    pub fn manifest(&self, key: &str) -> serde_json::Value {
        let text = fs::read_to_string(self.object_dir(key).join("manifest.json")).expect("read manifest");
        serde_json::from_str(&text).expect("parse manifest")
    }

    /// Replace an output file inside an object with `bytes` (objects may be read-only).
    pub fn corrupt(&self, key: &str, file: &str, bytes: &[u8]) {
        let path = self.object_dir(key).join(file);
        let mut perm = fs::metadata(&path).expect("stat object file").permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        fs::set_permissions(&path, perm).expect("make object file writable");
        fs::write(&path, bytes).expect("corrupt object file");
    }
}

/// Run a prepared command to completion.
pub fn output(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run pipeline");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Sorted entry names of a directory (empty if it does not exist).
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// Poll `cond` until it holds; panic after `secs` seconds. For waiting on files that another
/// process creates (never for timing).
#[track_caller]
pub fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {secs}s waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Strip the indentation common to all non-blank lines, and a leading newline.
pub fn dedent(text: &str) -> String {
    let text = text.strip_prefix('\n').unwrap_or(text);
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start_matches(' ').len())
        .min()
        .unwrap_or(0);
    let mut out: String = text
        .lines()
        .map(|l| if l.len() >= indent { &l[indent..] } else { l.trim_start() })
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

/// Every `FILE:LINE:COL` in a spec-error report, for `FILE`.
pub fn locations(stderr: &str, file: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let needle = format!("× {file}:");
    for (pos, _) in stderr.match_indices(&needle) {
        let rest = &stderr[pos + needle.len()..];
        let mut nums = rest.splitn(3, ':');
        let line = nums.next().and_then(|s| s.parse().ok());
        let col = nums.next().and_then(|s| s.parse().ok());
        if let (Some(l), Some(c)) = (line, col) {
            out.push((l, c));
        }
    }
    out
}

/// insta settings that redact what changes between runs: the project root, keys, durations,
/// temp-dir names.
pub fn redactions(p: &Project) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(&regex_escape(&p.root().display().to_string()), "[ROOT]");
    s.add_filter(r"\b[0-9a-f]{64}\b", "[KEY]");
    s.add_filter(r"\b[0-9a-f]{12}\b", "[KEY12]");
    s.add_filter(r"\b\d+\.\d+s\b", "[SECS]s");
    s.add_filter(r"\b\d+s ago\b", "[AGE] ago");
    s.set_prepend_module_to_snapshot(false);
    s
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
