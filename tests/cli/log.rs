//! `pipeline log`: the log of an instance's last run, from its entry, its failed run, or an
//! earlier run with other ingredients; and its errors.

use serde::Deserialize;

use crate::fixture::{Project, redactions};

const PIPELINE: &str = r#"
    params: {n: 3}
    stages:
      make:
        kind: command
        cmd: echo make-says-${params.n}; seq 1 ${params.n} > ${outputs.t}
        outputs: {t: t.txt}
      bad:
        kind: command
        needs: {src: make}
        cmd: echo about-to-fail; echo bad-stderr-line >&2; exit 3
        outputs: {t: t.txt}
      train:
        kind: command
        sweep: {lr: [0.1, 0.01]}
        cmd: echo train-lr-${sweep.lr}; echo ${sweep.lr} > ${outputs.t}
        outputs: {t: t.txt}
"#;

#[derive(Debug, Deserialize)]
struct JsonLog {
    instance: String,
    key: String,
    source: Option<String>,
    log_key: Option<String>,
    path: Option<String>,
    text: Option<String>,
}

fn project() -> Project {
    let p = Project::new();
    p.write("p.yaml", PIPELINE);
    p
}

fn log_json(p: &Project, target: &str) -> Vec<JsonLog> {
    p.pipeline(&["--json", "log", "p.yaml", target]).expect_code(0).json()
}

#[test]
fn log_of_a_cached_result_is_its_stage_log() {
    let p = project();
    let run = p.run_code("p.yaml", &[], 1);
    let keys: crate::fixture::RunReport = run.json();
    let out = p.pipeline(&["log", "p.yaml", "make"]).expect_code(0);
    assert_eq!(out.stdout, "make-says-3\n");
    assert!(out.stderr.contains("from its cached result"), "{}", out.stderr);

    let j = log_json(&p, "make");
    assert_eq!(j.len(), 1);
    assert_eq!(j[0].instance, "make");
    assert_eq!(j[0].key, keys.key("make"));
    assert_eq!(j[0].source.as_deref(), Some("committed"));
    assert_eq!(j[0].log_key.as_deref(), Some(keys.key("make")));
    let path = j[0].path.as_deref().unwrap();
    assert!(path.ends_with(&format!("objects/{}/stage.log", keys.key("make"))), "{path}");
    assert_eq!(j[0].text.as_deref(), Some("make-says-3\n"));
}

#[test]
fn log_of_a_failed_stage_comes_from_failed() {
    let p = project();
    let run: crate::fixture::RunReport = p.run_code("p.yaml", &[], 1).json();
    assert_eq!(run.status("bad"), "failed");
    let out = p.pipeline(&["log", "p.yaml", "bad"]).expect_code(0);
    assert!(out.stdout.contains("about-to-fail\n"), "{}", out.stdout);
    assert!(out.stdout.contains("bad-stderr-line\n"), "{}", out.stdout);
    assert!(out.stderr.contains("from its failed run"), "{}", out.stderr);

    let j = log_json(&p, "bad");
    assert_eq!(j[0].source.as_deref(), Some("failed"));
    assert!(j[0].path.as_deref().unwrap().ends_with(&format!("failed/{}.log", run.key("bad"))), "{j:?}");
}

#[test]
fn log_from_an_earlier_run_says_so() {
    let p = project();
    let before: crate::fixture::RunReport = p.run_code("p.yaml", &[], 1).json();
    p.write("p.yaml", &PIPELINE.replace("n: 3", "n: 4"));
    let now = p.keys("p.yaml");
    assert_ne!(now["make"], before.key("make"));

    let out = p.pipeline(&["log", "p.yaml", "make"]).expect_code(0);
    redactions(&p)
        .bind(|| insta::assert_snapshot!("log_from_earlier_run", format!("{}--- stderr\n{}", out.stdout, out.stderr)));
    assert_eq!(out.stdout, "make-says-3\n", "the earlier run's log");
    assert!(out.stderr.contains("earlier run of make with other ingredients"), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("(key {})", &before.key("make")[..12])), "{}", out.stderr);
    assert!(out.stderr.contains("has not run"), "{}", out.stderr);
    assert!(out.stderr.contains("pipeline explain p.yaml make"), "{}", out.stderr);

    let j = log_json(&p, "make");
    assert_eq!(j[0].source.as_deref(), Some("earlier"));
    assert_eq!(j[0].key, now["make"]);
    assert_eq!(j[0].log_key.as_deref(), Some(before.key("make")));

    // Once the new version ran, its own log is shown.
    p.run("p.yaml", &["make"]);
    let out = p.pipeline(&["log", "p.yaml", "make"]).expect_code(0);
    assert_eq!(out.stdout, "make-says-4\n");
    assert!(!out.stderr.contains("earlier"), "{}", out.stderr);
}

#[test]
fn log_of_a_stage_with_several_instances_prints_each_with_a_header() {
    let p = project();
    p.run("p.yaml", &["train"]);
    let out = p.pipeline(&["log", "p.yaml", "train"]).expect_code(0);
    assert_eq!(out.stdout, "==> train[lr=0.1] <==\ntrain-lr-0.1\n==> train[lr=0.01] <==\ntrain-lr-0.01\n");
    // One instance by its full name: no header.
    let one = p.pipeline(&["log", "p.yaml", "train[lr=0.01]"]).expect_code(0);
    assert_eq!(one.stdout, "train-lr-0.01\n");
    assert_eq!(log_json(&p, "train").len(), 2);
}

#[test]
fn log_of_an_instance_that_never_ran_is_an_error_with_the_command_to_run() {
    let p = project();
    p.run("p.yaml", &["train"]);
    let out = p.pipeline(&["log", "p.yaml", "make"]).expect_code(1);
    assert!(out.stderr.contains("no log of `make`"), "{}", out.stderr);
    assert!(out.stderr.contains("pipeline run p.yaml make"), "{}", out.stderr);
    let j: Vec<JsonLog> = p.pipeline(&["--json", "log", "p.yaml", "make"]).expect_code(1).json();
    assert_eq!(j[0].source, None);
    assert_eq!(j[0].text, None);

    let typo = p.pipeline(&["log", "p.yaml", "mkae"]).expect_code(2);
    assert!(typo.stderr.contains("did you mean `make`?"), "{}", typo.stderr);
}

#[test]
fn log_without_a_cache_creates_none() {
    let p = project();
    let out = p.pipeline(&["log", "p.yaml", "make"]).expect_code(2);
    assert!(out.stderr.contains("no cache at"), "{}", out.stderr);
    assert!(!p.cache().exists(), "log created a cache");
}

#[test]
fn of_a_cached_result_and_a_failed_log_the_later_run_is_shown() {
    use std::time::{Duration, SystemTime};
    let p = project();
    let run: crate::fixture::RunReport = p.run_code("p.yaml", &[], 1).json();
    let key = run.key("make");
    let failed = p.cache().join("failed").join(format!("{key}.log"));
    let set_mtime = |t: SystemTime| {
        std::fs::OpenOptions::new().write(true).open(&failed).unwrap().set_modified(t).unwrap();
    };
    // A failed run of the same key after the entry was made (`run --force` that failed).
    std::fs::write(&failed, "forced-rerun-failed\n").unwrap();
    set_mtime(SystemTime::now() + Duration::from_secs(3600));
    let out = p.pipeline(&["log", "p.yaml", "make"]).expect_code(0);
    assert_eq!(out.stdout, "forced-rerun-failed\n");
    assert!(out.stderr.contains("its failed run, later than its cached result"), "{}", out.stderr);
    assert_eq!(log_json(&p, "make")[0].source.as_deref(), Some("failed"));
    // A failed attempt before the entry was made: the entry's log is the last run.
    set_mtime(SystemTime::UNIX_EPOCH + Duration::from_secs(1));
    let out = p.pipeline(&["log", "p.yaml", "make"]).expect_code(0);
    assert_eq!(out.stdout, "make-says-3\n");
    assert_eq!(log_json(&p, "make")[0].source.as_deref(), Some("committed"));
}
