use std::path::PathBuf;

use crate::ops::show::{ShowOpts, show};
use crate::ops::{Context, OpError};

/// Show a stage's outputs: path, and for tables the schema, row count and first rows
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline file (YAML)
    pub file: PathBuf,
    /// Stage name, or one instance such as `train[lr=0.1]`
    pub stage: String,
    /// How many rows to print
    #[arg(long, default_value_t = 5)]
    pub rows: usize,
}

pub fn exec(ctx: &Context, a: Args) -> Result<(), OpError> {
    show(ctx, &ShowOpts { file: a.file, stage: a.stage, rows: a.rows })
}
