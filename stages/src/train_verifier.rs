//! The `train-verifier` kind: ORM, Q-value PRM (PQV) and process advantage verifier (PAV).
//!
//! A verifier is a transformer trunk with a scalar head per value, read at step boundaries
//! ([`crate::models::verifier`]), trained with soft-label binary cross-entropy on the
//! Monte-Carlo labels of the seed responses of the `train` problems:
//! - `target: orm` learns the outcome of whole responses (read at their last step);
//! - `target: pqv` learns `Q^pi` at every labelled step (`labels`, rolled out by the base);
//! - `target: pav` scores steps by `Q^pi + alpha * A^mu`. With `prover: bok` (default, `k`) it is
//!   a Q-model plus the Best-of-K transform, as the paper does (App. D), so its weights equal a
//!   PQV's of the same seed; with `prover: labels` a second head learns `Q^mu` from the prover's
//!   own labels (wired on the `prover` port: `rollout-label` run with the prover checkpoint on
//!   the same seed responses), and `A^mu = Q^mu(h) - Q^mu(h-1)`.
//!
//! Labels are balanced between `q < 0.5` and `q >= 0.5` by weighting: in every batch each of
//! the two buckets carries half of the loss (every readout of a sequence is used; sampling
//! readouts to balance them would discard most of each forward pass). The trunk starts from the
//! `policy` checkpoint when one is wired (the paper starts from a pretrained LM), otherwise
//! from scratch with `d_model`, `layers`, `heads`, `d_ff`, `context`.
//!
//! Outputs: `verifier` (checkpoint directory), `curve` (iteration, loss; the loss is null for a
//! batch with no labelled step inside the context, which takes no step) and `eval`
//! (eval.parquet, on the `test` problems' responses): per step index (`step = -1`: the last
//! step of each response) `n` int32, `positives` int32 (responses that end correct), `auroc`
//! (of the step's score predicting the final outcome; null with one class), `ece` (of the Q
//! head against the outcome, 10 bins), `mse` (Q head against the Monte-Carlo label), `error`
//! (classification error of the score at the threshold that is best on the train problems at
//! the same step index, the paper's Fig. 10 protocol), `mean_score` float64.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::log_sigmoid;

use crate::contract::{PortSpec, Stage, StageContext, StageError, StageInfo};
use crate::labels::{LabelRow, read_labels};
use crate::models::checkpoint::{Checkpoint, PolicyModel};
use crate::models::device::{device, seeded};
use crate::models::host::HostModel;
use crate::models::host_train::Workspace;
use crate::models::kv::on_host;
use crate::models::transformer::TransformerConfig;
use crate::models::verifier::{ProverSpec, Verifier, VerifierCheckpoint, VerifierMeta};
use crate::params::Params;
use crate::rollouts::{prefix_key, text_prefix};
use crate::sample::{SampleRef, read_samples};
use crate::table::{ProblemRow, read_problems, write_parquet};
use crate::task::Task;
use crate::tokenizer::{PAD, VOCAB};
use crate::train::batch_indices;
use crate::train_policy::port;
use crate::verifier_eval::{Example, evaluate, write_eval};

pub struct TrainVerifier;

const PARAMS: &[&str] = &[
    "target",
    "prover",
    "k",
    "alpha",
    "iterations",
    "batch",
    "learning_rate",
    "d_model",
    "layers",
    "heads",
    "d_ff",
    "context",
    "device",
];

fn param_err(field: &str, message: impl Into<String>) -> StageError {
    StageError::Param { field: field.into(), message: message.into() }
}

/// What to learn, read from the params.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    pub prover: ProverSpec,
    pub alpha: f64,
}

impl Target {
    pub fn from_params(p: &Params<'_>, prover_wired: bool) -> Result<Target, StageError> {
        let name = p.str_or("target", "pqv")?;
        let alpha = p.float_or("alpha", 0.5, -1e6, 1e6)?;
        let prover = match name.as_str() {
            "orm" | "pqv" => ProverSpec::None,
            "pav" => match p.str_or("prover", "bok")?.as_str() {
                "bok" => {
                    let k = p.uint_in("k", 4, 1, 1 << 20).map_err(|_| {
                        param_err("k", "expected an integer K >= 1 (the prover is Best-of-K of the base policy)")
                    })?;
                    ProverSpec::BestOfK(k as u32)
                }
                "labels" => ProverSpec::Learned,
                other => {
                    return Err(param_err(
                        "prover",
                        format!(
                            "expected `bok` (Best-of-K of the base, with `k`) or `labels` (a prover's own \
                             rollout labels on the `prover` port), found `{other}`"
                        ),
                    ));
                }
            },
            other => return Err(param_err("target", format!("expected `orm`, `pqv` or `pav`, found `{other}`"))),
        };
        match (prover, prover_wired) {
            (ProverSpec::Learned, false) => Err(param_err(
                "prover",
                "`prover: labels` needs the prover's labels: add `needs: {prover: STAGE}` (a `rollout-label` \
                 stage run with the prover checkpoint on the same seed responses)",
            )),
            (ProverSpec::Learned, true) | (_, false) => Ok(Target { name, prover, alpha }),
            (_, true) => Err(param_err(
                "prover",
                "a `prover` input is wired but only `target: pav` with `prover: labels` reads it; remove the input or set those params",
            )),
        }
    }
}

/// Build one example per seed response of the given split.
pub fn examples(
    problems: &[ProblemRow],
    seeds: &[SampleRef],
    base: &[LabelRow],
    prover: Option<&[LabelRow]>,
    target: &Target,
    split: &str,
) -> Result<Vec<Example>, StageError> {
    let by_id: HashMap<i64, &ProblemRow> = problems.iter().map(|p| (p.problem_id, p)).collect();
    let index = |rows: &[LabelRow]| -> HashMap<(i64, i32, i32), (f64, u64)> {
        rows.iter().map(|r| ((r.problem_id, r.sample, r.step), (r.q, r.key))).collect()
    };
    let base = index(base);
    let prover = prover.map(index);
    // A label joins its seed response by (problem, sample, step); the prefix hash proves that
    // it was computed for this very prefix (a labels table of another `samples` stage would
    // otherwise join silently).
    let label = |table: &HashMap<(i64, i32, i32), (f64, u64)>, s: &SampleRef, h: usize, which: &str| match table.get(&(
        s.problem_id,
        s.sample,
        h as i32,
    )) {
        None => Ok(None),
        Some(&(q, key)) if key == prefix_key(s.problem_id, &s.steps[..h]) => Ok(Some(q)),
        Some(_) => Err(StageError::Failed(format!(
            "the `{which}` table does not label these samples: its row for problem {}, sample {}, step {h} \
                 was computed for another prefix; wire the labels computed from the same `samples` stage",
            s.problem_id, s.sample
        ))),
    };
    let mut out = Vec::new();
    for s in seeds {
        let Some(prob) = by_id.get(&s.problem_id) else { continue };
        if prob.split != split {
            continue;
        }
        let (tokens, _) = text_prefix(&prob.prompt, &s.steps);
        let prompt_len = crate::tokenizer::encode_prompt(&prob.prompt).len();
        let mut positions = vec![prompt_len - 1];
        for st in &s.steps {
            positions.push(positions.last().copied().unwrap_or(0) + st.len() + 1);
        }
        let n = s.steps.len();
        let q_mc = (0..=n).map(|h| label(&base, s, h, "labels")).collect::<Result<Vec<_>, _>>()?;
        let outcome = if s.correct { 1.0 } else { 0.0 };
        let mut labels = Vec::with_capacity(n + 1);
        for (h, &q) in q_mc.iter().enumerate() {
            labels.push(match target.name.as_str() {
                "orm" => vec![(h == n).then_some(outcome)],
                _ => {
                    let mut l = vec![q];
                    if let Some(pr) = &prover {
                        l.push(label(pr, s, h, "prover")?);
                    }
                    l
                }
            });
        }
        out.push(Example { problem_id: s.problem_id, tokens, positions, labels, q_mc, correct: s.correct });
    }
    Ok(out)
}

/// Per-readout weights that give each label bucket (`< 0.5`, `>= 0.5`) half of the total
/// weight; uniform when one bucket is empty.
pub fn balanced_weights(labels: &[f64]) -> Vec<f64> {
    let high = labels.iter().filter(|&&y| y >= 0.5).count();
    let low = labels.len() - high;
    if high == 0 || low == 0 {
        return vec![1.0; labels.len()];
    }
    let n = labels.len() as f64;
    labels.iter().map(|&y| if y >= 0.5 { n / (2.0 * high as f64) } else { n / (2.0 * low as f64) }).collect()
}

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct VerifierOpts {
    pub iterations: usize,
    pub batch: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

/// One batch of verifier training: `b` sequences of `t` tokens, the rows (in `[b·t]`) read
/// out, and per row and head the label and its weight (normalised to sum to 1; 0 where the
/// label is missing).
struct VerifierBatch {
    input: Vec<u32>,
    b: usize,
    t: usize,
    rows: Vec<usize>,
    outs: usize,
    ys: Vec<f64>,
    weights: Vec<f32>,
}

fn verifier_batch(train: &[Example], idx: &[usize], context: usize, outs: usize) -> Option<VerifierBatch> {
    let t = idx.iter().map(|&i| train[i].tokens.len()).max().unwrap_or(1).clamp(1, context);
    let b = idx.len();
    let mut input = Vec::with_capacity(b * t);
    let mut rows = Vec::new();
    let mut ys = Vec::new();
    let mut present = Vec::new();
    for (bi, &i) in idx.iter().enumerate() {
        let ex = &train[i];
        input.extend((0..t).map(|p| ex.tokens.get(p).copied().unwrap_or(PAD)));
        for (h, &pos) in ex.positions.iter().enumerate() {
            if pos >= t || ex.labels[h].iter().all(Option::is_none) {
                continue;
            }
            rows.push(bi * t + pos);
            for o in 0..outs {
                ys.push(ex.labels[h][o].unwrap_or(0.0));
                present.push(ex.labels[h][o].is_some());
            }
        }
    }
    if rows.is_empty() {
        return None;
    }
    let n = rows.len();
    // Balance each head's labels separately; missing labels weigh nothing.
    let mut w = vec![0.0; n * outs];
    for o in 0..outs {
        let ids: Vec<usize> = (0..n).filter(|r| present[r * outs + o]).collect();
        let bal = balanced_weights(&ids.iter().map(|r| ys[r * outs + o]).collect::<Vec<_>>());
        for (r, wi) in ids.into_iter().zip(bal) {
            w[r * outs + o] = wi;
        }
    }
    let total: f64 = w.iter().sum();
    let weights = w.iter().map(|&v| (v / total.max(1e-12)) as f32).collect();
    Some(VerifierBatch { input, b, t, rows, outs, ys, weights })
}

/// The loss (soft-label binary cross-entropy, weighted) and its gradients through burn's
/// autodiff (`model` on an autodiff device).
fn verifier_grads_burn(model: &Verifier, vb: &VerifierBatch) -> (GradientsParams, f64) {
    let device = model.devices().first().cloned().unwrap_or_else(Device::flex);
    let (b, t, n, outs) = (vb.b, vb.t, vb.rows.len(), vb.outs);
    let input: Vec<i64> = vb.input.iter().map(|&v| v as i64).collect();
    let rows: Vec<i64> = vb.rows.iter().map(|&r| r as i64).collect();
    let x = Tensor::<2, Int>::from_data(TensorData::new(input, [b, t]), &device);
    let z = model
        .forward(x)
        .reshape([b * t, outs])
        .select(0, Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), &device));
    let ys: Vec<f32> = vb.ys.iter().map(|&v| v as f32).collect();
    let y = Tensor::<2>::from_data(TensorData::new(ys, [n, outs]), &device);
    let wt = Tensor::<2>::from_data(TensorData::new(vb.weights.clone(), [n, outs]), &device);
    // Soft-label binary cross-entropy: -(y log s(z) + (1 - y) log s(-z)).
    let nll = (y.clone() * log_sigmoid(z.clone()) + (y.neg() + 1.0) * log_sigmoid(z.neg())).neg();
    let loss = (nll * wt).sum();
    let value = loss.clone().into_scalar::<f32>() as f64;
    (GradientsParams::from_grads(loss.backward(), model), value)
}

/// `log σ(z)`, stable for large `|z|`.
fn log_sigmoid_f64(z: f64) -> f64 {
    -((-z).max(0.0) + (-z.abs()).exp().ln_1p())
}

/// The same loss and gradients through the host training pass (CPU only; tensors on `device`,
/// the backend under the autodiff one).
fn verifier_grads_host(
    model: &Verifier,
    vb: &VerifierBatch,
    device: &Device,
    ws: &mut Workspace,
) -> (GradientsParams, f64) {
    let host = HostModel::new(&model.trunk);
    let (d, outs) = (host.d, vb.outs);
    let flat = |t: Tensor<2>| t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
    let wv = flat(model.value.weight.val());
    let bv =
        model.value.bias.as_ref().map(|b| b.val().into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default());
    let bv = bv.unwrap_or_else(|| vec![0.0; outs]);
    let hf = host.forward_hidden(&vb.input, vb.b, vb.t, ws);
    let mut dhf = vec![0.0f32; hf.len()];
    let (mut dwv, mut dbv) = (vec![0.0f32; d * outs], vec![0.0f32; outs]);
    let mut loss = 0.0f64;
    for (r, &row) in vb.rows.iter().enumerate() {
        let h = &hf[row * d..(row + 1) * d];
        for o in 0..outs {
            let z = h.iter().enumerate().map(|(i, v)| v * wv[i * outs + o]).sum::<f32>() + bv[o];
            let (y, w) = (vb.ys[r * outs + o], vb.weights[r * outs + o]);
            loss -= w as f64 * (y * log_sigmoid_f64(z as f64) + (1.0 - y) * log_sigmoid_f64(-z as f64));
            // d/dz of the weighted loss: w (σ(z) − y).
            let g = w * (1.0 / (1.0 + (-z).exp()) - y as f32);
            dbv[o] += g;
            for i in 0..d {
                dwv[i * outs + o] += h[i] * g;
                dhf[row * d + i] += g * wv[i * outs + o];
            }
        }
    }
    let grads = host.backward_from_hidden(&vb.input, ws, &dhf);
    let mut out = grads.to_trunk_gradients(&model.trunk, device);
    out.register(model.value.weight.id, Tensor::<2>::from_data(TensorData::new(dwv, [d, outs]), device));
    if let Some(b) = &model.value.bias {
        out.register(b.id, Tensor::<1>::from_data(TensorData::new(dbv, [outs]), device));
    }
    (out, loss)
}

/// Train the verifier's heads on `train` examples; returns the model and the loss per iteration.
/// On the CPU the gradients come from the host training pass (`models/host_train.rs`),
/// elsewhere from burn's autodiff; burn's Adam applies them.
pub fn train_verifier(
    init: Verifier,
    context: usize,
    device: &Device,
    train: &[Example],
    opts: VerifierOpts,
    mut on_iteration: impl FnMut(usize, f64),
) -> (Verifier, Vec<Option<f64>>) {
    let mut model = init;
    let outs = train.first().map_or(1, |e| e.labels[0].len());
    let mut optim = AdamConfig::new().init();
    let mut curve = Vec::with_capacity(opts.iterations);
    let inner = device.clone().inner();
    let host = on_host(&inner);
    let mut ws = Workspace::default();
    for it in 0..opts.iterations {
        let idx = batch_indices(train.len(), opts.batch, it, opts.seed);
        let Some(vb) = verifier_batch(train, &idx, context, outs) else {
            // No labelled step of this batch fits the context: no step, and a null loss.
            curve.push(None);
            continue;
        };
        let (grads, value) =
            if host { verifier_grads_host(&model, &vb, &inner, &mut ws) } else { verifier_grads_burn(&model, &vb) };
        model = optim.step(opts.learning_rate, model, grads);
        on_iteration(it + 1, value);
        curve.push(Some(value));
    }
    (model, curve)
}

impl Stage for TrainVerifier {
    fn info(&self) -> StageInfo {
        StageInfo {
            kind: "train-verifier",
            doc: "ORM, PQV (Q of the base) or PAV (Q + alpha * A under a prover) on a transformer trunk",
            params: PARAMS.to_vec(),
            inputs: vec![
                PortSpec::input("problems", "the `problems` table (its split picks train and test responses)"),
                PortSpec::input("samples", "the seed responses (a `sample` table)"),
                PortSpec::optional("labels", "the base policy's `rollout-label` table (not needed by `orm`)"),
                PortSpec::optional("prover", "a prover's `rollout-label` table (`target: pav`, `prover: labels`)"),
                PortSpec::optional("policy", "a policy checkpoint whose trunk the verifier starts from"),
            ],
            outputs: vec![
                PortSpec::output("verifier", "verifier", "checkpoint directory (model.bpk + config.json)"),
                PortSpec::output("curve", "curve.parquet", "iteration, loss"),
                PortSpec::output("eval", "eval.parquet", "per step: n, positives, auroc, ece, mse, error, mean_score"),
            ],
        }
    }

    fn version(&self) -> u32 {
        // 2: gemm's AVX-512 kernels (its `x86-v4` feature, ADR 0009) on machines that have
        // them: other float roundings there.
        2
    }

    fn run(&self, ctx: &mut StageContext<'_>) -> Result<(), StageError> {
        let p = Params::new(ctx.params);
        let target = Target::from_params(&p, ctx.inputs.contains_key("prover"))?;
        let opts = VerifierOpts {
            iterations: p.uint_in("iterations", 300, 1, 10_000_000)? as usize,
            batch: p.uint_in("batch", 32, 1, 1 << 16)? as usize,
            learning_rate: p.float_or("learning_rate", 1e-3, 1e-9, 10.0)?,
            seed: ctx.seed,
        };
        let dev = device(&p.str_or("device", "cpu")?).map_err(|m| param_err("device", m))?;
        let problems = read_problems(port(ctx.inputs, "problems", "train-verifier")?)?;
        let seeds = read_samples(port(ctx.inputs, "samples", "train-verifier")?)?;
        let base = match ctx.inputs.get("labels") {
            Some(path) => read_labels(path)?,
            None if target.name == "orm" => Vec::new(),
            None => {
                return Err(StageError::Failed(format!(
                    "`target: {}` learns Monte-Carlo values: add `needs: {{labels: STAGE}}` (a `rollout-label` stage on these samples)",
                    target.name
                )));
            }
        };
        let prover = ctx.inputs.get("prover").map(|path| read_labels(path)).transpose()?;
        let train = examples(&problems, &seeds, &base, prover.as_deref(), &target, "train")?;
        let test = examples(&problems, &seeds, &base, prover.as_deref(), &target, "test")?;
        let readouts: usize =
            train.iter().map(|e| e.labels.iter().filter(|l| l.iter().any(Option::is_some)).count()).sum();
        if readouts == 0 {
            return Err(StageError::Failed(
                "no labelled step of a `train` problem's response: are `samples` and `labels` from the same run, and does the problems table have `train` rows?".into(),
            ));
        }
        let ad = dev.clone().autodiff();
        let (config, task, trunk) = match ctx.inputs.get("policy") {
            Some(path) => {
                let ckpt = Checkpoint::load(path, &ad)?;
                match ckpt.model {
                    PolicyModel::Transformer(c, m) => (c, ckpt.task, Some(m)),
                    PolicyModel::Mlp(..) => {
                        return Err(StageError::Failed(
                            "the `policy` is an MLP (planted task); a verifier's trunk is a transformer: leave `policy` unwired to train one from scratch".into(),
                        ));
                    }
                }
            }
            None => {
                let c = TransformerConfig::new(VOCAB)
                    .with_context(p.uint_in("context", 128, 2, 1 << 16)? as usize)
                    .with_d_model(p.uint_in("d_model", 128, 1, 1 << 16)? as usize)
                    .with_layers(p.uint_in("layers", 4, 1, 256)? as usize)
                    .with_heads(p.uint_in("heads", 4, 1, 1024)? as usize)
                    .with_d_ff(p.uint_in("d_ff", 512, 1, 1 << 20)? as usize);
                c.validate().map_err(|m| param_err("model params", m))?;
                (c, serde_json::Map::new(), None)
            }
        };
        if let Ok(Task::Planted(_)) = Task::from_params(&Params::new(&task)) {
            return Err(StageError::Failed("train-verifier serves the text tasks (arith, jsonl)".into()));
        }
        let dropped: usize = train.iter().map(|e| e.positions.iter().filter(|&&p| p >= config.context).count()).sum();
        let usable: usize = train
            .iter()
            .map(|e| {
                e.positions
                    .iter()
                    .zip(&e.labels)
                    .filter(|(pos, l)| **pos < config.context && l.iter().any(Option::is_some))
                    .count()
            })
            .sum();
        if usable == 0 {
            return Err(StageError::Failed(format!(
                "every labelled step of the `train` responses ({readouts}) lies beyond the verifier's context of {} tokens, so there is nothing to train on; {}",
                config.context,
                if ctx.inputs.contains_key("policy") {
                    "train the `policy` with a larger `context` (train-policy param)"
                } else {
                    "raise `context`"
                }
            )));
        }
        let meta = VerifierMeta { target: target.name.clone(), prover: target.prover, alpha: target.alpha, task };
        let outs = meta.outputs();
        let init = seeded(&ad, ctx.seed, || {
            let trunk = trunk.unwrap_or_else(|| config.init(&ad));
            Verifier::new(trunk, config.d_model, outs, &ad)
        });
        writeln!(
            ctx.log,
            "{}: {} train responses ({readouts} labelled steps, {dropped} beyond the context of {} tokens), {} test responses",
            target.name,
            train.len(),
            config.context,
            test.len()
        )?;
        let log = &mut *ctx.log;
        let (model, curve) = train_verifier(init, config.context, &ad, &train, opts, |it, loss| {
            if it == 1 || it % 50 == 0 || it == opts.iterations {
                let _ = writeln!(log, "iteration {it:>6}  loss {loss:.4}");
            }
        });
        if curve.iter().rev().flatten().next().is_some_and(|l| !l.is_finite()) {
            return Err(StageError::Failed("the training loss diverged (not finite); lower `learning_rate`".into()));
        }
        let ckpt = VerifierCheckpoint { config, model: model.valid(), meta };
        ckpt.save(port(ctx.outputs, "verifier", "train-verifier")?)?;
        let rows = evaluate(&ckpt, &train, &test, target.alpha, &dev)?;
        for r in &rows {
            writeln!(
                ctx.log,
                "{:<5} step {:>3}: n {:>5}  auroc {}  ece {:.3}  error {:.3}",
                r.split,
                r.step,
                r.n,
                r.auroc.map_or("  -  ".into(), |a| format!("{a:.3}")),
                r.ece,
                r.error
            )?;
        }
        write_curve(port(ctx.outputs, "curve", "train-verifier")?, &curve)?;
        write_eval(port(ctx.outputs, "eval", "train-verifier")?, &rows)
    }
}

fn write_curve(path: &std::path::Path, curve: &[Option<f64>]) -> Result<(), StageError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("iteration", DataType::Int32, false),
        Field::new("loss", DataType::Float64, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(1..=curve.len() as i32)),
        Arc::new(Float64Array::from_iter(curve.iter().copied())),
    ];
    let batch = RecordBatch::try_new(schema, columns).map_err(|e| StageError::Failed(e.to_string()))?;
    write_parquet(path, &batch)
}

#[cfg(test)]
#[path = "train_verifier_tests.rs"]
mod tests;
