use std::path::PathBuf;

use crate::ops::report::{ReportOpts, report};
use crate::ops::{Context, OpError};

/// Write a self-contained HTML report: every figure with its points, the paper's numbers and
/// the cache keys behind them, and the status of every stage instance
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline file (YAML)
    pub file: PathBuf,
    /// Where to write the page [default: <FILE stem>-report.html in the current directory]
    #[arg(long, short, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

pub fn exec(ctx: &Context, a: Args) -> Result<(), OpError> {
    report(ctx, &ReportOpts { file: a.file, out: a.out })
}
