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
use crate::tasks::planted::ProverValues;
use crate::train_policy::TrainPolicy;
use crate::train_policy::tests::run_kind;
use rewards::{Batch, Scorer};

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

/// The paper's RL setting (design 5.4) in the didactic test's reduced form: batch 64, Adam at
/// 1e-3, alpha 1, no baseline, the end token masked, prover mu_10.
fn paper_rl(extra: Value) -> Value {
    let common = json!({"iterations": LEARN_ITERATIONS, "eval_every": 50, "eval_samples": 128, "pass_samples": 64,
                        "baseline": "none", "mask_end": true});
    crate::train_policy::tests::merged(&common, extra)
}

/// Iterations of each run of the seed-count test below.
const LEARN_ITERATIONS: u64 = 300;

#[test]
fn on_the_didactic_the_effective_reward_learns_in_clearly_more_runs_than_the_outcome() {
    // Issue 17: 8 RL seeds from one MADE base policy (seed 0), 300 iterations each, the
    // effective reward (Q + A of mu_10, alpha 1) against the outcome reward, with `Q` the
    // response's own outcome (its one-sample Monte-Carlo estimate: `q: rollouts` would make
    // the test minutes long; in expectation the two give the same gradient). A run "learns"
    // when a held-out evaluation (128 samples) reaches 0.9.
    //
    // Why the margin is 4 of 8, chosen before the runs, not tuned: treat the runs of one
    // reward as independent Bernoulli trials (different seeds; a float's last bit can flip a
    // single run, so a single run is a coin toss), X_e ~ Bin(8, p_e), X_o ~ Bin(8, p_o), and
    // assert X_e - X_o >= 4.
    // - The claim (paper Fig. 3a; the re-simulation: 12 of 12 MADE runs by iteration
    //   100-150) is p_e >= 0.9 and p_o <= 0.1 at this budget. Then the test passes with
    //   probability >= 0.983 (exact binomial sums; 0.92 even at p_e = 0.9, p_o = 0.2).
    // - Without an effect (p_e = p_o = p, any p) it passes with probability <= 0.038 (the
    //   maximum over p), so it fails when the effective reward is no better. A margin of 3
    //   would pass 10.5% of no-effect cases; 5 would fail 7% of the claimed case.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (probs, pol) = planted(d);
    let inputs = [("problems", probs), ("policy", pol)];
    let (mut learned_eff, mut learned_out, mut eff) = (Vec::new(), Vec::new(), None);
    for seed in 1..=8 {
        let e =
            run_kind(&Rl, d, &format!("eff{seed}"), paper_rl(json!({"mode": "effective", "gamma": 10})), seed, &inputs)
                .unwrap();
        let o = run_kind(&Rl, d, &format!("out{seed}"), paper_rl(json!({"mode": "outcome"})), seed, &inputs).unwrap();
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
    eprintln!(
        "seeds reaching 0.9 within {LEARN_ITERATIONS} iterations: effective {learned_eff:?}, outcome {learned_out:?}"
    );
    assert!(
        learned_eff.len() >= learned_out.len() + 4,
        "seeds reaching 0.9 within {LEARN_ITERATIONS} iterations: effective {learned_eff:?}, outcome {learned_out:?}"
    );
    let eff = eff.expect("an effective run that learned");
    // Pass@N of a final policy: 1 through 64 responses.
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
        (
            json!({"mode": "outcome", "baseline": "value"}),
            "param `baseline`: a learned value baseline is not implemented",
        ),
        (json!({"mode": "outcome", "baseline": "mean"}), "param `baseline`: expected `none` or `loo`"),
        (json!({"mode": "outcome", "mask_end": "yes"}), "param `mask_end`"),
        (json!({"mode": "outcome", "pass_max_n": 0}), "param `pass_max_n`"),
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

/// `baseline: none` leaves the step rewards as they are (the paper's didactic setting),
/// `loo` subtracts the other responses' mean outcome; `mask_end` zeroes the end token's weight
/// and nothing else. Hand-computed with the exact advantages of mu_10.
#[test]
fn baseline_and_end_token_masking_shape_the_weights() {
    let task = crate::tasks::planted::Planted::default();
    let pv = ProverValues::new(&task, 10.0);
    let batch = Batch { problems: vec![0, 0], responses: vec![vec![3, 6, 0, 3, 5, 14], vec![1, 14]] };
    let train = vec![ProblemRow { problem_id: 0, split: "train".into(), prompt: String::new(), answer: String::new() }];
    let t = Task::Planted(task.clone());
    let weights = |params: Value| {
        let params = params.as_object().unwrap().clone();
        let s = settings(&Params::new(&params), true).unwrap();
        let mut scorer = Scorer::Planted { values: Some(pv.clone()) };
        weigh(&batch, &train, &t, &mut scorer, None, &s).unwrap().0
    };
    let a = |toks: &[usize]| pv.advantage(&task, toks);
    let r0 = [3, 6, 0, 3, 5, 14];
    // Response 0 is right (Q = 1 at every step), response 1 is not (Q = 0).
    let none = weights(json!({"mode": "effective", "alpha": 1.0, "baseline": "none"}));
    for h in 1..=6 {
        assert!((none[0].weights[h - 1] - (1.0 + a(&r0[..h]))).abs() < 1e-12, "step {h}: {:?}", none[0].weights);
    }
    assert!((none[1].weights[0] - a(&[1])).abs() < 1e-12);
    let masked = weights(json!({"mode": "effective", "alpha": 1.0, "baseline": "none", "mask_end": true}));
    assert_eq!(masked[0].weights[..5], none[0].weights[..5], "only the end token changes");
    assert_eq!((masked[0].weights[5], masked[1].weights[1]), (0.0, 0.0));
    // Leave-one-out: each response's baseline is the other's outcome.
    let loo = weights(json!({"mode": "effective", "alpha": 1.0, "baseline": "loo"}));
    assert!(loo[0].weights.iter().zip(&none[0].weights).all(|(l, n)| (l - n).abs() < 1e-12), "baseline 0 for 0");
    assert!(loo[1].weights.iter().zip(&none[1].weights).all(|(l, n)| (l - (n - 1.0)).abs() < 1e-12));
}

/// Prefixes that can no longer complete the target have Q = 0 without rollouts, identical
/// prefixes share one estimate, and the values match a much larger rollout count.
#[test]
fn rollout_q_knows_dead_prefixes_and_values_each_prefix_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_, pol) = planted(dir.path());
    let dev = Device::flex();
    let ckpt = Checkpoint::load(&pol, &dev).unwrap();
    let PolicyModel::Mlp(config, model) = &ckpt.model else { panic!("an MLP") };
    let task = crate::tasks::planted::Planted::default();
    let s = settings(&Params::new(&serde_json::Map::new()), true).unwrap();
    // After 6 tokens with nothing matched, 4 are left for 5 target tokens: Q = 0 exactly; after
    // `1 1 1 1 1 3` one target token is matched and 4 remain: still possible.
    let responses = vec![
        vec![1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        vec![1, 1, 1, 1, 1, 3, 6, 0, 3, 1],
        vec![1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    ];
    let q = planted_q(model, config, &task, &responses, 64, (3, 1), &s, &dev);
    assert_eq!(q[0], q[2], "identical responses, one estimate per prefix");
    assert_eq!(q[0][5..], [0.0; 5], "dead prefixes");
    assert!(q[0][..5].iter().all(|&v| (0.0..1.0).contains(&v)));
    assert!(super::rewards::decided(&task, task.state(&[1, 1, 1, 1, 1, 1])));
    assert!(!super::rewards::decided(&task, task.state(&[1, 1, 1, 1, 1, 3])));
    assert!(super::rewards::decided(&task, task.state(&[1, 1, 1, 1, 1, 3, 6, 0, 3, 1])));
    let many = planted_q(model, config, &task, &responses, 4096, (4, 1), &s, &dev);
    for (a, b) in q.iter().flatten().zip(many.iter().flatten()) {
        // The larger of the two estimates bounds the standard error (a true Q near 0 can
        // give one success in 64 and none in 4,096).
        let p = a.max(*b);
        let se = (p * (1.0 - p) / 64.0).sqrt();
        assert!((a - b).abs() <= 4.0 * se + 1e-9, "64 rollouts {a} vs 4,096 rollouts {b}");
    }
    // Along `3 6 0 3`, 6 tokens are left: Q is positive and below 1.
    assert!(many[1][8] > many[1][6] && many[1][8] < 1.0, "{:?}", many[1]);
}

/// A planted run with rollout `Q` (Monte Carlo, exact sums and deduplicated prefixes) and the
/// 1 - (1 - p)^N Pass@N gives the same checkpoint and tables on 1 thread and on 3.
#[test]
fn a_planted_rollout_run_is_the_same_on_one_thread_or_three() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (probs, pol) = planted(d);
    let inputs = [("problems", probs), ("policy", pol)];
    let params = paper_rl(json!({"mode": "effective", "gamma": 10, "q": "rollouts", "q_rollouts": 16,
                                 "iterations": 8, "eval_every": 4, "pass_samples": 2000}));
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let name = format!("t{threads}");
        let out = pool.install(|| run_kind(&Rl, d, &name, params.clone(), 3, &inputs).unwrap());
        ["curve", "pass"]
            .iter()
            .map(|p| std::fs::read(&out[*p]).unwrap())
            .chain([std::fs::read(out["policy"].join("model.bpk")).unwrap()])
            .collect::<Vec<_>>()
    };
    assert!(run(1) == run(3), "1 and 3 threads differ");
}
