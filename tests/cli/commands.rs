//! The inspection commands: `plan`, `explain`, `status`, `show`, `dag`, `kinds`.

use std::collections::BTreeMap;

use crate::fixture::{Project, redactions};

const PIPELINE: &str = r#"
    params: {n: 3}
    stages:
      make:
        kind: command
        cmd: seq 1 ${params.n} > ${outputs.t}
        outputs: {t: t.txt}
      double:
        kind: command
        needs: {src: make}
        params: {factor: 2}
        cmd: awk -v f=${params.factor} '{print $1 * f}' ${inputs.src} > ${outputs.t}
        outputs: {t: t.txt}
      train:
        kind: command
        needs: {src: double}
        sweep: {lr: [0.1, 0.01]}
        cmd: echo ${sweep.lr} | cat - ${inputs.src} > ${outputs.t}
        outputs: {t: t.txt}
      summary:
        kind: command
        needs: {runs: "train[*]"}
        cmd: ls ${inputs.runs} > ${outputs.t}
        outputs: {t: t.txt}
"#;

fn project() -> Project {
    let p = Project::new();
    p.write("p.yaml", PIPELINE);
    p
}

#[test]
fn plan_and_explain_say_why_after_a_param_change() {
    let p = project();
    let fresh = p.pipeline(&["plan", "p.yaml"]).expect_code(0);
    assert!(fresh.stdout.contains("5 instances, 0 cached, 5 will run"), "{}", fresh.stdout);
    assert!(fresh.stdout.contains("no earlier run of this stage is recorded in this cache"), "{}", fresh.stdout);
    assert!(p.objects().is_empty(), "plan ran something");

    p.run("p.yaml", &[]);
    p.write("p.yaml", &PIPELINE.replace("factor: 2", "factor: 3"));
    let plan = p.pipeline(&["plan", "p.yaml"]).expect_code(0);
    let explain = p.pipeline(&["explain", "p.yaml", "double"]).expect_code(0);
    assert!(explain.stdout.contains("will run:\n  - param `factor` changed 2 -> 3\n"), "{}", explain.stdout);
    let unchanged = p.pipeline(&["explain", "p.yaml", "make"]).expect_code(0);
    assert!(unchanged.stdout.contains("is cached: nothing changed since its last run."), "{}", unchanged.stdout);
    let downstream = p.pipeline(&["explain", "p.yaml", "train"]).expect_code(0);
    assert!(
        downstream.stdout.contains("input `src` changed: upstream `double` has a new result"),
        "{}",
        downstream.stdout
    );

    let settings = redactions(&p);
    settings.bind(|| {
        insta::assert_snapshot!("plan_after_param_change", plan.stdout);
        insta::assert_snapshot!("explain_param_change", format!("{}{}", explain.stdout, downstream.stdout));
    });

    let out = p.pipeline(&["explain", "p.yaml", "dubble"]).expect_code(2);
    assert!(out.stderr.contains("did you mean `double`?"), "{}", out.stderr);
}

#[test]
fn explain_names_a_changed_command_and_seed() {
    let p = project();
    p.run("p.yaml", &[]);
    p.write(
        "p.yaml",
        &PIPELINE
            .replace("seq 1 ${params.n}", "seq 0 ${params.n}")
            .replace("params: {n: 3}", "seed: 4\n    params: {n: 3}"),
    );
    let out = p.pipeline(&["explain", "p.yaml", "make"]).expect_code(0);
    assert!(
        out.stdout.contains(
            "the command changed from `seq 1 ${params.n} > ${outputs.t}` to `seq 0 ${params.n} > ${outputs.t}`"
        ),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("seed changed 0 -> 4"), "{}", out.stdout);
}

#[test]
fn explain_after_gc_of_the_previous_result_says_it_cannot_tell() {
    let p = project();
    p.run("p.yaml", &[]);
    p.write("p.yaml", &PIPELINE.replace("params: {factor: 2}", "params: {factor: 5}"));
    // Keep only the current keys: the previous `double` entry goes.
    p.pipeline(&["gc", "p.yaml"]).expect_code(0);
    let out = p.pipeline(&["explain", "p.yaml", "double"]).expect_code(0);
    assert!(out.stdout.contains("the previous result was removed (gc)"), "{}", out.stdout);
    assert!(!out.stdout.contains("no earlier run"), "{}", out.stdout);
}

#[test]
fn status_lists_cached_and_missing_instances() {
    let p = project();
    p.run("p.yaml", &["double"]);
    let out = p.pipeline(&["status", "p.yaml"]).expect_code(0);
    assert!(out.stdout.contains("pipeline `p`: 2/5 instances cached"), "{}", out.stdout);
    let state: BTreeMap<String, String> = out
        .stdout
        .lines()
        .skip(1)
        .map(|l| {
            let mut words = l.split_whitespace();
            let state = words.next().unwrap().to_string();
            (words.next().unwrap().to_string(), state)
        })
        .collect();
    let want: BTreeMap<String, String> = [
        ("make", "cached"),
        ("double", "cached"),
        ("train[lr=0.1]", "missing"),
        ("train[lr=0.01]", "missing"),
        ("summary", "missing"),
    ]
    .iter()
    .map(|(i, s)| (i.to_string(), s.to_string()))
    .collect();
    assert_eq!(state, want, "{}", out.stdout);

    let rows: Vec<serde_json::Value> = p.pipeline(&["--json", "status", "p.yaml"]).expect_code(0).json();
    let cached: Vec<bool> = rows.iter().map(|r| r["cached"].as_bool().unwrap()).collect();
    assert_eq!(cached, [true, true, false, false, false]);
}

#[test]
fn show_prints_the_output_path_and_content() {
    let p = project();
    // Read-only commands never create a cache: without one they say where they looked.
    for args in
        [&["show", "p.yaml", "double"][..], &["status", "p.yaml"], &["explain", "p.yaml", "double"], &["verify"]]
    {
        let out = p.pipeline(args).expect_code(2);
        assert!(out.stderr.contains("no cache at ") && out.stderr.contains("--cache"), "{args:?}: {}", out.stderr);
    }
    let out = p.pipeline(&["plan", "p.yaml"]).expect_code(0);
    assert!(out.stderr.contains(", so every instance will run"), "{}", out.stderr);
    assert!(!p.cache().exists(), "a read-only command created the cache");

    p.run("p.yaml", &["make"]);
    let out = p.pipeline(&["show", "p.yaml", "double"]).expect_code(1);
    assert!(out.stdout.contains("not computed yet"), "{}", out.stdout);

    p.run("p.yaml", &[]);
    let out = p.pipeline(&["show", "p.yaml", "double"]).expect_code(0);
    let view = p.cache().join("views/p/double/t.txt");
    assert!(out.stdout.contains(&format!("  output `t`: {}\n", view.display())), "{}", out.stdout);
    assert!(out.stdout.contains("    6 bytes\n    | 2\n    | 4\n    | 6\n"), "{}", out.stdout);

    // A swept stage shows every instance; one instance by name shows one.
    let out = p.pipeline(&["show", "p.yaml", "train"]).expect_code(0);
    assert!(
        out.stdout.contains("train[lr=0.1] (key ") && out.stdout.contains("train[lr=0.01] (key "),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(&p.cache().join("views/p/train/lr=0.01/t.txt").display().to_string()));
    let out = p.pipeline(&["show", "p.yaml", "train[lr=0.01]", "--rows", "1"]).expect_code(0);
    assert!(!out.stdout.contains("train[lr=0.1]"), "{}", out.stdout);
    assert!(out.stdout.contains("    | 0.01\n") && !out.stdout.contains("    | 2\n"), "{}", out.stdout);
}

/// (from label, to label) edges of a `dot` or `mermaid` rendering.
fn edges(text: &str, arrow: &str) -> Vec<(String, String)> {
    let mut labels = BTreeMap::new();
    let mut edges = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some((a, b)) = line.split_once(arrow) {
            edges.push((a.trim().to_string(), b.trim().trim_end_matches(';').to_string()));
        } else if let Some((id, rest)) = line.split_once(" [label=\"").or_else(|| line.split_once("[\"")) {
            let label = rest.split('"').next().unwrap_or("").to_string();
            labels.insert(id.to_string(), label);
        }
    }
    let mut out: Vec<(String, String)> = edges
        .into_iter()
        .map(|(a, b)| (labels.get(&a).cloned().unwrap_or(a), labels.get(&b).cloned().unwrap_or(b)))
        .collect();
    out.sort();
    out
}

#[test]
fn dag_renders_the_edges_in_dot_and_mermaid() {
    let p = project();
    let want: Vec<(String, String)> = [
        ("double", "train[lr=0.01]"),
        ("double", "train[lr=0.1]"),
        ("make", "double"),
        ("train[lr=0.01]", "summary"),
        ("train[lr=0.1]", "summary"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();

    let dot = p.pipeline(&["dag", "p.yaml", "--format", "dot"]).expect_code(0);
    assert!(dot.stdout.starts_with("digraph \"p\" {"), "{}", dot.stdout);
    assert_eq!(edges(&dot.stdout, " -> "), want, "{}", dot.stdout);

    let mermaid = p.pipeline(&["dag", "p.yaml", "--format", "mermaid"]).expect_code(0);
    assert!(mermaid.stdout.starts_with("flowchart LR\n"), "{}", mermaid.stdout);
    assert_eq!(edges(&mermaid.stdout, " --> "), want, "{}", mermaid.stdout);

    let stages = p.pipeline(&["dag", "p.yaml", "--format", "mermaid", "--stages"]).expect_code(0);
    let want_stages: Vec<(String, String)> = [("double", "train"), ("make", "double"), ("train", "summary")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(edges(&stages.stdout, " --> "), want_stages, "{}", stages.stdout);
    assert!(p.objects().is_empty(), "dag ran something");
}

#[test]
fn kinds_lists_every_registered_kind_with_its_version_params_and_ports() {
    use pav_pipeline::engine::exec::KindRegistry;
    let p = Project::new();
    let out = p.pipeline(&["kinds"]).expect_code(0);
    assert!(out.stdout.starts_with("command  run a shell command"), "{}", out.stdout);
    let registry = pav_pipeline::kinds::Builtins::new();
    assert!(registry.kinds().len() >= 9, "the built-in kinds are registered");
    for k in registry.kinds() {
        let block = out
            .stdout
            .split(&format!("\n{}  (version {})", k.name, k.version))
            .nth(1)
            .unwrap_or_else(|| panic!("`{}` (version {}) is not listed:\n{}", k.name, k.version, out.stdout));
        assert!(block.contains(&format!("params: {}\n", k.params.join(", "))), "{}: {block}", k.name);
        let outputs: Vec<String> = k.outputs.iter().map(|(port, file)| format!("{port} ({file})")).collect();
        assert!(block.contains(&format!("outputs: {}", outputs.join(", "))), "{}: {block}", k.name);
    }
}

#[test]
fn quiet_runs_print_only_the_summary() {
    let p = project();
    let out = p.pipeline(&["-q", "run", "p.yaml"]).expect_code(0);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(lines[0].starts_with("p: 5 ran, 0 cached, 0 failed, 0 skipped"), "{}", out.stderr);
}
