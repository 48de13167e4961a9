use std::path::PathBuf;

use crate::ops::run::{RunOpts, run};
use crate::ops::{Context, OpError};

/// Run a pipeline: compute every stage whose result is not in the cache
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline file (YAML)
    pub file: PathBuf,
    /// Run only these stages (or instances such as `train[lr=0.1]`) and what they need
    pub targets: Vec<String>,
    /// Stages to run at once [default: $PIPELINE_JOBS, else the number of cores]
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// GPU stages to run at once (each stage with `resources: {gpus: 1}` takes one)
    #[arg(long, default_value_t = 1)]
    pub gpus: u32,
    /// Recompute this stage (or instance) and everything downstream even though cached; the
    /// new result replaces the old one atomically. Repeatable
    #[arg(long, value_name = "STAGE")]
    pub force: Vec<String>,
    /// Start nothing new after the first failure (running stages finish); the default keeps
    /// going with every branch the failure does not feed
    #[arg(long)]
    pub fail_fast: bool,
}

/// The variable that sets the default of `--jobs` for `run` and `check`.
pub(super) const JOBS_ENV: &str = "PIPELINE_JOBS";

/// `--jobs`, else `$PIPELINE_JOBS` (unset or empty: not set), else the number of cores. 0, or
/// a variable that is not a whole number, is a usage error that names where the value came from.
pub(super) fn jobs(jobs: Option<usize>) -> Result<usize, OpError> {
    let from_env = std::env::var_os(JOBS_ENV).filter(|v| !v.is_empty());
    let jobs = match (jobs, from_env) {
        (Some(n), _) => n,
        (None, Some(v)) => {
            let text = v.to_string_lossy();
            match text.trim().parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(OpError::Usage {
                        message: format!("{JOBS_ENV}={text:?} is not a number of stages to run at once"),
                        help: Some(format!(
                            "set {JOBS_ENV} to a whole number of at least 1 (or unset it to use every core), or pass `--jobs N`"
                        )),
                    });
                }
            }
        }
        (None, None) => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    };
    if jobs == 0 {
        return Err(OpError::Usage { message: "--jobs must be at least 1".into(), help: None });
    }
    Ok(jobs)
}

pub fn exec(ctx: &Context, a: Args) -> Result<(), OpError> {
    let jobs = jobs(a.jobs)?;
    run(ctx, &RunOpts { file: a.file, targets: a.targets, jobs, gpus: a.gpus, force: a.force, fail_fast: a.fail_fast })
}
