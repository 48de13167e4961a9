//! `pipeline diff FILE [--against REV|OTHER]`: params, keys and metrics of two versions of a
//! pipeline, side by side (what DVC's `params diff` and `metrics diff` give).
//!
//! Both versions are loaded and expanded; instances are matched by name (`stage[axis=value]`).
//! For an instance in both, every param whose value differs is listed, the key is compared,
//! and the other ingredients that differ are named with the same sentences as `explain`. With
//! a cache, each side's entry (same cache root) gives its metrics: the numeric columns of its
//! one-row Parquet outputs, and for the multi-row tables its stage lists under `report:` only
//! whether the table changed (by digest). Reads only; creates no cache.

mod against;
mod metrics;
mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;

use super::plan::upstream_name;
use super::{Context, OpError};
use crate::engine::dag::Dag;
use crate::engine::hash::{DirtyReason, compare};
use metrics::{EntryMetrics, Num};

pub struct DiffOpts {
    pub file: PathBuf,
    /// A git revision of the repository that holds `file`, or another pipeline file.
    pub against: String,
    /// Show unchanged params, metrics and instances too.
    pub all: bool,
}

/// The whole comparison; also the `--json` output.
#[derive(Debug, Serialize)]
pub struct DiffReport {
    pub pipeline: String,
    pub old: Side,
    pub new: Side,
    /// Whether a cache was found (metrics need one).
    pub cache: bool,
    /// Instances only in the old version.
    pub only_old: Vec<String>,
    /// Instances only in the new version.
    pub only_new: Vec<String>,
    /// Instances in both: those that differ (every one with `--all`), in the new version's order.
    pub instances: Vec<InstanceDiff>,
}

#[derive(Debug, Serialize)]
pub struct Side {
    /// The revision or file as given (`FILE` for the new side).
    pub label: String,
    /// The pipeline file: as given, or for a revision its path in the repository.
    pub file: String,
}

#[derive(Debug, Serialize)]
pub struct InstanceDiff {
    pub instance: String,
    pub old_key: String,
    pub new_key: String,
    pub key_changed: bool,
    /// Params whose value differs (every param with `--all`); a missing side is null.
    pub params: Vec<ParamDiff>,
    /// The other ingredients that differ (command, deps, seed, inputs, ...), one sentence each.
    pub changes: Vec<String>,
    /// Whether each side's result is in the cache.
    pub old_cached: bool,
    pub new_cached: bool,
    /// Numeric columns of one-row output tables that differ (all with `--all`).
    pub metrics: Vec<MetricDiff>,
    /// Multi-row tables under the stage's `report:`: changed or unchanged, by digest.
    pub outputs: Vec<OutputDiff>,
}

#[derive(Debug, Serialize)]
pub struct ParamDiff {
    pub name: String,
    pub old: Option<serde_json::Value>,
    pub new: Option<serde_json::Value>,
    pub changed: bool,
}

#[derive(Debug, Serialize)]
pub struct MetricDiff {
    pub output: String,
    pub column: String,
    /// null: not in that side's result (or that result is not in the cache).
    pub old: Option<Num>,
    pub new: Option<Num>,
    /// new - old, when both are numbers.
    pub change: Option<f64>,
    pub changed: bool,
}

#[derive(Debug, Serialize)]
pub struct OutputDiff {
    pub output: String,
    /// `changed`, `unchanged`, or `unknown` (a side's result is not in the cache).
    pub status: &'static str,
}

pub fn diff(ctx: &Context, opts: &DiffOpts) -> Result<(), OpError> {
    let new = ctx.load(&opts.file)?;
    let old_side = against::resolve(&opts.file, &opts.against)?;
    let old = ctx.load(&old_side.file).inspect_err(|e| {
        if matches!(e, OpError::Spec(_)) {
            ctx.printer.error(&format!(
                "the version of {} at `{}` is not a valid pipeline (the paths below are in a temp copy of it):",
                opts.file.display(),
                old_side.label
            ));
        }
    })?;
    let cache = ctx.maybe_cache();
    let report = compare_dags(
        &old,
        &new,
        cache.as_ref(),
        opts.all,
        Side { label: old_side.label.clone(), file: old_side.shown.clone() },
        Side { label: opts.file.display().to_string(), file: opts.file.display().to_string() },
        &ctx.printer,
    );
    if ctx.json {
        ctx.printer.out(&serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        render::render(&ctx.printer, &report, opts, &ctx.cache_root);
    }
    Ok(())
}

fn compare_dags(
    old: &Dag,
    new: &Dag,
    cache: Option<&crate::engine::cache::Cache>,
    all: bool,
    old_side: Side,
    new_side: Side,
    p: &crate::ui::Printer,
) -> DiffReport {
    let old_by_name: BTreeMap<&str, usize> =
        old.instances.iter().enumerate().map(|(i, x)| (x.name.as_str(), i)).collect();
    let new_names: BTreeSet<&str> = new.instances.iter().map(|x| x.name.as_str()).collect();
    let only_old =
        old.instances.iter().filter(|x| !new_names.contains(x.name.as_str())).map(|x| x.name.clone()).collect();
    let only_new =
        new.instances.iter().filter(|x| !old_by_name.contains_key(x.name.as_str())).map(|x| x.name.clone()).collect();
    let read = |key| match cache.map(|c| metrics::read(c, key)) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(m))) => Some(m),
        Some(Err(e)) => {
            p.warn(&format!("{e}; its metrics are left out"));
            None
        }
    };
    let mut instances = Vec::new();
    for (ni, inst) in new.instances.iter().enumerate() {
        let Some(&oi) = old_by_name.get(inst.name.as_str()) else { continue };
        let before = &old.instances[oi];
        let key_changed = before.key != inst.key;
        if !key_changed && !all {
            continue;
        }
        let params = param_diffs(&before.fingerprint.params, &inst.fingerprint.params, all);
        let changes = if key_changed {
            compare(&before.fingerprint, &inst.fingerprint, &|port| upstream_name(new, ni, port))
                .into_iter()
                .filter(|r| {
                    !matches!(
                        r,
                        DirtyReason::ParamChanged { .. }
                            | DirtyReason::ParamAdded { .. }
                            | DirtyReason::ParamRemoved { .. }
                    )
                })
                .map(|r| r.to_string())
                .collect()
        } else {
            Vec::new()
        };
        let om = read(&before.key);
        let nm = if key_changed { read(&inst.key) } else { None };
        let nm_ref = if key_changed { nm.as_ref() } else { om.as_ref() };
        let report_ports: BTreeSet<&str> = old.pipeline.stages[before.stage]
            .report
            .iter()
            .chain(&new.pipeline.stages[inst.stage].report)
            .map(|(port, _)| port.as_str())
            .collect();
        instances.push(InstanceDiff {
            instance: inst.name.clone(),
            old_key: before.key.0.clone(),
            new_key: inst.key.0.clone(),
            key_changed,
            params,
            changes,
            old_cached: om.is_some(),
            new_cached: nm_ref.is_some(),
            metrics: metric_diffs(om.as_ref(), nm_ref, all),
            outputs: output_diffs(om.as_ref(), nm_ref, &report_ports, all),
        });
    }
    DiffReport {
        pipeline: new.pipeline.name.clone(),
        old: old_side,
        new: new_side,
        cache: cache.is_some(),
        only_old,
        only_new,
        instances,
    }
}

fn param_diffs(
    old: &BTreeMap<String, crate::engine::value::Value>,
    new: &BTreeMap<String, crate::engine::value::Value>,
    all: bool,
) -> Vec<ParamDiff> {
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let (o, n) = (old.get(name), new.get(name));
            let changed = o != n;
            (changed || all).then(|| ParamDiff {
                name: name.clone(),
                old: o.map(|v| v.to_json()),
                new: n.map(|v| v.to_json()),
                changed,
            })
        })
        .collect()
}

fn metric_diffs(old: Option<&EntryMetrics>, new: Option<&EntryMetrics>, all: bool) -> Vec<MetricDiff> {
    let empty = BTreeMap::new();
    let (ov, nv) = (old.map_or(&empty, |m| &m.values), new.map_or(&empty, |m| &m.values));
    let names: BTreeSet<&(String, String)> = ov.keys().chain(nv.keys()).collect();
    names
        .into_iter()
        .filter_map(|k| {
            let (o, n) = (ov.get(k).copied(), nv.get(k).copied());
            let changed = o != n;
            let change = match (o, n) {
                (Some(Num::Int(a)), Some(Num::Int(b))) => Some(b.wrapping_sub(a) as f64),
                (Some(a), Some(b)) => Some(b.as_f64() - a.as_f64()),
                _ => None,
            };
            (changed || all).then(|| MetricDiff {
                output: k.0.clone(),
                column: k.1.clone(),
                old: o,
                new: n,
                change,
                changed,
            })
        })
        .collect()
}

fn output_diffs(
    old: Option<&EntryMetrics>,
    new: Option<&EntryMetrics>,
    report_ports: &BTreeSet<&str>,
    all: bool,
) -> Vec<OutputDiff> {
    let one_row = |m: Option<&EntryMetrics>, port: &str| m.is_some_and(|m| m.one_row.iter().any(|p| p == port));
    report_ports
        .iter()
        .filter(|port| !one_row(old, port) && !one_row(new, port))
        .filter_map(|&port| {
            let digest = |m: Option<&EntryMetrics>| m.and_then(|m| m.digests.get(port).cloned());
            let status = match (digest(old), digest(new)) {
                (Some(a), Some(b)) if a == b => "unchanged",
                (Some(_), Some(_)) => "changed",
                _ => "unknown",
            };
            (status != "unchanged" || all).then(|| OutputDiff { output: port.to_string(), status })
        })
        .collect()
}
