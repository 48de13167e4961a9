//! Built-in kinds run through the same engine path as command stages.

use crate::fixture::Project;

#[test]
fn problems_kind_writes_a_parquet_table_that_show_reads() {
    let p = Project::new();
    p.write(
        "p.yaml",
        r#"
        seed: 3
        stages:
          problems:
            kind: problems
            params: {task: arith, train: 10, test: 4, steps: 3}
          count:
            kind: command
            needs: {t: problems}
            cmd: wc -c < ${inputs.t} > ${outputs.n}
            outputs: {n: n.txt}
        "#,
    );
    let r = p.run("p.yaml", &[]);
    assert_eq!(r.status("problems"), "ran");
    assert_eq!(r.status("count"), "ran");
    let key = r.key("problems").to_string();
    assert_eq!(p.manifest(&key)["outputs"][0]["rows"], 14);
    let out = p.pipeline(&["show", "p.yaml", "problems"]).expect_code(0);
    for want in ["rows: 14", "problem_id", "split", "prompt", "answer", "start "] {
        assert!(out.stdout.contains(want), "missing {want:?} in\n{}", out.stdout);
    }
    // Same seed, same bytes: a fresh cache reproduces the table exactly.
    let first = std::fs::read(p.object_dir(&key).join("problems.parquet")).unwrap();
    let q = Project::new();
    q.write("p.yaml", &p.read("p.yaml"));
    let r2 = q.run("p.yaml", &[]);
    assert_eq!(r2.key("problems"), key);
    assert_eq!(std::fs::read(q.object_dir(&key).join("problems.parquet")).unwrap(), first);
}

#[test]
fn a_bad_param_of_a_builtin_kind_is_named() {
    let p = Project::new();
    p.write(
        "p.yaml",
        r#"
        stages:
          problems:
            kind: problems
            params: {task: arith, modulus: 100}
        "#,
    );
    let out = p.run_code("p.yaml", &[], 1);
    assert!(out.stderr.contains("`modulus` must be a prime"), "{}", out.stderr);
    let out = p.pipeline(&["plan", "p.yaml"]);
    assert_eq!(out.code, 0);
    p.write("p.yaml", "stages:\n  problems:\n    kind: problems\n    params: {tsk: arith}\n");
    let out = p.pipeline(&["plan", "p.yaml"]).expect_code(2);
    assert!(out.stderr.contains("kind `problems` has no param `tsk`"), "{}", out.stderr);
    assert!(out.stderr.contains("did you mean `task`?"), "{}", out.stderr);
}
