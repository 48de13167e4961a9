//! `pipeline gc [FILE...] [--older-than AGE] [--dry-run]`: remove cache entries that the given
//! pipelines do not reach (and/or that are older than AGE), under the exclusive gc lock. On a
//! terminal it lists what would go and asks first, unless `--yes`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use super::{Context, OpError};
use crate::engine::cache::GcOptions;

pub struct GcOpts {
    pub keep: Vec<PathBuf>,
    pub older_than: Option<Duration>,
    pub dry_run: bool,
    /// Show what would be removed and ask first (a terminal without `--yes`).
    pub confirm: bool,
}

/// Parse `30d`, `12h`, `45m`, `90s` (a bare number means days).
pub fn parse_age(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not an age; write e.g. 30d, 12h, 45m or 90s"))?;
    let per = match unit {
        "" | "d" => 86_400,
        "h" => 3600,
        "m" => 60,
        "s" => 1,
        _ => return Err(format!("unknown unit `{unit}` in `{s}`; use d, h, m or s")),
    };
    let secs = n.checked_mul(per).ok_or_else(|| format!("`{s}` is too long an age; write e.g. 30d or 12h"))?;
    Ok(Duration::from_secs(secs))
}

pub fn gc(ctx: &Context, opts: &GcOpts) -> Result<(), OpError> {
    if opts.keep.is_empty() && opts.older_than.is_none() {
        return Err(OpError::Usage {
            message: "gc needs to know what to keep".into(),
            help: Some("name the pipelines whose results to keep (`pipeline gc sweeps/provers.yaml`), or give `--older-than 30d`".into()),
        });
    }
    let mut roots = BTreeSet::new();
    for f in &opts.keep {
        let dag = ctx.load(f)?;
        roots.extend(dag.instances.iter().map(|i| i.key.clone()));
    }
    let cache = ctx.existing_cache()?;
    let p = &ctx.printer;
    let lock = match cache.gc_lock().map_err(|e| OpError::Failed(format!("cannot lock the cache: {e}")))? {
        Some(l) => l,
        None => {
            p.info("waiting for running pipelines to finish before collecting garbage...");
            cache.gc_lock_blocking().map_err(|e| OpError::Failed(format!("cannot lock the cache: {e}")))?
        }
    };
    let gopts = GcOptions {
        roots: (!opts.keep.is_empty()).then_some(roots),
        older_than: opts.older_than,
        dry_run: opts.dry_run,
    };
    let lock = if opts.confirm && !opts.dry_run {
        // Show what would go, then ask; anything but yes removes nothing. The lock is let go
        // while the question waits, so runs on a shared cache are not stalled by it.
        let preview = cache
            .gc(&lock, &GcOptions { dry_run: true, ..gopts.clone() })
            .map_err(|e| OpError::Failed(format!("gc failed: {e}")))?;
        drop(lock);
        if preview.removed.is_empty() && preview.tmp_removed == 0 && preview.links_removed == 0 {
            p.info("nothing to remove");
            return Ok(());
        }
        let question = format!(
            "remove {} entries, {} temp dirs and {} stale links ({})? [y/N] ",
            preview.removed.len(),
            preview.tmp_removed,
            preview.links_removed,
            human_bytes(preview.bytes_freed)
        );
        if !p.confirm(&question) {
            p.info("nothing removed");
            return Ok(());
        }
        // Whatever a run added meanwhile is kept or removed by the same rule as before.
        cache.gc_lock_blocking().map_err(|e| OpError::Failed(format!("cannot lock the cache: {e}")))?
    } else {
        lock
    };
    let report = cache.gc(&lock, &gopts).map_err(|e| OpError::Failed(format!("gc failed: {e}")))?;
    for w in &report.warnings {
        p.warn(w);
    }
    let verb = if report.dry_run { "would remove" } else { "removed" };
    for r in &report.removed {
        p.out(&format!(
            "{verb} {}  {}{}",
            r.key.short(),
            human_bytes(r.bytes),
            if r.broken { "  (broken)" } else { "" }
        ));
    }
    p.info(&format!(
        "{verb} {} entries, {} temp dirs, {} stale links; {} {}",
        report.removed.len(),
        report.tmp_removed,
        report.links_removed,
        human_bytes(report.bytes_freed),
        if report.dry_run { "would be freed" } else { "freed" }
    ));
    Ok(())
}

pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{b} B") } else { format!("{v:.1} {}", UNITS[u]) }
}
