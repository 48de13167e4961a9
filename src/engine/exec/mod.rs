//! Execution of one stage instance.
//!
//! The scheduler hands a [`Job`] (resolved params, input paths, output paths inside a private
//! directory, the log file) to an [`Executor`]. The local executor runs `command` stages as
//! `sh -c CMD` in the directory of the pipeline file that defines the stage, and built-in kinds
//! through the [`KindRegistry`] (implemented outside the engine, in `crate::kinds`, so the
//! engine never links model code). Executors never touch the cache: the scheduler commits.

pub mod command;
pub mod panic;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::engine::hash::StageKey;
use crate::engine::value::Value;

/// What the spec validator and the executor know about a built-in kind.
#[derive(Debug, Clone)]
pub struct KindInfo {
    pub name: String,
    pub version: u32,
    pub doc: String,
    pub params: Vec<String>,
    pub inputs: Vec<String>,
    /// The inputs a stage may leave unwired (a subset of `inputs`).
    pub optional_inputs: Vec<String>,
    /// Output port -> default file name.
    pub outputs: Vec<(String, String)>,
    /// Params whose value is a file the kind reads: its content enters the key.
    pub path_params: Vec<String>,
}

/// The built-in kinds, as seen by the engine.
pub trait KindRegistry: Send + Sync {
    fn kinds(&self) -> &[KindInfo];
    /// Run a built-in kind; the error is a message for the stage log and the summary.
    fn run(&self, job: &Job<'_>, log: &mut dyn Write) -> Result<(), String>;
}

/// A registry with no built-in kinds (tests, and `command`-only use of the engine).
pub struct NoKinds;

impl KindRegistry for NoKinds {
    fn kinds(&self) -> &[KindInfo] {
        &[]
    }
    fn run(&self, job: &Job<'_>, _log: &mut dyn Write) -> Result<(), String> {
        Err(format!("no built-in kind `{}` in this build", job.kind))
    }
}

/// Everything needed to execute one instance.
#[derive(Debug)]
pub struct Job<'a> {
    pub kind: &'a str,
    pub stage: &'a str,
    pub instance: &'a str,
    pub key: &'a StageKey,
    /// Working directory (directory of the defining pipeline file).
    pub dir: &'a Path,
    pub params: &'a BTreeMap<String, Value>,
    /// For `command`: the command with only `${inputs.*}` / `${outputs.*}` left to fill.
    pub cmd: Option<&'a str>,
    pub seed: u64,
    /// Input port -> file, or directory of `axis=value/` sub-directories for a gather.
    pub inputs: BTreeMap<String, PathBuf>,
    /// Output port -> path to create.
    pub outputs: BTreeMap<String, PathBuf>,
    pub out_dir: &'a Path,
    pub log: &'a Path,
    /// `timeout:` of a command stage.
    pub timeout: Option<std::time::Duration>,
}

/// Why an execution failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("command exited with status {0}")]
    Exit(i32),
    #[error("command was killed by signal {0}")]
    Signal(i32),
    #[error("could not start the command: {0}")]
    Spawn(std::io::Error),
    #[error("{0}")]
    Stage(String),
    #[error("the stage panicked: {0}; this is a bug in the stage's code, please report it")]
    Panic(String),
    #[error("the command ran longer than its timeout of {}s and was stopped", .0.as_secs())]
    Timeout(std::time::Duration),
}

/// Runs jobs. Implementations: [`LocalExecutor`]; Slurm later.
pub trait Executor: Send + Sync {
    fn execute(&self, job: &Job<'_>) -> Result<(), ExecError>;
}

/// Runs jobs on this machine.
pub struct LocalExecutor<'k> {
    pub kinds: &'k dyn KindRegistry,
}

impl Executor for LocalExecutor<'_> {
    fn execute(&self, job: &Job<'_>) -> Result<(), ExecError> {
        if job.kind == "command" {
            return command::run(job);
        }
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(job.log).map_err(ExecError::Spawn)?;
        match panic::catch(|| self.kinds.run(job, &mut log)) {
            Ok(result) => result.map_err(ExecError::Stage),
            Err(message) => {
                let _ = writeln!(log, "the stage panicked: {message}");
                Err(ExecError::Panic(message))
            }
        }
    }
}

/// `PIPELINE_INPUT_<PORT>` style variable name: upper case, non-alphanumerics as `_`.
pub fn env_name(prefix: &str, port: &str) -> String {
    let tail: String =
        port.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("{prefix}{tail}")
}
