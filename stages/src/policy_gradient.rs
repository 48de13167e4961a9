//! REINFORCE with per-step weights, a leave-one-out baseline and an exact KL penalty: the
//! gradient step of the `rl` kind, for both policy families.
//!
//! The loss of a batch of `B` responses is
//! `-(1/B) * sum_i sum_t w_i(step(t)) * log pi(y_t | y_<t) + beta * (1/B) * sum_i sum_t KL_t`,
//! where `w_i(h)` is the weight of step `h` of response `i` ([`step_weights`]) and `KL_t` is the
//! exact KL divergence of the policy's next-token distribution from the start policy's at
//! token `t` (summed over the vocabulary, not estimated from the sampled token).

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use crate::models::host::HostModel;
use crate::models::host_train::{PgToken, Workspace};
use crate::models::kv::on_host;
use crate::models::mlp::{self, Mlp, MlpConfig};
use crate::models::transformer::Transformer;
use crate::tokenizer::PAD;

/// How a step's reward is formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewardMode {
    /// Every step of a response gets its outcome (1 if correct).
    Outcome,
    /// Every step gets `Q^pi` of its prefix.
    QOnly,
    /// Every step gets `Q^pi + alpha * A^mu` of its own action (not a sum over later steps).
    Effective,
}

/// The weights of the steps `1..=H` of one response: its step reward minus the baseline.
/// `q[h - 1]` and `a[h - 1]` are `Q^pi` and `A^mu` of step `h`.
pub fn step_weights(mode: RewardMode, q: &[f64], a: &[f64], outcome: f64, baseline: f64, alpha: f64) -> Vec<f64> {
    (0..q.len())
        .map(|h| {
            let r = match mode {
                RewardMode::Outcome => outcome,
                RewardMode::QOnly => q[h],
                RewardMode::Effective => q[h] + alpha * a[h],
            };
            r - baseline
        })
        .collect()
}

/// Leave-one-out baselines: for each response, the mean outcome of the other responses to the
/// same problem in the batch (of the whole batch when it is the problem's only response; 0 for
/// a batch of one).
pub fn loo_baselines(problems: &[usize], outcomes: &[f64]) -> Vec<f64> {
    let n = outcomes.len();
    let total: f64 = outcomes.iter().sum();
    let mut sum: std::collections::HashMap<usize, (f64, usize)> = std::collections::HashMap::new();
    for (&p, &r) in problems.iter().zip(outcomes) {
        let e = sum.entry(p).or_default();
        e.0 += r;
        e.1 += 1;
    }
    problems
        .iter()
        .zip(outcomes)
        .map(|(p, &r)| match sum[p] {
            (s, c) if c > 1 => (s - r) / (c - 1) as f64,
            _ if n > 1 => (total - r) / (n - 1) as f64,
            _ => 0.0,
        })
        .collect()
}

/// One response ready for the gradient: the tokens before it (text tasks: `BOS prompt '\n'`;
/// planted: none), its tokens, and a weight per response token.
#[derive(Debug, Clone, PartialEq)]
pub struct Weighted {
    pub prefix: Vec<u32>,
    pub response: Vec<u32>,
    pub weights: Vec<f64>,
}

/// What one gradient step measured.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepStats {
    pub loss: f64,
    /// Mean over responses of the summed per-token KL to the start policy.
    pub kl: f64,
    /// Mean per-token entropy of the policy over the response tokens.
    pub entropy: f64,
}

/// Loss from next-token logits at every response token (`[n, vocab]`), the sampled tokens,
/// their weights and, with a KL penalty, the start policy's logits.
fn loss(
    logits: Tensor<2>,
    targets: Vec<i64>,
    weights: Vec<f32>,
    reference: Option<Tensor<2>>,
    beta: f64,
    responses: usize,
) -> (Tensor<1>, StepStats) {
    let device = logits.device();
    let n = targets.len();
    let logp = log_softmax(logits, 1);
    let y = Tensor::<2, Int>::from_data(TensorData::new(targets, [n, 1]), &device);
    let w = Tensor::<2>::from_data(TensorData::new(weights, [n, 1]), &device);
    let chosen = logp.clone().gather(1, y);
    let per = responses.max(1) as f64;
    let mut total = (chosen * w).sum().neg() / per;
    let p = logp.clone().exp();
    let entropy = (p.clone() * logp.clone()).sum().neg().detach().into_scalar::<f32>() as f64 / n.max(1) as f64;
    let mut kl = 0.0;
    if let Some(reference) = reference {
        let kl_sum = (p * (logp - log_softmax(reference.detach(), 1))).sum() / per;
        kl = kl_sum.clone().detach().into_scalar::<f32>() as f64;
        if beta != 0.0 {
            total = total + kl_sum * beta;
        }
    }
    let value = total.clone().detach().into_scalar::<f32>() as f64;
    (total, StepStats { loss: value, kl, entropy })
}

fn flat(batch: &[Weighted]) -> (Vec<i64>, Vec<f32>) {
    let targets = batch.iter().flat_map(|r| r.response.iter().map(|&t| t as i64)).collect();
    let weights = batch.iter().flat_map(|r| r.weights.iter().map(|&w| w as f32)).collect();
    (targets, weights)
}

/// One Adam step of the planted task's MLP (on an autodiff device); `reference` is the start
/// policy (without gradients) when its KL is measured or penalised.
pub fn step_mlp(
    model: Mlp,
    reference: Option<&Mlp>,
    config: &MlpConfig,
    optim: &mut ModuleOptimizer,
    batch: &[Weighted],
    beta: f64,
    learning_rate: f64,
) -> (Mlp, StepStats) {
    let device = model.devices().first().cloned().unwrap_or_else(Device::flex);
    let mut window = Vec::new();
    for r in batch {
        let seq: Vec<usize> = r.prefix.iter().chain(&r.response).map(|&t| t as usize).collect();
        for t in r.prefix.len()..seq.len() {
            mlp::window(&seq[..t], config, &mut window);
        }
    }
    let (targets, weights) = flat(batch);
    let n = targets.len();
    if n == 0 {
        return (model, StepStats::default());
    }
    let x = Tensor::<2, Int>::from_data(TensorData::new(window, [n, config.context]), &device);
    let logits = model.forward(x.clone());
    let reference = reference.map(|m| m.forward(x));
    let (total, stats) = loss(logits, targets, weights, reference, beta, batch.len());
    let grads = GradientsParams::from_grads(total.backward(), &model);
    (optim.step(learning_rate, model, grads), stats)
}

/// A batch of a text policy laid out for the transformer: `b` sequences of `t` input tokens
/// and, for each response token, its row in `[b·t]`, the token and its weight. Sequences
/// longer than the context are cut (their later tokens get no gradient).
struct TextBatch {
    input: Vec<u32>,
    b: usize,
    t: usize,
    tokens: Vec<PgToken>,
}

fn text_batch(batch: &[Weighted], context: usize) -> TextBatch {
    let len = batch.iter().map(|r| r.prefix.len() + r.response.len()).max().unwrap_or(1).clamp(2, context + 1);
    let (b, t) = (batch.len(), len - 1);
    let mut input = Vec::with_capacity(b * t);
    let mut tokens = Vec::new();
    for (i, r) in batch.iter().enumerate() {
        let seq: Vec<u32> = r.prefix.iter().chain(&r.response).copied().collect();
        input.extend((0..t).map(|p| seq.get(p).copied().unwrap_or(PAD)));
        // The logits at position p predict token p + 1.
        let first = r.prefix.len().max(1) - 1;
        let last = (seq.len() - 1).min(t);
        tokens.extend((first..last).map(|p| PgToken {
            row: i * t + p,
            target: seq[p + 1],
            weight: r.weights[p - first] as f32,
        }));
    }
    TextBatch { input, b, t, tokens }
}

/// The loss's gradients through burn's autodiff (`model` on an autodiff device); `None` for a
/// batch without response tokens.
fn transformer_grads_burn(
    model: &Transformer,
    reference: Option<&Transformer>,
    batch: &[Weighted],
    beta: f64,
) -> Option<(GradientsParams, StepStats)> {
    let device = model.devices().first().cloned().unwrap_or_else(Device::flex);
    let tb = text_batch(batch, model.context());
    let n = tb.tokens.len();
    if n == 0 {
        return None;
    }
    let (b, t) = (tb.b, tb.t);
    let input: Vec<i64> = tb.input.iter().map(|&v| v as i64).collect();
    let rows: Vec<i64> = tb.tokens.iter().map(|k| k.row as i64).collect();
    let targets: Vec<i64> = tb.tokens.iter().map(|k| k.target as i64).collect();
    let weights: Vec<f32> = tb.tokens.iter().map(|k| k.weight).collect();
    let x = Tensor::<2, Int>::from_data(TensorData::new(input, [b, t]), &device);
    let index = Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), &device);
    let vocab = model.vocab();
    let logits = model.forward(x.clone()).reshape([b * t, vocab]).select(0, index.clone());
    let reference = reference.map(|m| m.forward(x).reshape([b * t, vocab]).select(0, index));
    let (total, stats) = loss(logits, targets, weights, reference, beta, batch.len());
    Some((GradientsParams::from_grads(total.backward(), model), stats))
}

/// The host training pass's buffers for the policy and its reference, kept between the steps
/// of one `rl` run (the caller owns them; dropped when the run ends).
#[derive(Default)]
pub struct HostBuffers {
    policy: Workspace,
    reference: Workspace,
}

/// The same gradients through the host training pass (CPU only), as tensors on `device`.
fn transformer_grads_host(
    model: &Transformer,
    reference: Option<&Transformer>,
    batch: &[Weighted],
    beta: f64,
    device: &Device,
    buffers: &mut HostBuffers,
) -> Option<(GradientsParams, StepStats)> {
    let tb = text_batch(batch, model.context());
    if tb.tokens.is_empty() {
        return None;
    }
    let host = HostModel::new(model);
    let reference = reference.map(HostModel::new);
    let (st, grads) = host.policy_gradient(
        &tb.input,
        tb.b,
        tb.t,
        &tb.tokens,
        reference.as_ref(),
        beta as f32,
        batch.len(),
        &mut buffers.policy,
        &mut buffers.reference,
    );
    let stats = StepStats { loss: st.loss, kl: st.kl, entropy: st.entropy };
    Some((grads.to_gradients(model, device), stats))
}

/// One Adam step of a text policy's transformer (on an autodiff device); sequences longer
/// than its context are cut (their later tokens get no gradient). On the CPU the gradients
/// come from the host training pass (`models/host_train.rs`, with `buffers`), elsewhere from
/// burn's autodiff.
#[allow(clippy::too_many_arguments)]
pub fn step_transformer(
    model: Transformer,
    reference: Option<&Transformer>,
    optim: &mut ModuleOptimizer,
    batch: &[Weighted],
    beta: f64,
    learning_rate: f64,
    buffers: &mut HostBuffers,
) -> (Transformer, StepStats) {
    let inner = model.devices().first().cloned().unwrap_or_else(Device::flex).inner();
    let grads = if on_host(&inner) {
        transformer_grads_host(&model, reference, batch, beta, &inner, buffers)
    } else {
        transformer_grads_burn(&model, reference, batch, beta)
    };
    match grads {
        Some((grads, stats)) => (optim.step(learning_rate, model, grads), stats),
        None => (model, StepStats::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_weights_follow_the_mode_on_a_hand_computed_example() {
        // Three steps: Q = 0.2, 0.5, 0.4 and A = 0.1, 0.3, -0.1; the response is right.
        let (q, a) = ([0.2, 0.5, 0.4], [0.1, 0.3, -0.1]);
        let close = |x: Vec<f64>, y: [f64; 3]| x.iter().zip(y).all(|(u, v)| (u - v).abs() < 1e-12);
        assert!(close(step_weights(RewardMode::Outcome, &q, &a, 1.0, 0.25, 2.0), [0.75, 0.75, 0.75]));
        assert!(close(step_weights(RewardMode::QOnly, &q, &a, 1.0, 0.25, 2.0), [-0.05, 0.25, 0.15]));
        // Q + 2A: 0.4, 1.1, 0.2; each step its own advantage, not a sum of later ones.
        assert!(close(step_weights(RewardMode::Effective, &q, &a, 1.0, 0.25, 2.0), [0.15, 0.85, -0.05]));
        // alpha = 0 with Q = the outcome (the Monte-Carlo estimate) is the outcome mode.
        let mc = [1.0; 3];
        assert_eq!(
            step_weights(RewardMode::Effective, &mc, &a, 1.0, 0.25, 0.0),
            step_weights(RewardMode::Outcome, &mc, &a, 1.0, 0.25, 0.0)
        );
    }

    #[test]
    fn leave_one_out_baselines_exclude_the_response_itself() {
        let b = loo_baselines(&[0, 0, 0, 1, 2, 2], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        // Problem 1 has one response: the other five of the batch, 3 of them right.
        let want = [0.0, 0.5, 0.5, 3.0 / 5.0, 1.0, 1.0];
        assert!(b.iter().zip(want).all(|(x, y)| (x - y).abs() < 1e-12), "{b:?}");
        assert_eq!(loo_baselines(&[3], &[1.0]), vec![0.0]);
    }
    #[test]
    fn host_policy_gradient_matches_burn_autodiff() {
        use rand::Rng;

        use crate::models::device::seeded;
        use crate::models::host_train::test_support::assert_close;
        use crate::models::transformer::TransformerConfig;
        use crate::rng::item_rng;

        let device = Device::flex();
        let ad = device.clone().autodiff();
        let config =
            TransformerConfig::new(13).with_context(40).with_d_model(32).with_layers(2).with_heads(2).with_d_ff(48);
        let model = seeded(&ad, 3, || config.init(&ad));
        let reference = seeded(&ad, 4, || config.init(&ad));
        let mut rng = item_rng(5, 0, 0);
        // Six responses of 3-35 tokens after prefixes of 2-5 tokens, weights of both signs.
        let batch: Vec<Weighted> = (0..6)
            .map(|_| {
                let (p, r) = (rng.random_range(2..6), rng.random_range(3..36));
                Weighted {
                    prefix: (0..p).map(|_| rng.random_range(1..13)).collect(),
                    response: (0..r).map(|_| rng.random_range(1..13)).collect(),
                    weights: (0..r).map(|_| rng.random_range(-1.0..1.0)).collect(),
                }
            })
            .collect();
        for beta in [0.0, 0.3] {
            let (want, ws) = transformer_grads_burn(&model, Some(&reference), &batch, beta).unwrap();
            let (got, gs) =
                transformer_grads_host(&model, Some(&reference), &batch, beta, &device, &mut HostBuffers::default())
                    .unwrap();
            assert_close(&model, &got, &want, 5e-5);
            for (name, g, w) in [("loss", gs.loss, ws.loss), ("kl", gs.kl, ws.kl), ("entropy", gs.entropy, ws.entropy)]
            {
                assert!((g - w).abs() <= 1e-4 * w.abs().max(1e-3), "beta {beta}: {name} {g} vs burn {w}");
            }
            assert!(ws.kl > 0.0, "the two policies differ");
        }
    }
}
