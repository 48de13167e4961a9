//! The `rl` kind: the didactic experiment in miniature, the equivalences between modes, and
//! bad input.

use std::path::{Path, PathBuf};

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type};
use serde_json::{Value, json};

use super::*;
use crate::problems::Problems;
use crate::table::read_parquet;
use crate::train_policy::TrainPolicy;
use crate::train_policy::tests::run_kind;

#[test]
fn pass_at_k_is_the_unbiased_estimator() {
    assert!((pass_at(4, 1, 1) - 0.25).abs() < 1e-12);
    assert_eq!(pass_at(4, 1, 4), 1.0);
    assert_eq!(pass_at(4, 0, 3), 0.0);
    // 1 - C(7, 2) / C(10, 2) = 1 - 21 / 45
    assert!((pass_at(10, 3, 2) - (1.0 - 21.0 / 45.0)).abs() < 1e-12);
}

/// The paper's initialisation: 50 iterations on 3,200 samples of mu_5.
fn planted(d: &Path) -> (PathBuf, PathBuf) {
    let probs = run_kind(&Problems, d, "problems", json!({"task": "planted"}), 0, &[]).unwrap()["problems"].clone();
    let pol = run_kind(&TrainPolicy, d, "policy", json!({"task": "planted"}), 0, &[("problems", probs.clone())])
        .unwrap()["policy"]
        .clone();
    (probs, pol)
}

fn curve(path: &Path) -> Vec<(i32, Option<f64>)> {
    let b = &read_parquet(path).unwrap()[0];
    let it = b.column_by_name("iteration").unwrap().as_primitive::<Int32Type>();
    let acc = b.column_by_name("accuracy").unwrap().as_primitive::<Float64Type>();
    (0..b.num_rows()).map(|i| (it.value(i), acc.is_valid(i).then(|| acc.value(i)))).collect()
}

fn best(c: &[(i32, Option<f64>)]) -> f64 {
    c.iter().filter_map(|r| r.1).fold(0.0, f64::max)
}

#[test]
fn on_the_didactic_the_effective_reward_learns_where_the_outcome_does_not() {
    // Budget: 500 iterations of 64 responses, Adam at 3e-4, alpha 0.3, prover mu_10 (the
    // paper's alpha 1 at 1e-3 collapses into a loop in our runs: docs/results.md). A single run
    // is a lottery (it learns for good or collapses, and which one can flip with the last bit
    // of a float), so the claim is over five RL seeds from one base policy: the effective
    // reward learns in more of them than the outcome reward. The margin is thin (measured: 1 of
    // 5 against 0 of 5; docs/results.md), and this is what the test can stand behind.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (probs, pol) = planted(d);
    let inputs = [("problems", probs), ("policy", pol)];
    let common = json!({"iterations": 500, "eval_every": 50, "learning_rate": 0.0003, "eval_samples": 128,
                        "pass_samples": 64});
    let with = |extra: Value| crate::train_policy::tests::merged(&common, extra);
    let (mut learned_eff, mut learned_out, mut eff) = (Vec::new(), Vec::new(), None);
    for seed in 1..=5 {
        let e = run_kind(
            &Rl,
            d,
            &format!("eff{seed}"),
            with(json!({"mode": "effective", "gamma": 10, "alpha": 0.3})),
            seed,
            &inputs,
        )
        .unwrap();
        let o = run_kind(&Rl, d, &format!("out{seed}"), with(json!({"mode": "outcome"})), seed, &inputs).unwrap();
        let (ce, co) = (curve(&e["curve"]), curve(&o["curve"]));
        assert_eq!(ce[0].1, co[0].1, "both start from the same policy and evaluation draws");
        assert!(ce[0].1.unwrap() < 0.05, "the start policy almost never solves the task: {:?}", ce[0]);
        if best(&ce) >= 0.9 {
            learned_eff.push(seed);
            eff = Some(e);
        }
        if best(&co) >= 0.9 {
            learned_out.push(seed);
        }
    }
    assert!(
        learned_eff.len() > learned_out.len(),
        "seeds reaching 0.9 within 500 iterations: effective {learned_eff:?}, outcome {learned_out:?}"
    );
    let eff = eff.expect("an effective run that learned");
    // Pass@N of the final policies: 1 through 64 responses.
    let pass = &read_parquet(&eff["pass"]).unwrap()[0];
    assert_eq!(pass.num_rows(), 7);
    let p = pass.column_by_name("pass_at_n").unwrap().as_primitive::<Float64Type>();
    assert!((0..6).all(|i| p.value(i) <= p.value(i + 1)), "Pass@N grows with N");
}

#[test]
fn alpha_zero_is_the_outcome_mode_and_runs_are_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (probs, pol) = planted(d);
    let inputs = [("problems", probs), ("policy", pol)];
    let common = json!({"iterations": 30, "eval_every": 10, "eval_samples": 32, "pass_samples": 8});
    let with = |extra: Value| crate::train_policy::tests::merged(&common, extra);
    let a0 = run_kind(&Rl, d, "a0", with(json!({"mode": "effective", "gamma": 10, "alpha": 0.0})), 4, &inputs).unwrap();
    let out = run_kind(&Rl, d, "out", with(json!({"mode": "outcome"})), 4, &inputs).unwrap();
    let again = run_kind(&Rl, d, "again", with(json!({"mode": "outcome"})), 4, &inputs).unwrap();
    let eff =
        run_kind(&Rl, d, "eff", with(json!({"mode": "effective", "gamma": 10, "alpha": 1.0})), 4, &inputs).unwrap();
    let bytes = |o: &std::collections::BTreeMap<String, PathBuf>| std::fs::read(o["policy"].join("model.bpk")).unwrap();
    assert_eq!(bytes(&a0), bytes(&out), "alpha = 0 gives the outcome mode's weights");
    assert_eq!(bytes(&out), bytes(&again));
    assert_ne!(bytes(&eff), bytes(&out), "the advantage term changes the update");
    // Zero iterations evaluate the start policy and give it back unchanged.
    let none = run_kind(&Rl, d, "none", with(json!({"mode": "outcome", "iterations": 0})), 4, &inputs).unwrap();
    assert_eq!(bytes(&none), std::fs::read(inputs[1].1.join("model.bpk")).unwrap());
    assert_eq!(curve(&none["curve"]).len(), 1);
    // The checkpoint is a policy that `sample` reads.
    let ckpt = Checkpoint::load(&out["policy"], &Device::flex()).unwrap();
    assert!(matches!(ckpt.model, PolicyModel::Mlp(..)));
}

#[test]
fn bad_params_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (probs, pol) = planted(d);
    let inputs = [("problems", probs.clone()), ("policy", pol.clone())];
    let cases: Vec<(Value, &str)> = vec![
        (json!({"mode": "dense"}), "param `mode`: expected `outcome`, `q-only` or `effective`"),
        (json!({"mode": "effective"}), "param `gamma`"),
        (json!({"mode": "outcome", "alpha": ".inf"}), "param `alpha`: expected a finite number"),
        (json!({"mode": "outcome", "batch": 10, "samples_per_problem": 4}), "must be a multiple"),
        (json!({"mode": "outcome", "q": "verifier"}), "param `q`"),
        (json!({"mode": "outcome", "iterations": -1}), "param `iterations`"),
        (json!({"mode": "outcome", "learning_rate": -1.0}), "param `learning_rate`"),
    ];
    for (params, want) in cases {
        let e = run_kind(&Rl, d, "bad", params.clone(), 0, &inputs).unwrap_err().to_string();
        assert!(e.contains(want), "{params}: {e}");
    }
    let e = run_kind(&Rl, d, "bad", json!({"mode": "outcome"}), 0, &[("problems", probs.clone()), ("policy", probs)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a policy checkpoint"), "{e}");
}

#[test]
fn rollout_q_estimates_are_exact_when_finished_and_consistent_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let (_, pol) = planted(dir.path());
    let dev = Device::flex();
    let ckpt = Checkpoint::load(&pol, &dev).unwrap();
    let PolicyModel::Mlp(config, model) = &ckpt.model else { panic!("an MLP") };
    let task = crate::tasks::planted::Planted::default();
    let s = settings(&Params::new(&serde_json::Map::new()), true).unwrap();
    // Solved after 5 tokens; ended (token 14) after 2; and an open prefix throughout.
    let responses = vec![vec![3, 6, 0, 3, 5, 1, 1], vec![1, 14], vec![3, 6, 0, 1, 2, 4, 4, 4, 4, 4]];
    let few = planted_q(model, config, &task, &responses, 32, (1, 1), &s, &dev);
    let many = planted_q(model, config, &task, &responses, 1024, (2, 1), &s, &dev);
    assert_eq!(few[0][4..], [1.0, 1.0, 1.0], "solved prefixes have Q = 1");
    assert_eq!(few[1], [many[1][0], 0.0], "an ended unsolved prefix has Q = 0");
    assert_eq!(few[2][9], 0.0, "a full-length unsolved response has Q = 0");
    for (a, b) in few.iter().flatten().zip(many.iter().flatten()) {
        let se = (b * (1.0 - b) / 32.0).sqrt();
        assert!((a - b).abs() <= 4.0 * se + 1e-9, "32 rollouts {a} vs 1,024 rollouts {b}");
    }
    // Along the target, each matched token raises Q (3 6 0 3 -> 5 completes it).
    assert!(
        many[0][1] > 0.0 && many[0][1] < many[0][2] && many[0][2] < many[0][3] && many[0][3] < 1.0,
        "{:?}",
        many[0]
    );
}
