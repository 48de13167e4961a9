//! `pipeline diff`: params, keys and metrics against another file or a git revision, and
//! its errors.

use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use serde_json::Value;

use crate::fixture::{Project, redactions};

/// A table with an INT64 `n`, a DOUBLE `accuracy` and a string `label`, one row per value.
fn write_table(path: &Path, rows: &[(i64, f64)]) {
    let schema = Arc::new(
        parse_message_type(
            "message metrics {
                REQUIRED INT64 n;
                REQUIRED DOUBLE accuracy;
                REQUIRED BYTE_ARRAY label (UTF8);
            }",
        )
        .unwrap(),
    );
    let file = File::create(path).unwrap();
    let mut writer = SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build())).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut column = 0;
    while let Some(mut col) = group.next_column().unwrap() {
        match column {
            0 => {
                let n: Vec<i64> = rows.iter().map(|r| r.0).collect();
                col.typed::<Int64Type>().write_batch(&n, None, None).unwrap();
            }
            1 => {
                let a: Vec<f64> = rows.iter().map(|r| r.1).collect();
                col.typed::<DoubleType>().write_batch(&a, None, None).unwrap();
            }
            _ => {
                let l: Vec<ByteArray> = rows.iter().map(|_| ByteArray::from("x")).collect();
                col.typed::<ByteArrayType>().write_batch(&l, None, None).unwrap();
            }
        }
        col.close().unwrap();
        column += 1;
    }
    group.close().unwrap();
    writer.close().unwrap();
}

/// `eval` copies a one-row metrics table and a three-row curve chosen by its `variant` param;
/// `prep` never changes.
const PIPELINE: &str = r#"
    params: {variant: a}
    stages:
      prep:
        kind: command
        params: {size: 10}
        cmd: echo ${params.size} > ${outputs.t}
        outputs: {t: t.txt}
      eval:
        kind: command
        needs: {src: prep}
        deps: [m_a.parquet, m_b.parquet, c_a.parquet, c_b.parquet]
        params: {variant: "${params.variant}", tries: 3}
        cmd: cp m_${params.variant}.parquet ${outputs.metrics} && cp c_${params.variant}.parquet ${outputs.curve}
        outputs: {metrics: metrics.parquet, curve: curve.parquet}
        report: [curve]
"#;

fn project() -> Project {
    let p = Project::new();
    write_table(&p.path("m_a.parquet"), &[(10, 0.5)]);
    write_table(&p.path("m_b.parquet"), &[(12, 0.75)]);
    write_table(&p.path("c_a.parquet"), &[(1, 0.1), (2, 0.2), (3, 0.3)]);
    write_table(&p.path("c_b.parquet"), &[(1, 0.1), (2, 0.2), (3, 0.4)]);
    p.write("p.yaml", PIPELINE);
    p
}

fn git(p: &Project, args: &[&str]) {
    let out = Command::new("git").current_dir(p.root()).args(args).output().expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A git repository in the project root with everything but the cache committed.
fn commit_all(p: &Project, message: &str) {
    if !p.path(".git").exists() {
        git(p, &["init", "-q", "."]);
        git(p, &["config", "user.name", "Test"]);
        git(p, &["config", "user.email", "test@example.com"]);
        git(p, &["config", "commit.gpgsign", "false"]);
        p.write(".gitignore", "cache/\ncounts/\n");
    }
    git(p, &["add", "-A"]);
    git(p, &["commit", "-q", "-m", message]);
}

fn diff_json(p: &Project, args: &[&str]) -> Value {
    let mut all = vec!["--json", "diff"];
    all.extend_from_slice(args);
    p.pipeline(&all).expect_code(0).json()
}

fn instance<'a>(j: &'a Value, name: &str) -> &'a Value {
    j["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["instance"] == name)
        .unwrap_or_else(|| panic!("no {name} in {j:#}"))
}

#[test]
fn diff_against_another_file_shows_params_keys_and_metrics() {
    let p = project();
    p.write("old.yaml", PIPELINE);
    p.write("p.yaml", &PIPELINE.replace("variant: a}", "variant: b}"));
    p.run("old.yaml", &[]);
    p.run("p.yaml", &[]);

    let out = p.pipeline(&["diff", "p.yaml", "--against", "old.yaml"]).expect_code(0);
    redactions(&p).bind(|| insta::assert_snapshot!("diff_against_file", out.stdout));
    let s = &out.stdout;
    assert!(s.contains("old = old.yaml, new = p.yaml"), "{s}");
    assert!(s.contains("new key (1): eval"), "{s}");
    assert!(s.contains("eval      variant  \"a\"  \"b\""), "{s}");
    assert!(!s.contains("prep "), "an unchanged instance is shown:\n{s}");
    assert!(s.contains("eval      metrics.accuracy  0.5  0.75  +0.25"), "{s}");
    assert!(s.contains("eval      metrics.n         10   12    +2"), "{s}");
    assert!(s.contains("eval      curve   changed"), "{s}");
    assert!(!s.contains("label"), "a string column is not a metric:\n{s}");

    let j = diff_json(&p, &["p.yaml", "--against", "old.yaml"]);
    assert_eq!(j["cache"], true);
    let eval = instance(&j, "eval");
    assert_eq!(eval["key_changed"], true);
    assert_eq!(eval["params"], serde_json::json!([{"name": "variant", "old": "a", "new": "b", "changed": true}]));
    let acc = eval["metrics"].as_array().unwrap().iter().find(|m| m["column"] == "accuracy").unwrap();
    assert_eq!((acc["old"].as_f64(), acc["new"].as_f64(), acc["change"].as_f64()), (Some(0.5), Some(0.75), Some(0.25)));
    assert_eq!(eval["outputs"], serde_json::json!([{"output": "curve", "status": "changed"}]));
    assert!(j["instances"].as_array().unwrap().iter().all(|i| i["instance"] != "prep"));

    // --all shows the unchanged instance and its params too.
    let all = diff_json(&p, &["p.yaml", "--against", "old.yaml", "--all"]);
    let prep = instance(&all, "prep");
    assert_eq!(prep["key_changed"], false);
    assert_eq!(prep["params"][0]["name"], "size");
    assert_eq!(prep["params"][0]["changed"], false);
    let text = p.pipeline(&["diff", "p.yaml", "--against", "old.yaml", "--all"]).expect_code(0).stdout;
    assert!(text.contains("same key (1): prep"), "{text}");
    assert!(text.contains("eval      tries    3    3"), "{text}");
}

#[test]
fn diff_against_a_git_revision_reads_the_tree_at_that_revision() {
    let p = project();
    commit_all(&p, "variant a");
    p.run("p.yaml", &[]);
    // The new version changes a param, a dep's content and adds a stage.
    p.write(
        "p.yaml",
        &format!(
            "{}      extra:\n        kind: command\n        cmd: echo > ${{outputs.t}}\n        outputs: {{t: t.txt}}\n",
            PIPELINE.replace("variant: a}", "variant: b}").replace("size: 10", "size: 11")
        ),
    );
    write_table(&p.path("c_a.parquet"), &[(9, 9.0)]);

    let j = diff_json(&p, &["p.yaml"]);
    assert_eq!(j["old"]["label"], "HEAD");
    assert_eq!(j["old"]["file"], "p.yaml");
    assert_eq!(j["only_new"], serde_json::json!(["extra"]));
    let prep = instance(&j, "prep");
    assert_eq!(prep["params"], serde_json::json!([{"name": "size", "old": 10, "new": 11, "changed": true}]));
    let eval = instance(&j, "eval");
    // The dep changed since HEAD: the old side digested the committed content.
    let changes: Vec<&str> = eval["changes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert!(changes.iter().any(|c| c.contains("c_a.parquet")), "{changes:?}");
    assert!(changes.iter().any(|c| c.contains("input `src`")), "{changes:?}");
    // The old side is in the cache, the new one has not run.
    assert_eq!((eval["old_cached"].as_bool(), eval["new_cached"].as_bool()), (Some(true), Some(false)));
    let acc = eval["metrics"].as_array().unwrap().iter().find(|m| m["column"] == "accuracy").unwrap();
    assert_eq!((acc["old"].as_f64(), acc["new"].clone()), (Some(0.5), Value::Null));
    let text = p.pipeline(&["diff", "p.yaml"]).expect_code(0).stdout;
    assert!(text.contains("old = p.yaml at HEAD"), "{text}");
    assert!(text.contains("not in the cache on one side (2): prep, eval"), "{text}");

    // Committed, the working tree equals HEAD: nothing differs.
    commit_all(&p, "variant b");
    let same = p.pipeline(&["diff", "p.yaml"]).expect_code(0).stdout;
    assert!(same.contains("no differences"), "{same}");
    // The first commit by its relative name.
    let back = diff_json(&p, &["p.yaml", "--against", "HEAD~1"]);
    assert_eq!(instance(&back, "prep")["params"][0]["old"], 10);
}

#[test]
fn diff_without_a_cache_still_compares_params_and_creates_none() {
    let p = project();
    p.write("old.yaml", PIPELINE);
    p.write("p.yaml", &PIPELINE.replace("tries: 3", "tries: 4"));
    let out = p.pipeline(&["diff", "p.yaml", "--against", "old.yaml"]).expect_code(0);
    assert!(out.stdout.contains("eval      tries  3    4"), "{}", out.stdout);
    assert!(out.stdout.contains("metrics: no cache at"), "{}", out.stdout);
    assert!(!p.cache().exists(), "diff created a cache");
    assert_eq!(diff_json(&p, &["p.yaml", "--against", "old.yaml"])["cache"], false);
}

#[test]
fn diff_errors_name_the_revision_or_file() {
    let p = project();
    // Not in a git repository.
    let out = p.pipeline(&["diff", "p.yaml"]).expect_code(2);
    assert!(out.stderr.contains("not in a git repository"), "{}", out.stderr);
    assert!(out.stderr.contains("--against OTHER.yaml"), "{}", out.stderr);

    commit_all(&p, "first");
    let out = p.pipeline(&["diff", "p.yaml", "--against", "no-such-branch"]).expect_code(2);
    assert!(out.stderr.contains("no commit `no-such-branch`"), "{}", out.stderr);
    let out = p.pipeline(&["diff", "p.yaml", "--against", "missing.yaml"]).expect_code(2);
    assert!(out.stderr.contains("--against missing.yaml: no such file"), "{}", out.stderr);

    p.write("new.yaml", PIPELINE);
    let out = p.pipeline(&["diff", "new.yaml"]).expect_code(2);
    assert!(out.stderr.contains("new.yaml is not in `HEAD`"), "{}", out.stderr);

    // A broken old version is a spec error that says which version it is.
    p.write("bad.yaml", "stages:\n  x:\n    kind: nope\n");
    let out = p.pipeline(&["diff", "p.yaml", "--against", "bad.yaml"]).expect_code(2);
    assert!(out.stderr.contains("the version of p.yaml at `bad.yaml` is not a valid pipeline"), "{}", out.stderr);
}
