//! `PIPELINE_JOBS`: the default of `-j/--jobs` for `run` and `check`.

use crate::fixture::{Project, output};

const PIPELINE: &str = r#"
    stages:
      a:
        kind: command
        cmd: echo a > ${outputs.t}; echo x >> counts/a
        outputs: {t: t.txt}
"#;

fn run_with_env(p: &Project, value: &str, args: &[&str]) -> crate::fixture::Output {
    output(p.command().env("PIPELINE_JOBS", value).args(args))
}

#[test]
fn zero_or_junk_in_pipeline_jobs_is_a_usage_error_naming_it() {
    let p = Project::new();
    p.write("p.yaml", PIPELINE);
    p.write("b.yaml", "metrics: []\n");
    for bad in ["0", "many", "-3", "2.5"] {
        let out = run_with_env(&p, bad, &["run", "p.yaml"]).expect_code(2);
        assert!(out.stderr.contains("PIPELINE_JOBS"), "{bad}: {}", out.stderr);
        let out = run_with_env(&p, bad, &["check", "p.yaml", "--baseline", "b.yaml"]).expect_code(2);
        assert!(out.stderr.contains("PIPELINE_JOBS"), "check, {bad}: {}", out.stderr);
    }
    assert_eq!(p.count("a"), 0, "a run started despite the bad variable");
}

#[test]
fn a_valid_pipeline_jobs_runs_and_the_flag_wins_over_it() {
    let p = Project::new();
    p.write("p.yaml", PIPELINE);
    run_with_env(&p, "2", &["run", "p.yaml"]).expect_code(0);
    assert_eq!(p.count("a"), 1);
    // `-j` on the command line is used as given; the variable is not read.
    run_with_env(&p, "junk", &["run", "-j", "1", "p.yaml"]).expect_code(0);
    // Empty counts as unset.
    run_with_env(&p, "", &["run", "p.yaml"]).expect_code(0);
    let zero = output(p.command().env_remove("PIPELINE_JOBS").args(["run", "-j", "0", "p.yaml"])).expect_code(2);
    assert!(zero.stderr.contains("--jobs must be at least 1"), "{}", zero.stderr);
}
