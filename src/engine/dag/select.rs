//! Target selection: `pipeline run FILE train summary[...]` runs the named stages (every
//! instance of a stage, or one instance by its full name) and everything upstream of them.

use std::collections::BTreeSet;

use super::Dag;
use crate::engine::spec::diag::suggest;

/// A selector that matches nothing, with a did-you-mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownTarget {
    pub target: String,
    pub help: String,
}

impl std::fmt::Display for UnknownTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no stage or instance named `{}` in this pipeline ({})", self.target, self.help)
    }
}

impl std::error::Error for UnknownTarget {}

/// Instances matched by the selectors (no closure).
pub fn matching(dag: &Dag, targets: &[String]) -> Result<BTreeSet<usize>, UnknownTarget> {
    let mut out = BTreeSet::new();
    for t in targets {
        let before = out.len();
        match dag.pipeline.stage_index(t) {
            Some(si) => out.extend(dag.by_stage[si].iter().copied()),
            None => out.extend(dag.instances.iter().enumerate().filter(|(_, inst)| inst.name == *t).map(|(i, _)| i)),
        }
        if out.len() == before && dag.pipeline.stage_index(t).is_none() {
            let names: Vec<&str> = dag.pipeline.stages.iter().map(|s| s.name.as_str()).collect();
            return Err(UnknownTarget { target: t.clone(), help: suggest(t, &names, "stages") });
        }
    }
    Ok(out)
}

/// Instances matched by the selectors plus all their ancestors; everything when empty.
pub fn with_ancestors(dag: &Dag, targets: &[String]) -> Result<Vec<bool>, UnknownTarget> {
    if targets.is_empty() {
        return Ok(vec![true; dag.instances.len()]);
    }
    let mut keep = vec![false; dag.instances.len()];
    let mut stack: Vec<usize> = matching(dag, targets)?.into_iter().collect();
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut keep[i], true) {
            continue;
        }
        stack.extend(dag.instances[i].upstream.iter().copied());
    }
    Ok(keep)
}

/// `seeds` and every selected instance downstream of one (instances are in topological order:
/// an instance's upstream instances come before it).
pub fn with_descendants(dag: &Dag, selected: &[bool], seeds: &BTreeSet<usize>) -> Vec<bool> {
    let mut out = vec![false; dag.instances.len()];
    for (i, inst) in dag.instances.iter().enumerate() {
        debug_assert!(inst.upstream.iter().all(|&u| u < i), "instances are in topological order");
        out[i] = selected[i] && (seeds.contains(&i) || inst.upstream.iter().any(|&u| out[u]));
    }
    out
}

/// Add every ancestor of a selected instance to the selection.
pub fn close_under_ancestors(dag: &Dag, selected: &mut [bool]) {
    for i in (0..dag.instances.len()).rev() {
        if selected[i] {
            for &u in &dag.instances[i].upstream {
                selected[u] = true;
            }
        }
    }
}
