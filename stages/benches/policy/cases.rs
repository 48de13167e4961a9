//! The measured cases, each a function of the device, so that another crate can run them on
//! another backend (docs/adr/0005-burn-backend.md compares backends with them).

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use pav_stages::generate::draw;
use pav_stages::models::device::seeded;
use pav_stages::models::host::HostModel;
use pav_stages::models::host_train::Workspace;
use pav_stages::models::kv::KvCache;
use pav_stages::models::transformer::{Transformer, TransformerConfig};
use pav_stages::rng::item_rng;
use rand::Rng;

/// The ~1M-parameter transformer of the issue, with the PyTorch reference's vocabulary (100)
/// so that benches/pytorch/transformer.py builds the very same shapes.
pub fn config() -> TransformerConfig {
    TransformerConfig::new(100).with_context(128).with_d_model(128).with_layers(4).with_heads(4).with_d_ff(512)
}

fn random_ids(n: usize, seed: u64) -> Vec<i64> {
    let mut rng = item_rng(seed, 0, 0);
    (0..n).map(|_| rng.random_range(3..100)).collect()
}

/// Training tokens per second: batch 32 × 128 tokens, next-token cross-entropy, Adam; through
/// the host training pass (what `train-policy` runs on the CPU) or burn's autodiff.
pub fn train_tokens_per_s(device: &Device, steps: usize, host: bool) -> f64 {
    let ad = device.clone().autodiff();
    let cfg = config();
    let mut model = seeded(&ad, 1, || cfg.init(&ad));
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let (b, t) = (32, 128);
    let mut ws = Workspace::default();
    let mut one_step = |model: Transformer, i: u64| -> Transformer {
        let ids = random_ids(b * t, i);
        let grads = if host {
            let seqs: Vec<&[i64]> = ids.chunks(t).collect();
            let inp: Vec<u32> = seqs.iter().flat_map(|s| s[..t - 1].iter().map(|&v| v as u32)).collect();
            let tgt: Vec<u32> = seqs.iter().flat_map(|s| s[1..].iter().map(|&v| v as u32)).collect();
            let (_, grads) = HostModel::new(&model).loss_and_grads(&inp, &tgt, None, b, t - 1, &mut ws);
            grads.to_gradients(&model, device)
        } else {
            let x = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [b, t]), &ad);
            let inp = x.clone().slice([0..b, 0..t - 1]);
            let tgt = x.slice([0..b, 1..t]).reshape([b * (t - 1)]);
            let logits = model.forward(inp).reshape([b * (t - 1), 100]);
            let loss = loss_fn.forward(logits, tgt);
            let _ = loss.clone().into_scalar::<f32>();
            GradientsParams::from_grads(loss.backward(), &model)
        };
        optim.step(1e-3, model, grads)
    };
    for i in 0..3 {
        model = one_step(model, i);
    }
    let start = Instant::now();
    for i in 0..steps as u64 {
        model = one_step(model, 100 + i);
    }
    (b * (t - 1) * steps) as f64 / start.elapsed().as_secs_f64()
}

/// How each sampled token's logits are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    /// One step with the preallocated key/value cache (on the CPU: the host decoding step).
    Cached,
    /// The whole prefix again at every step, through the host forward pass (CPU only).
    Recompute,
    /// The whole prefix again at every step, through burn ops.
    RecomputeBurn,
}

/// Sampled tokens per second: `batch` rows from a 1-token prompt, `new` tokens each, drawn on
/// the CPU from the logits as the `sample` kind does.
pub fn sample_tokens_per_s(device: &Device, batch: usize, new: usize, decode: Decode) -> f64 {
    let cfg = config();
    let model = seeded(device, 2, || cfg.init(device));
    let host = HostModel::new(&model);
    let mut ws = Workspace::default();
    let mut run = || {
        let mut rngs: Vec<_> = (0..batch as u64).map(|i| item_rng(3, 0, i)).collect();
        let mut seqs: Vec<Vec<i64>> = vec![vec![1]; batch];
        let mut cache = KvCache::new(&model, batch, new + 1, device);
        for _ in 0..new {
            let t = seqs[0].len();
            let logits: Vec<f32> = match decode {
                Decode::Cached => {
                    let last: Vec<i64> = seqs.iter().map(|s| *s.last().unwrap_or(&1)).collect();
                    let logits =
                        model.step(Tensor::<1, Int>::from_data(TensorData::new(last, [batch]), device), &mut cache);
                    logits.into_data().try_to_vec::<f32>().unwrap_or_default()
                }
                Decode::Recompute => {
                    let ids: Vec<u32> = seqs.iter().flatten().map(|&v| v as u32).collect();
                    host.last_logits(&ids, batch, t, &mut ws)
                }
                Decode::RecomputeBurn => {
                    let ids: Vec<i64> = seqs.iter().flatten().copied().collect();
                    let logits =
                        model.last_logits(Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, t]), device));
                    logits.into_data().try_to_vec::<f32>().unwrap_or_default()
                }
            };
            for (i, s) in seqs.iter_mut().enumerate() {
                let (tok, _) = draw(&logits[i * 100..(i + 1) * 100], 1.0, rngs[i].random());
                s.push(tok as i64);
            }
        }
    };
    run();
    let start = Instant::now();
    run();
    (batch * new) as f64 / start.elapsed().as_secs_f64()
}

/// Number of weights of the benchmarked transformer.
pub fn num_params(device: &Device) -> usize {
    let cfg = config();
    cfg.init(device).num_params()
}
