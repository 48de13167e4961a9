//! The MADE policy of the didactic task (Germain et al. 2015; paper App. B: "similar to the
//! MADE architecture, 3 layers, 128 hidden units"): the MLP of [`super::mlp`] with
//! autoregressive masks on its weights and one output block of `vocab` logits per position.
//!
//! Degrees (natural order, assigned without randomness so that the masks are a function of
//! the config alone): the embedding of slot `j` (token `j` of the response) has degree `j + 1`;
//! hidden unit `k` of every layer has degree `1 + k mod (context - 1)`; a hidden unit sees an
//! input or a lower hidden unit of degree at most its own; output block `t` (the distribution
//! of token `t`) sees the hidden units of degree at most `t`. So block `t` depends on tokens
//! `0..t` only, every position has its own distribution given the whole prefix, and block 0
//! is a learned distribution of the first token (its bias).
//!
//! The window MLP (`arch: window`) has one output head shared by all positions and learns the
//! position only from the padding; on the didactic task it falls into loops such as
//! `3 6 0 3 3 6 0 3 3 3` (docs/results.md, ADR 0010).

use burn::nn::Linear;
use burn::prelude::*;

/// Degree of hidden unit `k` for a window of `context` slots.
fn hidden_degree(k: usize, context: usize) -> usize {
    1 + k % context.saturating_sub(1).max(1)
}

/// The mask of every layer, row-major `[d_input, d_output]` like burn's `Linear` weights:
/// `layers` hidden layers of `hidden` units after `context * embed` inputs, then the output of
/// `context * vocab` logits. An entry is 1 where the connection is kept.
pub fn masks(context: usize, embed: usize, hidden: usize, layers: usize, vocab: usize) -> Vec<(Vec<f32>, [usize; 2])> {
    let mut out = Vec::with_capacity(layers + 1);
    let mut below: Vec<usize> = (0..context * embed).map(|u| u / embed + 1).collect();
    for _ in 0..layers {
        let here: Vec<usize> = (0..hidden).map(|k| hidden_degree(k, context)).collect();
        let m = below.iter().flat_map(|&d| here.iter().map(move |&h| f32::from(u8::from(h >= d)))).collect();
        out.push((m, [below.len(), hidden]));
        below = here;
    }
    // Output unit `o` is token `o / vocab`'s logit; it sees hidden units of degree <= its position.
    let m =
        below.iter().flat_map(|&d| (0..context * vocab).map(move |o| f32::from(u8::from(d <= o / vocab)))).collect();
    out.push((m, [below.len(), context * vocab]));
    out
}

/// `x · (W ⊙ M) + b`: a linear layer with its mask applied to the weights (masked weights get
/// no gradient).
pub(super) fn masked(layer: &Linear, x: Tensor<2>, mask: &(Vec<f32>, [usize; 2])) -> Tensor<2> {
    let w = layer.weight.val();
    let m = Tensor::<2>::from_data(TensorData::new(mask.0.clone(), mask.1), &w.device());
    let y = x.matmul(w * m);
    match &layer.bias {
        Some(b) => y + b.val().unsqueeze::<2>(),
        None => y,
    }
}

/// The block of `all` (`[batch, context * vocab]`) at each row's position: the number of
/// filled slots of its window (`[batch, context]`, padding id `pad`), at most `context - 1`.
pub(super) fn at_position(all: Tensor<2>, window: Tensor<2, Int>, pad: usize, vocab: usize) -> Tensor<2> {
    let [b, l] = window.dims();
    let filled = window.not_equal_elem(pad as i64).int().sum_dim(1).clamp(0, l as i64 - 1); // [b, 1]
    let index = filled.reshape([b, 1, 1]).repeat_dim(2, vocab);
    all.reshape([b, l, vocab]).gather(1, index).reshape([b, vocab])
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;

    use super::*;
    use crate::models::device::seeded;
    use crate::models::mlp::{MlpArch, MlpConfig, window};

    fn logits(model: &crate::models::mlp::Mlp, config: &MlpConfig, prefix: &[usize]) -> Vec<f32> {
        let mut w = Vec::new();
        window(prefix, config, &mut w);
        let x = Tensor::<2, Int>::from_data(TensorData::new(w, [1, config.context]), &Device::flex());
        model.forward(x).into_data().try_to_vec::<f32>().unwrap()
    }

    /// The masks make block `t` a function of tokens `0..t` only: changing any later token,
    /// or padding it, leaves it unchanged to the bit, while an earlier token changes it.
    #[test]
    fn each_position_depends_on_its_prefix_only() {
        let dev = Device::flex();
        let config = MlpConfig::new(15, 10).with_arch(Some(MlpArch::Made));
        let model = seeded(&dev, 7, || config.init(&dev));
        let seq = [3, 6, 0, 3, 5, 1, 2, 9, 4, 7];
        for t in 0..10 {
            let want = logits(&model, &config, &seq[..t]);
            let mut other = seq;
            for x in other.iter_mut().skip(t) {
                *x = (*x + 4) % 14;
            }
            // A full window of other later tokens, through the all-positions output.
            let all = model.forward_all(Tensor::<2, Int>::from_data(
                TensorData::new(other.iter().map(|&x| x as i64).collect::<Vec<_>>(), [1, 10]),
                &dev,
            ));
            let all = all.into_data().try_to_vec::<f32>().unwrap();
            assert_eq!(&all[t * 15..(t + 1) * 15], &want[..], "position {t}");
            if t > 0 {
                let mut earlier = seq;
                earlier[t - 1] = (earlier[t - 1] + 1) % 14;
                assert_ne!(logits(&model, &config, &earlier[..t]), want, "position {t} sees token {}", t - 1);
            }
        }
    }

    #[test]
    fn masks_have_the_documented_shape_and_degrees() {
        let m = masks(3, 2, 4, 2, 5);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].1, [6, 4]);
        // Hidden degrees 1, 2, 1, 2; slot 0 (degree 1) reaches all, slot 1 (degree 2) units 1, 3.
        assert_eq!(&m[0].0[..8], &[1.0; 8]);
        assert_eq!(&m[0].0[8..12], &[0.0, 1.0, 0.0, 1.0]);
        // No unit sees slot 2: the last token is never an input to a prediction.
        assert!(m[0].0[16..].iter().all(|&x| x == 0.0));
        // Block 0 sees nothing, block 1 the degree-1 units, block 2 all.
        assert_eq!(m[2].1, [4, 15]);
        let row0: Vec<f32> = m[2].0[..15].to_vec();
        assert_eq!(row0, [[0.0; 5], [1.0; 5], [1.0; 5]].concat());
        let row1: Vec<f32> = m[2].0[15..30].to_vec();
        assert_eq!(row1, [[0.0; 5], [0.0; 5], [1.0; 5]].concat());
    }
}
