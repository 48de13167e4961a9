//! Every pipeline and sweep file the repository ships must load, validate and plan.

use std::path::Path;

use crate::fixture::Project;

#[test]
fn every_shipped_pipeline_plans() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["pipelines", "sweeps"] {
        for entry in std::fs::read_dir(repo.join(dir)).expect("list shipped pipelines") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 2, "expected shipped pipelines, found {files:?}");
    let p = Project::new();
    for f in &files {
        let out = p.pipeline(&["plan", f.to_str().expect("utf-8 path")]);
        assert_eq!(out.code, 0, "{} does not plan:\n{}", f.display(), out.stderr);
        assert!(out.stdout.contains("will run"), "{}:\n{}", f.display(), out.stdout);
    }
}

#[test]
fn the_main_job_shares_rollouts_across_provers() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let p = Project::new();
    let rows = p.plan(repo.join("sweeps/provers.yaml").to_str().expect("utf-8 path"));
    let count = |stage: &str| rows.iter().filter(|r| r.stage == stage).count();
    assert_eq!(count("sample"), 1);
    assert_eq!(count("rollout-label"), 1);
    assert_eq!(count("prover-advantage"), 6);
    assert_eq!(count("summary"), 1);
}
