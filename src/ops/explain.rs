//! `pipeline explain FILE STAGE`: the ingredients that changed since the last run, one
//! sentence each.

use std::path::PathBuf;

use super::plan::decide;
use super::{Context, OpError, unknown_target};
use crate::engine::dag::select;

pub struct ExplainOpts {
    pub file: PathBuf,
    pub stage: String,
}

pub fn explain(ctx: &Context, opts: &ExplainOpts) -> Result<(), OpError> {
    let dag = ctx.load(&opts.file)?;
    let targets = select::matching(&dag, std::slice::from_ref(&opts.stage)).map_err(unknown_target)?;
    // A decision depends only on the instance itself, so only the targets are decided.
    let selected: Vec<bool> = (0..dag.instances.len()).map(|i| targets.contains(&i)).collect();
    let cache = ctx.existing_cache()?;
    let p = &ctx.printer;
    if targets.is_empty() {
        p.out(&format!(
            "stage `{}` has no instances (every sweep point was excluded or an upstream has none)",
            opts.stage
        ));
    }
    for d in decide(&dag, &selected, &cache, true) {
        let inst = &dag.instances[d.index];
        let prev = d.previous.as_deref().map(|k| format!(", previous {}", &k[..12.min(k.len())])).unwrap_or_default();
        if d.cached {
            let same = d.previous.as_deref() == Some(inst.key.0.as_str());
            let why = if same {
                "nothing changed since its last run"
            } else {
                "an identical computation is already in the cache"
            };
            p.out(&format!("{} (key {}{prev}) is cached: {why}.", inst.name, inst.key.short()));
        } else {
            p.out(&format!("{} (key {}{prev}) will run:", inst.name, inst.key.short()));
            for r in &d.reasons {
                p.out(&format!("  - {r}"));
            }
        }
    }
    Ok(())
}
