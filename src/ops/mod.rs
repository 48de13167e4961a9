//! User-level operations, one per file. Each takes an options struct filled by `cli` and
//! returns an [`OpError`] that maps to a fixed exit code.

pub mod check;
pub mod dag;
pub mod diff;
pub mod explain;
pub mod gc;
pub mod log;
pub mod plan;
pub mod report;
mod report_html;
mod report_page;
pub mod run;
pub mod show;
pub mod status;
pub mod verify;
mod write_file;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::cache::Cache;
use crate::engine::dag::Dag;
use crate::engine::spec::SpecErrors;
use crate::kinds::Builtins;
use crate::table::ParquetRows;
use crate::ui::Printer;

/// Why an operation failed, by exit code.
#[derive(Debug)]
pub enum OpError {
    /// Exit 2: the spec is invalid.
    Spec(SpecErrors),
    /// Exit 2: bad command-line usage.
    Usage { message: String, help: Option<String> },
    /// Exit 1: a stage failed (the summary was already printed).
    StageFailed,
    /// Exit 1: something else went wrong (I/O, a broken cache found by verify).
    Failed(String),
}

impl OpError {
    pub fn exit_code(&self) -> i32 {
        match self {
            OpError::Spec(_) | OpError::Usage { .. } => 2,
            OpError::StageFailed | OpError::Failed(_) => 1,
        }
    }
}

/// What every operation gets.
pub struct Context {
    pub printer: Printer,
    pub cache_root: PathBuf,
    pub json: bool,
    pub kinds: Builtins,
}

impl Context {
    /// The cache root as an absolute path, so that input paths handed to commands and
    /// gathered links work from any working directory.
    fn cache_path(&self) -> PathBuf {
        let root =
            std::env::current_dir().map(|d| d.join(&self.cache_root)).unwrap_or_else(|_| self.cache_root.clone());
        crate::engine::spec::source::normalize(&root)
    }

    /// Open the cache, creating it if needed (commands that write: run, check).
    pub fn open_cache(&self) -> Result<Cache, OpError> {
        Cache::open(self.cache_path())
            .map(|c| c.with_row_counter(Arc::new(ParquetRows)))
            .map_err(|e| OpError::Failed(format!("cannot open the cache at {}: {e}", self.cache_root.display())))
    }

    /// Open an existing cache without creating anything (commands that only read: status,
    /// show, explain, report, verify, gc). No cache there is an error that says where it looked.
    pub fn existing_cache(&self) -> Result<Cache, OpError> {
        self.maybe_cache().ok_or_else(|| OpError::Usage {
            message: format!("no cache at {}", self.cache_root.display()),
            help: Some(self.no_cache_help()),
        })
    }

    /// Like [`Context::existing_cache`], but `None` when there is no cache (plan: everything
    /// would run).
    pub fn maybe_cache(&self) -> Option<Cache> {
        Cache::open_existing(self.cache_path()).map(|c| c.with_row_counter(Arc::new(ParquetRows)))
    }

    /// The cache if there is one; else a warning ("no cache at X, so <consequence>") and a
    /// handle that creates nothing, on which every lookup is a miss (plan, report).
    pub fn cache_or_absent(&self, consequence: &str) -> Cache {
        self.maybe_cache().unwrap_or_else(|| {
            self.printer.warn(&format!(
                "no cache at {}, so {consequence} ({})",
                self.cache_root.display(),
                self.no_cache_help()
            ));
            Cache::at(self.cache_path())
        })
    }

    fn no_cache_help(&self) -> String {
        "run `pipeline run FILE` first, or point at the cache with `--cache DIR` or `PIPELINE_CACHE` (the default is ./cache, relative to the current directory)".to_string()
    }

    /// Load, validate and expand a pipeline file.
    pub fn load(&self, file: &Path) -> Result<Dag, OpError> {
        use crate::engine::exec::KindRegistry;
        let pipeline = crate::engine::spec::load(file, self.kinds.kinds()).map_err(OpError::Spec)?;
        let dag = Dag::build(pipeline).map_err(OpError::Spec)?;
        for (si, instances) in dag.by_stage.iter().enumerate() {
            if instances.is_empty() {
                self.printer.warn(&format!(
                    "stage `{}` has no instances: `exclude` removed every sweep point, or a stage it needs has none",
                    dag.pipeline.stages[si].name
                ));
            }
        }
        Ok(dag)
    }
}

/// A usage error for an unknown target.
pub fn unknown_target(e: crate::engine::dag::select::UnknownTarget) -> OpError {
    OpError::Usage {
        message: format!("no stage or instance named `{}` in this pipeline", e.target),
        help: Some(e.help),
    }
}
