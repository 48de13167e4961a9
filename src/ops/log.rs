//! `pipeline log FILE STAGE`: the log of the last run of each instance, failed or not.
//!
//! Where a log is looked for, in order: the committed entry of the instance's current key
//! (`objects/<key>/stage.log`), the log of a failed run of that key (`failed/<key>.log`), and
//! the entry the instance's `last/` pointer names (its previous successful run, made from
//! other ingredients: the reader is told so). When a key has both an entry and a failed log,
//! the one written last wins: a failed `run --force` is newer than the entry it left in place.
//! Reads only; creates no cache.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Context, OpError, unknown_target};
use crate::engine::cache::{Cache, STAGE_LOG};
use crate::engine::dag::{Dag, select};
use crate::engine::exec::command::shell_quote;
use crate::engine::hash::StageKey;

pub struct LogOpts {
    pub file: PathBuf,
    pub stage: String,
}

/// Which run a log comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// The committed entry of the current key.
    Committed,
    /// A failed run of the current key.
    Failed,
    /// The previous run of the instance, under another key.
    Earlier,
}

/// A log found for an instance.
#[derive(Debug)]
pub struct FoundLog {
    pub source: LogSource,
    /// The key whose run wrote the log (the current key unless `source` is `Earlier`).
    pub key: StageKey,
    pub path: PathBuf,
}

/// The log of the last run of instance `i`, if any run of it left one in this cache.
pub fn find_log(dag: &Dag, i: usize, cache: &Cache) -> Option<FoundLog> {
    let key = &dag.instances[i].key;
    let found =
        |source, key: &StageKey, path: PathBuf| path.is_file().then(|| FoundLog { source, key: key.clone(), path });
    let failed = found(LogSource::Failed, key, cache.failed_log_path(key));
    if cache.has_entry(key) {
        let committed = cache.object_dir(key).join(STAGE_LOG);
        // A failed log newer than the entry's is a later failed run of the same key
        // (`run --force`); a failed log that the entry outdates is an earlier attempt.
        if let Some(f) = failed.filter(|f| newer(&f.path, &committed)) {
            return Some(f);
        }
        // An entry without its log is reported when the log is read, not passed over.
        return Some(FoundLog { source: LogSource::Committed, key: key.clone(), path: committed });
    }
    if failed.is_some() {
        return failed;
    }
    let last = cache.last(&dag.pipeline.name, dag.stage_name(i), &dag.point_segments(i))?;
    if last == *key {
        return None;
    }
    found(LogSource::Earlier, &last, cache.object_dir(&last).join(STAGE_LOG))
}

/// Whether `a` was last written after `b` (false when either cannot be read).
fn newer(a: &Path, b: &Path) -> bool {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((mtime(a), mtime(b)), (Some(a), Some(b)) if a > b)
}

#[derive(Serialize)]
struct JsonLog<'a> {
    instance: &'a str,
    /// The instance's current key.
    key: &'a str,
    /// committed, failed, earlier; null when no log was found.
    source: Option<LogSource>,
    /// The key whose run wrote the log.
    log_key: Option<String>,
    path: Option<PathBuf>,
    text: Option<String>,
}

pub fn log(ctx: &Context, opts: &LogOpts) -> Result<(), OpError> {
    let dag = ctx.load(&opts.file)?;
    let targets = select::matching(&dag, std::slice::from_ref(&opts.stage)).map_err(unknown_target)?;
    let cache = ctx.existing_cache()?;
    let p = &ctx.printer;
    let file = shell_quote(&opts.file.display().to_string());
    let run_hint = |name: &str| format!("run `pipeline run {file} {}`", shell_quote(name));
    let several = targets.len() > 1;
    let mut found_any = false;
    let mut json = Vec::new();
    let mut missing = Vec::new();
    for &i in &targets {
        let inst = &dag.instances[i];
        let log = find_log(&dag, i, &cache);
        let text = match &log {
            Some(l) => Some(read_log(&l.path)?),
            None => None,
        };
        found_any |= log.is_some();
        if ctx.json {
            json.push(JsonLog {
                instance: &inst.name,
                key: &inst.key.0,
                source: log.as_ref().map(|l| l.source),
                log_key: log.as_ref().map(|l| l.key.0.clone()),
                path: log.as_ref().map(|l| l.path.clone()),
                text,
            });
            continue;
        }
        let (Some(log), Some(text)) = (log, text) else {
            missing.push(inst.name.clone());
            if several {
                p.info(&format!("{}: no run of it is recorded in this cache; {}", inst.name, run_hint(&inst.name)));
            }
            continue;
        };
        let what = match log.source {
            LogSource::Committed => "its cached result".to_string(),
            LogSource::Failed if cache.has_entry(&inst.key) => {
                "its failed run, later than its cached result".to_string()
            }
            LogSource::Failed => "its failed run".to_string(),
            LogSource::Earlier => format!("an earlier run (key {})", log.key.short()),
        };
        p.info(&format!("log of {} (key {}) from {what}: {}", inst.name, inst.key.short(), log.path.display()));
        if log.source == LogSource::Earlier {
            p.warn(&format!(
                "this log is from an earlier run of {} with other ingredients (key {}); the current version (key {}) has not run: `pipeline explain {file} {}` says what changed",
                inst.name,
                log.key.short(),
                inst.key.short(),
                shell_quote(&inst.name)
            ));
        }
        if several {
            p.out(&format!("==> {} <==", inst.name));
        }
        p.out(text.trim_end_matches('\n'));
    }
    if ctx.json {
        p.out(&serde_json::to_string_pretty(&json).unwrap_or_default());
    }
    if targets.is_empty() {
        return Err(OpError::Failed(format!(
            "stage `{}` has no instances (every sweep point was excluded or an upstream has none), so it has no log",
            opts.stage
        )));
    }
    if !found_any {
        let name = if several {
            opts.stage.as_str()
        } else {
            targets.first().map_or(opts.stage.as_str(), |&i| dag.instances[i].name.as_str())
        };
        return Err(OpError::Failed(format!(
            "no log of `{name}`: it has not run in the cache at {} (neither this version nor an earlier one); {}",
            ctx.cache_root.display(),
            run_hint(name)
        )));
    }
    Ok(())
}

/// The log's text; bytes that are not UTF-8 are shown as replacement characters.
fn read_log(path: &Path) -> Result<String, OpError> {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| OpError::Failed(format!("cannot read the log {}: {e}", path.display())))
}
