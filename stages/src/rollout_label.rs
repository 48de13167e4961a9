//! The `rollout-label` kind: Monte-Carlo Q-values of the prefixes of seed responses.
//!
//! For every prefix of every seed response (a `sample` table), `n_mc` continuations are drawn
//! from the rollout policy and checked; `q` is the share that ends correct (paper §4.2, design
//! 5.2). Step `h` is the prefix holding the first `h` steps (`0` = the prompt alone); the last
//! step of a response is its outcome, known without rollouts (`rollouts = 0`).
//!
//! - `strategy: all` labels every prefix; `first-pit` labels a response's prefixes in order and
//!   stops after the first one whose `q <= pit_threshold` (the "first pit"), so the budget goes to
//!   the prefixes before a response goes wrong.
//! - Identical prefixes (same problem, same steps) are rolled out once and their result shared;
//!   `summary.json` says how many rollouts that saved. The continuation `j` of a prefix draws
//!   from a generator keyed by (seed, prefix hash, j), so a prefix's label does not depend on
//!   which other responses share it or on the thread count.
//! - `rollout: policy` (default) rolls out with the `policy` checkpoint: the base policy for
//!   `Q^pi`, or another checkpoint to label with a prover. `rollout: hint` (planted task only)
//!   rolls out with the hint prover `mu_gamma`, and adds its exact values `q_exact` and
//!   `a_exact` from the dynamic program.
//! - A continuation may use what its prefix left of `max_steps` and `max_tokens` (give the same
//!   values as the `sample` stage that made the seeds).
//!
//! Output `labels` (labels.parquet), one row per (problem_id, sample, step): problem_id int64,
//! sample int32, step int32, steps int32 (the response's step count), prefix_hash string,
//! rollouts int32, successes int32, q, q_lo, q_hi float64 (95% Wilson), correct bool (the seed
//! response's outcome), and for `rollout: hint` q_exact float64, a_exact float64 (null at step 0).

use std::collections::HashMap;
use std::time::Instant;

use crate::contract::{PortSpec, Stage, StageContext, StageError, StageInfo};
use crate::generate::SampleOpts;
use crate::labels::{LabelRow, write_labels};
use crate::models::checkpoint::Checkpoint;
use crate::models::device::device;
use crate::params::Params;
use crate::rollouts::{Outcome, Roller, Work, planted_tokens, prefix_key};
use crate::sample::{SampleRef, read_samples};
use crate::stats::wilson;
use crate::table::{ProblemRow, read_problems};
use crate::task::{TASK_PARAMS, Task};
use crate::tasks::planted::ProverValues;
use crate::train_policy::port;

pub struct RolloutLabel;

const OWN_PARAMS: &[&str] = &[
    "n_mc",
    "strategy",
    "pit_threshold",
    "rollout",
    "gamma",
    "temperature",
    "max_steps",
    "max_tokens",
    "batch",
    "device",
];

fn param_err(field: &str, message: impl Into<String>) -> StageError {
    StageError::Param { field: field.into(), message: message.into() }
}

/// What labelling did, for `summary.json` and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Labelled (response, step) rows.
    pub prefixes: u64,
    /// Rows known without rollouts (a response's last step).
    pub terminal: u64,
    /// Distinct prefixes rolled out.
    pub unique_prefixes: u64,
    pub rollouts: u64,
    /// Rollouts that sharing identical prefixes did not have to draw.
    pub rollouts_saved: u64,
    pub tokens: u64,
}

/// Label the seed responses: the rows (sorted by problem, sample, step) and the summary.
pub fn label(
    roller: &Roller,
    problems: &[ProblemRow],
    seeds: &[SampleRef],
    n_mc: usize,
    pit: Option<f64>,
    seed: u64,
    mut progress: impl FnMut(usize, usize),
) -> Result<(Vec<LabelRow>, Summary), StageError> {
    let by_id: HashMap<i64, &ProblemRow> = problems.iter().map(|p| (p.problem_id, p)).collect();
    let mut seed_problems = Vec::with_capacity(seeds.len());
    for s in seeds {
        seed_problems.push(*by_id.get(&s.problem_id).ok_or_else(|| {
            StageError::Failed(format!(
                "sample {} of problem_id {} has no row in the problems table; wire `problems` to the table the samples were drawn from",
                s.sample, s.problem_id
            ))
        })?);
    }
    let exact = match roller {
        Roller::Hint { task, gamma } => Some((task, ProverValues::new(task, *gamma))),
        Roller::Policy { .. } => None,
    };
    let mut done: HashMap<u64, Outcome> = HashMap::new();
    let mut rows = Vec::new();
    let mut summary = Summary::default();
    let mut alive: Vec<usize> = (0..seeds.len()).collect();
    let deepest = seeds.iter().map(|s| s.steps.len()).max().unwrap_or(0);
    for h in 0..=deepest {
        alive.retain(|&i| seeds[i].steps.len() >= h);
        if alive.is_empty() {
            break;
        }
        // The distinct prefixes of this depth not labelled before, in first-seen order.
        let mut work = Vec::new();
        let mut queued = std::collections::HashSet::new();
        for &i in &alive {
            let s = &seeds[i];
            if h == s.steps.len() {
                continue;
            }
            let key = prefix_key(s.problem_id, &s.steps[..h]);
            if !done.contains_key(&key) && queued.insert(key) {
                work.push(Work { problem: seed_problems[i], steps: &s.steps[..h], key });
            }
        }
        progress(h, work.len());
        let outcomes = roller.roll(&work, n_mc, seed)?;
        for (w, o) in work.iter().zip(outcomes) {
            summary.unique_prefixes += 1;
            summary.rollouts += o.rollouts as u64;
            summary.tokens += o.tokens;
            done.insert(w.key, o);
        }
        let mut still = Vec::with_capacity(alive.len());
        for &i in &alive {
            let s = &seeds[i];
            let key = prefix_key(s.problem_id, &s.steps[..h]);
            let terminal = h == s.steps.len();
            let o = if terminal {
                summary.terminal += 1;
                Outcome { rollouts: 0, successes: s.correct as u32, tokens: 0 }
            } else {
                done[&key]
            };
            let q = if terminal { o.successes as f64 } else { o.successes as f64 / o.rollouts.max(1) as f64 };
            let (q_lo, q_hi) = if terminal { (q, q) } else { wilson(o.successes as u64, o.rollouts as u64) };
            let (q_exact, a_exact) = match &exact {
                Some((task, pv)) => {
                    let tokens = planted_tokens(&s.steps[..h])?;
                    let a = tokens.split_last().map(|_| pv.advantage(task, &tokens));
                    (Some(pv.q(task, &tokens)), a)
                }
                None => (None, None),
            };
            summary.prefixes += 1;
            rows.push(LabelRow {
                problem_id: s.problem_id,
                sample: s.sample,
                step: h as i32,
                steps: s.steps.len() as i32,
                key,
                rollouts: o.rollouts as i32,
                successes: o.successes as i32,
                q,
                q_lo,
                q_hi,
                correct: s.correct,
                q_exact,
                a_exact,
            });
            let pitted = pit.is_some_and(|t| !terminal && q <= t);
            if !terminal && !pitted {
                still.push(i);
            }
        }
        alive = still;
    }
    let shared = summary.prefixes - summary.terminal - summary.unique_prefixes;
    summary.rollouts_saved = shared * n_mc as u64;
    rows.sort_by_key(|r| (r.problem_id, r.sample, r.step));
    Ok((rows, summary))
}

impl Stage for RolloutLabel {
    fn info(&self) -> StageInfo {
        StageInfo {
            kind: "rollout-label",
            doc: "Monte-Carlo Q-values of every prefix of seed responses (n_mc rollouts each, shared prefixes once)",
            params: OWN_PARAMS.iter().chain(TASK_PARAMS).copied().collect(),
            inputs: vec![
                PortSpec::input("problems", "the `problems` table the seeds were drawn from"),
                PortSpec::input("samples", "seed responses (a `sample` table)"),
                PortSpec::optional("policy", "the rollout policy checkpoint (not with `rollout: hint`)"),
            ],
            outputs: vec![
                PortSpec::output("labels", "labels.parquet", "one row per (problem_id, sample, step)"),
                PortSpec::output("summary", "summary.json", "prefixes, unique prefixes, rollouts, rollouts saved"),
            ],
        }
    }

    fn version(&self) -> u32 {
        // 2: the transformer decodes on the host (models/host.rs): the same function, other
        // float roundings, so sampled tokens can differ from version 1's.
        // 3: gemm's AVX-512 kernels (its `x86-v4` feature, ADR 0009) on machines that have
        // them: other float roundings there.
        // 4: planted decoding forwards only the rows still live (other batch shapes, so other
        // roundings are possible).
        4
    }

    fn run(&self, ctx: &mut StageContext<'_>) -> Result<(), StageError> {
        let p = Params::new(ctx.params);
        let n_mc = p.uint_in("n_mc", 16, 1, 1 << 16)? as usize;
        let pit = match p.str_or("strategy", "all")?.as_str() {
            "all" => None,
            "first-pit" => Some(p.float_or("pit_threshold", 0.0, 0.0, 1.0)?),
            other => {
                return Err(param_err("strategy", format!("expected `all` or `first-pit`, found `{other}`")));
            }
        };
        let opts = SampleOpts {
            temperature: p.float_or("temperature", 1.0, 0.0, 100.0)?,
            max_steps: p.uint_in("max_steps", 64, 1, 1 << 20)? as usize,
            max_tokens: p.uint_in("max_tokens", 512, 1, 1 << 20)? as usize,
            batch: p.uint_in("batch", 256, 1, 1 << 20)? as usize,
        };
        let problems = read_problems(port(ctx.inputs, "problems", "rollout-label")?)?;
        let seeds = read_samples(port(ctx.inputs, "samples", "rollout-label")?)?;
        let roller = match p.str_or("rollout", "policy")?.as_str() {
            "hint" => {
                if ctx.inputs.contains_key("policy") {
                    return Err(param_err(
                        "rollout",
                        "`rollout: hint` rolls out with the hint prover, yet a `policy` is wired; remove one of them",
                    ));
                }
                let Task::Planted(task) = Task::from_params(&p)? else {
                    return Err(param_err("rollout", "`rollout: hint` needs `task: planted` (the hint prover's task)"));
                };
                let gamma = p.float_or("gamma", 10.0, 1e-9, 1e9)?;
                Roller::Hint { task, gamma }
            }
            "policy" => {
                let path = ctx.inputs.get("policy").ok_or_else(|| {
                    param_err(
                        "rollout",
                        "`rollout: policy` (the default) needs a `policy` input: add `needs: {policy: STAGE}` \
                         (a `train-policy` or `rl` checkpoint), or set `rollout: hint` on the planted task",
                    )
                })?;
                let dev = device(&p.str_or("device", "cpu")?).map_err(|m| param_err("device", m))?;
                let ckpt = Checkpoint::load(path, &dev)?;
                let task = Task::from_params(&Params::new(&ckpt.task))?;
                Roller::Policy { ckpt, task, opts, device: dev }
            }
            other => return Err(param_err("rollout", format!("expected `policy` or `hint`, found `{other}`"))),
        };
        let start = Instant::now();
        let log = &mut *ctx.log;
        let (rows, summary) = label(&roller, &problems, &seeds, n_mc, pit, ctx.seed, |h, n| {
            let _ = writeln!(log, "step {h:>3}: {n} new prefixes x {n_mc} rollouts");
        })?;
        let secs = start.elapsed().as_secs_f64();
        writeln!(
            ctx.log,
            "{} responses: {} prefixes labelled ({} terminal), {} distinct rolled out, {} rollouts ({} saved by sharing), \
             {} tokens in {secs:.1} s ({:.0} rollouts/s, {:.0} tokens/s)",
            seeds.len(),
            summary.prefixes,
            summary.terminal,
            summary.unique_prefixes,
            summary.rollouts,
            summary.rollouts_saved,
            summary.tokens,
            summary.rollouts as f64 / secs.max(1e-9),
            summary.tokens as f64 / secs.max(1e-9),
        )?;
        write_labels(port(ctx.outputs, "labels", "rollout-label")?, &rows)?;
        let json = serde_json::json!({
            "prefixes": summary.prefixes,
            "terminal": summary.terminal,
            "unique_prefixes": summary.unique_prefixes,
            "rollouts": summary.rollouts,
            "rollouts_saved": summary.rollouts_saved,
            "tokens": summary.tokens,
        });
        std::fs::write(port(ctx.outputs, "summary", "rollout-label")?, format!("{json:#}\n"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::labels::read_labels;
    use crate::prover_values::q_bok;
    use crate::rng::item_rng;
    use crate::tasks::planted::Planted;
    use crate::train_policy::tests::run_kind;

    fn planted_problem() -> ProblemRow {
        ProblemRow { problem_id: 0, split: "train".into(), prompt: String::new(), answer: "3 6 0 3 5".into() }
    }

    /// Seed responses of the hint prover (so some are correct), as a samples table would hold them.
    fn planted_seeds(task: &Planted, gamma: f64, n: u64) -> Vec<SampleRef> {
        (0..n)
            .map(|i| {
                let tokens = task.sample_prover(&mut item_rng(9, 0, i), gamma, &[]);
                SampleRef {
                    problem_id: 0,
                    sample: i as i32,
                    steps: tokens.iter().map(|t| t.to_string()).collect(),
                    correct: task.reward(&tokens) == 1.0,
                }
            })
            .collect()
    }

    fn hint_labels(n_mc: usize, seeds: &[SampleRef], seed: u64) -> Vec<LabelRow> {
        let task = Planted::default();
        let roller = Roller::Hint { task, gamma: 10.0 };
        label(&roller, &[planted_problem()], seeds, n_mc, None, seed, |_, _| {}).unwrap().0
    }

    #[test]
    fn monte_carlo_q_converges_to_the_exact_value_at_the_binomial_rate() {
        let seeds = planted_seeds(&Planted::default(), 10.0, 24);
        let rmse = |n_mc: usize| -> (f64, f64) {
            let rows: Vec<LabelRow> = hint_labels(n_mc, &seeds, 3).into_iter().filter(|r| r.rollouts > 0).collect();
            let se: f64 = rows.iter().map(|r| (r.q - r.q_exact.unwrap()).powi(2)).sum::<f64>() / rows.len() as f64;
            let covered = rows.iter().filter(|r| (r.q_lo..=r.q_hi).contains(&r.q_exact.unwrap())).count();
            (se.sqrt(), covered as f64 / rows.len() as f64)
        };
        let (small, cover_small) = rmse(64);
        let (large, cover_large) = rmse(1024);
        // The error of a binomial mean falls as 1/sqrt(n): 16x the rollouts, 1/4 the error
        // (0.25 expected; the band allows for the spread of ~200 prefixes' estimates).
        let ratio = large / small;
        assert!((0.17..0.36).contains(&ratio), "rmse {small:.4} -> {large:.4} (ratio {ratio:.3})");
        // 95% Wilson intervals cover the exact value about 95% of the time.
        for c in [cover_small, cover_large] {
            assert!(c > 0.88, "coverage {cover_small:.3} / {cover_large:.3}");
        }
    }

    #[test]
    fn exact_columns_and_terminal_rows_are_consistent() {
        let task = Planted::default();
        let seeds = planted_seeds(&task, 10.0, 16);
        let rows = hint_labels(8, &seeds, 1);
        assert_eq!(rows.len(), seeds.iter().map(|s| s.steps.len() + 1).sum::<usize>());
        for r in &rows {
            assert_eq!(r.step == 0, r.a_exact.is_none());
            if r.step == r.steps {
                assert_eq!((r.rollouts, r.q), (0, if r.correct { 1.0 } else { 0.0 }));
                assert_eq!(r.q_exact, Some(r.q), "the exact value of a whole response is its outcome");
            } else {
                assert_eq!(r.rollouts, 8);
                assert!(r.q_lo <= r.q && r.q <= r.q_hi);
            }
        }
    }

    #[test]
    fn identical_prefixes_are_rolled_out_once_and_labelled_alike() {
        let task = Planted::default();
        let mut seeds = planted_seeds(&task, 10.0, 4);
        let twin = SampleRef { sample: 4, ..seeds[0].clone() };
        seeds.push(twin);
        let roller = Roller::Hint { task, gamma: 10.0 };
        let (rows, summary) = label(&roller, &[planted_problem()], &seeds, 8, None, 2, |_, _| {}).unwrap();
        let nonterminal: u64 = seeds.iter().map(|s| s.steps.len() as u64).sum();
        // Step 0 is shared by all five responses; every prefix of the twin is shared.
        assert!(summary.unique_prefixes <= nonterminal - 4 - seeds[0].steps.len() as u64);
        assert_eq!(summary.rollouts, summary.unique_prefixes * 8);
        assert_eq!(summary.rollouts_saved, (nonterminal - summary.unique_prefixes) * 8);
        let of = |s: i32| rows.iter().filter(|r| r.sample == s).map(|r| (r.key, r.successes)).collect::<Vec<_>>();
        assert_eq!(of(0), of(4));
        // And the label of a prefix does not depend on which other responses were labelled.
        let (alone, _) = label(&roller, &[planted_problem()], &seeds[..1], 8, None, 2, |_, _| {}).unwrap();
        assert_eq!(alone.iter().map(|r| (r.key, r.successes)).collect::<Vec<_>>(), of(0));
    }

    #[test]
    fn first_pit_stops_after_the_first_hopeless_prefix() {
        let task = Planted::default();
        let seeds = planted_seeds(&task, 3.0, 32);
        let roller = Roller::Hint { task, gamma: 3.0 };
        let (rows, _) = label(&roller, &[planted_problem()], &seeds, 4, Some(0.0), 5, |_, _| {}).unwrap();
        let mut pits = 0;
        for s in &seeds {
            let mine: Vec<&LabelRow> = rows.iter().filter(|r| r.sample == s.sample).collect();
            let steps: Vec<i32> = mine.iter().map(|r| r.step).collect();
            assert_eq!(steps, (0..mine.len() as i32).collect::<Vec<_>>(), "labelled in order from step 0");
            let pit = mine.iter().position(|r| r.rollouts > 0 && r.q == 0.0);
            match pit {
                Some(p) => {
                    pits += 1;
                    assert_eq!(p + 1, mine.len(), "nothing is labelled after the pit");
                }
                None => assert_eq!(mine.len(), s.steps.len() + 1),
            }
        }
        assert!(pits > 0, "a weak prover falls into pits");
    }

    #[test]
    fn best_of_k_closed_form_matches_a_simulation_of_best_of_k() {
        // The base policy here is the hint prover with gamma = 10, whose Q is exact; Best-of-K
        // succeeds when any of K independent continuations does.
        let task = Planted::default();
        let pv = ProverValues::new(&task, 10.0);
        let prefixes: [&[usize]; 3] = [&[], &[3, 6], &[1, 2, 3]];
        for prefix in prefixes {
            let q = pv.q(&task, prefix);
            for k in [1u32, 4, 16] {
                let trials = 4000;
                let wins = (0..trials)
                    .filter(|&i| {
                        (0..k as u64).any(|j| {
                            let full = task.sample_prover(&mut item_rng(11, i, j), 10.0, prefix);
                            task.reward(&full) == 1.0
                        })
                    })
                    .count();
                let est = wins as f64 / trials as f64;
                let want = q_bok(q, k);
                let tol = 4.0 * (want * (1.0 - want) / trials as f64).sqrt() + 1e-9;
                assert!((est - want).abs() <= tol, "prefix {prefix:?} K {k}: simulated {est} vs {want}");
            }
        }
    }

    #[test]
    fn a_budget_below_the_seed_responses_is_an_error_not_q_zero() {
        use crate::train_policy::TrainPolicy;
        use crate::train_policy::tests::{merged, small_arith};
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let task = small_arith();
        let probs = run_kind(&crate::problems::Problems, d, "p", merged(&task, json!({"train": 8, "test": 4})), 1, &[])
            .unwrap();
        let tiny = json!({"d_model": 16, "layers": 1, "heads": 2, "d_ff": 32, "context": 64, "iterations": 2});
        let pol = run_kind(&TrainPolicy, d, "pol", merged(&task, tiny), 2, &[("problems", probs["problems"].clone())])
            .unwrap();
        let seeds = d.join("samples.parquet");
        let steps: Vec<String> = vec!["1 + 2 = 3".into(), "3 - 1 = 2".into(), "2".into()];
        crate::sample::write_samples(
            &seeds,
            &[crate::sample::SampleRow {
                problem_id: 0,
                sample: 0,
                response: steps.join("\n"),
                answer: "2".into(),
                steps,
                correct: false,
                logprob: 0.0,
                tokens: 20,
            }],
        )
        .unwrap();
        let inputs = [("problems", probs["problems"].clone()), ("samples", seeds), ("policy", pol["policy"].clone())];
        let err = run_kind(&RolloutLabel, d, "short", json!({"n_mc": 2, "max_steps": 2}), 1, &inputs)
            .unwrap_err()
            .to_string();
        assert!(err.contains("leaves no room") && err.contains("`max_steps` 2"), "{err}");
        let err = run_kind(&RolloutLabel, d, "few", json!({"n_mc": 2, "max_tokens": 10}), 1, &inputs)
            .unwrap_err()
            .to_string();
        assert!(err.contains("leaves no room") && err.contains("`max_tokens` 10"), "{err}");
        run_kind(&RolloutLabel, d, "ok", json!({"n_mc": 2}), 1, &inputs).expect("the default budget fits");
    }

    #[test]
    fn bad_params_and_wiring_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let probs = run_kind(&crate::problems::Problems, d, "p", json!({"task": "planted"}), 1, &[]).unwrap();
        let seeds = d.join("samples.parquet");
        crate::sample::write_samples(
            &seeds,
            &[crate::sample::SampleRow {
                problem_id: 0,
                sample: 0,
                steps: vec!["3".into(), "14".into()],
                response: "3 14".into(),
                answer: "3 14".into(),
                correct: false,
                logprob: 0.0,
                tokens: 2,
            }],
        )
        .unwrap();
        let inputs = [("problems", probs["problems"].clone()), ("samples", seeds.clone())];
        let err = |params: serde_json::Value, inputs: &[(&str, std::path::PathBuf)]| {
            run_kind(&RolloutLabel, d, "bad", params, 1, inputs).unwrap_err().to_string()
        };
        assert!(err(json!({"n_mc": 0, "rollout": "hint", "task": "planted"}), &inputs).contains("param `n_mc`"));
        assert!(err(json!({"strategy": "some"}), &inputs).contains("`all` or `first-pit`"));
        assert!(err(json!({}), &inputs).contains("needs a `policy` input"));
        assert!(err(json!({"rollout": "hint"}), &inputs).contains("needs `task: planted`"));
        let not_policy = [("problems", probs["problems"].clone()), ("samples", seeds.clone()), ("policy", seeds)];
        assert!(err(json!({}), &not_policy).contains("not a policy checkpoint"));
        let ok = run_kind(&RolloutLabel, d, "ok", json!({"rollout": "hint", "task": "planted", "n_mc": 4}), 1, &inputs)
            .unwrap();
        let rows = read_labels(&ok["labels"]).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].q, 0.0, "3 then the end token: wrong");
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&ok["summary"]).unwrap()).unwrap();
        assert_eq!(summary["rollouts"], 8);
    }
}
