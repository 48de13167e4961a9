use std::path::PathBuf;

use crate::ops::log::{LogOpts, log};
use crate::ops::{Context, OpError};

/// Print the log of the last run of a stage instance, failed or not
///
/// The log of the current version's cache entry; else the log of its failed run; else the log
/// of the instance's previous run (other ingredients: stderr says so). A stage with several
/// instances prints each log after a `==> INSTANCE <==` header.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline file (YAML)
    pub file: PathBuf,
    /// Stage name, or one instance such as `train[lr=0.1]`
    pub stage: String,
}

pub fn exec(ctx: &Context, a: Args) -> Result<(), OpError> {
    log(ctx, &LogOpts { file: a.file, stage: a.stage })
}
