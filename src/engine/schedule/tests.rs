use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use super::*;
use crate::engine::exec::{ExecError, Job, NoKinds};

struct Quiet;

impl Reporter for Quiet {
    fn started(&mut self, _: &str) {}
    fn finished(&mut self, _: &Outcome) {}
    fn warn(&mut self, _: &str) {}
    fn finish(&mut self) {}
}

/// Runs every stage by writing its outputs, except `boom`, which panics.
struct PanicsOnBoom;

impl Executor for PanicsOnBoom {
    fn execute(&self, job: &Job<'_>) -> Result<(), ExecError> {
        if job.stage == "boom" {
            // Through the executor's own guard, as LocalExecutor does for built-in kinds.
            return match crate::engine::exec::panic::catch(|| -> Result<(), ExecError> { panic!("stage bug") }) {
                Ok(r) => r,
                Err(m) => Err(ExecError::Panic(m)),
            };
        }
        for path in job.outputs.values() {
            std::fs::write(path, job.instance).map_err(ExecError::Spawn)?;
        }
        Ok(())
    }
}

/// Panics outside any guard: the worker's own guard must catch it.
struct PanicsUnguarded;

impl Executor for PanicsUnguarded {
    fn execute(&self, job: &Job<'_>) -> Result<(), ExecError> {
        if job.stage == "boom" {
            panic!("unguarded stage bug");
        }
        PanicsOnBoom.execute(job)
    }
}

fn load(dir: &Path, yaml: &str) -> Dag {
    let file = dir.join("p.yaml");
    std::fs::write(&file, yaml).unwrap();
    let spec = crate::engine::spec::load(&file, NoKinds.kinds()).unwrap();
    Dag::build(spec).unwrap()
}

fn pipeline(dir: &Path) -> Dag {
    load(
        dir,
        "stages:\n  boom:\n    kind: command\n    cmd: 'true'\n    outputs: [t]\n  after:\n    kind: command\n    needs: {x: boom}\n    cmd: 'true'\n    outputs: [t]\n  other:\n    kind: command\n    sweep: {i: [1, 2, 3]}\n    params: {i: '${sweep.i}'}\n    cmd: 'true'\n    outputs: [t]\n",
    )
}

use crate::engine::exec::KindRegistry;

/// Runs the pipeline on another thread and waits at most a minute: a hang is a failure, not
/// a stuck test run.
fn run_with_deadline(exec: &'static (dyn Executor + Sync), jobs: usize) -> RunSummary {
    let dir = tempfile::tempdir().unwrap();
    let dag = pipeline(dir.path());
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let selected = vec![true; dag.instances.len()];
        let s = run(&dag, &selected, &cache, exec, &RunOptions::new(jobs, 1), &mut Quiet);
        let _ = tx.send(s);
        drop(dir);
    });
    rx.recv_timeout(Duration::from_secs(60)).expect("the run did not finish: a panicking stage hung the scheduler")
}

#[test]
fn panicking_stage_fails_like_any_failed_stage_with_any_jobs() {
    for exec in [&PanicsOnBoom as &'static (dyn Executor + Sync), &PanicsUnguarded] {
        for jobs in [1, 2, 4] {
            let s = run_with_deadline(exec, jobs);
            let by = |name: &str| s.outcomes.iter().find(|o| o.instance == name).unwrap();
            assert_eq!(by("boom").status, Status::Failed, "jobs {jobs}");
            let err = by("boom").error.clone().unwrap();
            assert!(err.contains("stage bug") && err.contains("panicked") || err.contains("internal error"), "{err}");
            assert_eq!(by("after").status, Status::Skipped, "jobs {jobs}");
            assert_eq!(by("after").because.as_deref(), Some("boom"));
            assert_eq!(s.count(Status::Ran), 3, "the other branch goes on (jobs {jobs})");
        }
    }
}

#[test]
fn unreadable_input_entry_is_kept_and_its_dependents_do_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "stages:\n  a:\n    kind: command\n    cmd: 'true'\n    outputs: [t]\n  b:\n    kind: command\n    needs: {x: a}\n    cmd: 'true'\n    outputs: [t]\n";
    let dag = load(dir.path(), yaml);
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    let all = vec![true; dag.instances.len()];
    let opts = RunOptions::new(2, 1);
    let first = run(&dag, &all, &cache, &PanicsOnBoom, &opts, &mut Quiet);
    assert_eq!(first.count(Status::Ran), 2);
    let key = |name: &str| dag.instances.iter().find(|i| i.name == name).unwrap().key.clone();
    let (a, b) = (key("a"), key("b"));
    cache.quarantine(&b).unwrap();
    // An I/O error that is not damage: reading the manifest fails with EISDIR (root ignores
    // file modes, so EACCES cannot be staged in a test that CI runs as root).
    let manifest = cache.object_dir(&a).join(crate::engine::cache::MANIFEST_FILE);
    // The entry is sealed read-only; a non-root user needs its write bit back for the rename.
    let dir_mode = std::fs::metadata(cache.object_dir(&a)).unwrap().permissions();
    std::fs::set_permissions(cache.object_dir(&a), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let aside = dir.path().join("manifest.aside");
    std::fs::rename(&manifest, &aside).unwrap();
    std::fs::create_dir(&manifest).unwrap();
    assert!(!cache.verify(&a).unwrap_err().is_damage());

    let second = run(&dag, &all, &cache, &PanicsOnBoom, &opts, &mut Quiet);
    let by = |s: &RunSummary, name: &str| s.outcomes.iter().find(|o| o.instance == name).unwrap().clone();
    let oa = by(&second, "a");
    assert_eq!(oa.status, Status::Failed);
    assert!(oa.error.as_deref().unwrap().contains("cannot be read"), "{:?}", oa.error);
    assert_eq!(by(&second, "b").status, Status::Skipped);
    assert!(cache.object_dir(&a).is_dir(), "an unreadable entry is never removed");

    std::fs::remove_dir(&manifest).unwrap();
    std::fs::rename(&aside, &manifest).unwrap();
    std::fs::set_permissions(cache.object_dir(&a), dir_mode).unwrap();
    let third = run(&dag, &all, &cache, &PanicsOnBoom, &opts, &mut Quiet);
    assert_eq!(by(&third, "a").status, Status::Cached, "the kept entry is served once readable");
    assert_eq!(by(&third, "b").status, Status::Ran);
}
