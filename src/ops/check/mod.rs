//! `pipeline check FILE --baseline B`: run the pipeline, read metrics from its cached tables,
//! and compare them with a baseline file; a regression gate for CI.
//!
//! The steps: load the baseline ([`baseline`]) and the pipeline; bind each metric to one stage
//! instance and one Parquet output (all errors at once, before anything runs); run what the
//! metrics need through the `run` op (so cache hits make it cheap; `--no-run` skips this);
//! read each table from the instance's cache entry and reduce it to a number ([`measure`]);
//! print the table, the `--json` summary and the JUnit file ([`report`]); with `--update`,
//! write the current values into the baseline ([`update`]).
//!
//! Exit codes: 0 nothing regressed; 1 a regression or a metric that could not be evaluated;
//! 2 a mistake in the baseline file (it names no such stage, port or column, its filter
//! matches nothing, ...), each reported with the file's line and column.

pub mod baseline;
mod measure;
mod report;
mod update;

use std::path::PathBuf;
use std::sync::Arc;

use self::baseline::Metric;
use self::measure::{Problem, Verdict};
use self::report::{Counts, Row};
use super::run::{RunOpts, execute, print_summary};
use super::{Context, OpError};
use crate::engine::cache::{Cache, CacheFault};
use crate::engine::dag::Dag;
use crate::engine::exec::command::shell_quote;
use crate::engine::schedule::{RunSummary, Status};
use crate::engine::spec::diag::{SpecError, suggest};
use crate::engine::spec::{Sources, SpecErrors};
use crate::ui::diagnostics::render_diagnostics;

pub struct CheckOpts {
    pub file: PathBuf,
    pub baseline: PathBuf,
    pub junit: Option<PathBuf>,
    pub update: bool,
    pub no_run: bool,
    pub jobs: usize,
    pub gpus: u32,
}

/// Where a metric reads from.
struct Bound {
    instance: usize,
    port: String,
}

pub fn check(ctx: &Context, opts: &CheckOpts) -> Result<(), OpError> {
    let start = std::time::Instant::now();
    let p = &ctx.printer;
    let baseline = baseline::load(&opts.baseline).map_err(|(s, e)| baseline_errors(ctx, s, e, "; nothing was run"))?;
    let dag = ctx.load(&opts.file)?;
    let mut bound = Vec::new();
    let mut errors = Vec::new();
    for m in &baseline.metrics {
        match bind(&dag, m) {
            Ok(b) => bound.push(b),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(baseline_errors(ctx, Arc::clone(&baseline.sources), errors, "; nothing was run"));
    }
    let summary = if opts.no_run {
        None
    } else {
        let mut targets: Vec<String> = bound.iter().map(|b| dag.instances[b.instance].name.clone()).collect();
        targets.sort();
        targets.dedup();
        let run_start = std::time::Instant::now();
        let run = RunOpts {
            file: opts.file.clone(),
            targets,
            jobs: opts.jobs,
            gpus: opts.gpus,
            force: Vec::new(),
            fail_fast: false,
        };
        let summary = execute(ctx, &dag, &run)?;
        print_summary(ctx, &dag.pipeline.name, &summary, run_start.elapsed().as_secs_f64(), false);
        Some(summary)
    };
    let cache = ctx.open_cache()?;
    let rows: Vec<Row> = baseline
        .metrics
        .iter()
        .zip(&bound)
        .map(|(m, b)| Row {
            metric: m.name.clone(),
            stage: dag.instances[b.instance].name.clone(),
            baseline: m.value,
            tolerance: m.tolerance,
            better: m.better,
            result: evaluate(&cache, &dag, summary.as_ref(), opts, m, b)
                .map(|current| (current, measure::compare(m, current)))
                .map(|(c, (d, v))| (c, d, v)),
        })
        .collect();

    let pipeline = dag.pipeline.name.as_str();
    // The JSON summary comes after a possible update, which it reports.
    if !ctx.json {
        report::print_table(p, &rows);
    }
    let problems: Vec<SpecError> =
        rows.iter().filter_map(|r| r.result.as_ref().err()).map(|e| e.error().clone()).collect();
    if !problems.is_empty() {
        let errors = SpecErrors::new(Arc::clone(&baseline.sources), problems);
        p.err_raw(&render_diagnostics(&errors, p, ""));
    }
    if let Some(path) = &opts.junit {
        let xml = report::junit(pipeline, &baseline, &rows, start.elapsed().as_secs_f64());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        report::write_atomic(path, &xml)
            .map_err(|e| OpError::Failed(format!("cannot write the JUnit file {}: {e}", path.display())))?;
    }
    let counts = Counts::of(&rows);
    let usage = rows.iter().filter(|r| matches!(r.result, Err(Problem::Baseline(_)))).count();
    let updated = if opts.update && counts.errors == 0 {
        let current: Vec<_> =
            rows.iter().enumerate().filter_map(|(i, r)| r.result.as_ref().ok().map(|(c, _, _)| (i, *c))).collect();
        let changes = update::update(&baseline, &current).map_err(OpError::Failed)?;
        for (metric, old, new) in &changes {
            p.info(&format!("updated `{metric}`: {old} -> {new}"));
        }
        p.summary(&format!("{}: {} value(s) updated", baseline.display, changes.len()));
        Some(changes)
    } else {
        None
    };
    if ctx.json {
        p.out(&report::json(pipeline, &baseline, &rows, updated.as_deref()));
    }
    if updated.is_some() {
        return Ok(());
    }
    let line = format!(
        "{pipeline}: {} ok, {} improved, {} regressed, {} error{} against {}",
        counts.ok,
        counts.improved,
        counts.regressed,
        counts.errors,
        if counts.errors == 1 { "" } else { "s" },
        baseline.display
    );
    let again = format!(
        "pipeline check {} --baseline {} --update",
        shell_quote(&opts.file.display().to_string()),
        shell_quote(&opts.baseline.display().to_string())
    );
    if counts.regressed + counts.errors > 0 {
        p.summary(&p.red(&line))
    } else {
        p.summary(&p.green(&line))
    }
    if counts.improved > 0 {
        let names: Vec<String> =
            rows.iter().filter(|r| r.status() == "improved").map(|r| format!("`{}`", r.metric)).collect();
        p.info(&format!("improved beyond tolerance: {}; `{again}` records the new values", names.join(", ")));
    }
    if opts.update {
        p.error("--update wrote nothing: some metrics could not be evaluated");
    }
    if usage > 0 {
        return Err(OpError::Usage {
            message: format!("the baseline has {usage} error{} (see above)", if usage == 1 { "" } else { "s" }),
            help: None,
        });
    }
    if counts.regressed + counts.errors > 0 {
        let bad: Vec<String> = rows
            .iter()
            .filter(|r| r.result.as_ref().is_ok_and(|(_, _, v)| *v == Verdict::Regressed))
            .map(|r| format!("`{}`", r.metric))
            .collect();
        let mut parts = Vec::new();
        if !bad.is_empty() {
            parts.push(format!("regressed: {}", bad.join(", ")));
        }
        if counts.errors > 0 {
            parts.push(format!(
                "{} metric{} could not be evaluated",
                counts.errors,
                if counts.errors == 1 { "" } else { "s" }
            ));
        }
        return Err(OpError::Failed(parts.join("; ")));
    }
    Ok(())
}

/// Render baseline errors now and return the exit-2 error that closes the report.
fn baseline_errors(ctx: &Context, sources: Arc<Sources>, errors: Vec<SpecError>, tail: &str) -> OpError {
    let n = errors.len();
    let errors = SpecErrors::new(sources, errors);
    ctx.printer.err_raw(&render_diagnostics(&errors, &ctx.printer, ""));
    OpError::Usage { message: format!("the baseline has {n} error{}{tail}", if n == 1 { "" } else { "s" }), help: None }
}

/// The metric's instance and output port, checked against the pipeline.
fn bind(dag: &Dag, m: &Metric) -> Result<Bound, SpecError> {
    let names: Vec<&str> = dag.pipeline.stages.iter().map(|s| s.name.as_str()).collect();
    let Some(si) = dag.pipeline.stage_index(&m.stage) else {
        return Err(SpecError::new(
            "B010",
            m.stage_loc,
            format!("metric `{}`: no stage `{}` in pipeline `{}`", m.name, m.stage, dag.pipeline.name),
        )
        .label("unknown stage")
        .help(suggest(&m.stage, &names, "stages")));
    };
    let instances = &dag.by_stage[si];
    let list = |is: &[usize]| {
        let shown: Vec<String> = is.iter().take(12).map(|&i| format!("`{}`", dag.instances[i].name)).collect();
        format!("{}{}", shown.join(", "), if is.len() > 12 { ", ..." } else { "" })
    };
    let instance = match &m.point {
        Some(point) => {
            let found: Vec<usize> = instances
                .iter()
                .copied()
                .filter(|&i| {
                    let segments = dag.point_segments(i);
                    point.iter().all(|s| segments.contains(s))
                })
                .collect();
            let shown = point.iter().map(|(a, v)| format!("{a}={v}")).collect::<Vec<_>>().join(",");
            match found.as_slice() {
                [one] => *one,
                [] => {
                    return Err(SpecError::new(
                        "B011",
                        m.stage_loc,
                        format!("metric `{}`: stage `{}` has no instance at [{shown}]", m.name, m.stage),
                    )
                    .label("no such point")
                    .help(format!("its instances: {}", list(instances))));
                }
                several => {
                    return Err(SpecError::new(
                        "B011",
                        m.stage_loc,
                        format!("metric `{}`: [{shown}] matches {} instances of `{}`", m.name, several.len(), m.stage),
                    )
                    .label("ambiguous point")
                    .help(format!("name every axis; matching instances: {}", list(several))));
                }
            }
        }
        None => match instances.as_slice() {
            [one] => *one,
            _ => {
                return Err(SpecError::new(
                    "B011",
                    m.stage_loc,
                    format!("metric `{}`: stage `{}` has {} instances; name one", m.name, m.stage, instances.len()),
                )
                .label("swept stage")
                .help(format!(
                    "write `stage: name[axis=value]` or add `point: {{axis: value}}`; its instances: {}",
                    list(instances)
                )));
            }
        },
    };
    let stage = &dag.pipeline.stages[si];
    let tables: Vec<&str> =
        stage.outputs.iter().filter(|(_, f)| f.ends_with(".parquet")).map(|(p, _)| p.as_str()).collect();
    let port = match &m.table {
        Some((t, loc)) => match stage.outputs.iter().find(|(p, _)| p == t) {
            None => {
                let ports: Vec<&str> = stage.outputs.iter().map(|(p, _)| p.as_str()).collect();
                return Err(SpecError::new(
                    "B012",
                    *loc,
                    format!("metric `{}`: stage `{}` has no output `{t}`", m.name, m.stage),
                )
                .label("unknown output")
                .help(suggest(t, &ports, "its outputs")));
            }
            Some((_, f)) if !f.ends_with(".parquet") => {
                return Err(SpecError::new(
                    "B012",
                    *loc,
                    format!("metric `{}`: output `{t}` of `{}` is `{f}`, not a Parquet table", m.name, m.stage),
                )
                .label("not a table")
                .help(suggest(t, &tables, "its Parquet outputs")));
            }
            Some((p, _)) => p.clone(),
        },
        None => match tables.as_slice() {
            [one] => one.to_string(),
            _ => {
                return Err(SpecError::new(
                    "B012",
                    m.loc,
                    format!(
                        "metric `{}`: stage `{}` has {} Parquet outputs; name one with `table:`",
                        m.name,
                        m.stage,
                        tables.len()
                    ),
                )
                .label("which table?")
                .help(suggest("", &tables, "its Parquet outputs")));
            }
        },
    };
    Ok(Bound { instance, port })
}

/// The metric's current value from the instance's cache entry.
fn evaluate(
    cache: &Cache,
    dag: &Dag,
    summary: Option<&RunSummary>,
    opts: &CheckOpts,
    m: &Metric,
    b: &Bound,
) -> Result<baseline::Number, Problem> {
    let inst = &dag.instances[b.instance];
    let eval =
        |msg: String, help: Option<String>| Problem::Eval(SpecError::new("B030", m.stage_loc, msg).help_opt(help));
    if let Some(o) = summary.and_then(|s| s.outcomes.iter().find(|o| o.index == b.instance)) {
        match o.status {
            Status::Failed => {
                return Err(eval(format!("metric `{}`: stage `{}` failed in this run", m.name, inst.name), None));
            }
            Status::Skipped => {
                let why = o.because.as_deref().unwrap_or("?");
                return Err(eval(
                    format!("metric `{}`: stage `{}` was skipped because `{why}` failed", m.name, inst.name),
                    None,
                ));
            }
            Status::Cached | Status::Ran => {}
        }
    }
    let manifest = match cache.read_manifest(&inst.key) {
        Ok(manifest) => manifest,
        Err(CacheFault::Missing { .. }) => {
            let run = format!("pipeline run {}", shell_quote(&opts.file.display().to_string()));
            return Err(eval(
                format!("metric `{}`: `{}` has no cached result", m.name, inst.name),
                Some(format!("run `{run}` first, or check without --no-run")),
            ));
        }
        Err(fault) => {
            return Err(eval(
                format!("metric `{}`: {fault}", m.name),
                Some("`pipeline verify --fix` removes the entry and the next run recomputes it".into()),
            ));
        }
    };
    let Some(output) = manifest.output(&b.port) else {
        return Err(eval(
            format!("metric `{}`: the cache entry of `{}` has no output `{}`", m.name, inst.name, b.port),
            None,
        ));
    };
    measure::measure(m, &cache.object_dir(&inst.key).join(&output.file))
}
