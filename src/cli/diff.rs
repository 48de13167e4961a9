use std::path::PathBuf;

use crate::ops::diff::{DiffOpts, diff};
use crate::ops::{Context, OpError};

/// Compare params, keys and metrics with another version of the pipeline
///
/// The other version is FILE as committed at a git revision (default HEAD; the whole tree is
/// read at that revision, so `extends`, deps and scripts are as they were), or another
/// pipeline file. Instances are matched by name. Metrics are the numeric columns of one-row
/// Parquet outputs of results in the cache; multi-row tables under a stage's `report:` are
/// shown as changed or unchanged. Only differences are shown unless `--all`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline file (YAML): the new version
    pub file: PathBuf,
    /// The old version: a git revision (branch, tag, commit) of the repository that holds FILE,
    /// or an existing pipeline file
    #[arg(long, default_value = "HEAD", value_name = "REV|FILE")]
    pub against: String,
    /// Also show what did not change
    #[arg(long)]
    pub all: bool,
}

pub fn exec(ctx: &Context, a: Args) -> Result<(), OpError> {
    diff(ctx, &DiffOpts { file: a.file, against: a.against, all: a.all })
}
