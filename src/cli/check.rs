use std::path::PathBuf;

use crate::ops::check::{CheckOpts, check};
use crate::ops::{Context, OpError};

/// Run a pipeline and compare its metrics with a baseline file (a regression gate for CI)
///
/// Each metric of the baseline names a stage, a Parquet output, a column, an optional row
/// filter and reduction, a value and a tolerance (docs/check.md). Exit codes: 0 nothing
/// regressed, 1 a regression or a metric that could not be evaluated, 2 a mistake in the
/// baseline file.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline file (YAML)
    pub file: PathBuf,
    /// Baseline file (YAML): the metrics, their values and tolerances
    #[arg(long, value_name = "FILE")]
    pub baseline: PathBuf,
    /// Also write the results as JUnit XML to this file
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Write the current values into the baseline file (comments and layout are kept)
    #[arg(long)]
    pub update: bool,
    /// Do not run anything: read only results already in the cache
    #[arg(long)]
    pub no_run: bool,
    /// Stages to run at once [default: $PIPELINE_JOBS, else the number of cores]
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// GPU stages to run at once
    #[arg(long, default_value_t = 1)]
    pub gpus: u32,
}

pub fn exec(ctx: &Context, a: Args) -> Result<(), OpError> {
    let jobs = super::run::jobs(a.jobs)?;
    let opts = CheckOpts {
        file: a.file,
        baseline: a.baseline,
        junit: a.junit,
        update: a.update,
        no_run: a.no_run,
        jobs,
        gpus: a.gpus,
    };
    check(ctx, &opts)
}
