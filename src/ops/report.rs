//! `pipeline report FILE`: one self-contained HTML page of a pipeline's results.
//!
//! The pipeline is loaded and expanded exactly as `plan` and `run` do ([`Context::load`]), so
//! the page shows the instances and keys a run would use. Each instance's committed cache entry
//! is found by its key; nothing is computed. Every `figure` instance, in plan order, becomes a
//! section: its SVG inlined, caption, what the paper reports, its points table, and the keys of
//! the figure and of every instance it reads, so each number traces to cache entries. A table
//! of all instances follows. The page loads nothing from the network. It is written atomically
//! (temp file + rename); figures that are not cached yet are marked on the page, listed in a
//! warning, and make the command exit 1.

use std::path::{Path, PathBuf};

use super::report_html::render;
use super::report_page::{FigureEntry, InstanceEntry, Report, TableEntry};
use super::{Context, OpError};
use crate::engine::cache::{ENGINE_VERSION, Manifest};
use crate::engine::dag::{Binding, Dag};
use crate::engine::exec::command::shell_quote;

/// The kind whose instances become figure sections.
pub const FIGURE_KIND: &str = "figure";

/// Rows of a points table shown on the page; the rest is in the cache.
const POINT_ROWS: usize = 200;

pub struct ReportOpts {
    pub file: PathBuf,
    pub out: Option<PathBuf>,
}

/// Rows of a key table shown on the page (over all instances of the stage).
const TABLE_ROWS: usize = 300;

pub fn report(ctx: &Context, opts: &ReportOpts) -> Result<(), OpError> {
    let dag = ctx.load(&opts.file)?;
    // No cache yet: the page is still written, with every figure and table marked not run.
    let cache = ctx.cache_or_absent("nothing has run yet");
    let instances: Vec<InstanceEntry> = dag
        .instances
        .iter()
        .enumerate()
        .map(|(i, inst)| InstanceEntry {
            name: inst.name.clone(),
            stage: dag.stage_name(i).to_string(),
            point: dag.point_segments(i).iter().map(|(a, v)| format!("{a}={v}")).collect::<Vec<_>>().join(", "),
            kind: dag.pipeline.stages[inst.stage].kind.clone(),
            key: inst.key.0.clone(),
            manifest: if cache.has_entry(&inst.key) { cache.read_manifest(&inst.key).ok() } else { None },
        })
        .collect();
    let figures: Vec<FigureEntry> = (0..dag.instances.len())
        .filter(|&i| instances[i].kind == FIGURE_KIND)
        .map(|i| figure_entry(&dag, i, instances[i].manifest.as_ref(), &cache.object_dir(&dag.instances[i].key)))
        .collect();
    let tables = key_tables(&dag, &instances, &cache);
    let missing: Vec<String> = figures
        .iter()
        .filter(|f| instances[f.instance].manifest.is_none())
        .map(|f| instances[f.instance].name.clone())
        .collect();
    let page = render(&Report {
        file: opts.file.display().to_string(),
        pipeline: dag.pipeline.name.clone(),
        engine_version: ENGINE_VERSION.to_string(),
        instances,
        figures,
        tables,
    });
    let out = opts.out.clone().unwrap_or_else(|| default_out(&opts.file));
    super::write_file::write_atomic(&out, page.as_bytes())
        .map_err(|e| OpError::Failed(format!("cannot write the report to {}: {e}", out.display())))?;
    let p = &ctx.printer;
    if ctx.json {
        let summary = serde_json::json!({"report": out.display().to_string(), "missing_figures": missing});
        p.out(&serde_json::to_string_pretty(&summary).unwrap_or_default());
    }
    p.info(&format!("wrote {}", out.display()));
    if missing.is_empty() {
        return Ok(());
    }
    p.warn(&format!(
        "{} figure(s) not run yet, marked on the page: {}; run `pipeline run {}` first",
        missing.len(),
        missing.join(", "),
        shell_quote(&opts.file.display().to_string())
    ));
    Err(OpError::Failed("the report is incomplete".to_string()))
}

/// The tables that stages list under `report:`, in stage order.
fn key_tables(dag: &Dag, instances: &[InstanceEntry], cache: &crate::engine::cache::Cache) -> Vec<TableEntry> {
    let mut out = Vec::new();
    for (s, stage) in dag.pipeline.stages.iter().enumerate() {
        let members: Vec<usize> = (0..dag.instances.len()).filter(|&i| dag.instances[i].stage == s).collect();
        for (port, wanted) in &stage.report {
            let mut t = TableEntry {
                stage: stage.name.clone(),
                port: port.clone(),
                columns: Vec::new(),
                rows: Vec::new(),
                total: 0,
                sources: Vec::new(),
                not_run: Vec::new(),
                problems: Vec::new(),
            };
            // The sweep axes of the stage, in the order of its first instance.
            let axes: Vec<String> = members
                .first()
                .map(|&i| dag.point_segments(i).into_iter().map(|(a, _)| a).collect())
                .unwrap_or_default();
            for &i in &members {
                let inst = &instances[i];
                let Some(m) = &inst.manifest else {
                    t.not_run.push(inst.name.clone());
                    continue;
                };
                let Some(file) = m.output(port).map(|o| cache.object_dir(&dag.instances[i].key).join(&o.file)) else {
                    t.problems.push(format!("{}: the entry has no `{port}` output", inst.name));
                    continue;
                };
                let room = TABLE_ROWS.saturating_sub(t.rows.len());
                let info = match crate::table::inspect(&file, room) {
                    Ok(info) => info,
                    Err(e) => {
                        t.problems.push(e);
                        continue;
                    }
                };
                let names: Vec<&str> = info.columns.iter().map(|(c, _)| c.as_str()).collect();
                let picked: Vec<usize> = if wanted.is_empty() {
                    (0..names.len()).collect()
                } else {
                    let absent: Vec<&str> = wanted.iter().map(String::as_str).filter(|w| !names.contains(w)).collect();
                    if !absent.is_empty() {
                        t.problems.push(format!(
                            "{}: `{port}` has no column {} (its columns: {}); fix `report:` of stage `{}`",
                            inst.name,
                            absent.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", "),
                            names.join(", "),
                            stage.name
                        ));
                        continue;
                    }
                    wanted.iter().filter_map(|w| names.iter().position(|n| n == w)).collect()
                };
                let columns: Vec<String> =
                    axes.iter().cloned().chain(picked.iter().map(|&c| names[c].to_string())).collect();
                if t.columns.is_empty() {
                    t.columns = columns;
                } else if t.columns != columns {
                    t.problems.push(format!("{}: its columns differ from the other instances'; not shown", inst.name));
                    continue;
                }
                let point: Vec<String> = dag.point_segments(i).into_iter().map(|(_, v)| v).collect();
                for row in &info.head {
                    let cells = picked.iter().map(|&c| cell_text(row.get(c).map(String::as_str).unwrap_or("")));
                    t.rows.push(point.iter().cloned().chain(cells).collect());
                }
                t.total += info.rows;
                t.sources.push((inst.name.clone(), inst.key.clone()));
            }
            out.push(t);
        }
    }
    out
}

/// `<FILE stem>-report.html` in the current directory.
fn default_out(file: &Path) -> PathBuf {
    let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "pipeline".into());
    PathBuf::from(format!("{stem}-report.html"))
}

fn figure_entry(dag: &Dag, i: usize, manifest: Option<&Manifest>, object: &Path) -> FigureEntry {
    let inst = &dag.instances[i];
    let mut needs = Vec::new();
    for (port, b) in &inst.inputs {
        match b {
            Binding::Single { instance, .. } => {
                needs.push((
                    port.clone(),
                    dag.instances[*instance].name.clone(),
                    dag.instances[*instance].key.0.clone(),
                ));
            }
            Binding::Gather { points, .. } => {
                for (_, up) in points {
                    needs.push((port.clone(), dag.instances[*up].name.clone(), dag.instances[*up].key.0.clone()));
                }
            }
        }
    }
    let title = inst.fingerprint.params.get("title").and_then(|v| v.to_json().as_str().map(str::to_string));
    let title = title.unwrap_or_else(|| inst.name.clone());
    let mut entry = FigureEntry { instance: i, title, meta: None, svg: None, points: None, needs, problem: None };
    let Some(m) = manifest else { return entry };
    let file = |port: &str| m.output(port).map(|o| object.join(&o.file));
    let mut problems = Vec::new();
    match file("meta").map(std::fs::read_to_string) {
        Some(Ok(text)) => match serde_json::from_str(&text) {
            Ok(v) => entry.meta = Some(v),
            Err(e) => problems.push(format!("figure.json is not JSON: {e}")),
        },
        Some(Err(e)) => problems.push(format!("cannot read figure.json: {e}")),
        None => problems.push("the entry has no `meta` output".into()),
    }
    match file("svg").map(std::fs::read_to_string) {
        Some(Ok(text)) => entry.svg = Some(strip_xml_declaration(&text).to_string()),
        Some(Err(e)) => problems.push(format!("cannot read figure.svg: {e}")),
        None => problems.push("the entry has no `svg` output".into()),
    }
    match file("points").map(|p| crate::table::inspect(&p, POINT_ROWS)) {
        Some(Ok(t)) => {
            let head = t.head.iter().map(|r| r.iter().map(|c| cell_text(c)).collect()).collect();
            entry.points = Some((t.columns.into_iter().map(|(c, _)| c).collect(), head, t.rows));
        }
        Some(Err(e)) => problems.push(e),
        None => problems.push("the entry has no `points` output".into()),
    }
    entry.problem = (!problems.is_empty()).then(|| problems.join("; "));
    entry
}

/// The SVG from its root element on.
pub fn strip_xml_declaration(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

/// A Parquet cell as `show` renders it, made compact: strings unquoted, floats to 4
/// significant digits.
fn cell_text(c: &str) -> String {
    if let Some(s) = c.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        return s.to_string();
    }
    match c.parse::<f64>() {
        Ok(x) if x.is_finite() && c.contains(['.', 'e', 'E']) => {
            let s = format!("{:.4}", x);
            let p = format!("{}", (x * 1e4).round() / 1e4);
            if x != 0.0 && x.abs() < 1e-3 {
                format!("{x:.3e}")
            } else if p.len() < s.len() {
                p
            } else {
                s
            }
        }
        _ => c.to_string(),
    }
}
