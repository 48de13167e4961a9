//! Driving the release `pipeline` binary as a user would, one child process per measurement.
//!
//! Each command is spawned directly (no shell in between) and reaped with `wait4`, which
//! gives its wall time (spawn to exit, so process start-up is included) and its peak resident
//! set. `ru_maxrss` covers the child and the descendants it waited for (the `sh -c` of each
//! stage), as a maximum, not a sum; `pipeline` itself is always the largest of them.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// `--jobs` of every `run`: the machine the targets are set for has 2 cores.
pub const JOBS: &str = "2";

/// One timed run of the binary.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub ms: f64,
    pub peak_kb: u64,
}

/// How many instances a `run --json` reported per status.
#[derive(Debug, PartialEq, Eq)]
pub struct Counts {
    pub cached: u64,
    pub ran: u64,
    pub failed: u64,
    pub skipped: u64,
}

/// The `pipeline` binary and a scratch directory for its captured output.
pub struct Pipeline {
    pub bin: PathBuf,
    scratch: PathBuf,
}

impl Pipeline {
    /// The binary cargo built beside this bench (`target/release/pipeline` under `cargo bench`).
    pub fn locate(scratch: &Path) -> Result<Self, String> {
        // Cargo sets this for benches and integration tests, and builds the binary first.
        let built = PathBuf::from(env!("CARGO_BIN_EXE_pipeline"));
        // The same binary found next to the running bench (target/release/deps/engine-*).
        let beside = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.parent()?.join("pipeline")));
        let bin = [Some(built.clone()), beside].into_iter().flatten().find(|p| p.is_file()).ok_or_else(|| {
            format!(
                "the `pipeline` binary is missing (looked for {}); build it with \
                 `cargo build --release --bin pipeline` or run `cargo bench --bench engine`",
                built.display()
            )
        })?;
        Ok(Pipeline { bin, scratch: scratch.to_path_buf() })
    }

    /// `pipeline --cache CACHE -q ARGS...`. Stdout is returned when `capture`, else discarded.
    /// A non-zero exit is an error carrying the end of stderr.
    pub fn exec(&self, cache: &Path, args: &[&str], capture: bool) -> Result<(Sample, String), String> {
        let out_path = self.scratch.join("stdout");
        let err_path = self.scratch.join("stderr");
        let stdout = if capture { Stdio::from(create(&out_path)?) } else { Stdio::null() };
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--cache").arg(cache).arg("-q").args(args);
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(create(&err_path)?).env("NO_COLOR", "1");
        let (sample, code) = spawn_measured(&mut cmd)?;
        if code != 0 {
            let err = std::fs::read_to_string(&err_path).unwrap_or_default();
            let lines: Vec<&str> = err.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            return Err(format!("`pipeline {}` exited with {code}:\n{tail}", args.join(" ")));
        }
        let out = if capture {
            std::fs::read_to_string(&out_path).map_err(|e| format!("cannot read the captured stdout: {e}"))?
        } else {
            String::new()
        };
        Ok((sample, out))
    }

    /// `run`, stdout discarded: the measured form.
    pub fn run(&self, cache: &Path, file: &Path) -> Result<Sample, String> {
        Ok(self.exec(cache, &["run", "-j", JOBS, path_str(file)?], false)?.0)
    }

    /// `plan`, stdout discarded: the measured form.
    pub fn plan(&self, cache: &Path, file: &Path) -> Result<Sample, String> {
        Ok(self.exec(cache, &["plan", path_str(file)?], false)?.0)
    }

    /// `run --json`: the counts it reports (not timed).
    pub fn run_counts(&self, cache: &Path, file: &Path) -> Result<Counts, String> {
        let (_, out) = self.exec(cache, &["--json", "run", "-j", JOBS, path_str(file)?], true)?;
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| format!("run --json: {e}"))?;
        let n = |k: &str| v[k].as_u64().ok_or_else(|| format!("run --json has no count `{k}`"));
        Ok(Counts { cached: n("cached")?, ran: n("ran")?, failed: n("failed")?, skipped: n("skipped")? })
    }

    /// `plan --json` (not timed): how many instances, and the names of those that would run.
    pub fn plan_json(&self, cache: &Path, file: &Path) -> Result<(usize, Vec<String>), String> {
        let (_, out) = self.exec(cache, &["--json", "plan", path_str(file)?], true)?;
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| format!("plan --json: {e}"))?;
        let rows = v.as_array().ok_or("plan --json is not a list")?;
        let mut to_run: Vec<String> = rows
            .iter()
            .filter(|r| r["status"] != "cached")
            .map(|r| r["instance"].as_str().unwrap_or("?").to_string())
            .collect();
        to_run.sort();
        Ok((rows.len(), to_run))
    }
}

/// Spawn, then reap with `wait4` to read the child's own resource usage.
fn spawn_measured(cmd: &mut Command) -> Result<(Sample, i32), String> {
    let start = Instant::now();
    let child = cmd.spawn().map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 only writes through the pointers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our unreaped child (std's Child never waits on drop).
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("wait4: {err}"));
        }
    }
    let ms = start.elapsed().as_secs_f64() * 1e3;
    drop(child);
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
    // Linux reports ru_maxrss in KiB.
    Ok((Sample { ms, peak_kb: usage.ru_maxrss.max(0) as u64 }, code))
}

fn create(path: &Path) -> Result<File, String> {
    File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

pub fn path_str(p: &Path) -> Result<&str, String> {
    p.to_str().ok_or_else(|| format!("non-UTF-8 path {}", p.display()))
}
