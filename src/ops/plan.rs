//! `pipeline plan FILE`: each instance, cached or will run, and why (without running).

use std::path::PathBuf;

use serde::Serialize;

use super::{Context, OpError, unknown_target};
use crate::engine::cache::Cache;
use crate::engine::dag::{Dag, select};
use crate::engine::hash::{DirtyReason, compare};

pub struct PlanOpts {
    pub file: PathBuf,
    pub targets: Vec<String>,
}

/// The decision for one instance.
#[derive(Debug, Clone)]
pub struct Decision {
    pub index: usize,
    pub cached: bool,
    /// Why it will run (empty when cached).
    pub reasons: Vec<DirtyReason>,
    /// The key of the previous run, from the last/ pointer.
    pub previous: Option<String>,
}

/// Decide every selected instance: cached (its key is in the cache) or, with reasons, run.
/// The same lookup as `pipeline run` makes, so plan and run agree.
/// The previous key (a `readlink`) is looked up for instances that will run, and for cached
/// ones only when `previous_of_cached` is set (`explain` says whether anything changed).
pub fn decide(dag: &Dag, selected: &[bool], cache: &Cache, previous_of_cached: bool) -> Vec<Decision> {
    let mut out = Vec::new();
    for (i, inst) in dag.instances.iter().enumerate() {
        if !selected[i] {
            continue;
        }
        let cached = cache.has_entry(&inst.key);
        let last = if cached && !previous_of_cached {
            None
        } else {
            cache.last(&dag.pipeline.name, dag.stage_name(i), &dag.point_segments(i))
        };
        let reasons = if cached { Vec::new() } else { reasons(dag, i, last.as_ref(), cache) };
        out.push(Decision { index: i, cached, reasons, previous: last.map(|k| k.0) });
    }
    out
}

fn reasons(dag: &Dag, i: usize, last: Option<&crate::engine::hash::StageKey>, cache: &Cache) -> Vec<DirtyReason> {
    let inst = &dag.instances[i];
    let Some(last) = last else { return vec![DirtyReason::NeverRan] };
    if *last == inst.key {
        return vec![DirtyReason::EntryMissing];
    }
    let Ok(prev) = cache.read_manifest(last) else {
        return vec![DirtyReason::PreviousUnknown];
    };
    let r = compare(&prev.fingerprint, &inst.fingerprint, &|port| upstream_name(dag, i, port));
    if r.is_empty() { vec![DirtyReason::EntryMissing] } else { r }
}

/// The name of what feeds input `port` of instance `i` (`stage[*]` for a gathered input), for
/// the sentences of [`DirtyReason`].
pub(super) fn upstream_name(dag: &Dag, i: usize, port: &str) -> Option<String> {
    dag.instances[i].inputs.iter().find(|(p, _)| p == port).map(|(_, b)| match b {
        crate::engine::dag::Binding::Single { instance, .. } => dag.instances[*instance].name.clone(),
        crate::engine::dag::Binding::Gather { points, .. } => {
            points.first().map(|(_, u)| format!("{}[*]", dag.stage_name(*u))).unwrap_or_default()
        }
    })
}

#[derive(Serialize)]
struct JsonDecision<'a> {
    stage: &'a str,
    instance: &'a str,
    key: &'a str,
    status: &'static str,
    reasons: Vec<String>,
}

pub fn plan(ctx: &Context, opts: &PlanOpts) -> Result<(), OpError> {
    let dag = ctx.load(&opts.file)?;
    let selected = select::with_ancestors(&dag, &opts.targets).map_err(unknown_target)?;
    let p = &ctx.printer;
    let cache = ctx.cache_or_absent("every instance will run");
    let decisions = decide(&dag, &selected, &cache, false);
    if ctx.json {
        let rows: Vec<JsonDecision> = decisions
            .iter()
            .map(|d| {
                let inst = &dag.instances[d.index];
                JsonDecision {
                    stage: dag.stage_name(d.index),
                    instance: &inst.name,
                    key: &inst.key.0,
                    status: if d.cached { "cached" } else { "run" },
                    reasons: d.reasons.iter().map(|r| r.to_string()).collect(),
                }
            })
            .collect();
        p.out(&serde_json::to_string_pretty(&rows).unwrap_or_default());
        return Ok(());
    }
    let n_run = decisions.iter().filter(|d| !d.cached).count();
    p.out(&format!(
        "pipeline `{}`: {} instances, {} cached, {} will run",
        dag.pipeline.name,
        decisions.len(),
        decisions.len() - n_run,
        n_run
    ));
    let width = decisions.iter().map(|d| dag.instances[d.index].name.len()).max().unwrap_or(0);
    for d in &decisions {
        let inst = &dag.instances[d.index];
        let status = if d.cached { "cached" } else { "run   " };
        let why = d.reasons.first().map(|r| format!("  {r}")).unwrap_or_default();
        let more = if d.reasons.len() > 1 {
            format!(" (+{} more; see `pipeline explain`)", d.reasons.len() - 1)
        } else {
            String::new()
        };
        p.out(&format!("  {status}  {:width$}  {}{why}{more}", inst.name, inst.key.short()));
    }
    Ok(())
}
