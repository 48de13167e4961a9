//! `pipeline show FILE STAGE`: for each instance of the stage, where its outputs are and,
//! for Parquet tables, the schema, row count and first rows.

use std::path::PathBuf;

use super::{Context, OpError, unknown_target};
use crate::engine::dag::select;
use crate::engine::exec::command::shell_quote;
use crate::ui::table::render_table;

pub struct ShowOpts {
    pub file: PathBuf,
    pub stage: String,
    pub rows: usize,
}

pub fn show(ctx: &Context, opts: &ShowOpts) -> Result<(), OpError> {
    let dag = ctx.load(&opts.file)?;
    let targets = select::matching(&dag, std::slice::from_ref(&opts.stage)).map_err(unknown_target)?;
    let cache = ctx.existing_cache()?;
    let p = &ctx.printer;
    let mut missing = 0;
    for &i in &targets {
        let inst = &dag.instances[i];
        p.out(&p.bold(&format!("{} (key {})", inst.name, inst.key.short())));
        let manifest = match cache.read_manifest(&inst.key) {
            Ok(m) => m,
            Err(crate::engine::cache::CacheFault::Missing { .. }) => {
                missing += 1;
                p.out(&format!(
                    "  not computed yet: run `pipeline run {} {}`",
                    shell_quote(&opts.file.display().to_string()),
                    shell_quote(&inst.name)
                ));
                continue;
            }
            Err(fault) => {
                // `run` treats an entry with a manifest file as a hit, so it would not repair this.
                missing += 1;
                p.out(&format!("  {fault}; `pipeline verify --fix` removes it and the next run recomputes it"));
                continue;
            }
        };
        let view = cache.view_dir(&dag.pipeline.name, dag.stage_name(i), &dag.point_segments(i));
        for o in &manifest.outputs {
            let object = cache.object_dir(&inst.key).join(&o.file);
            let view_path = view.join(&o.file);
            let path = if view_path.exists() { view_path } else { object };
            p.out(&format!("  output `{}`: {}", o.port, path.display()));
            if o.file.ends_with(".parquet") {
                match crate::table::inspect(&path, opts.rows) {
                    Ok(t) => {
                        p.out(&format!("    rows: {}", t.rows));
                        p.out("    schema:");
                        for (c, ty) in &t.columns {
                            p.out(&format!("      {c}: {ty}"));
                        }
                        if !t.head.is_empty() {
                            p.out(&format!("    head ({} rows):", t.head.len()));
                            for line in
                                render_table(&t.columns.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>(), &t.head)
                            {
                                p.out(&format!("      {line}"));
                            }
                        }
                    }
                    Err(e) => p.out(&format!("    (cannot read as Parquet: {e})")),
                }
            } else {
                p.out(&format!("    {} bytes", o.bytes));
                if let Ok(text) = std::fs::read_to_string(&path) {
                    for line in text.lines().take(opts.rows) {
                        p.out(&format!("    | {line}"));
                    }
                }
            }
        }
    }
    if missing == targets.len() && !targets.is_empty() {
        return Err(OpError::Failed(format!("no result of `{}` is in the cache yet", opts.stage)));
    }
    Ok(())
}
