//! Supervised training of the policies: next-token cross-entropy with Adam, one curve row per
//! iteration (loss and next-token accuracy of that iteration's batch).
//!
//! Batches are drawn without replacement from a seeded permutation per epoch, so the same
//! seed gives the same batches, weights and curve on any thread count.

use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use rand::seq::SliceRandom;

use crate::models::device::seeded;
use crate::models::host::HostModel;
use crate::models::host_train::Workspace;
use crate::models::kv::on_host;
use crate::models::mlp::{self, Mlp, MlpConfig};
use crate::models::transformer::{Transformer, TransformerConfig};
use crate::rng::item_rng;
use crate::tokenizer::PAD;

const STREAM_SHUFFLE: u64 = 31;

/// Optimisation settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainOpts {
    pub iterations: usize,
    /// Sequences per iteration.
    pub batch: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

/// One row of the training curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    pub iteration: usize,
    pub loss: f64,
    /// Next-token accuracy (argmax) on the iteration's batch.
    pub accuracy: f64,
    pub tokens: usize,
}

/// The sequence indices of iteration `it`: consecutive slices of a per-epoch permutation.
pub(crate) fn batch_indices(n: usize, batch: usize, it: usize, seed: u64) -> Vec<usize> {
    let per_epoch = n.div_ceil(batch.min(n).max(1));
    let (epoch, slot) = (it / per_epoch, it % per_epoch);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut item_rng(seed, STREAM_SHUFFLE, epoch as u64));
    let start = slot * batch;
    order[start..(start + batch).min(n)].to_vec()
}

fn accuracy(logits: Tensor<2>, targets: &[i64], ignore: Option<i64>) -> (f64, usize) {
    let pred: Vec<i64> = logits.argmax(1).into_data().convert::<i64>().try_to_vec::<i64>().unwrap_or_default();
    let counted: Vec<bool> = targets.iter().map(|&t| Some(t) != ignore).collect();
    let n = counted.iter().filter(|&&c| c).count();
    let right = pred.iter().zip(targets).zip(&counted).filter(|((p, t), c)| **c && p == t).count();
    (if n == 0 { 0.0 } else { right as f64 / n as f64 }, n)
}

/// One optimiser step: cross-entropy of `logits` against `targets` (rows equal to `ignore`
/// are not counted), backward, Adam; returns the updated model and the curve point.
#[allow(clippy::too_many_arguments)]
fn optimise<M: Module>(
    model: M,
    optim: &mut ModuleOptimizer,
    loss_fn: &CrossEntropyLoss,
    logits: Tensor<2>,
    targets: &[i64],
    ignore: Option<i64>,
    learning_rate: f64,
    it: usize,
) -> (M, CurvePoint) {
    let y = Tensor::<1, Int>::from_data(TensorData::new(targets.to_vec(), [targets.len()]), &logits.device());
    let (accuracy, tokens) = accuracy(logits.clone().inner(), targets, ignore);
    let loss = loss_fn.forward(logits, y);
    let loss_value = loss.clone().into_scalar::<f32>() as f64;
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let model = optim.step(learning_rate, model, grads);
    (model, CurvePoint { iteration: it + 1, loss: loss_value, accuracy, tokens })
}

/// Train the planted task's MLP on `samples` (full responses, tokens up to and including the
/// end token); every position of every sample is one (window, next token) example.
pub fn train_mlp(
    config: &MlpConfig,
    samples: &[Vec<usize>],
    opts: TrainOpts,
    device: &Device,
    mut on_point: impl FnMut(&CurvePoint),
) -> (Mlp, Vec<CurvePoint>) {
    let ad = device.clone().autodiff();
    let mut model = seeded(&ad, opts.seed, || config.init(&ad));
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let mut curve = Vec::with_capacity(opts.iterations);
    for it in 0..opts.iterations {
        let mut window = Vec::new();
        let mut targets = Vec::new();
        for i in batch_indices(samples.len(), opts.batch, it, opts.seed) {
            let s = &samples[i];
            for t in 0..s.len() {
                mlp::window(&s[..t], config, &mut window);
                targets.push(s[t] as i64);
            }
        }
        let n = targets.len();
        let x = Tensor::<2, Int>::from_data(TensorData::new(window, [n, config.context]), &ad);
        let logits = model.forward(x);
        let point;
        (model, point) = optimise(model, &mut optim, &loss_fn, logits, &targets, None, opts.learning_rate, it);
        on_point(&point);
        curve.push(point);
    }
    (model.valid(), curve)
}

/// A training sequence of a text task: `tokens` (BOS prompt NEWLINE response EOS) and the
/// number of leading tokens that are prompt (not predicted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextExample {
    pub tokens: Vec<u32>,
    pub prompt_len: usize,
}

/// Train the transformer on text examples; the loss covers response tokens only.
///
/// On the CPU (`flex`) the loss and its gradients come from the host training pass
/// ([`HostModel::loss_and_grads`], the same function, without burn's per-op costs); on other
/// devices from burn's autodiff. Either way burn's Adam applies them.
pub fn train_transformer(
    config: &TransformerConfig,
    examples: &[TextExample],
    opts: TrainOpts,
    device: &Device,
    on_point: impl FnMut(&CurvePoint),
) -> (Transformer, Vec<CurvePoint>) {
    train_transformer_on(config, examples, opts, device, on_host(device), on_point)
}

/// [`train_transformer`] with the choice of pass made by the caller: `host` takes the host
/// training pass (CPU only), otherwise burn's autodiff.
pub fn train_transformer_on(
    config: &TransformerConfig,
    examples: &[TextExample],
    opts: TrainOpts,
    device: &Device,
    host: bool,
    mut on_point: impl FnMut(&CurvePoint),
) -> (Transformer, Vec<CurvePoint>) {
    let ad = device.clone().autodiff();
    let mut model = seeded(&ad, opts.seed, || config.init(&ad));
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().with_pad_tokens(Some(vec![PAD as usize])).init(&ad);
    let mut curve = Vec::with_capacity(opts.iterations);
    let mut ws = Workspace::default();
    for it in 0..opts.iterations {
        let idx = batch_indices(examples.len(), opts.batch, it, opts.seed);
        let len = idx.iter().map(|&i| examples[i].tokens.len()).max().unwrap_or(2).min(config.context + 1);
        let (b, t) = (idx.len(), len - 1);
        let mut input = Vec::with_capacity(b * t);
        let mut targets = Vec::with_capacity(b * t);
        for &i in &idx {
            let ex = &examples[i];
            for p in 0..t {
                input.push(ex.tokens.get(p).copied().unwrap_or(PAD));
                targets.push(if p + 1 < ex.prompt_len { PAD } else { ex.tokens.get(p + 1).copied().unwrap_or(PAD) });
            }
        }
        let point;
        if host {
            let (stats, grads) = HostModel::new(&model).loss_and_grads(&input, &targets, Some(PAD), b, t, &mut ws);
            let grads = grads.to_gradients(&model, device);
            model = optim.step(opts.learning_rate, model, grads);
            let accuracy = if stats.counted == 0 { 0.0 } else { stats.correct as f64 / stats.counted as f64 };
            point = CurvePoint { iteration: it + 1, loss: stats.loss, accuracy, tokens: stats.counted };
        } else {
            let input: Vec<i64> = input.into_iter().map(i64::from).collect();
            let targets: Vec<i64> = targets.into_iter().map(i64::from).collect();
            let x = Tensor::<2, Int>::from_data(TensorData::new(input, [b, t]), &ad);
            let logits = model.forward(x).reshape([b * t, config.vocab]);
            let pad = Some(PAD as i64);
            (model, point) = optimise(model, &mut optim, &loss_fn, logits, &targets, pad, opts.learning_rate, it);
        }
        on_point(&point);
        curve.push(point);
    }
    (model.valid(), curve)
}
