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

/// problems -> train-policy -> sample for both model families, small enough for the test suite.
const POLICIES: &str = r#"
seed: 4
stages:
  problems:
    kind: problems
    params: {task: arith, steps: 2, modulus: 7, max_operand: 3, ops: ["+", "-"], train: 64, test: 8}
  policy:
    kind: train-policy
    needs: {problems: problems}
    params: {task: arith, steps: 2, modulus: 7, max_operand: 3, ops: ["+", "-"],
             d_model: 32, layers: 1, heads: 2, d_ff: 64, context: 96, iterations: 20}
  samples:
    kind: sample
    needs: {problems: problems, policy: policy.policy}
    params: {n: 3, split: test}
  planted_problems:
    kind: problems
    params: {task: planted}
  planted_policy:
    kind: train-policy
    needs: {problems: planted_problems}
    params: {task: planted, iterations: 10, samples: 640}
  planted_samples:
    kind: sample
    needs: {problems: planted_problems, policy: planted_policy.policy}
    params: {n: 50}
  seeds:
    kind: sample
    needs: {problems: problems, policy: policy.policy}
    params: {n: 2, max_tokens: 40}
  labels:
    kind: rollout-label
    needs: {problems: problems, samples: seeds, policy: policy.policy}
    params: {n_mc: 2, max_tokens: 128}
  bok:
    kind: prover-values
    needs: {labels: labels.labels}
    params: {k: "${sweep.k}"}
    sweep: {k: [1, 4]}
  pqv:
    kind: train-verifier
    needs: {problems: problems, samples: seeds, labels: labels.labels}
    params: {target: pqv, iterations: 3, d_model: 16, layers: 1, heads: 2, d_ff: 32, context: 96}
  pav:
    kind: train-verifier
    doc: a prover given by its own rollouts (here the policy itself, at another seed)
    needs: {problems: problems, samples: seeds, labels: labels.labels, prover: prover_labels.labels}
    params: {target: pav, prover: labels, alpha: 1.0, iterations: 2, d_model: 16, layers: 1, heads: 2, d_ff: 32, context: 96}
  prover_labels:
    kind: rollout-label
    seed: 9
    needs: {problems: problems, samples: seeds, policy: policy.policy}
    params: {n_mc: 2, max_tokens: 128}
  planted_labels:
    kind: rollout-label
    needs: {problems: planted_problems, samples: planted_samples}
    params: {rollout: hint, task: planted, gamma: 10, n_mc: 8}
  orm:
    kind: train-verifier
    needs: {problems: problems, samples: seeds}
    params: {target: orm, iterations: 2, d_model: 16, layers: 1, heads: 2, d_ff: 32, context: 96}
  search:
    kind: search-eval
    doc: beam-pav scores with the learned prover head of `pav`
    needs: {problems: problems, policy: policy.policy, orm: orm.verifier, verifier: pav.verifier}
    params: {n: [1, 2], expand: 2, max_tokens: 40}
  planted_rl:
    kind: rl
    needs: {problems: planted_problems, policy: planted_policy.policy}
    params: {mode: effective, gamma: 10, iterations: 6, eval_every: 3, eval_samples: 16, pass_samples: 8}
  text_rl:
    kind: rl
    doc: dense rewards from the PQV with the Best-of-4 transform, and a KL penalty
    needs: {problems: problems, policy: policy.policy, verifier: pqv.verifier}
    params: {mode: effective, k: 4, alpha: 3.0, q: verifier, kl: 0.01, iterations: 2, batch: 8,
             eval_every: 1, eval_samples: 1, pass_samples: 2, max_tokens: 40}
"#;

#[test]
fn policies_and_samples_are_identical_on_one_thread_and_many() {
    let outputs = |threads: &str| {
        let p = Project::new();
        p.write("p.yaml", POLICIES);
        let out = crate::fixture::output(
            p.command().args(["--json", "run", "p.yaml", "-j", "2"]).env("RAYON_NUM_THREADS", threads),
        )
        .expect_code(0);
        let report: crate::fixture::RunReport = out.json();
        let mut files = Vec::new();
        for (stage, file) in [
            ("policy", "policy/model.bpk"),
            ("policy", "policy/config.json"),
            ("policy", "curve.parquet"),
            ("samples", "samples.parquet"),
            ("planted_policy", "policy/model.bpk"),
            ("planted_samples", "samples.parquet"),
            ("labels", "labels.parquet"),
            ("labels", "summary.json"),
            ("bok[k=4]", "values.parquet"),
            ("pqv", "verifier/model.bpk"),
            ("pqv", "eval.parquet"),
            ("planted_labels", "labels.parquet"),
            ("pav", "verifier/model.bpk"),
            ("pav", "eval.parquet"),
            ("search", "results.parquet"),
            ("search", "efficiency.parquet"),
            ("search", "picks.parquet"),
            ("planted_rl", "policy/model.bpk"),
            ("planted_rl", "curve.parquet"),
            ("planted_rl", "pass.parquet"),
            ("text_rl", "policy/model.bpk"),
            ("text_rl", "curve.parquet"),
        ] {
            files.push(std::fs::read(p.object_dir(report.key(stage)).join(file)).unwrap());
        }
        (p, report.keys(), files)
    };
    let (p, keys1, files1) = outputs("1");
    let (_q, keys2, files2) = outputs("2");
    assert_eq!(keys1, keys2);
    let differ: Vec<usize> = (0..files1.len()).filter(|&i| files1[i] != files2[i]).collect();
    assert!(differ.is_empty(), "the same seed gave different bytes on 1 and 2 threads in files {differ:?}");

    // A second run computes nothing.
    let again = p.run("p.yaml", &[]);
    assert!(again.statuses().values().all(|s| s == "cached"), "{:?}", again.statuses());
    let show = p.pipeline(&["show", "p.yaml", "samples"]).expect_code(0);
    for want in ["rows: 24", "problem_id", "steps", "response", "answer", "correct", "logprob", "tokens"] {
        assert!(show.stdout.contains(want), "missing {want:?} in\n{}", show.stdout);
    }
    let pav: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.object_dir(&keys1["pav"]).join("verifier/config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!((pav["outputs"].as_u64(), pav["prover"]["kind"].as_str()), (Some(2), Some("learned")), "{pav}");
    let planted = p.pipeline(&["show", "p.yaml", "planted_samples"]).expect_code(0);
    assert!(planted.stdout.contains("rows: 100"), "{}", planted.stdout);
}

#[test]
fn a_policy_port_wired_to_a_table_is_a_clear_error() {
    let p = Project::new();
    p.write(
        "p.yaml",
        r#"
        stages:
          problems:
            kind: problems
            params: {task: arith, train: 4, test: 2}
          samples:
            kind: sample
            needs: {problems: problems, policy: problems}
        "#,
    );
    let out = p.run_code("p.yaml", &[], 1);
    assert!(out.stderr.contains("not a policy checkpoint"), "{}", out.stderr);
    assert!(out.stderr.contains("`train-policy` checkpoint"), "{}", out.stderr);
}

#[test]
fn a_sweep_over_k_labels_once_and_adding_a_k_runs_only_the_new_point() {
    let p = Project::new();
    let text = r#"
seed: 5
stages:
  problems:
    kind: problems
    params: {task: planted}
  policy:
    kind: train-policy
    needs: {problems: problems}
    params: {task: planted, iterations: 2, samples: 64}
  seeds:
    kind: sample
    needs: {problems: problems, policy: policy.policy}
    params: {n: 8}
  labels:
    kind: rollout-label
    needs: {problems: problems, samples: seeds, policy: policy.policy}
    params: {n_mc: 4}
  bok:
    kind: prover-values
    needs: {labels: labels.labels}
    params: {k: "${sweep.k}"}
    sweep: {k: [1, 2, 4]}
"#;
    p.write("p.yaml", text);
    let r = p.run("p.yaml", &[]);
    let statuses = r.statuses();
    let ran: Vec<&String> = statuses.iter().filter(|(_, s)| *s == "ran").map(|(n, _)| n).collect();
    assert_eq!(r.status("labels"), "ran");
    assert_eq!(ran.iter().filter(|n| n.starts_with("labels")).count(), 1, "one labelling run: {ran:?}");
    assert_eq!(ran.iter().filter(|n| n.starts_with("bok")).count(), 3, "{ran:?}");
    p.write("p.yaml", &text.replace("[1, 2, 4]", "[1, 2, 4, 8]"));
    let again = p.run("p.yaml", &[]);
    let statuses = again.statuses();
    let ran: Vec<(&String, &String)> = statuses.iter().filter(|(_, s)| *s == "ran").collect();
    assert_eq!(ran.len(), 1, "only K = 8 runs: {statuses:?}");
    assert_eq!(again.status("labels"), "cached");
    let show = p.pipeline(&["show", "p.yaml", "bok[k=8]"]).expect_code(0);
    for want in ["q_bok", "a_bok", "k", "prefix_hash"] {
        assert!(show.stdout.contains(want), "missing {want:?} in\n{}", show.stdout);
    }
}

/// The jsonl task reads its file by a param: editing the file reruns the stage without the
/// file being listed in `deps`, and a mistyped field name is an error naming it.
#[test]
fn the_jsonl_problem_file_is_part_of_the_key_and_a_mistyped_field_is_named() {
    let p = Project::new();
    let lines =
        (0..6).map(|i| format!("{{\"problem\": \"{i} + 1\", \"answer\": \"{}\"}}\n", i + 1)).collect::<String>();
    p.write("probs.jsonl", &lines);
    p.write(
        "p.yaml",
        "stages:\n  probs:\n    kind: problems\n    params: {task: jsonl, path: probs.jsonl, test_fraction: 0.5}\n",
    );
    let first = p.run("p.yaml", &[]);
    assert_eq!(first.status("probs"), "ran");
    assert_eq!(p.run("p.yaml", &[]).status("probs"), "cached");
    p.write("probs.jsonl", &lines.replace("\"6\"", "\"7\""));
    let edited = p.run("p.yaml", &[]);
    assert_eq!(edited.status("probs"), "ran", "editing the problem file must rerun the stage");
    assert_ne!(edited.key("probs"), first.key("probs"));
    // Listing the file in deps as well gives the same key (one ingredient, one name).
    p.write(
        "p.yaml",
        "stages:\n  probs:\n    kind: problems\n    deps: [probs.jsonl]\n    params: {task: jsonl, path: probs.jsonl, test_fraction: 0.5}\n",
    );
    assert_eq!(p.run("p.yaml", &[]).status("probs"), "cached");
    // A missing file is a spec error naming the param.
    p.write("p.yaml", "stages:\n  probs:\n    kind: problems\n    params: {task: jsonl, path: nope.jsonl}\n");
    let out = p.pipeline(&["run", "p.yaml"]).expect_code(2);
    assert!(out.stderr.contains("param `path` of stage `probs` names `nope.jsonl`"), "{}", out.stderr);

    // train-policy with a mistyped solution field.
    p.write(
        "p.yaml",
        "stages:\n  probs:\n    kind: problems\n    params: {task: jsonl, path: probs.jsonl, test_fraction: 0.5}\n  policy:\n    kind: train-policy\n    needs: {problems: probs}\n    params: {task: jsonl, path: probs.jsonl, solution_field: solutoin, iterations: 1}\n",
    );
    let out = p.run_code("p.yaml", &[], 1);
    let r: crate::fixture::RunReport = out.json();
    let err = r.get("policy").error.clone().unwrap();
    assert!(
        err.contains("no line of") && err.contains("`solutoin`") && err.contains("problem, answer")
            || err.contains("answer, problem"),
        "{err}"
    );
}
