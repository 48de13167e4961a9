//! The `rl` kind: online policy gradient from a policy checkpoint with outcome, `Q`-only or
//! dense effective rewards (paper Sec. 5, Fig. 3 and 7).
//!
//! Each iteration samples `batch` responses (`samples_per_problem` per drawn `train` problem),
//! gives each step a reward, and takes one Adam step of REINFORCE ([`crate::policy_gradient`]):
//! every token of step `h` is weighted by `r_h - b`. With `baseline: loo` (the default) `b` is
//! the mean outcome of the other responses to the same problem in the batch (unbiased, and no
//! second model); with `baseline: none` it is 0, as in the paper's didactic experiment. A
//! learned value baseline (the paper's LLM runs) is not implemented. `mask_end: true` gives the
//! planted task's end token weight 0 (the paper masks it with everything after it).
//!
//! Step rewards `r_h` by `mode`:
//! - `outcome`: the response's outcome (1 if right) at every step;
//! - `q-only`: `Q^pi` of the step: the verifier's `Q` with `q: verifier`; on the planted task
//!   with `q: rollouts` the mean outcome of `q_rollouts` rollouts of the current policy from the
//!   step's prefix (exact where the outcome is already decided); else the Monte-Carlo estimate
//!   from the response itself (its outcome, so then it equals `outcome`, as the paper shows it
//!   does in expectation);
//! - `effective`: `Q + alpha * A^mu` of the step's own action. `A^mu` comes from the hint prover
//!   `mu_gamma` by dynamic programming (planted, `gamma`), or from the verifier (text tasks: a
//!   PAV's prover, or with `k` the Best-of-K transform of its `Q`).
//!
//! Outputs: `policy` (the final checkpoint, readable by `sample`, `search-eval` and `rl`),
//! `curve` (curve.parquet: iteration int32 (0 = the start policy), samples_seen int64,
//! accuracy float64 (held-out, at evaluation iterations, else null), reached float64 (at
//! evaluations: 1 once an evaluation so far reached `reach`, default 0.9, else 0; its mean
//! over runs is the share of runs that have learned), reward_mean (mean outcome
//! of the batch), dense_mean (mean step reward before the baseline), kl (mean summed per-token
//! KL to the start policy), entropy (mean per-token), loss; the last five null at iteration 0)
//! and `pass` (pass.parquet: n int32, pass_at_n float64, samples int32, problems int32: Pass@N
//! of the final policy for N = 1, 2, 4, ... up to `pass_max_n`, from `pass_samples` responses
//! per test problem: the unbiased estimator on text tasks, `1 - (1 - p)^N` with `p` the share
//! of right samples on the planted task, whose one prompt makes that exact).

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use burn::optim::AdamConfig;
use burn::prelude::*;
use rand::Rng;

use crate::contract::{PortSpec, Stage, StageContext, StageError, StageInfo};
use crate::generate::{SampleOpts, generate_planted, generate_text};
use crate::models::checkpoint::{Checkpoint, PolicyModel};
use crate::models::device::device;
use crate::models::verifier::{ProverSpec, VerifierCheckpoint};
use crate::params::Params;
use crate::policy_gradient::{HostBuffers, RewardMode, StepStats, step_mlp, step_transformer};
use crate::rng::item_rng;
use crate::sample::sample_rows;
use crate::search_eval::VerifierValuer;
use crate::table::{ProblemRow, read_problems, write_parquet};
use crate::task::Task;
use crate::tasks::planted::ProverValues;
use crate::tokenizer;
use crate::train_policy::port;

mod rewards;
pub use crate::stats::pass_at;
use rewards::{Batch, Scorer, planted_q, weigh};

pub struct Rl;

const STREAM_PICK: u64 = 71;
const STREAM_RL: u64 = 72;
const STREAM_Q: u64 = 73;

fn param_err(field: &str, message: impl Into<String>) -> StageError {
    StageError::Param { field: field.into(), message: message.into() }
}

/// One row of the curve.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CurveRow {
    pub iteration: i32,
    pub samples_seen: i64,
    pub accuracy: Option<f64>,
    /// At evaluations: 1 once some evaluation so far reached `reach`, else 0.
    pub reached: Option<f64>,
    pub reward_mean: Option<f64>,
    pub dense_mean: Option<f64>,
    pub stats: Option<StepStats>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    mode: RewardMode,
    alpha: f64,
    iterations: usize,
    batch: usize,
    per_problem: usize,
    learning_rate: f64,
    beta: f64,
    eval_every: usize,
    eval_samples: u64,
    pass_samples: u64,
    stop_accuracy: Option<f64>,
    reach: f64,
    baseline: Baseline,
    mask_end: bool,
    pass_max_n: u64,
    opts: SampleOpts,
}

/// What is subtracted from every step reward of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Baseline {
    /// Nothing: the paper's didactic experiment.
    None,
    /// The mean outcome of the other responses to the same problem in the batch.
    LeaveOneOut,
}

fn settings(p: &Params<'_>, planted: bool) -> Result<Settings, StageError> {
    let mode = match p.str_or("mode", "effective")?.as_str() {
        "outcome" => RewardMode::Outcome,
        "q-only" => RewardMode::QOnly,
        "effective" => RewardMode::Effective,
        other => {
            return Err(param_err("mode", format!("expected `outcome`, `q-only` or `effective`, found `{other}`")));
        }
    };
    let alpha = match p.raw("alpha") {
        None => 1.0,
        Some(v) => match v.as_f64() {
            Some(a) if a.is_finite() => a,
            _ => {
                return Err(param_err(
                    "alpha",
                    format!("expected a finite number (the paper: 1 didactic, 3-5 RL), found {v}"),
                ));
            }
        },
    };
    let stop_accuracy = match p.raw("stop_accuracy") {
        None => None,
        Some(_) => Some(p.float_or("stop_accuracy", 1.0, 0.0, 1.0)?),
    };
    let baseline = match p.str_or("baseline", "loo")?.as_str() {
        "loo" => Baseline::LeaveOneOut,
        "none" => Baseline::None,
        "value" => {
            return Err(param_err(
                "baseline",
                "a learned value baseline is not implemented; use `none` (the paper's didactic setting) or `loo`",
            ));
        }
        other => return Err(param_err("baseline", format!("expected `none` or `loo`, found `{other}`"))),
    };
    let mask_end = p.bool_or("mask_end", false)?;
    if mask_end && !planted {
        return Err(param_err(
            "mask_end",
            "`mask_end` masks the planted task's end token; text responses end with their answer step: remove it",
        ));
    }
    let pass_samples = p.uint_in("pass_samples", 256, 1, 1 << 24)?;
    let pass_max_n = p.uint_in("pass_max_n", pass_samples, 1, 1 << 24)?;
    if !planted && pass_max_n > pass_samples {
        return Err(param_err(
            "pass_max_n",
            format!(
                "the unbiased Pass@N needs N <= `pass_samples` ({pass_samples}); lower `pass_max_n` or raise `pass_samples`"
            ),
        ));
    }
    let batch = p.uint_in("batch", 64, 1, 1 << 20)? as usize;
    let per_problem = p.uint_in("samples_per_problem", if planted { 1 } else { 4 }, 1, 1 << 20)? as usize;
    if !batch.is_multiple_of(per_problem) {
        return Err(param_err(
            "samples_per_problem",
            format!("`batch` ({batch}) must be a multiple of `samples_per_problem` ({per_problem})"),
        ));
    }
    Ok(Settings {
        mode,
        alpha,
        iterations: p.uint_in("iterations", 1000, 0, 100_000_000)? as usize,
        batch,
        per_problem,
        learning_rate: p.float_or("learning_rate", 1e-3, 1e-12, 10.0)?,
        beta: p.float_or("kl", 0.0, 0.0, 1e6)?,
        eval_every: p.uint_in("eval_every", 50, 1, 100_000_000)? as usize,
        eval_samples: p.uint_in("eval_samples", if planted { 256 } else { 4 }, 1, 1 << 20)?,
        pass_samples,
        stop_accuracy,
        reach: p.float_or("reach", 0.9, 0.0, 1.0)?,
        baseline,
        mask_end,
        pass_max_n,
        opts: SampleOpts {
            temperature: p.float_or("temperature", 1.0, 0.0, 100.0)?,
            max_steps: p.uint_in("max_steps", 64, 1, 1 << 20)? as usize,
            max_tokens: p.uint_in("max_tokens", 512, 1, 1 << 20)? as usize,
            batch: 256,
        },
    })
}

/// Held-out accuracy: `n` responses per test problem, drawn as `sample` draws them.
fn accuracy(
    ckpt: &Checkpoint,
    task: &Task,
    test: &[ProblemRow],
    n: u64,
    s: &Settings,
    seed: u64,
    dev: &Device,
) -> Result<f64, StageError> {
    let rows = sample_rows(ckpt, task, test, n, s.opts, seed, dev)?;
    Ok(rows.iter().filter(|r| r.correct).count() as f64 / rows.len().max(1) as f64)
}

impl Stage for Rl {
    fn info(&self) -> StageInfo {
        StageInfo {
            kind: "rl",
            doc: "online policy gradient (REINFORCE, leave-one-out or no baseline) with outcome, Q-only or effective (Q + alpha * A) step rewards",
            params: vec![
                "mode",
                "q",
                "q_rollouts",
                "alpha",
                "gamma",
                "k",
                "iterations",
                "batch",
                "samples_per_problem",
                "learning_rate",
                "kl",
                "eval_every",
                "eval_samples",
                "pass_samples",
                "pass_max_n",
                "baseline",
                "mask_end",
                "stop_accuracy",
                "reach",
                "temperature",
                "max_steps",
                "max_tokens",
                "device",
            ],
            inputs: vec![
                PortSpec::input("problems", "a `problems` table: RL on `train`, accuracy and Pass@N on `test`"),
                PortSpec::input("policy", "the start checkpoint (`train-policy` or `rl`)"),
                PortSpec::optional(
                    "verifier",
                    "text tasks: a PQV or PAV giving Q and A (`q: verifier`, `mode: effective`)",
                ),
            ],
            outputs: vec![
                PortSpec::output("policy", "policy", "the final checkpoint"),
                PortSpec::output("curve", "curve.parquet", "per iteration: accuracy, reward, kl, entropy"),
                PortSpec::output("pass", "pass.parquet", "Pass@N of the final policy on the test problems"),
            ],
        }
    }

    fn version(&self) -> u32 {
        // 2: the transformer decodes on the host (models/host.rs): the same function, other
        // float roundings, so sampled tokens can differ from version 1's.
        // 3: on the CPU the transformer's policy gradient comes from the host training pass
        // (models/host_train.rs, ADR 0009), and gemm's AVX-512 kernels (its `x86-v4` feature)
        // run on machines that have them: the same function, other float roundings.
        // 4: planted: `q: rollouts` values each distinct prefix once (other random draws),
        // knows the prefixes that can no longer succeed (Q = 0) and stops rollouts once the
        // outcome is decided; Pass@N is 1 - (1 - p)^N; new params `baseline`, `mask_end`,
        // `pass_max_n` (their defaults keep the old weights).
        4
    }

    fn run(&self, ctx: &mut StageContext<'_>) -> Result<(), StageError> {
        let p = Params::new(ctx.params);
        let dev = device(&p.str_or("device", "cpu")?).map_err(|m| param_err("device", m))?;
        let start = Checkpoint::load(port(ctx.inputs, "policy", "rl")?, &dev)?;
        let task = Task::from_params(&Params::new(&start.task))?;
        let planted = matches!(task, Task::Planted(_));
        let s = settings(&p, planted)?;
        let (q_from_verifier, q_rollouts) = match p.str_or("q", "outcome")?.as_str() {
            "outcome" => (false, 0),
            "verifier" => (true, 0),
            "rollouts" if planted => (false, p.uint_in("q_rollouts", 16, 1, 1 << 16)? as usize),
            "rollouts" => {
                return Err(param_err(
                    "q",
                    "`q: rollouts` serves the planted task; on text tasks use `outcome` or `verifier`",
                ));
            }
            other => {
                return Err(param_err(
                    "q",
                    format!(
                        "expected `outcome` (the response's own outcome), `rollouts` (planted) or `verifier`, found `{other}`"
                    ),
                ));
            }
        };
        let problems = read_problems(port(ctx.inputs, "problems", "rl")?)?;
        let train: Vec<ProblemRow> = problems.iter().filter(|r| r.split == "train").cloned().collect();
        let test: Vec<ProblemRow> = problems.iter().filter(|r| r.split == "test").cloned().collect();
        if train.is_empty() || test.is_empty() {
            return Err(StageError::Failed(
                "`rl` trains on the problems table's `train` rows and evaluates on its `test` rows; one of them is empty".into(),
            ));
        }
        start.check_prompts(&problems, "rl")?;
        let verifier = match ctx.inputs.get("verifier") {
            Some(path) if planted => {
                return Err(StageError::Failed(format!(
                    "a `verifier` ({}) is wired, but the planted task's values are exact: give `gamma` instead",
                    path.display()
                )));
            }
            Some(path) => Some(VerifierCheckpoint::load(path, &dev)?),
            None => None,
        };
        if let Some(v) = &verifier
            && !v.meta.task.is_empty()
            && v.meta.task != start.task
        {
            return Err(StageError::Failed(
                "the `verifier` was trained on responses to another task than the policy's; wire a verifier trained on this policy's samples".into(),
            ));
        }
        if let Some(v) = &verifier
            && v.meta.target == "orm"
        {
            return Err(StageError::Failed(
                "the `verifier` is an ORM, which has no step values; wire a `pqv` or `pav` train-verifier".into(),
            ));
        }
        let prompts: Vec<String> = train.iter().map(|r| r.prompt.clone()).collect();
        let mut scorer = match &task {
            Task::Planted(t) => {
                if q_from_verifier {
                    return Err(param_err(
                        "q",
                        "the planted task has no verifier: its `Q` is the Monte-Carlo outcome (`q: outcome`)",
                    ));
                }
                let gamma = match p.raw("gamma") {
                    None => None,
                    Some(_) => Some(p.float_or("gamma", 10.0, 0.0, 1e9)?),
                };
                if s.mode == RewardMode::Effective && gamma.is_none() {
                    return Err(param_err(
                        "gamma",
                        "`mode: effective` on the planted task needs the prover `mu_gamma`: set `gamma` (the paper: 10)",
                    ));
                }
                Scorer::Planted { values: gamma.map(|g| ProverValues::new(t, g)) }
            }
            _ => {
                let k = match p.raw("k") {
                    None => None,
                    Some(_) => Some(p.uint_in("k", 4, 1, 1 << 20)? as u32),
                };
                let valuer = verifier.as_ref().map(|ckpt| {
                    let mut meta = ckpt.meta.clone();
                    if let Some(k) = k {
                        meta.prover = ProverSpec::BestOfK(k);
                    }
                    (VerifierValuer { ckpt, prompts: prompts.clone(), batch: 256, device: dev.clone() }, meta)
                });
                let has_a = valuer.as_ref().is_some_and(|(_, m)| m.prover != ProverSpec::None);
                if s.mode == RewardMode::Effective && !has_a {
                    return Err(param_err(
                        "k",
                        "`mode: effective` needs an advantage: wire a PAV on `verifier`, or a PQV and set `k` (Best-of-K of the base policy as the prover)",
                    ));
                }
                if q_from_verifier && valuer.is_none() {
                    return Err(param_err(
                        "q",
                        "`q: verifier` needs the `verifier` port: add `needs: {verifier: STAGE}`",
                    ));
                }
                Scorer::Text { valuer, q_from_verifier }
            }
        };

        let ad = dev.clone().autodiff();
        let trained = Checkpoint::load(port(ctx.inputs, "policy", "rl")?, &ad)?;
        // The start policy, without gradients, for the KL term.
        let reference = match Checkpoint::load(port(ctx.inputs, "policy", "rl")?, &ad)?.model {
            PolicyModel::Mlp(c, m) => PolicyModel::Mlp(c, m.no_grad()),
            PolicyModel::Transformer(c, m) => PolicyModel::Transformer(c, m.no_grad()),
        };
        let mut optim = AdamConfig::new().init();
        let mut buffers = HostBuffers::default();
        let mut curve = Vec::new();
        let mut model = trained.model;
        let snapshot = |m: &PolicyModel| Checkpoint {
            model: match m {
                PolicyModel::Mlp(c, m) => PolicyModel::Mlp(c.clone(), m.valid()),
                PolicyModel::Transformer(c, m) => PolicyModel::Transformer(c.clone(), m.valid()),
            },
            task: start.task.clone(),
        };
        let acc0 = accuracy(&start, &task, &test, s.eval_samples, &s, ctx.seed, &dev)?;
        writeln!(ctx.log, "iteration      0  accuracy {acc0:.3} (start policy, {} test problems)", test.len())?;
        let mut reached = acc0 >= s.reach;
        curve.push(CurveRow {
            accuracy: Some(acc0),
            reached: Some(f64::from(u8::from(reached))),
            ..CurveRow::default()
        });
        let clock = std::time::Instant::now();
        for it in 1..=s.iterations {
            let now = snapshot(&model);
            let mut pick = item_rng(ctx.seed, STREAM_PICK, it as u64);
            let problems: Vec<usize> = (0..s.batch / s.per_problem)
                .flat_map(|_| std::iter::repeat_n(pick.random_range(0..train.len()), s.per_problem))
                .collect();
            let mut rngs: Vec<_> =
                (0..s.batch as u64).map(|j| item_rng(ctx.seed, STREAM_RL, ((it as u64) << 24) | j)).collect();
            let responses: Vec<Vec<u32>> = match (&now.model, &task) {
                (PolicyModel::Mlp(c, m), Task::Planted(t)) => {
                    generate_planted(m, c, t, &vec![Vec::new(); s.batch], &mut rngs, s.opts, &dev)
                }
                (PolicyModel::Transformer(_, m), _) => {
                    let prefixes: Vec<Vec<u32>> =
                        problems.iter().map(|&i| tokenizer::encode_prompt(&train[i].prompt)).collect();
                    generate_text(m, &prefixes, &mut rngs, s.opts, &dev)
                }
                _ => {
                    return Err(StageError::Failed(format!(
                        "the policy's model does not fit its task `{}`",
                        task.name()
                    )));
                }
            }
            .into_iter()
            .map(|g| g.tokens)
            .collect();
            let batch = Batch { problems, responses };
            let q_mc = match (&now.model, &task) {
                (PolicyModel::Mlp(c, m), Task::Planted(t)) if q_rollouts > 0 => {
                    Some(planted_q(m, c, t, &batch.responses, q_rollouts, (ctx.seed, it as u64), &s, &dev))
                }
                _ => None,
            };
            let (weighted, reward, dense) = weigh(&batch, &train, &task, &mut scorer, q_mc.as_deref(), &s)?;
            let stats;
            model = match (model, &reference) {
                (PolicyModel::Mlp(c, m), PolicyModel::Mlp(_, r)) => {
                    let (m, st) = step_mlp(m, Some(r), &c, &mut optim, &weighted, s.beta, s.learning_rate);
                    stats = st;
                    PolicyModel::Mlp(c, m)
                }
                (PolicyModel::Transformer(c, m), PolicyModel::Transformer(_, r)) => {
                    let (m, st) =
                        step_transformer(m, Some(r), &mut optim, &weighted, s.beta, s.learning_rate, &mut buffers);
                    stats = st;
                    PolicyModel::Transformer(c, m)
                }
                _ => return Err(StageError::Failed("the start and reference checkpoints differ".into())),
            };
            if !stats.loss.is_finite() {
                return Err(StageError::Failed(format!("the loss diverged at iteration {it}; lower `learning_rate`")));
            }
            let mut row = CurveRow {
                iteration: it as i32,
                samples_seen: (it * s.batch) as i64,
                accuracy: None,
                reached: None,
                reward_mean: Some(reward),
                dense_mean: Some(dense),
                stats: Some(stats),
            };
            if it.is_multiple_of(s.eval_every) || it == s.iterations {
                let acc = accuracy(&snapshot(&model), &task, &test, s.eval_samples, &s, ctx.seed, &dev)?;
                row.accuracy = Some(acc);
                reached |= acc >= s.reach;
                row.reached = Some(f64::from(u8::from(reached)));
                writeln!(
                    ctx.log,
                    "iteration {it:>6}  accuracy {acc:.3}  reward {reward:.3}  kl {:.4}  entropy {:.3}  ({:.1} it/s)",
                    stats.kl,
                    stats.entropy,
                    it as f64 / clock.elapsed().as_secs_f64().max(1e-9)
                )?;
                curve.push(row);
                if s.stop_accuracy.is_some_and(|a| acc >= a) {
                    writeln!(ctx.log, "stopped: accuracy {acc:.3} reached `stop_accuracy`")?;
                    break;
                }
                continue;
            }
            curve.push(row);
        }
        let last = curve.last().map_or(0, |r| r.iteration);
        writeln!(
            ctx.log,
            "{last} iterations in {:.1?} ({:.2} it/s)",
            clock.elapsed(),
            last as f64 / clock.elapsed().as_secs_f64().max(1e-9)
        )?;
        let fin = snapshot(&model);
        let rows = sample_rows(&fin, &task, &test, s.pass_samples, s.opts, ctx.seed, &dev)?;
        let mut pass = Vec::new();
        let mut k = 1;
        while k as u64 <= s.pass_max_n {
            let mean = test
                .iter()
                .map(|t| {
                    let c = rows.iter().filter(|r| r.problem_id == t.problem_id && r.correct).count();
                    if planted {
                        // One prompt: Pass@N = 1 - (1 - p)^N exactly, p from all the samples.
                        1.0 - (1.0 - c as f64 / s.pass_samples as f64).powi(k as i32)
                    } else {
                        pass_at(s.pass_samples as usize, c, k)
                    }
                })
                .sum::<f64>()
                / test.len() as f64;
            pass.push((k as i32, mean));
            k *= 2;
        }
        fin.save(port(ctx.outputs, "policy", "rl")?)?;
        write_curve(port(ctx.outputs, "curve", "rl")?, &curve)?;
        write_pass(port(ctx.outputs, "pass", "rl")?, &pass, s.pass_samples as i32, test.len() as i32)
    }
}

fn write_curve(path: &std::path::Path, curve: &[CurveRow]) -> Result<(), StageError> {
    let opt = |f: &dyn Fn(&CurveRow) -> Option<f64>| -> ArrayRef {
        Arc::new(Float64Array::from(curve.iter().map(f).collect::<Vec<_>>()))
    };
    let fields = vec![
        Field::new("iteration", DataType::Int32, false),
        Field::new("samples_seen", DataType::Int64, false),
        Field::new("accuracy", DataType::Float64, true),
        Field::new("reached", DataType::Float64, true),
        Field::new("reward_mean", DataType::Float64, true),
        Field::new("dense_mean", DataType::Float64, true),
        Field::new("kl", DataType::Float64, true),
        Field::new("entropy", DataType::Float64, true),
        Field::new("loss", DataType::Float64, true),
    ];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(curve.iter().map(|r| r.iteration))),
        Arc::new(Int64Array::from_iter_values(curve.iter().map(|r| r.samples_seen))),
        opt(&|r| r.accuracy),
        opt(&|r| r.reached),
        opt(&|r| r.reward_mean),
        opt(&|r| r.dense_mean),
        opt(&|r| r.stats.map(|s| s.kl)),
        opt(&|r| r.stats.map(|s| s.entropy)),
        opt(&|r| r.stats.map(|s| s.loss)),
    ];
    let batch =
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| StageError::Failed(e.to_string()))?;
    write_parquet(path, &batch)
}

fn write_pass(path: &std::path::Path, pass: &[(i32, f64)], samples: i32, problems: i32) -> Result<(), StageError> {
    let fields = vec![
        Field::new("n", DataType::Int32, false),
        Field::new("pass_at_n", DataType::Float64, false),
        Field::new("samples", DataType::Int32, false),
        Field::new("problems", DataType::Int32, false),
    ];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(pass.iter().map(|p| p.0))),
        Arc::new(Float64Array::from_iter_values(pass.iter().map(|p| p.1))),
        Arc::new(Int32Array::from_iter_values(pass.iter().map(|_| samples))),
        Arc::new(Int32Array::from_iter_values(pass.iter().map(|_| problems))),
    ];
    let batch =
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| StageError::Failed(e.to_string()))?;
    write_parquet(path, &batch)
}

#[cfg(test)]
#[path = "rl_tests.rs"]
mod tests;
