use std::path::PathBuf;

use crate::ops::gc::{GcOpts, gc, parse_age};
use crate::ops::{Context, OpError};

/// Remove cache entries that the given pipelines no longer use
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipelines whose current results to keep
    pub keep: Vec<PathBuf>,
    /// Remove only entries older than this (e.g. 30d, 12h)
    #[arg(long, value_name = "AGE")]
    pub older_than: Option<String>,
    /// List what would be removed, remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask before removing (the default when stdin is not a terminal)
    #[arg(long, short)]
    pub yes: bool,
}

pub fn exec(ctx: &Context, a: Args) -> Result<(), OpError> {
    let older_than = match a.older_than.as_deref().map(parse_age).transpose() {
        Ok(d) => d,
        Err(message) => return Err(OpError::Usage { message, help: None }),
    };
    let confirm = !a.yes && ctx.printer.interactive();
    gc(ctx, &GcOpts { keep: a.keep, older_than, dry_run: a.dry_run, confirm })
}
