//! `pipeline verify [FILE]`: re-digest cache entries (all of them, or a pipeline's) and report
//! broken ones; `--fix` removes them so the next run recomputes them.

use std::path::PathBuf;

use super::{Context, OpError};

pub struct VerifyOpts {
    pub file: Option<PathBuf>,
    pub fix: bool,
}

pub fn verify(ctx: &Context, opts: &VerifyOpts) -> Result<(), OpError> {
    let cache = ctx.existing_cache()?;
    let keys = match &opts.file {
        Some(f) => {
            let dag = ctx.load(f)?;
            let mut keys: Vec<_> = dag.instances.iter().map(|i| i.key.clone()).filter(|k| cache.has_entry(k)).collect();
            keys.sort();
            keys.dedup();
            keys
        }
        None => cache.list_objects().map_err(|e| OpError::Failed(format!("cannot list the cache: {e}")))?,
    };
    let p = &ctx.printer;
    let mut broken = 0;
    let mut unreadable = 0;
    for k in &keys {
        if let Err(fault) = cache.verify(k) {
            if !fault.is_damage() {
                // Not the entry's fault: never removed, even with --fix.
                unreadable += 1;
                p.warn(&format!("{fault}; the entry was kept (fix the permissions or the disk and verify again)"));
                continue;
            }
            broken += 1;
            if opts.fix {
                // Re-check under the key's lock: a concurrent run may have just replaced it.
                let _lock =
                    cache.lock_key(k).map_err(|e| OpError::Failed(format!("cannot lock {}: {e}", k.short())))?;
                match cache.verify(k) {
                    Ok(_) => {
                        broken -= 1;
                        continue;
                    }
                    Err(again) if !again.is_damage() => {
                        broken -= 1;
                        unreadable += 1;
                        p.warn(&format!("{again}; the entry was kept"));
                        continue;
                    }
                    Err(_) => {}
                }
                match cache.quarantine(k) {
                    Ok(()) => p.warn(&format!("{fault}; removed")),
                    Err(e) => p.warn(&format!("{fault}; could not remove it: {e}")),
                }
            } else {
                p.warn(&format!("{fault}"));
            }
        }
    }
    let ok = keys.len() - broken - unreadable;
    p.info(&format!("verified {} entries: {ok} ok, {broken} broken, {unreadable} unreadable", keys.len()));
    if unreadable > 0 {
        return Err(OpError::Failed(format!(
            "{unreadable} cache entries could not be read; they were kept, since an I/O error does not show that an entry is broken"
        )));
    }
    if broken > 0 && !opts.fix {
        return Err(OpError::Failed(format!(
            "{broken} broken cache entries; `pipeline verify --fix` removes them and the next run recomputes them"
        )));
    }
    Ok(())
}
