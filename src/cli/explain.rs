use std::path::PathBuf;

use crate::ops::explain::{ExplainOpts, explain};
use crate::ops::{Context, OpError};

/// Explain why a stage will run: every ingredient that changed since its last run
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline file (YAML)
    pub file: PathBuf,
    /// Stage name, or one instance such as `train[lr=0.1]`
    pub stage: String,
}

pub fn exec(ctx: &Context, a: Args) -> Result<(), OpError> {
    explain(ctx, &ExplainOpts { file: a.file, stage: a.stage })
}
