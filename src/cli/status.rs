use std::path::PathBuf;

use crate::ops::status::{StatusOpts, status};
use crate::ops::{Context, OpError};

/// Show which stage results are in the cache
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline file (YAML)
    pub file: PathBuf,
}

pub fn exec(ctx: &Context, a: Args) -> Result<(), OpError> {
    status(ctx, &StatusOpts { file: a.file })
}
