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
    // The prover sweeps (K x alpha for arithmetic, gamma for the planted task) share one base
    // policy, one labelling run and one set of verifiers.
    assert_eq!(count("arith-provers"), 12);
    assert_eq!(count("planted-gamma"), 11);
    // Fig. 3a: one start policy, five RL seeds per reward.
    assert_eq!(count("planted-rl"), 10);
    for once in ["arith-policy", "arith-labels", "arith-pqv", "planted-policy", "planted-start", "fig-5b", "fig-3b"] {
        assert_eq!(count(once), 1, "{once}");
    }
    let figures = rows.iter().filter(|r| r.stage.starts_with("fig-")).count();
    assert_eq!(figures, 9, "Fig. 3a (median and share), 3b, 3c, 4, 5a, 5b, 7b and 10");
}

/// The main job at toy sizes (same stages, sweeps and figures; a few iterations each): it runs,
/// a second run computes nothing, and the report shows every figure with its key.
#[test]
fn a_small_main_job_runs_and_reports_every_figure() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let main_job = repo.join("sweeps/provers.yaml");
    let p = Project::new();
    p.write(
        "small.yaml",
        &format!(
            r#"extends: {main}
params: {{planted_rl_iterations: 2, planted_gamma_iterations: 2, planted_eval_every: 1, planted_pass_samples: 64, planted_rollouts: 2,
         arith_rl_iterations: 2, search_n: [1, 2], prover_n: 2}}
stages:
  arith-problems: {{params: {{train: 32, test: 8}}}}
  arith-policy: {{params: {{iterations: 20, d_model: 16, layers: 1, heads: 2, d_ff: 32}}}}
  arith-samples: {{params: {{n: 1}}}}
  arith-seeds: {{params: {{n: 2}}}}
  arith-labels: {{params: {{n_mc: 2}}}}
  arith-orm: {{params: {{iterations: 3}}}}
  arith-pqv: {{params: {{iterations: 3}}}}
  arith-pav: {{params: {{iterations: 3}}}}
  arith-orm-rl: {{params: {{pass_samples: 4, batch: 8}}}}
  arith-pav-rl: {{params: {{pass_samples: 4, batch: 8}}}}
  planted-samples: {{params: {{n: 8}}}}
  planted-rl: {{params: {{eval_samples: 16, pass_samples: 4, batch: 8}}}}
  planted-gamma: {{params: {{eval_samples: 16, pass_samples: 4, batch: 8}}}}
  planted-pass: {{params: {{eval_samples: 8, batch: 8}}}}
"#,
            main = main_job.display()
        ),
    );
    let first = p.run("small.yaml", &["-j", "2"]);
    // `planted-start[start=0]` has the key of `planted-policy` (same kind, params and seed):
    // computed once, the other is served from the cache within the same run.
    assert!(
        first.stages.iter().all(|s| s.status == "ran" || (s.stage == "planted-start" && s.status == "cached")),
        "{:?}",
        first.statuses()
    );
    let again = p.run("small.yaml", &[]);
    assert!(again.stages.iter().all(|s| s.status == "cached"), "{:?}", again.statuses());
    p.pipeline(&["report", "small.yaml"]).expect_code(0);
    let html = p.read("small-report.html");
    let figures: Vec<&str> =
        first.stages.iter().filter(|s| s.stage.starts_with("fig-")).map(|s| s.instance.as_str()).collect();
    assert_eq!(figures.len(), 9, "{figures:?}");
    assert_eq!(html.matches("<svg").count(), 9, "one inline SVG per figure");
    for f in figures {
        assert!(html.contains(first.key(f)), "the report lacks the key of {f}");
    }
}
