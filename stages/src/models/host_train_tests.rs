use burn::nn::loss::CrossEntropyLossConfig;
use rand::Rng;

use super::*;
use crate::models::device::seeded;
use crate::models::transformer::TransformerConfig;
use crate::rng::item_rng;

const IGNORE: u32 = 0;

fn config() -> TransformerConfig {
    TransformerConfig::new(11).with_context(40).with_d_model(32).with_layers(2).with_heads(2).with_d_ff(72)
}

/// `b` sequences of `t` random tokens; targets are the next tokens, about a fifth ignored.
fn batch(b: usize, t: usize, seed: u64) -> (Vec<u32>, Vec<u32>) {
    let mut rng = item_rng(seed, 0, 0);
    let tokens: Vec<u32> = (0..b * t).map(|_| rng.random_range(1..11)).collect();
    let targets = (0..b * t).map(|_| if rng.random_bool(0.2) { IGNORE } else { rng.random_range(1..11) }).collect();
    (tokens, targets)
}

#[test]
fn loss_and_gradients_match_burn_autodiff() {
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let model = seeded(&ad, 5, || config().init(&ad));
    // 37 positions: two attention blocks, the second one partial.
    let (b, t) = (3, 37);
    let (tokens, targets) = batch(b, t, 9);

    let ids: Vec<i64> = tokens.iter().map(|&x| x as i64).collect();
    let x = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, t]), &ad);
    let y: Vec<i64> = targets.iter().map(|&x| x as i64).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(y, [b * t]), &ad);
    let loss_fn = CrossEntropyLossConfig::new().with_pad_tokens(Some(vec![IGNORE as usize])).init(&ad);
    let loss = loss_fn.forward(model.forward(x).reshape([b * t, 11]), y);
    let want_loss = loss.clone().into_scalar::<f32>() as f64;
    let want = GradientsParams::from_grads(loss.backward(), &model);

    let host = HostModel::new(&model);
    let (stats, grads) = host.loss_and_grads(&tokens, &targets, Some(IGNORE), b, t, &mut Workspace::default());
    let got = grads.to_gradients(&model, &device);
    assert_eq!(stats.counted, targets.iter().filter(|&&y| y != IGNORE).count());
    assert!((stats.loss - want_loss).abs() < 1e-5 * want_loss.abs(), "loss {} vs burn {want_loss}", stats.loss);

    test_support::assert_close(&model, &got, &want, 2e-5);
}

/// A workspace that last ran `logits` holds one layer's activations: a backward pass on it
/// would read stale buffers, so it is refused rather than returning wrong gradients.
#[test]
#[should_panic(expected = "a backward pass needs `forward` or `forward_hidden`")]
fn backward_after_a_pass_that_kept_nothing_is_refused() {
    let device = Device::flex();
    let host = HostModel::new(&seeded(&device, 8, || config().init(&device)));
    let (tokens, targets) = batch(2, 9, 3);
    let mut ws = Workspace::default();
    host.loss_and_grads(&tokens, &targets, Some(IGNORE), 2, 9, &mut ws);
    host.logits(&tokens, 2, 9, &mut ws);
    host.backward(&tokens, &mut ws);
}

#[test]
fn last_logits_match_burns_forward() {
    let device = Device::flex();
    let model = seeded(&device, 8, || config().init(&device));
    let (b, t) = (5, 33);
    let (tokens, _) = batch(b, t, 12);
    let ids: Vec<i64> = tokens.iter().map(|&x| x as i64).collect();
    let want = model.last_logits(Tensor::<2, Int>::from_data(TensorData::new(ids, [b, t]), &device));
    let want = want.into_data().try_to_vec::<f32>().unwrap();
    let mut ws = Workspace::default();
    let got = HostModel::new(&model).last_logits(&tokens, b, t, &mut ws);
    assert_eq!(got.len(), want.len());
    let worst = got.iter().zip(&want).fold(0.0f32, |m, (a, w)| m.max((a - w).abs()));
    assert!(worst < 1e-4, "largest difference {worst}");
    assert_eq!(ws.layers.len(), 1, "an inference pass keeps one layer's buffers");
}

fn flat(m: &HostModel) -> Vec<f32> {
    let mut v = [&m.tok, &m.pos, &m.head, &m.head_b, &m.ln_f.gamma, &m.ln_f.beta].map(|x| x.to_vec()).concat();
    for blk in &m.blocks {
        for x in [&blk.qkv, &blk.qkv_b, &blk.o, &blk.o_b, &blk.ff1, &blk.ff1_b, &blk.ff2, &blk.ff2_b] {
            v.extend_from_slice(x);
        }
        for n in [&blk.ln1, &blk.ln2] {
            v.extend_from_slice(&n.gamma);
            v.extend_from_slice(&n.beta);
        }
    }
    v
}

#[test]
fn gradients_are_the_same_on_any_thread_count() {
    let device = Device::flex();
    let model = seeded(&device, 7, || config().init(&device));
    let host = HostModel::new(&model);
    // 16 sequences of 37 tokens: 592 rows, five row chunks; d_ff 72: two weight-row chunks.
    let (tokens, targets) = batch(16, 37, 3);
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let (stats, g) = host.loss_and_grads(&tokens, &targets, Some(IGNORE), 16, 37, &mut Workspace::default());
            (stats.loss.to_bits(), stats.correct, flat(&g).iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        })
    };
    let one = run(1);
    assert!(one.2.iter().any(|&v| v != 0), "gradients are not all zero");
    assert_eq!(one, run(3));

    // A workspace that served another batch shape first gives the same result.
    let mut ws = Workspace::default();
    let (other_tokens, other_targets) = batch(5, 9, 4);
    let _ = host.loss_and_grads(&other_tokens, &other_targets, Some(IGNORE), 5, 9, &mut ws);
    let _ = host.loss_and_grads(&tokens, &targets, Some(IGNORE), 16, 37, &mut ws);
    let (stats, g) = host.loss_and_grads(&tokens, &targets, Some(IGNORE), 16, 37, &mut ws);
    assert_eq!((stats.loss.to_bits(), stats.correct, flat(&g).iter().map(|v| v.to_bits()).collect::<Vec<_>>()), one);
}

#[test]
fn training_through_the_host_pass_follows_burns_autodiff() {
    use crate::train::{TextExample, TrainOpts, train_transformer_on};
    let device = Device::flex();
    let mut rng = item_rng(11, 0, 0);
    let examples: Vec<TextExample> = (0..48)
        .map(|_| {
            let len = rng.random_range(6..40);
            TextExample { tokens: (0..len).map(|_| rng.random_range(1..11)).collect(), prompt_len: 3 }
        })
        .collect();
    let opts = TrainOpts { iterations: 25, batch: 8, learning_rate: 3e-3, seed: 2 };
    let (_, host) = train_transformer_on(&config(), &examples, opts, &device, true, |_| {});
    let (_, burn) = train_transformer_on(&config(), &examples, opts, &device, false, |_| {});
    assert_eq!(host.len(), 25);
    for (h, b) in host.iter().zip(&burn) {
        assert_eq!(h.tokens, b.tokens, "iteration {}: counted tokens", h.iteration);
        assert!(
            (h.loss - b.loss).abs() <= 1e-3 * b.loss,
            "iteration {}: loss {} vs burn {}",
            h.iteration,
            h.loss,
            b.loss
        );
    }
    assert!(host[24].loss < host[0].loss - 0.2, "training lowers the loss: {} -> {}", host[0].loss, host[24].loss);
}
