//! Runtime failures: a command that exits non-zero or does not write a declared output fails
//! its stage (exit 1), the summary names it with the tail of its log, its descendants are
//! skipped and independent branches finish.

use std::path::Path;

use crate::fixture::{Project, RunReport, expect_statuses};

const FAILING: &str = r#"
    stages:
      a:
        kind: command
        cmd: echo x >> counts/a; for i in $(seq 1 30); do echo "log line $i"; done; echo boom >&2; test -e fixed && echo a > ${outputs.t}
        outputs: {t: t.txt}
      a2:
        kind: command
        needs: {x: a}
        cmd: echo x >> counts/a2; cp ${inputs.x} ${outputs.t}
        outputs: {t: t.txt}
      a3:
        kind: command
        needs: {x: a2}
        cmd: echo x >> counts/a3; cp ${inputs.x} ${outputs.t}
        outputs: {t: t.txt}
      b:
        kind: command
        cmd: echo x >> counts/b; echo b > ${outputs.t}
        outputs: {t: t.txt}
      c:
        kind: command
        needs: {x: b}
        cmd: echo x >> counts/c; cp ${inputs.x} ${outputs.t}
        outputs: {t: t.txt}
"#;

#[test]
fn a_failing_command_skips_its_descendants_and_other_branches_finish() {
    let p = Project::new();
    p.write("p.yaml", FAILING);
    let out = p.run_code("p.yaml", &["-j", "1"], 1);
    let r: RunReport = out.json();
    assert!(!r.ok);
    assert_eq!(
        r.statuses(),
        expect_statuses(&[("a", "failed"), ("a2", "skipped"), ("a3", "skipped"), ("b", "ran"), ("c", "ran")])
    );
    assert_eq!((r.ran, r.failed, r.skipped, r.cached), (2, 1, 2, 0));
    assert_eq!((p.count("a2"), p.count("a3")), (0, 0));
    assert_eq!(r.get("a").error.as_deref(), Some("command exited with status 1"));

    // The summary names the stage and shows the tail of its log.
    let err = &out.stderr;
    assert!(err.contains("error: stage `a` failed: command exited with status 1"), "{err}");
    assert!(err.contains("  | log line 30\n  | boom\n"), "{err}");
    assert!(!err.contains("log line 5\n"), "only the tail of the log is shown:\n{err}");
    assert!(err.contains("skipped: `a2` (after `a` failed), `a3` (after `a` failed)"), "{err}");

    // The full log is kept in failed/<key>.log; no entry for the failed key.
    let log = r.get("a").log.clone().expect("a failed stage names its log");
    assert_eq!(Path::new(&log), p.cache().join("failed").join(format!("{}.log", r.key("a"))));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("log line 1\n") && text.ends_with("boom\n"), "{text}");
    assert!(!p.object_dir(r.key("a")).exists());

    // Fixing the cause (here: the file the command tests for) and rerunning computes the
    // failed stage and its descendants; the finished branch is cached.
    p.write("fixed", "");
    let r2 = p.run("p.yaml", &[]);
    assert_eq!(
        r2.statuses(),
        expect_statuses(&[("a", "ran"), ("a2", "ran"), ("a3", "ran"), ("b", "cached"), ("c", "cached")])
    );
    assert_eq!((p.count("b"), p.count("c")), (1, 1));
}

#[test]
fn a_command_that_does_not_write_its_output_fails() {
    let p = Project::new();
    p.write(
        "p.yaml",
        r#"
        stages:
          lazy:
            kind: command
            cmd: echo "forgot to write"
            outputs: [table]
          next:
            kind: command
            needs: {t: lazy}
            cmd: cp ${inputs.t} ${outputs.t}
            outputs: [t]
        "#,
    );
    let out = p.run_code("p.yaml", &[], 1);
    let r: RunReport = out.json();
    assert_eq!(r.statuses(), expect_statuses(&[("lazy", "failed"), ("next", "skipped")]));
    let err = r.get("lazy").error.clone().unwrap();
    assert_eq!(
        err,
        "the command succeeded but did not write its declared output `table`; \
         write it to ${outputs.table} or $PIPELINE_OUTPUT_TABLE"
    );
    assert!(out.stderr.contains("error: stage `lazy` failed: the command succeeded but"), "{}", out.stderr);
    assert!(out.stderr.contains("  | forgot to write"), "{}", out.stderr);
    assert!(p.objects().is_empty(), "a failed stage left an entry: {:?}", p.objects());
    assert!(crate::fixture::list_dir(&p.cache().join("tmp")).is_empty(), "temp dirs left behind");
}

#[test]
fn a_command_killed_by_a_signal_fails() {
    let p = Project::new();
    p.write("p.yaml", "stages:\n  a:\n    kind: command\n    cmd: kill -9 $$\n    outputs: [t]\n");
    let r: RunReport = p.run_code("p.yaml", &[], 1).json();
    assert_eq!(r.get("a").error.as_deref(), Some("command was killed by signal 9"));
}
