use std::path::PathBuf;

use crate::ops::dag::{DagFormat, DagOpts, dag};
use crate::ops::{Context, OpError};

/// Print the pipeline graph for Graphviz (dot) or Mermaid
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline file (YAML)
    pub file: PathBuf,
    #[arg(long, value_enum, default_value_t = DagFormat::Dot)]
    pub format: DagFormat,
    /// One node per stage instead of one per sweep point
    #[arg(long)]
    pub stages: bool,
}

pub fn exec(ctx: &Context, a: Args) -> Result<(), OpError> {
    dag(ctx, &DagOpts { file: a.file, format: a.format, stages: a.stages })
}
