use std::path::PathBuf;

use crate::ops::verify::{VerifyOpts, verify};
use crate::ops::{Context, OpError};

/// Check cache entries against their manifests (sizes and blake3 digests)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Check only the entries of this pipeline
    pub file: Option<PathBuf>,
    /// Remove broken entries so the next run recomputes them
    #[arg(long)]
    pub fix: bool,
}

pub fn exec(ctx: &Context, a: Args) -> Result<(), OpError> {
    verify(ctx, &VerifyOpts { file: a.file, fix: a.fix })
}
