use serde_json::{Value, json};

use super::*;
use crate::problems::Problems;
use crate::rollout_label::RolloutLabel;
use crate::sample::Sample;
use crate::table::read_parquet;
use crate::train_policy::TrainPolicy;
use crate::train_policy::tests::{merged, run_kind, small_arith};

fn eval_rows(path: &std::path::Path) -> Vec<(i32, i32, Option<f64>, f64)> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int32Type};
    let b = &read_parquet(path).unwrap()[0];
    let step = b.column_by_name("step").unwrap().as_primitive::<Int32Type>();
    let n = b.column_by_name("n").unwrap().as_primitive::<Int32Type>();
    let au = b.column_by_name("auroc").unwrap().as_primitive::<Float64Type>();
    let err = b.column_by_name("error").unwrap().as_primitive::<Float64Type>();
    let split = b.column_by_name("split").unwrap().as_string::<i32>();
    (0..b.num_rows())
        .filter(|&i| split.value(i) == "test")
        .map(|i| (step.value(i), n.value(i), au.is_valid(i).then(|| au.value(i)), err.value(i)))
        .collect()
}

#[test]
fn a_verifier_of_the_arith_policy_predicts_outcomes_better_than_chance() {
    // One-operation chains: the verifier must learn which `a op b = c` lines are right.
    // (On two-operation chains the same recipe over-fits its ~1,500 responses: see
    // docs/results.md.)
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t0 = std::time::Instant::now();
    let task = merged(&small_arith(), json!({"steps": 1}));
    let probs = run_kind(&Problems, d, "problems", merged(&task, json!({"train": 512, "test": 64})), 1, &[]).unwrap();
    let problems = probs["problems"].clone();
    let model = json!({"d_model": 64, "layers": 2, "heads": 4, "d_ff": 256, "context": 96, "iterations": 200, "learning_rate": 0.003, "traces": 1});
    let pol = run_kind(&TrainPolicy, d, "policy", merged(&task, model), 2, &[("problems", problems.clone())]).unwrap();
    let policy = pol["policy"].clone();
    let both = [("problems", problems.clone()), ("policy", policy.clone())];
    let seeds = run_kind(&Sample, d, "seeds", json!({"n": 2}), 8, &both).unwrap();
    let inputs = [("problems", problems.clone()), ("samples", seeds["samples"].clone()), ("policy", policy.clone())];
    let labels = run_kind(&RolloutLabel, d, "labels", json!({"n_mc": 4}), 9, &inputs).unwrap();
    let t1 = t0.elapsed();
    let inputs = [
        ("problems", problems.clone()),
        ("samples", seeds["samples"].clone()),
        ("labels", labels["labels"].clone()),
        ("policy", policy),
    ];
    let v = run_kind(&TrainVerifier, d, "pqv", json!({"target": "pqv", "iterations": 200}), 10, &inputs).unwrap();
    let rows = eval_rows(&v["eval"]);
    eprintln!("policy and labels {t1:?}, verifier {:?}: {rows:?}", t0.elapsed() - t1);
    let last = rows.iter().find(|r| r.0 == -1).expect("a last-step row");
    assert_eq!(last.1, 128, "two responses per test problem");
    // Chance is 0.5; 128 test responses give the AUROC a standard error near 0.04.
    let auc = last.2.expect("both outcomes among the test responses");
    assert!(auc > 0.7, "last-step AUROC {auc:.3}");
    // The checkpoint reloads with its meaning.
    let ckpt = VerifierCheckpoint::load(&v["verifier"], &burn::prelude::Device::flex()).unwrap();
    assert_eq!((ckpt.meta.target.as_str(), ckpt.meta.prover), ("pqv", ProverSpec::None));
}

/// Inputs that fit no context are errors naming the fix, not empty responses counted wrong
/// or a verifier saved untrained: `sample` on prompts longer than the policy's context, and
/// `train-verifier` whose every labelled step lies beyond its own context.
#[test]
fn prompts_and_labels_beyond_the_context_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let task = small_arith();
    let probs = run_kind(&Problems, d, "p", merged(&task, json!({"train": 8, "test": 4})), 1, &[]).unwrap();
    let problems = probs["problems"].clone();
    let tiny = json!({"d_model": 16, "layers": 1, "heads": 2, "d_ff": 32, "context": 64, "iterations": 2});
    let pol = run_kind(&TrainPolicy, d, "pol", merged(&task, tiny), 2, &[("problems", problems.clone())]).unwrap();
    let policy = pol["policy"].clone();

    // Twelve operations make prompts of about 80 tokens, past the context of 64.
    let long =
        run_kind(&Problems, d, "long", merged(&task, json!({"steps": 12, "train": 2, "test": 2})), 1, &[]).unwrap();
    let err = run_kind(
        &Sample,
        d,
        "s-long",
        json!({"n": 1}),
        3,
        &[("problems", long["problems"].clone()), ("policy", policy.clone())],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("leaves no room for a response") && err.contains("`context`"), "{err}");
    let long_inputs = [("problems", long["problems"].clone()), ("policy", policy.clone())];
    let err = run_kind(&crate::rl::Rl, d, "rl-long", json!({"mode": "outcome", "iterations": 1}), 3, &long_inputs)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`rl`") && err.contains("leaves no room for a response"), "{err}");
    let err = run_kind(&crate::search_eval::SearchEval, d, "se-long", json!({"n": [1]}), 3, &long_inputs)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`search-eval`") && err.contains("leaves no room for a response"), "{err}");

    let both = [("problems", problems.clone()), ("policy", policy.clone())];
    let seeds = run_kind(&Sample, d, "seeds", json!({"n": 1}), 3, &both).unwrap();
    let inputs = [("problems", problems.clone()), ("samples", seeds["samples"].clone()), ("policy", policy)];
    let labels = run_kind(&RolloutLabel, d, "labels", json!({"n_mc": 1}), 4, &inputs).unwrap();
    let inputs = [("problems", problems), ("samples", seeds["samples"].clone()), ("labels", labels["labels"].clone())];
    let small =
        json!({"target": "pqv", "iterations": 2, "context": 8, "d_model": 16, "layers": 1, "heads": 2, "d_ff": 32});
    let err = run_kind(&TrainVerifier, d, "v", small, 5, &inputs).unwrap_err().to_string();
    assert!(err.contains("beyond the verifier's context of 8") && err.contains("raise `context`"), "{err}");
}

#[test]
fn labels_join_their_samples_only_when_the_prefix_matches() {
    let problems =
        vec![ProblemRow { problem_id: 7, split: "train".into(), prompt: "1 + 2".into(), answer: "3".into() }];
    let steps: Vec<String> = vec!["1 + 2 = 3".into(), "3".into()];
    let seed = SampleRef { problem_id: 7, sample: 0, steps: steps.clone(), correct: true };
    let label = |step: usize, prefix: &[String], q: f64| LabelRow {
        problem_id: 7,
        sample: 0,
        step: step as i32,
        steps: 2,
        key: prefix_key(7, prefix),
        rollouts: 4,
        successes: (q * 4.0) as i32,
        q,
        q_lo: 0.0,
        q_hi: 1.0,
        correct: true,
        q_exact: None,
        a_exact: None,
    };
    let target = Target { name: "pqv".into(), prover: ProverSpec::None, alpha: 0.0 };
    let good: Vec<LabelRow> = (0..=2).map(|h| label(h, &steps[..h], 0.25 * h as f64)).collect();
    let ex = examples(&problems, std::slice::from_ref(&seed), &good, None, &target, "train").unwrap();
    assert_eq!(ex[0].q_mc, vec![Some(0.0), Some(0.25), Some(0.5)]);
    // Labels of another response to the same problem (same ids, other steps) are refused.
    let other: Vec<String> = vec!["1 + 2 = 4".into(), "4".into()];
    let bad: Vec<LabelRow> = (0..=2).map(|h| label(h, &other[..h], 0.5)).collect();
    let err = examples(&problems, &[seed], &bad, None, &target, "train").unwrap_err().to_string();
    assert!(err.contains("problem 7, sample 0, step 1") && err.contains("same `samples` stage"), "{err}");
}

#[test]
fn pav_scores_add_the_best_of_k_advantage_of_each_step() {
    let meta =
        VerifierMeta { target: "pav".into(), prover: ProverSpec::BestOfK(2), alpha: 0.5, task: serde_json::Map::new() };
    let values = vec![vec![0.5], vec![0.75], vec![0.0]];
    let s = meta.scores(&values, 0.5);
    // Step 1: (1 - 0.5)^2 - (1 - 0.75)^2 = 0.1875; step 2: 0.0625 - 1 = -0.9375.
    assert_eq!(s[0].a, 0.0);
    assert!((s[1].a - 0.1875).abs() < 1e-12 && (s[1].score - (0.75 + 0.5 * 0.1875)).abs() < 1e-12);
    assert!((s[2].a + 0.9375).abs() < 1e-12);
    let learned = VerifierMeta { prover: ProverSpec::Learned, ..meta };
    let s = learned.scores(&[vec![0.5, 0.2], vec![0.6, 0.7]], 1.0);
    assert!((s[1].score - (0.6 + 0.5)).abs() < 1e-12);
}

#[test]
fn balanced_weights_give_each_bucket_half() {
    let w = balanced_weights(&[0.1, 0.2, 0.3, 0.9]);
    assert!((w[..3].iter().sum::<f64>() - w[3]).abs() < 1e-12);
    assert_eq!(balanced_weights(&[0.7, 0.8]), vec![1.0, 1.0]);
}

#[test]
fn bad_params_name_the_field() {
    let m = |v: Value| v.as_object().unwrap().clone();
    let err = |v: Value, wired: bool| Target::from_params(&Params::new(&m(v)), wired).unwrap_err().to_string();
    assert!(err(json!({"target": "prm"}), false).contains("`orm`, `pqv` or `pav`"));
    assert!(err(json!({"target": "pav", "k": 0}), false).contains("param `k`"));
    assert!(err(json!({"target": "pav", "alpha": 1e9}), false).contains("param `alpha`"));
    assert!(err(json!({"target": "pav", "prover": "labels"}), false).contains("needs the prover's labels"));
    assert!(err(json!({"target": "pqv"}), true).contains("only `target: pav`"));
    assert!(err(json!({"target": "pav", "prover": "oracle"}), false).contains("`bok`"));
    let ok = Target::from_params(&Params::new(&m(json!({"target": "pav", "k": 8}))), false).unwrap();
    assert_eq!(ok.prover, ProverSpec::BestOfK(8));
}
#[test]
fn host_verifier_gradients_match_burn_autodiff() {
    use rand::Rng;

    use crate::models::host_train::test_support::{head_ids, params, values};
    use crate::rng::item_rng;

    let device = Device::flex();
    let ad = device.clone().autodiff();
    let config =
        TransformerConfig::new(13).with_context(40).with_d_model(32).with_layers(2).with_heads(2).with_d_ff(48);
    // Two heads, as a PAV with a learned prover; some labels missing.
    let model = seeded(&ad, 6, || Verifier::new(config.init(&ad), 32, 2, &ad));
    let mut rng = item_rng(7, 0, 0);
    let train: Vec<Example> = (0..5)
        .map(|_| {
            let len = rng.random_range(8..39);
            let positions: Vec<usize> = (2..len).step_by(3).collect();
            let labels = positions
                .iter()
                .map(|_| (0..2).map(|_| rng.random_bool(0.8).then(|| rng.random_range(0.0..1.0))).collect())
                .collect();
            let q_mc = vec![None; positions.len()];
            Example {
                problem_id: 0,
                tokens: (0..len).map(|_| rng.random_range(1..13)).collect(),
                positions,
                labels,
                q_mc,
                correct: false,
            }
        })
        .collect();
    let vb = verifier_batch(&train, &[0, 1, 2, 3, 4], 40, 2).unwrap();
    let (want, want_loss) = verifier_grads_burn(&model, &vb);
    let (got, got_loss) = verifier_grads_host(&model, &vb, &device, &mut Workspace::default());
    assert!((got_loss - want_loss).abs() < 1e-5 * want_loss, "loss {got_loss} vs burn {want_loss}");
    let head = head_ids(&model.trunk);
    let mut all: Vec<_> = params(&model.trunk).into_iter().filter(|(id, _)| !head.contains(id)).collect();
    all.push((model.value.weight.id, 2));
    all.push((model.value.bias.as_ref().unwrap().id, 1));
    assert_eq!(got.len(), all.len(), "no gradient for the language-model head, one for every other parameter");
    assert_eq!(want.len(), all.len());
    for (i, (id, rank)) in all.into_iter().enumerate() {
        let (g, w) = (values(&got, id, rank), values(&want, id, rank));
        let scale = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "parameter {i}: burn's gradient is zero");
        let worst = g.iter().zip(&w).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(worst <= 5e-5 * scale + 1e-7, "parameter {i}: largest difference {worst} (largest gradient {scale})");
    }
}
