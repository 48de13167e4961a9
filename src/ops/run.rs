//! `pipeline run FILE [TARGET...]`: compute what is missing, in parallel, and report.

use std::path::PathBuf;

use serde::Serialize;

use super::{Context, OpError, unknown_target};
use crate::engine::dag::{Dag, select};
use crate::engine::exec::LocalExecutor;
use crate::engine::schedule::{self, RunOptions, RunSummary, Status};
use crate::ui::progress::Progress;

pub struct RunOpts {
    pub file: PathBuf,
    pub targets: Vec<String>,
    pub jobs: usize,
    pub gpus: u32,
    /// Stages or instances to recompute even though cached, with everything downstream.
    pub force: Vec<String>,
    /// Start nothing new after the first failure.
    pub fail_fast: bool,
}

#[derive(Serialize)]
struct JsonOutcome<'a> {
    stage: &'a str,
    instance: &'a str,
    key: &'a str,
    status: Status,
    seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<String>,
}

#[derive(Serialize)]
struct JsonSummary<'a> {
    pipeline: &'a str,
    ok: bool,
    cached: usize,
    ran: usize,
    failed: usize,
    skipped: usize,
    seconds: f64,
    stages: Vec<JsonOutcome<'a>>,
    warnings: &'a [String],
}

pub fn run(ctx: &Context, opts: &RunOpts) -> Result<(), OpError> {
    let start = std::time::Instant::now();
    let dag = ctx.load(&opts.file)?;
    let summary = execute(ctx, &dag, opts)?;
    let seconds = start.elapsed().as_secs_f64();
    print_summary(ctx, &dag.pipeline.name, &summary, seconds, ctx.json);
    if summary.count(Status::Failed) > 0 { Err(OpError::StageFailed) } else { Ok(()) }
}

/// Run the selected instances of a loaded pipeline (with progress, without the summary).
/// `check` calls this too, so it computes exactly what `run` would.
pub fn execute(ctx: &Context, dag: &Dag, opts: &RunOpts) -> Result<RunSummary, OpError> {
    let mut selected = select::with_ancestors(dag, &opts.targets).map_err(unknown_target)?;
    // Forced instances and everything downstream of them run, targets or not: a downstream
    // entry left as it was would hold results of the replaced one under an unchanged key.
    let force = if opts.force.is_empty() {
        Vec::new()
    } else {
        let seeds = select::matching(dag, &opts.force).map_err(unknown_target)?;
        let force = select::with_descendants(dag, &vec![true; dag.instances.len()], &seeds);
        for (i, &f) in force.iter().enumerate() {
            selected[i] |= f;
        }
        select::close_under_ancestors(dag, &mut selected);
        force
    };
    let cache = ctx.open_cache()?;
    let lock_err = |e| OpError::Failed(format!("cannot lock the cache: {e}"));
    let _run_lock = match cache.try_run_lock().map_err(lock_err)? {
        Some(lock) => lock,
        None => {
            ctx.printer.info(&format!(
                "waiting for `pipeline gc` to finish with the cache at {} (it holds the cache's lock)...",
                cache.root().display()
            ));
            cache.run_lock().map_err(lock_err)?
        }
    };
    let total = selected.iter().filter(|&&s| s).count();
    let mut progress = Progress::new(&ctx.printer, total);
    let exec = LocalExecutor { kinds: &ctx.kinds };
    let run_opts = RunOptions { force, fail_fast: opts.fail_fast, ..RunOptions::new(opts.jobs, opts.gpus) };
    Ok(schedule::run(dag, &selected, &cache, &exec, &run_opts, &mut progress))
}

/// Failures, skips and the closing line on stderr; with `json`, the run summary on stdout.
pub fn print_summary(ctx: &Context, pipeline: &str, s: &RunSummary, seconds: f64, json: bool) {
    let p = &ctx.printer;
    let (cached, ran, failed, skipped) =
        (s.count(Status::Cached), s.count(Status::Ran), s.count(Status::Failed), s.count(Status::Skipped));
    if json {
        let stages = s
            .outcomes
            .iter()
            .map(|o| JsonOutcome {
                stage: &o.stage,
                instance: &o.instance,
                key: &o.key.0,
                status: o.status,
                seconds: o.seconds,
                error: o.error.as_deref(),
                log: o.log.as_ref().map(|l| l.display().to_string()),
            })
            .collect();
        let j = JsonSummary {
            pipeline,
            ok: failed == 0,
            cached,
            ran,
            failed,
            skipped,
            seconds,
            stages,
            warnings: &s.warnings,
        };
        p.out(&serde_json::to_string_pretty(&j).unwrap_or_default());
    }
    for o in s.failed() {
        p.error(&format!("stage `{}` failed: {}", o.instance, o.error.as_deref().unwrap_or("unknown error")));
        if let Some(log) = &o.log {
            let tail = log_tail(log, 20);
            if !tail.is_empty() {
                p.err_raw(&format!("  last lines of its log ({}):\n", log.display()));
                for line in tail {
                    p.err_raw(&format!("  | {line}\n"));
                }
            }
        }
    }
    let skipped_by: Vec<String> = s
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Skipped)
        .map(|o| format!("`{}` (after `{}` failed)", o.instance, o.because.as_deref().unwrap_or("?")))
        .collect();
    if !skipped_by.is_empty() {
        p.info(&format!("skipped: {}", skipped_by.join(", ")));
    }
    let line = format!("{pipeline}: {ran} ran, {cached} cached, {failed} failed, {skipped} skipped in {seconds:.2}s");
    if failed > 0 { p.summary(&p.red(&line)) } else { p.summary(&p.green(&line)) }
}

/// The last `n` lines of a log file.
pub fn log_tail(path: &std::path::Path, n: usize) -> Vec<String> {
    let Ok(text) = std::fs::read(path) else { return Vec::new() };
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].iter().map(|l| l.to_string()).collect()
}
