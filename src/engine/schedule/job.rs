//! One job on a worker: lock the key, re-check the cache, prepare inputs and outputs in a
//! private temp directory, execute, commit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::inputs::Snapshot;
use crate::engine::cache::{Cache, CommitError, CommitMeta, CommitOutcome, GatherTree, VerifyMemo};
use crate::engine::dag::{Binding, Dag};
use crate::engine::exec::{Executor, Job};

pub struct JobResult {
    /// The entry appeared while waiting for the key's lock (another process computed it).
    pub hit: bool,
    pub seconds: f64,
    pub error: Option<String>,
    pub log: Option<PathBuf>,
    pub warnings: Vec<String>,
}

impl JobResult {
    pub fn panicked(message: String) -> Self {
        Self::failed(format!("internal error while running the stage: {message}; please report it"), None, 0.0)
    }

    fn failed(error: String, log: Option<PathBuf>, seconds: f64) -> Self {
        JobResult { hit: false, seconds, error: Some(error), log, warnings: Vec::new() }
    }
}

/// Compute instance `i`. With `force`, an entry already stored for its key is recomputed and
/// replaced (`run --force`) instead of being a hit.
pub fn execute(dag: &Dag, i: usize, cache: &Cache, exec: &dyn Executor, force: bool, memo: &VerifyMemo) -> JobResult {
    let inst = &dag.instances[i];
    let stage = &dag.pipeline.stages[inst.stage];
    let key = &inst.key;
    let _lock = match cache.lock_key(key) {
        Ok(l) => l,
        Err(e) => return JobResult::failed(format!("cannot lock cache key {}: {e}", key.short()), None, 0.0),
    };
    if !force && cache.has_entry(key) {
        return JobResult { hit: true, seconds: 0.0, error: None, log: None, warnings: Vec::new() };
    }
    let mut pending = match cache.begin(key) {
        Ok(p) => p,
        Err(e) => return JobResult::failed(format!("cannot create a temp directory in the cache: {e}"), None, 0.0),
    };
    if force {
        pending.replace_existing();
    }
    // Inputs as they are now, not as they were when the run began: another stage (or process)
    // may have damaged one since. One `stat` per file for entries known good.
    if let Err(e) = check_inputs(dag, i, cache, memo) {
        return JobResult::failed(e, None, 0.0);
    }
    let (inputs, gather_trees) = match link_inputs(dag, i, cache) {
        Ok(m) => m,
        Err(e) => return JobResult::failed(format!("cannot prepare inputs: {e}"), None, 0.0),
    };
    let mut outputs = BTreeMap::new();
    for (port, file) in &stage.outputs {
        let path = pending.out_dir().join(file);
        if let Some(parent) = path.parent()
            && let Err(e) = std::fs::create_dir_all(parent)
        {
            return JobResult::failed(format!("cannot create {}: {e}", parent.display()), None, 0.0);
        }
        outputs.insert(port.clone(), path);
    }
    let log = pending.log_path();
    let job = Job {
        kind: &stage.kind,
        stage: &stage.name,
        instance: &inst.name,
        key,
        dir: &stage.dir,
        params: &inst.fingerprint.params,
        cmd: inst.fingerprint.cmd.as_deref(),
        seed: inst.fingerprint.seed,
        inputs,
        outputs,
        out_dir: pending.out_dir(),
        log: &log,
        timeout: stage.timeout,
    };
    let snapshot = Snapshot::take(dag, i, cache, &gather_trees);
    let start = Instant::now();
    let result = exec.execute(&job);
    let seconds = start.elapsed().as_secs_f64();
    let save_log = |cache: &Cache| cache.save_failed_log(key, &log).ok();
    if let Some(changed) = snapshot.check(dag, cache, memo) {
        return JobResult::failed(changed.message(), save_log(cache), seconds);
    }
    if let Some(tree) = snapshot.check_trees() {
        let msg = format!(
            "the stage changed its gathered input directory {} (added, removed or replaced something in it); inputs are read-only. Its result was not saved, and the directory is rebuilt by the next run",
            tree.display()
        );
        return JobResult::failed(msg, save_log(cache), seconds);
    }
    if let Err(e) = result {
        return JobResult::failed(e.to_string(), save_log(cache), seconds);
    }
    let meta = CommitMeta {
        stage: stage.name.clone(),
        instance: inst.name.clone(),
        fingerprint: inst.fingerprint.clone(),
        seconds,
    };
    match pending.commit(meta) {
        Ok(c) => {
            cache.remember_committed(&c.manifest, memo);
            let mut warnings = Vec::new();
            if let CommitOutcome::ReplacedBroken(fault) = c.outcome {
                warnings.push(format!("replaced a broken cache entry for `{}` ({fault})", inst.name));
            }
            JobResult { hit: false, seconds, error: None, log: None, warnings }
        }
        Err(CommitError::MissingOutput { port, .. }) => {
            // No path in the message: the temp directory is gone by the time anyone reads it.
            let env = crate::engine::exec::env_name("PIPELINE_OUTPUT_", &port);
            let msg = format!(
                "the command succeeded but did not write its declared output `{port}`; write it to ${{outputs.{port}}} or ${env}"
            );
            JobResult::failed(msg, save_log(cache), seconds)
        }
        Err(e) => JobResult::failed(e.to_string(), save_log(cache), seconds),
    }
}

/// Verify every upstream entry the instance reads (stat stamps when known good, else a full
/// digest). A damaged one is removed under its key's lock — unless another process replaced it
/// with a good one meanwhile — and fails this job; it is recomputed by the next run.
fn check_inputs(dag: &Dag, i: usize, cache: &Cache, memo: &VerifyMemo) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for (port, b) in &dag.instances[i].inputs {
        let ups: Vec<usize> = match b {
            Binding::Single { instance, .. } => vec![*instance],
            Binding::Gather { points, .. } => points.iter().map(|(_, u)| *u).collect(),
        };
        for up in ups {
            let key = &dag.instances[up].key;
            if !seen.insert(key) {
                continue;
            }
            let name = &dag.instances[up].name;
            match super::verify_under_lock(cache, key, memo) {
                Ok(()) => {}
                Err(super::EntryProblem::Broken(fault)) => {
                    return Err(format!(
                        "its input `{port}` (the result of `{name}`) was damaged before the stage started ({fault}); it was removed and the next run recomputes it"
                    ));
                }
                Err(super::EntryProblem::Unreadable(fault)) => {
                    return Err(format!("its input `{port}` (the result of `{name}`) cannot be read ({fault})"));
                }
            }
        }
    }
    Ok(())
}

/// Input paths: a single input is the upstream object's file; a gathered input is a directory
/// of `axis=value/.../<file>` links to the upstream objects' files, kept between runs and
/// updated in place ([`Cache::gather_tree`]). The returned trees hold their locks: keep them
/// until the stage has run.
fn link_inputs(dag: &Dag, i: usize, cache: &Cache) -> std::io::Result<(BTreeMap<String, PathBuf>, Vec<GatherTree>)> {
    let mut out = BTreeMap::new();
    let mut trees = Vec::new();
    for (port, b) in &dag.instances[i].inputs {
        match b {
            Binding::Single { instance, file } => {
                out.insert(port.clone(), cache.object_dir(&dag.instances[*instance].key).join(file));
            }
            Binding::Gather { file, points } => {
                let name = Path::new(file)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| file.clone());
                let links: Vec<(Vec<(String, String)>, PathBuf)> = points
                    .iter()
                    .map(|(pt, up)| (pt.clone(), cache.object_dir(&dag.instances[*up].key).join(file)))
                    .collect();
                let tree = cache.gather_tree(&dag.pipeline.name, &dag.instances[i].name, port, &name, &links)?;
                out.insert(port.clone(), tree.dir.clone());
                trees.push(tree);
            }
        }
    }
    Ok((out, trees))
}
