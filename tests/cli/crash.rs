//! Crash safety: `kill -9` of `pipeline run` in the middle of a stage leaves no partial entry,
//! `verify` is clean, and a rerun keeps what finished and computes the rest.

use std::fs;

use crate::fixture::{Project, expect_statuses, list_dir, wait_for};

/// `slow` writes a marker, then waits for `go` (bounded: 60 s) before writing its output.
const PIPELINE: &str = r#"
    stages:
      fast:
        kind: command
        cmd: echo x >> counts/fast; echo fast > ${outputs.t}
        outputs: {t: t.txt}
      slow:
        kind: command
        needs: {src: fast}
        cmd: >-
          echo x >> counts/slow_started;
          echo partial > ${outputs.t};
          i=0; while [ ! -e go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done;
          test -e go && cat ${inputs.src} > ${outputs.t} && echo done >> ${outputs.t} && echo x >> counts/slow_done
        outputs: {t: t.txt}
"#;

#[test]
fn kill_9_in_the_middle_of_a_stage_then_rerun() {
    let p = Project::new();
    p.write("p.yaml", PIPELINE);
    let keys = p.keys("p.yaml");

    let mut child = p.spawn(&["run", "p.yaml", "-j", "2"]);
    wait_for("the slow stage to start", 60, || p.count("slow_started") == 1);
    assert!(p.object_dir(&keys["fast"]).join("manifest.json").is_file(), "fast finished before slow started");
    child.kill().expect("SIGKILL pipeline");
    child.wait().expect("reap pipeline");

    // No entry without a manifest; in particular nothing for the interrupted stage.
    for key in p.objects() {
        assert!(p.object_dir(&key).join("manifest.json").is_file(), "objects/{key} has no manifest");
    }
    assert!(!p.object_dir(&keys["slow"]).exists(), "the interrupted stage left an entry");
    assert_eq!(p.plan("p.yaml").iter().map(|r| r.status.as_str()).collect::<Vec<_>>(), ["cached", "run"]);
    let verify = p.pipeline(&["verify"]).expect_code(0);
    assert!(verify.stderr.contains("verified 1 entries: 1 ok, 0 broken"), "{}", verify.stderr);

    // The rerun keeps `fast` and completes `slow` (now unblocked).
    fs::write(p.path("go"), "").unwrap();
    let r = p.run("p.yaml", &[]);
    assert_eq!(r.statuses(), expect_statuses(&[("fast", "cached"), ("slow", "ran")]));
    assert_eq!(p.count("fast"), 1, "a finished stage was recomputed");
    assert_eq!(p.count("slow_done"), 1, "the killed command kept running or ran twice");
    assert_eq!(p.view("p/slow/t.txt"), "fast\ndone\n");
    p.pipeline(&["verify"]).expect_code(0);

    // The killed run's temp dir is garbage that gc collects, keeping both entries.
    let gc = p.pipeline(&["gc", "p.yaml"]).expect_code(0);
    assert!(gc.stderr.contains("removed 0 entries, 1 temp dirs"), "{}", gc.stderr);
    assert!(list_dir(&p.cache().join("tmp")).is_empty());
    assert_eq!(p.run("p.yaml", &[]).cached, 2);
}
