use std::path::PathBuf;

use crate::ops::plan::{PlanOpts, plan};
use crate::ops::{Context, OpError};

/// Show what `run` would do: each stage instance, cached or will run, and why
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline file (YAML)
    pub file: PathBuf,
    /// Plan only these stages (and what they need)
    pub targets: Vec<String>,
}

pub fn exec(ctx: &Context, a: Args) -> Result<(), OpError> {
    plan(ctx, &PlanOpts { file: a.file, targets: a.targets })
}
