//! `pipeline status FILE`: per instance, whether its result is in the cache, with rows,
//! duration and age.

use std::path::PathBuf;

use serde::Serialize;

use super::{Context, OpError};

pub struct StatusOpts {
    pub file: PathBuf,
}

#[derive(Serialize)]
struct Row<'a> {
    stage: &'a str,
    instance: &'a str,
    key: &'a str,
    cached: bool,
    rows: Option<u64>,
    seconds: Option<f64>,
    created_unix: Option<u64>,
}

pub fn status(ctx: &Context, opts: &StatusOpts) -> Result<(), OpError> {
    let dag = ctx.load(&opts.file)?;
    let cache = ctx.existing_cache()?;
    let rows: Vec<Row> = dag
        .instances
        .iter()
        .enumerate()
        .map(|(i, inst)| {
            let m = if cache.has_entry(&inst.key) { cache.read_manifest(&inst.key).ok() } else { None };
            Row {
                stage: dag.stage_name(i),
                instance: &inst.name,
                key: &inst.key.0,
                cached: m.is_some(),
                rows: m.as_ref().and_then(|m| m.outputs.iter().filter_map(|o| o.rows).reduce(|a, b| a + b)),
                seconds: m.as_ref().map(|m| m.seconds),
                created_unix: m.as_ref().map(|m| m.created_unix),
            }
        })
        .collect();
    let p = &ctx.printer;
    if ctx.json {
        p.out(&serde_json::to_string_pretty(&rows).unwrap_or_default());
        return Ok(());
    }
    let done = rows.iter().filter(|r| r.cached).count();
    p.out(&format!(
        "pipeline `{}`: {done}/{} instances cached (cache: {})",
        dag.pipeline.name,
        rows.len(),
        cache.root().display()
    ));
    let width = rows.iter().map(|r| r.instance.len()).max().unwrap_or(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    for r in &rows {
        let state = if r.cached { "cached " } else { "missing" };
        let detail = match (r.rows, r.seconds, r.created_unix) {
            (rows, Some(s), Some(c)) => {
                let rows = rows.map(|n| format!("{n} rows, ")).unwrap_or_default();
                format!("  {rows}took {s:.2}s, {} ago", age(now.saturating_sub(c)))
            }
            _ => String::new(),
        };
        p.out(&format!("  {state}  {:width$}  {}{detail}", r.instance, &r.key[..12]));
    }
    Ok(())
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
