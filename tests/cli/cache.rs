//! Cache maintenance: `verify` finds corrupt entries and `--fix` removes them, a run whose
//! input is corrupt warns and recomputes, `gc` keeps what the named pipelines use.

use std::fs;

use crate::fixture::{Project, RunReport, expect_statuses};

const CHAIN: &str = r#"
    stages:
      a:
        kind: command
        cmd: echo x >> counts/a; echo "content of a" > ${outputs.t}
        outputs: {t: t.txt}
      b:
        kind: command
        needs: {src: a}
        params: {factor: 2}
        cmd: echo x >> counts/b; cat ${inputs.src} > ${outputs.t}; echo ${params.factor} >> ${outputs.t}
        outputs: {t: t.txt}
"#;

#[test]
fn verify_names_a_corrupt_output_and_fix_removes_it() {
    let p = Project::new();
    p.write("p.yaml", CHAIN);
    let r = p.run("p.yaml", &[]);
    let (a, b) = (r.key("a").to_string(), r.key("b").to_string());
    p.pipeline(&["verify"]).expect_code(0);

    // Same size, different bytes: only the digest can tell.
    p.corrupt(&a, "t.txt", b"CONTENT OF A\n");
    let out = p.pipeline(&["verify"]).expect_code(1);
    assert!(
        out.stderr.contains(&format!("cache entry {}: output `t.txt` does not match its recorded digest", &a[..12])),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("verified 2 entries: 1 ok, 1 broken"), "{}", out.stderr);
    assert!(out.stderr.contains("pipeline verify --fix"), "{}", out.stderr);
    // Verifying one pipeline's entries finds it too.
    p.pipeline(&["verify", "p.yaml"]).expect_code(1);

    let out = p.pipeline(&["verify", "--fix"]).expect_code(0);
    assert!(out.stderr.contains("removed"), "{}", out.stderr);
    assert!(!p.object_dir(&a).exists());
    assert!(p.object_dir(&b).exists());
    p.pipeline(&["verify"]).expect_code(0);

    let plan = p.plan("p.yaml");
    assert_eq!(plan[0].status, "run");
    assert_eq!(
        plan[0].reasons,
        ["nothing changed, but the cached result is missing or broken (removed by gc or corrupted)"]
    );
    let r = p.run("p.yaml", &[]);
    assert_eq!(r.statuses(), expect_statuses(&[("a", "ran"), ("b", "cached")]));
    assert_eq!(p.view("p/a/t.txt"), "content of a\n");
}

#[test]
fn a_run_whose_input_is_corrupt_warns_and_recomputes_it() {
    let p = Project::new();
    p.write("p.yaml", CHAIN);
    let r = p.run("p.yaml", &["a"]);
    let a = r.key("a").to_string();
    p.corrupt(&a, "t.txt", b"garbage of another size\n");

    // `b` must run and reads `a`: the broken entry is a warning and a recompute, not a crash
    // and not garbage fed downstream.
    let r = p.run("p.yaml", &[]);
    assert_eq!(r.statuses(), expect_statuses(&[("a", "ran"), ("b", "ran")]));
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(r.warnings[0].contains(&a[..12]), "{:?}", r.warnings);
    assert_eq!(p.count("a"), 2);
    assert_eq!(p.view("p/b/t.txt"), "content of a\n2\n");

    // A manifest that is not JSON any more: the same.
    fs::write(p.object_dir(&a).join("manifest.json"), "{ not json").unwrap();
    p.write("p.yaml", &CHAIN.replace("factor: 2", "factor: 3"));
    let out = p.run_code("p.yaml", &[], 0);
    let r: RunReport = out.json();
    assert_eq!(r.statuses(), expect_statuses(&[("a", "ran"), ("b", "ran")]));
    assert!(out.stderr.contains("warning:"), "{}", out.stderr);
    assert_eq!(p.view("p/b/t.txt"), "content of a\n3\n");
    p.pipeline(&["verify"]).expect_code(0);
}

#[test]
fn gc_dry_run_lists_and_gc_keeps_only_the_named_pipelines() {
    let p = Project::new();
    p.write("p.yaml", CHAIN);
    p.write("other.yaml", "stages:\n  o:\n    kind: command\n    cmd: echo o > ${outputs.t}\n    outputs: [t]\n");
    let old = p.run("p.yaml", &[]);
    p.write("p.yaml", &CHAIN.replace("factor: 2", "factor: 3"));
    let new = p.run("p.yaml", &[]);
    let other = p.run("other.yaml", &[]);
    let old_b = old.key("b").to_string();
    assert_ne!(old_b, new.key("b"));
    assert_eq!(p.objects().len(), 4);

    let before = p.objects();
    let dry = p.pipeline(&["gc", "--dry-run", "p.yaml"]).expect_code(0);
    assert_eq!(p.objects(), before, "a dry run removed something");
    let listed: Vec<&str> = dry.stdout.lines().collect();
    assert_eq!(listed.len(), 2, "{}", dry.stdout);
    assert!(listed.iter().all(|l| l.starts_with("would remove ")), "{}", dry.stdout);
    assert!(dry.stdout.contains(&old_b[..12]) && dry.stdout.contains(&other.key("o")[..12]), "{}", dry.stdout);
    assert!(dry.stderr.contains("would remove 2 entries"), "{}", dry.stderr);

    let out = p.pipeline(&["gc", "p.yaml"]).expect_code(0);
    assert!(out.stdout.contains(&format!("removed {}", &old_b[..12])), "{}", out.stdout);
    let mut kept = vec![new.key("a").to_string(), new.key("b").to_string()];
    kept.sort();
    assert_eq!(p.objects(), kept);
    // The views of the kept pipeline still resolve; the removed pipeline's view links are gone.
    assert_eq!(p.view("p/b/t.txt"), "content of a\n3\n");
    assert!(fs::symlink_metadata(p.cache().join("views/other/o/t.parquet")).is_err());
    assert_eq!(p.run("p.yaml", &[]).cached, 2);

    // Naming both pipelines keeps both.
    p.run("other.yaml", &[]);
    let out = p.pipeline(&["gc", "p.yaml", "other.yaml"]).expect_code(0);
    assert_eq!(out.stdout, "");
    assert_eq!(p.objects().len(), 3);
}

#[test]
fn cache_root_comes_from_the_flag_then_the_environment_then_the_working_directory() {
    let p = Project::new();
    p.write("p.yaml", "stages:\n  a:\n    kind: command\n    cmd: echo a > ${outputs.t}\n    outputs: [t]\n");
    crate::fixture::output(p.bare_command().args(["run", "p.yaml"])).expect_code(0);
    assert!(p.path("cache/views/p/a/t.parquet").exists(), "default is ./cache");
    assert!(p.path("cache/CACHEDIR.TAG").is_file());

    crate::fixture::output(p.bare_command().env("PIPELINE_CACHE", p.path("env-cache")).args(["run", "p.yaml"]))
        .expect_code(0);
    assert!(p.path("env-cache/views/p/a/t.parquet").exists(), "PIPELINE_CACHE is used");

    crate::fixture::output(p.bare_command().env("PIPELINE_CACHE", p.path("env-cache")).args([
        "--cache",
        "flag cache",
        "run",
        "p.yaml",
    ]))
    .expect_code(0);
    assert!(p.path("flag cache/views/p/a/t.parquet").exists(), "--cache wins over the environment");
    assert_eq!(fs::read_to_string(p.path("flag cache/views/p/a/t.parquet")).unwrap(), "a\n", "paths are quoted");
}

#[test]
fn a_directory_output_is_stored_linked_and_verified() {
    let p = Project::new();
    p.write(
        "p.yaml",
        r#"
        stages:
          train:
            kind: command
            cmd: mkdir -p ${outputs.ckpt}/sub && echo w > ${outputs.ckpt}/model.bin && echo s > ${outputs.ckpt}/sub/state
            outputs: {ckpt: ckpt}
          eval:
            kind: command
            needs: {model: train}
            cmd: cat ${inputs.model}/model.bin ${inputs.model}/sub/state > ${outputs.t}
            outputs: {t: t.txt}
        "#,
    );
    let r = p.run("p.yaml", &[]);
    assert_eq!(p.view("p/eval/t.txt"), "w\ns\n");
    assert_eq!(p.view("p/train/ckpt/sub/state"), "s\n");
    assert_eq!(p.manifest(r.key("train"))["outputs"][0]["bytes"], 4);

    p.corrupt(r.key("train"), "ckpt/sub/state", b"S\n");
    let out = p.pipeline(&["verify"]).expect_code(1);
    assert!(out.stderr.contains("output `ckpt` does not match its recorded digest"), "{}", out.stderr);
}

/// Regression: `show` said "not computed yet: run `pipeline run ...`" for an entry whose
/// manifest is unreadable, although `run` counts such an entry as a hit and never repairs it.
#[test]
fn show_points_to_verify_fix_for_an_unreadable_manifest() {
    let p = Project::new();
    p.write("p.yaml", "stages:\n  a:\n    kind: command\n    cmd: echo a > ${outputs.t}\n    outputs: {t: t.txt}\n");
    let key = p.run("p.yaml", &[]).key("a").to_string();
    fs::write(p.object_dir(&key).join("manifest.json"), "garbage").unwrap();
    // A hit is one stat of the manifest; entries are verified when they feed a stage that runs.
    assert_eq!(p.run("p.yaml", &[]).status("a"), "cached");

    let out = p.pipeline(&["show", "p.yaml", "a"]).expect_code(1);
    assert!(out.stdout.contains("has a bad manifest"), "{}", out.stdout);
    assert!(out.stdout.contains("`pipeline verify --fix` removes it"), "{}", out.stdout);
    assert!(!out.stdout.contains("not computed yet"), "{}", out.stdout);

    p.pipeline(&["verify", "--fix"]).expect_code(0);
    assert_eq!(p.run("p.yaml", &[]).status("a"), "ran");
}

#[test]
fn views_come_back_after_gc_removed_the_current_results() {
    let p = Project::new();
    p.write(
        "p.yaml",
        r#"
        stages:
          a:
            kind: command
            cmd: echo a > ${outputs.t}
            outputs: {t: t.txt}
        "#,
    );
    p.run("p.yaml", &[]);
    assert_eq!(p.view("p/a/t.txt"), "a\n");
    // Keep only another pipeline's results: the current result of p goes.
    p.write(
        "other.yaml",
        "stages:\n  o:\n    kind: command\n    cmd: echo o > ${outputs.t}\n    outputs: {t: t.txt}\n",
    );
    p.pipeline(&["gc", "other.yaml"]).expect_code(0);
    assert!(fs::symlink_metadata(p.cache().join("views/p/a/t.txt")).is_err());
    let r = p.run("p.yaml", &[]);
    assert_eq!(r.status("a"), "ran");
    assert_eq!(p.view("p/a/t.txt"), "a\n", "the view is rebuilt although the key did not change");
}

#[test]
fn gc_refuses_an_age_too_large_to_count_instead_of_wrapping() {
    // Regression: `n * 86_400` overflowed: a panic in debug builds, and in release a wrapped,
    // small age that let gc remove recent entries.
    let p = Project::new();
    p.write("p.yaml", CHAIN);
    p.run("p.yaml", &[]);
    let out = p.pipeline(&["gc", "--older-than", "213503982334602d"]).expect_code(2);
    assert!(out.stderr.contains("213503982334602d"), "{}", out.stderr);
    assert_eq!(p.objects().len(), 2);
}
