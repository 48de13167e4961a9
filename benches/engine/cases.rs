//! The measured cases. Each suite writes its pipelines into its own directory of the bench's
//! temp dir and checks, with untimed `--json` calls, that every measured command did what the
//! case says: a plan expands to the expected number of instances, a first run leaves everything
//! cached, a no-op rerun runs nothing, an edit reruns exactly the instances it should.

use std::path::{Path, PathBuf};

use crate::generate;
use crate::measure::{Counts, Pipeline, Sample};
use crate::{Bench, Target};

/// The no-op rerun target (issue 2) applies at this size.
const NOOP_TARGET_N: usize = 10_000;
const NOOP_TARGET: Target = Target { ms: 300.0, mb: None };
/// The plan target (issue 2) for 100,000 sweep points.
pub const PLAN_TARGET: Target = Target { ms: 2000.0, mb: Some(500.0) };

/// Chain of `n` stages: plan, first run, no-op rerun, plan with everything cached, rerun after
/// editing the last stage's command.
pub fn chain(b: &mut Bench, n: usize) -> Result<(), String> {
    let dir = suite_dir(b, &format!("chain-{n}"))?;
    let file = dir.join("chain.yaml");
    let cache = dir.join("cache");
    write(&file, &generate::chain(n, 0))?;
    plan_cold(b, "chain: plan, empty cache", n, &dir, &file, None)?;
    first_run(b, "chain: first run (-j 2)", n, &cache, &file, n)?;
    noop(b, "chain: no-op rerun", n, &cache, &file)?;
    plan_cached(b, "chain: plan, all cached", n, &cache, &file)?;
    let last = format!("c{}", n - 1);
    b.measure("chain: rerun after editing the last stage", n, b.reps, None, |p, rep| {
        write(&file, &generate::chain(n, rep + 1))?;
        edit_rerun(p, &cache, &file, &[last.as_str()], n)
    })
}

/// Root, `n` sweep points, gather; then the same without the gather, on the same cache (its
/// keys are already there, so it has no cold run of its own).
pub fn sweep(b: &mut Bench, n: usize) -> Result<(), String> {
    let dir = suite_dir(b, &format!("sweep-{n}"))?;
    let cache = dir.join("cache");
    let mut values: Vec<usize> = (0..n).collect();
    let file = dir.join("sweep.yaml");
    write(&file, &generate::sweep(&values, true))?;
    let total = n + 2;
    plan_cold(b, "sweep+gather: plan, empty cache", n, &dir, &file, None)?;
    first_run(b, "sweep+gather: first run (-j 2)", n, &cache, &file, total)?;
    noop(b, "sweep+gather: no-op rerun", n, &cache, &file)?;
    plan_cached(b, "sweep+gather: plan, all cached", n, &cache, &file)?;
    b.measure("sweep+gather: rerun after changing one sweep value", n, b.reps, None, |p, rep| {
        let new = n + 1 + rep;
        values[n / 2] = new;
        write(&file, &generate::sweep(&values, true))?;
        edit_rerun(p, &cache, &file, &["g", &format!("s[x={new}]")], total)
    })?;

    let mut values: Vec<usize> = (0..n).collect();
    let file = dir.join("sweep-nogather.yaml");
    write(&file, &generate::sweep(&values, false))?;
    let total = n + 1;
    b.measure("sweep: first run, keys cached by sweep+gather", n, 1, None, |p, _| {
        let s = p.run(&cache, &file)?;
        expect_counts(p, &cache, &file, total)?;
        Ok(s)
    })?;
    noop(b, "sweep: no-op rerun", n, &cache, &file)?;
    b.measure("sweep: rerun after changing one sweep value", n, b.reps, None, |p, rep| {
        let new = 2 * n + 1 + rep;
        values[n / 2] = new;
        write(&file, &generate::sweep(&values, false))?;
        edit_rerun(p, &cache, &file, &[&format!("s[x={new}]")], total)
    })
}

/// Plans of `n` sweep points (empty cache): one swept stage, a whole-pipeline sweep, and a
/// swept stage between a root and a gather.
pub fn plan_points(b: &mut Bench, n: usize) -> Result<(), String> {
    let dir = suite_dir(b, &format!("plan-{n}"))?;
    let values: Vec<usize> = (0..n).collect();
    let cases = [
        ("plan: one swept stage", "stage", generate::stage_sweep(&values), n),
        ("plan: whole-pipeline sweep", "global", generate::pipeline_sweep(&values), n),
        ("plan: root + sweep + gather", "gather", generate::sweep(&values, true), n + 2),
    ];
    for (case, name, yaml, instances) in cases {
        let file = dir.join(format!("{name}.yaml"));
        write(&file, &yaml)?;
        plan_cold(b, case, n, &dir, &file, Some(PLAN_TARGET))?;
        let (count, _) = b.pipeline.plan_json(&dir.join("empty-cache"), &file)?;
        check(count == instances, || format!("{case}: plan lists {count} instances, expected {instances}"))?;
    }
    Ok(())
}

/// `plan` against a cache directory that does not exist yet, recreated for every repetition.
fn plan_cold(
    b: &mut Bench,
    case: &str,
    n: usize,
    dir: &Path,
    file: &Path,
    target: Option<Target>,
) -> Result<(), String> {
    let empty = dir.join("empty-cache");
    let reps = if target.is_some() { b.big_reps } else { b.reps };
    b.measure(case, n, reps, target, |p, _| {
        remove(&empty)?;
        p.plan(&empty, file)
    })
}

fn first_run(b: &mut Bench, case: &str, n: usize, cache: &Path, file: &Path, total: usize) -> Result<(), String> {
    b.measure(case, n, 1, None, |p, _| {
        let s = p.run(cache, file)?;
        expect_counts(p, cache, file, total)?;
        Ok(s)
    })
}

fn noop(b: &mut Bench, case: &str, n: usize, cache: &Path, file: &Path) -> Result<(), String> {
    let target = (n == NOOP_TARGET_N).then_some(NOOP_TARGET);
    b.measure(case, n, b.reps, target, |p, _| p.run(cache, file))
}

fn plan_cached(b: &mut Bench, case: &str, n: usize, cache: &Path, file: &Path) -> Result<(), String> {
    b.measure(case, n, b.reps, None, |p, _| p.plan(cache, file))
}

/// After an edit: `plan` must name exactly `expect` (sorted), the measured `run` follows, and
/// a `run --json` afterwards must find all `total` instances cached.
fn edit_rerun(p: &Pipeline, cache: &Path, file: &Path, expect: &[&str], total: usize) -> Result<Sample, String> {
    let (_, to_run) = p.plan_json(cache, file)?;
    check(to_run == expect, || format!("after the edit, plan would run {to_run:?}, expected {expect:?}"))?;
    let s = p.run(cache, file)?;
    expect_counts(p, cache, file, total)?;
    Ok(s)
}

/// A `run --json` that finds every one of `total` instances cached and runs nothing.
fn expect_counts(p: &Pipeline, cache: &Path, file: &Path, total: usize) -> Result<(), String> {
    let got = p.run_counts(cache, file)?;
    let want = Counts { cached: total as u64, ran: 0, failed: 0, skipped: 0 };
    check(got == want, || format!("{}: expected {want:?}, got {got:?}", file.display()))
}

fn check(ok: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(msg()) }
}

fn suite_dir(b: &Bench, name: &str) -> Result<PathBuf, String> {
    let dir = b.root.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn remove(dir: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("cannot remove {}: {e}", dir.display())),
        _ => Ok(()),
    }
}
