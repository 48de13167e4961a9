//! The coordinator: runs the selected instances of a [`Dag`] against a cache.
//!
//! 1. Instances are grouped by key: identical keys (e.g. an upstream shared by sweep points)
//!    form one job, computed once.
//! 2. Each key is looked up with one `stat` (a complete entry has a manifest). Hits resolve
//!    inline, without a worker.
//! 3. Before anything runs, every cached entry that feeds a job that will run is verified
//!    (manifest, sizes, blake3; an entry whose files kept the `stat` stamps they had when it
//!    last verified is not re-digested, see `cache::VerifyMemo`). A broken entry is a warning, is removed, and its key joins
//!    the jobs, which may in turn require verifying its own inputs (a fixpoint).
//! 4. A single coordinator thread owns the run state; `jobs` worker threads receive ready jobs
//!    over a channel and send outcomes back. Resource tokens (CPU slots = `--jobs`, GPU
//!    tokens = `--gpus`) decide which ready jobs may start. A job takes the key's file lock first, so two
//!    `pipeline run` processes never compute a key twice at once; if the entry appeared while
//!    waiting, the job is a hit. A failed job marks everything downstream skipped; other
//!    branches go on.
//! 5. Views and last/ pointers of an instance are updated as soon as its key is in the cache
//!    (only touched when they change); at the end, view links of points or stages that left
//!    the pipeline are removed.

mod inputs;
mod job;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use crate::engine::cache::{Cache, VerifyMemo, ViewEntry, ViewIndex};
use crate::engine::dag::Dag;
use crate::engine::exec::Executor;
use crate::engine::hash::StageKey;
use crate::engine::spec::Resources;

/// What happened to one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Cached,
    Ran,
    Failed,
    Skipped,
}

/// The outcome of one instance.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub index: usize,
    pub stage: String,
    pub instance: String,
    pub key: StageKey,
    pub status: Status,
    pub seconds: f64,
    pub error: Option<String>,
    /// The saved log of a failed instance.
    pub log: Option<PathBuf>,
    /// For skipped instances: the failed instance that caused it.
    pub because: Option<String>,
}

/// Receives progress; implemented by the terminal UI.
pub trait Reporter {
    fn started(&mut self, instance: &str);
    fn finished(&mut self, outcome: &Outcome);
    fn warn(&mut self, msg: &str);
    fn finish(&mut self);
}

/// Options of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// CPU slots: a stage takes `resources.cpus` of them.
    pub jobs: usize,
    /// GPU tokens: a stage with `resources.gpus: 1` takes one, so two GPU stages never share
    /// a device.
    pub gpus: u32,
    /// Instances to recompute even though cached (by instance index; empty: none). The
    /// caller closes it under descendants (`run --force`).
    pub force: Vec<bool>,
    /// After the first failure, start nothing new (`run --fail-fast`); running jobs finish.
    pub fail_fast: bool,
}

impl RunOptions {
    pub fn new(jobs: usize, gpus: u32) -> RunOptions {
        RunOptions { jobs, gpus, force: Vec::new(), fail_fast: false }
    }
}

/// Free resource tokens.
struct Tokens {
    cpus: u32,
    gpus: u32,
}

impl Tokens {
    fn fits(&self, r: &Resources) -> bool {
        r.cpus <= self.cpus && r.gpus <= self.gpus
    }
    fn take(&mut self, r: &Resources) {
        self.cpus -= r.cpus;
        self.gpus -= r.gpus;
    }
    fn give(&mut self, r: &Resources) {
        self.cpus += r.cpus;
        self.gpus += r.gpus;
    }
}

/// The result of a run: one outcome per selected instance, in topological order.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub outcomes: Vec<Outcome>,
    pub warnings: Vec<String>,
}

impl RunSummary {
    pub fn failed(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| o.status == Status::Failed)
    }
    pub fn count(&self, s: Status) -> usize {
        self.outcomes.iter().filter(|o| o.status == s).count()
    }
}

/// One unique key to produce.
struct KeyJob {
    /// Representative instance (the first in topological order).
    rep: usize,
    instances: Vec<usize>,
    /// Job indices this one reads.
    ups: Vec<usize>,
    downs: Vec<usize>,
}

/// Run the instances marked in `selected` (closed under ancestors).
pub fn run(
    dag: &Dag,
    selected: &[bool],
    cache: &Cache,
    exec: &dyn Executor,
    opts: &RunOptions,
    reporter: &mut dyn Reporter,
) -> RunSummary {
    // 1. Jobs by key, in topological order of their first instance.
    let mut by_key: HashMap<&StageKey, usize> = HashMap::new();
    let mut jobs: Vec<KeyJob> = Vec::new();
    let mut job_of = vec![usize::MAX; dag.instances.len()];
    for (i, inst) in dag.instances.iter().enumerate() {
        if !selected[i] {
            continue;
        }
        let j = *by_key.entry(&inst.key).or_insert_with(|| {
            jobs.push(KeyJob { rep: i, instances: Vec::new(), ups: Vec::new(), downs: Vec::new() });
            jobs.len() - 1
        });
        jobs[j].instances.push(i);
        job_of[i] = j;
    }
    for j in 0..jobs.len() {
        let rep = jobs[j].rep;
        let ups: BTreeSet<usize> = dag.instances[rep].upstream.iter().map(|&u| job_of[u]).collect();
        for &u in &ups {
            jobs[u].downs.push(j);
        }
        jobs[j].ups = ups.into_iter().collect();
    }

    // 2. Lookup, 3. verify what feeds a job that runs.
    let mut summary = RunSummary::default();
    let forced = |j: &KeyJob| j.instances.iter().any(|&i| opts.force.get(i).copied().unwrap_or(false));
    let force: Vec<bool> = jobs.iter().map(forced).collect();
    let mut to_run: Vec<bool> =
        jobs.iter().zip(&force).map(|(j, &f)| f || !cache.has_entry(&dag.instances[j.rep].key)).collect();
    let mut verified = vec![false; jobs.len()];
    // Entries that could not be read (an I/O error, not damage): kept, and reported as failed
    // so that nothing is computed from them.
    let mut unreadable: Vec<Option<String>> = vec![None; jobs.len()];
    // Read only when something runs: a no-op rerun verifies nothing and skips its parse.
    let memo =
        if to_run.iter().any(|&r| r) { cache.read_verify_memo(&dag.pipeline.name) } else { VerifyMemo::default() };
    let mut stack: Vec<usize> = (0..jobs.len()).filter(|&j| to_run[j]).flat_map(|j| jobs[j].ups.clone()).collect();
    while let Some(u) = stack.pop() {
        if to_run[u] || std::mem::replace(&mut verified[u], true) {
            continue;
        }
        let key = &dag.instances[jobs[u].rep].key;
        match verify_under_lock(cache, key, &memo) {
            Ok(()) => {}
            Err(EntryProblem::Broken(fault)) => {
                let msg = format!(
                    "cache entry of `{}` is broken ({fault}); it will be recomputed",
                    dag.instances[jobs[u].rep].name
                );
                reporter.warn(&msg);
                summary.warnings.push(msg);
                to_run[u] = true;
                stack.extend(jobs[u].ups.iter().copied());
            }
            Err(EntryProblem::Unreadable(fault)) => unreadable[u] = Some(fault),
        }
    }

    // 4. Coordinator.
    let mut views = Views::open(cache, &dag.pipeline.name);
    let mut outcomes: Vec<Option<Outcome>> = vec![None; dag.instances.len()];
    let mut pending_ups: Vec<usize> = jobs.iter().map(|j| j.ups.iter().filter(|&&u| to_run[u]).count()).collect();
    let mut state: Vec<JobState> = vec![JobState::Waiting; jobs.len()];
    let mut ready: BTreeSet<usize> = BTreeSet::new();
    // --fail-fast: an input that cannot be read counts as the first failure.
    let first_unreadable = unreadable.iter().position(Option::is_some).map(|j| dag.instances[jobs[j].rep].name.clone());
    for j in 0..jobs.len() {
        if let Some(fault) = unreadable[j].take() {
            state[j] = JobState::Done(Status::Failed);
            let error = format!(
                "its cache entry cannot be read ({fault}); it was kept, not recomputed: fix the permissions or the disk and run again"
            );
            let end = JobEnd { error: Some(error), ..JobEnd::new(Status::Failed) };
            finish_job(dag, cache, &jobs[j], end, &mut outcomes, reporter, &mut views);
        } else if !to_run[j] {
            state[j] = JobState::Done(Status::Cached);
            finish_job(dag, cache, &jobs[j], JobEnd::new(Status::Cached), &mut outcomes, reporter, &mut views);
        } else if pending_ups[j] == 0 {
            ready.insert(j);
        }
    }
    for j in 0..jobs.len() {
        if state[j] == JobState::Done(Status::Failed) {
            skip_downstream(dag, cache, &jobs, j, &mut state, &mut ready, &mut outcomes, reporter, &mut views);
        }
    }
    let workers = opts.jobs.max(1).min(jobs.len().max(1));
    let mut tokens = Tokens { cpus: opts.jobs.max(1) as u32, gpus: opts.gpus };
    let need = |j: usize| -> Resources {
        let r = dag.pipeline.stages[dag.instances[jobs[j].rep].stage].resources;
        // A request larger than the machine runs alone rather than never.
        Resources { cpus: r.cpus.min(opts.jobs.max(1) as u32), gpus: r.gpus.min(opts.gpus) }
    };
    let (job_tx, job_rx) = mpsc::channel::<usize>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = mpsc::channel::<(usize, job::JobResult)>();
    let mut running = 0usize;
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let job_rx = Arc::clone(&job_rx);
            let done_tx = done_tx.clone();
            let jobs = &jobs;
            let force = &force;
            let memo = &memo;
            scope.spawn(move || {
                loop {
                    let next = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(j) = next else { return };
                    // A panic outside the executor (the executor catches its own) must still
                    // report back, or the coordinator would wait for this job forever.
                    let result = crate::engine::exec::panic::catch(|| {
                        job::execute(dag, jobs[j].rep, cache, exec, force[j], memo)
                    })
                    .unwrap_or_else(job::JobResult::panicked);
                    if done_tx.send((j, result)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        // With --fail-fast, the first failed instance: nothing new starts after it.
        let mut stop_after: Option<String> = if opts.fail_fast { first_unreadable } else { None };
        // Entries committed since the last fsync of objects/.
        let mut unsynced = false;
        loop {
            // Start every ready job whose resources fit, lowest index (topological) first.
            while running < workers && stop_after.is_none() {
                let Some(j) = ready.iter().copied().find(|&j| tokens.fits(&need(j))) else { break };
                ready.remove(&j);
                tokens.take(&need(j));
                state[j] = JobState::Running;
                reporter.started(&dag.instances[jobs[j].rep].name);
                if job_tx.send(j).is_err() {
                    break;
                }
                running += 1;
            }
            if running == 0 {
                break;
            }
            // Group durability: when no other job has finished yet (the end of a wave), one
            // fsync of objects/ covers every commit since the last one.
            let next = match done_rx.try_recv() {
                Ok(done) => Ok(done),
                Err(_) => {
                    if std::mem::take(&mut unsynced) {
                        sync_objects(cache, &mut summary.warnings);
                    }
                    done_rx.recv()
                }
            };
            let Ok((j, result)) = next else { break };
            unsynced |= result.error.is_none() && !result.hit;
            running -= 1;
            tokens.give(&need(j));
            for w in &result.warnings {
                reporter.warn(w);
                summary.warnings.push(w.clone());
            }
            let status = if result.error.is_none() {
                if result.hit { Status::Cached } else { Status::Ran }
            } else {
                Status::Failed
            };
            state[j] = JobState::Done(status);
            let end = JobEnd {
                status,
                seconds: result.seconds,
                error: result.error.clone(),
                log: result.log.clone(),
                because: None,
            };
            finish_job(dag, cache, &jobs[j], end, &mut outcomes, reporter, &mut views);
            if status == Status::Failed {
                skip_downstream(dag, cache, &jobs, j, &mut state, &mut ready, &mut outcomes, reporter, &mut views);
                if opts.fail_fast && stop_after.is_none() {
                    stop_after = Some(dag.instances[jobs[j].rep].name.clone());
                }
            } else {
                for &d in &jobs[j].downs {
                    if state[d] == JobState::Waiting && to_run[d] {
                        pending_ups[d] -= 1;
                        if pending_ups[d] == 0 {
                            ready.insert(d);
                        }
                    }
                }
            }
        }
        drop(job_tx);
        if unsynced {
            sync_objects(cache, &mut summary.warnings);
        }
        // --fail-fast: what never started is skipped, naming the failure that stopped the run.
        if let Some(culprit) = stop_after {
            for d in 0..jobs.len() {
                if state[d] == JobState::Waiting {
                    state[d] = JobState::Done(Status::Skipped);
                    let end = JobEnd { because: Some(culprit.clone()), ..JobEnd::new(Status::Skipped) };
                    finish_job(dag, cache, &jobs[d], end, &mut outcomes, reporter, &mut views);
                }
            }
        }
    });
    if let Err(e) = cache.write_verify_memo(&dag.pipeline.name, &memo) {
        summary.warnings.push(format!("could not save the verification memo: {e}"));
    }

    // 5. Drop view links of points and stages that are no longer in the pipeline. Failures to
    // update views are reported like any other warning (not only in `--json`).
    let before = summary.warnings.len();
    views.finish(dag, cache, &mut summary.warnings);
    for w in &summary.warnings[before..] {
        reporter.warn(w);
    }
    reporter.finish();
    summary.outcomes = outcomes.into_iter().flatten().collect();
    summary
}

fn sync_objects(cache: &Cache, warnings: &mut Vec<String>) {
    if let Err(e) = cache.sync_objects() {
        warnings.push(format!("could not make new cache entries durable (fsync of objects/): {e}"));
    }
}

/// Mark everything downstream of the failed job `j` skipped.
#[allow(clippy::too_many_arguments)]
fn skip_downstream(
    dag: &Dag,
    cache: &Cache,
    jobs: &[KeyJob],
    j: usize,
    state: &mut [JobState],
    ready: &mut BTreeSet<usize>,
    outcomes: &mut [Option<Outcome>],
    reporter: &mut dyn Reporter,
    views: &mut Views,
) {
    let culprit = dag.instances[jobs[j].rep].name.clone();
    let mut stack = jobs[j].downs.clone();
    while let Some(d) = stack.pop() {
        if state[d] != JobState::Waiting {
            continue;
        }
        state[d] = JobState::Done(Status::Skipped);
        ready.remove(&d);
        let end = JobEnd { because: Some(culprit.clone()), ..JobEnd::new(Status::Skipped) };
        finish_job(dag, cache, &jobs[d], end, outcomes, reporter, views);
        stack.extend(jobs[d].downs.iter().copied());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobState {
    Waiting,
    Running,
    Done(Status),
}

/// How a job ended.
struct JobEnd {
    status: Status,
    seconds: f64,
    error: Option<String>,
    log: Option<PathBuf>,
    /// For skipped jobs: the failed instance upstream.
    because: Option<String>,
}

impl JobEnd {
    fn new(status: Status) -> Self {
        JobEnd { status, seconds: 0.0, error: None, log: None, because: None }
    }
}

/// Record the outcome of every instance of a finished job, and update their views.
fn finish_job(
    dag: &Dag,
    cache: &Cache,
    job: &KeyJob,
    end: JobEnd,
    outcomes: &mut [Option<Outcome>],
    reporter: &mut dyn Reporter,
    views: &mut Views,
) {
    let JobEnd { status, seconds, error, log, because } = end;
    if matches!(status, Status::Cached | Status::Ran) {
        views.update(dag, cache, &job.instances);
    }
    for (n, &i) in job.instances.iter().enumerate() {
        let inst = &dag.instances[i];
        // Instances sharing a key with the one that ran are served by that execution.
        let status = if n > 0 && status == Status::Ran { Status::Cached } else { status };
        let o = Outcome {
            index: i,
            stage: dag.stage_name(i).to_string(),
            instance: inst.name.clone(),
            key: inst.key.clone(),
            status,
            seconds: if n == 0 { seconds } else { 0.0 },
            error: error.clone(),
            log: log.clone(),
            because: because.clone(),
        };
        reporter.finished(&o);
        outcomes[i] = Some(o);
    }
}

/// Files of an instance that its view links to.
fn view_files(inst: &crate::engine::dag::Instance) -> Vec<String> {
    let mut files: Vec<String> = inst.fingerprint.outputs.iter().map(|(_, f)| f.clone()).collect();
    files.push(crate::engine::cache::STAGE_LOG.to_string());
    files
}

/// Views and last/ pointers, kept in step with the cache through the view index.
struct Views {
    /// The index as read at the start (None: absent or unreadable, so every link is checked).
    old: Option<ViewIndex>,
    new: ViewIndex,
    dirty: bool,
    warnings: Vec<String>,
}

impl Views {
    fn open(cache: &Cache, pipeline: &str) -> Views {
        let old = cache.read_view_index(pipeline);
        Views { new: old.clone().unwrap_or_default(), old, dirty: false, warnings: Vec::new() }
    }

    /// Point the views and last/ pointers of these instances at their (now cached) key. Done
    /// as each job finishes, so a long or interrupted run still leaves views of what it
    /// finished. An instance whose index entry already matches is not touched.
    fn update(&mut self, dag: &Dag, cache: &Cache, instances: &[usize]) {
        let pipeline = &dag.pipeline.name;
        for &i in instances {
            let inst = &dag.instances[i];
            let entry = ViewEntry {
                key: inst.key.clone(),
                stage: dag.stage_name(i).to_string(),
                point: dag.point_segments(i),
                files: view_files(inst),
            };
            if self.old.as_ref().and_then(|o| o.get(&inst.name)) == Some(&entry) {
                continue;
            }
            let res = cache
                .update_view(pipeline, &entry.stage, &entry.point, &entry.key, &entry.files)
                .and_then(|_| cache.set_last(pipeline, &entry.stage, &entry.point, &entry.key));
            match res {
                Ok(_) => {
                    self.new.insert(inst.name.clone(), entry);
                    self.dirty = true;
                }
                Err(e) => self.warnings.push(format!("could not update the view of `{}`: {e}", inst.name)),
            }
        }
    }

    /// Remove the views of instances that left the pipeline and save the index.
    fn finish(mut self, dag: &Dag, cache: &Cache, warnings: &mut Vec<String>) {
        let pipeline = &dag.pipeline.name;
        let current: HashSet<&str> = dag.instances.iter().map(|i| i.name.as_str()).collect();
        let stale: Vec<String> = self.new.keys().filter(|n| !current.contains(n.as_str())).cloned().collect();
        for name in stale {
            if let Some(e) = self.new.remove(&name) {
                if let Err(err) = cache.remove_view(pipeline, &e.stage, &e.point, &e.files) {
                    warnings.push(format!("could not remove the stale view of `{name}`: {err}"));
                }
                self.dirty = true;
            }
        }
        if self.old.is_none() {
            // Without an index, links of earlier states may be anywhere: walk the view tree.
            let mut live = HashSet::new();
            for (i, inst) in dag.instances.iter().enumerate() {
                let dir = cache.view_dir(pipeline, dag.stage_name(i), &dag.point_segments(i));
                live.extend(view_files(inst).into_iter().map(|f| dir.join(f)));
            }
            if let Err(e) = cache.prune_views(pipeline, &live) {
                warnings.push(format!("could not prune stale views: {e}"));
            }
        }
        if self.dirty
            && let Err(e) = cache.write_view_index(pipeline, &self.new)
        {
            warnings.push(format!("could not save the view index: {e}"));
        }
        warnings.append(&mut self.warnings);
    }
}

/// Why a cached input cannot be used.
pub(super) enum EntryProblem {
    /// Damaged; removed (or about to be replaced), so it is recomputed.
    Broken(String),
    /// An I/O error that does not show damage (EACCES, EMFILE, EIO): kept.
    Unreadable(String),
}

/// Verify an entry and, if it is damaged, remove it, both under the key's lock: another run may
/// be replacing the same broken entry with a good one, which must not be removed. An entry
/// that cannot be read is never removed (see [`crate::engine::cache::CacheFault::is_damage`]).
pub(super) fn verify_under_lock(cache: &Cache, key: &StageKey, memo: &VerifyMemo) -> Result<(), EntryProblem> {
    match cache.verify_remembered(key, memo) {
        Ok(_) => return Ok(()),
        Err(fault) if !fault.is_damage() => return Err(EntryProblem::Unreadable(fault.to_string())),
        Err(_) => {}
    }
    let _lock = cache.lock_key(key).map_err(|e| EntryProblem::Unreadable(format!("cannot lock it: {e}")))?;
    match cache.verify_remembered(key, memo) {
        Ok(()) => Ok(()),
        Err(fault) if !fault.is_damage() => Err(EntryProblem::Unreadable(fault.to_string())),
        Err(fault) => match cache.quarantine(key) {
            Ok(()) => Err(EntryProblem::Broken(fault.to_string())),
            Err(e) => Err(EntryProblem::Broken(format!("{fault}; removing it failed: {e}"))),
        },
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
