//! The decoder-only transformer policy of the text tasks (`arith`, `jsonl`).
//!
//! Pre-LayerNorm blocks (`x + attn(ln1(x))`, `x + mlp(ln2(x))`), learned token and position
//! embeddings, separate q/k/v/o projections, the tanh form of GELU (GPT-2's; see [`gelu_tanh`]),
//! a final LayerNorm and an untied output layer. Attention is written out (`softmax(q kᵀ / √d_h + causal mask) v`) so that the
//! training pass here and the incremental decoding pass in [`super::kv`] share every weight and
//! compute the same function; a test checks that they agree.

use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{sigmoid, softmax};

/// Shape of the transformer; saved beside its weights.
#[derive(Config, Debug, PartialEq)]
pub struct TransformerConfig {
    /// Vocabulary size (the tokenizer's).
    pub vocab: usize,
    /// Longest sequence (prompt + response) the model reads.
    #[config(default = 128)]
    pub context: usize,
    #[config(default = 128)]
    pub d_model: usize,
    #[config(default = 4)]
    pub layers: usize,
    #[config(default = 4)]
    pub heads: usize,
    #[config(default = 512)]
    pub d_ff: usize,
}

impl TransformerConfig {
    /// Check the shape; the message names the param.
    pub fn validate(&self) -> Result<(), String> {
        if self.heads == 0 || self.d_model == 0 || !self.d_model.is_multiple_of(self.heads) {
            return Err(format!(
                "`d_model` ({}) must be a positive multiple of `heads` ({})",
                self.d_model, self.heads
            ));
        }
        if self.layers == 0 || self.d_ff == 0 || self.context < 2 {
            return Err("`layers` and `d_ff` must be at least 1 and `context` at least 2".into());
        }
        Ok(())
    }

    /// Check a config read from a checkpoint's `config.json`: its shape (as [`Self::validate`])
    /// and the tokenizer's vocabulary, so that a hand-edited or foreign file fails here, before
    /// any pass reads the weights with the wrong shape.
    pub fn validate_loaded(&self) -> Result<(), String> {
        self.validate()?;
        if self.vocab != crate::tokenizer::VOCAB {
            return Err(format!(
                "`vocab` is {}, but the byte tokenizer has {} tokens",
                self.vocab,
                crate::tokenizer::VOCAB
            ));
        }
        Ok(())
    }

    /// The error for the first problem whose prompt leaves no room for a response in the
    /// context (prompt and response together are at most `context` tokens): without it such a
    /// problem would get an empty response and count as answered wrong.
    pub fn check_prompts<'a>(
        &self,
        prompts: impl IntoIterator<Item = (i64, &'a str)>,
        stage: &str,
    ) -> Result<(), String> {
        for (id, prompt) in prompts {
            let len = crate::tokenizer::encode_prompt(prompt).len();
            if len >= self.context {
                return Err(format!(
                    "`{stage}`: problem {id}'s prompt is {len} tokens, but the policy's context is {} tokens for prompt and response together, which leaves no room for a response; train the policy with a larger `context` (train-policy param) or use shorter problems",
                    self.context
                ));
            }
        }
        Ok(())
    }

    pub fn init(&self, device: &Device) -> Transformer {
        let lin = |i, o| LinearConfig::new(i, o).init(device);
        let blocks = (0..self.layers)
            .map(|_| Block {
                ln1: LayerNormConfig::new(self.d_model).init(device),
                q: lin(self.d_model, self.d_model),
                k: lin(self.d_model, self.d_model),
                v: lin(self.d_model, self.d_model),
                o: lin(self.d_model, self.d_model),
                ln2: LayerNormConfig::new(self.d_model).init(device),
                ff1: lin(self.d_model, self.d_ff),
                ff2: lin(self.d_ff, self.d_model),
            })
            .collect();
        Transformer {
            tok: EmbeddingConfig::new(self.vocab, self.d_model).init(device),
            pos: EmbeddingConfig::new(self.context, self.d_model).init(device),
            blocks,
            ln_f: LayerNormConfig::new(self.d_model).init(device),
            head: lin(self.d_model, self.vocab),
            heads: self.heads,
        }
    }
}

/// One pre-LayerNorm block.
#[derive(Module, Debug)]
pub struct Block {
    pub(super) ln1: LayerNorm,
    pub(super) q: Linear,
    pub(super) k: Linear,
    pub(super) v: Linear,
    pub(super) o: Linear,
    pub(super) ln2: LayerNorm,
    pub(super) ff1: Linear,
    pub(super) ff2: Linear,
}

#[derive(Module, Debug)]
pub struct Transformer {
    pub(super) tok: Embedding,
    pub(super) pos: Embedding,
    pub(super) blocks: Vec<Block>,
    pub(super) ln_f: LayerNorm,
    pub(super) head: Linear,
    pub(super) heads: usize,
}

impl Block {
    /// `[b, t, d]` -> `[b, heads, t, d_h]`
    pub(super) fn split_heads(x: Tensor<3>, heads: usize) -> Tensor<4> {
        let [b, t, d] = x.dims();
        x.reshape([b, t, heads, d / heads]).swap_dims(1, 2)
    }

    /// The feed-forward half of the block, with its residual.
    pub(super) fn mlp(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self.ff2.forward(gelu_tanh(self.ff1.forward(self.ln2.forward(x.clone()))));
        x + h
    }

    /// Attention output for queries `q` over keys `k` and values `v`, merged back to `[b, t, d]`
    /// and projected; `mask` (true = hidden) is `[t_q, t_k]`.
    pub(super) fn attend(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Option<Tensor<2, Bool>>) -> Tensor<3> {
        let [b, h, tq, dh] = q.dims();
        let tk = k.dims()[2];
        let mut scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (dh as f64).sqrt());
        if let Some(mask) = mask {
            scores = scores.mask_fill(mask.reshape([1, 1, tq, tk]).expand([b, h, tq, tk]), f32::NEG_INFINITY);
        }
        let att = softmax(scores, 3).matmul(v);
        self.o.forward(att.swap_dims(1, 2).reshape([b, tq, h * dh]))
    }
}

/// GELU in its tanh form, `x/2 (1 + tanh(√(2/π)(x + 0.044715 x³)))`, computed as
/// `x · sigmoid(2√(2/π)(x + 0.044715 x³))` (the same function). burn's `flex` backend computes
/// `erf` and `tanh` with scalar libm calls, which took 14% of sampling time with the exact GELU;
/// `sigmoid` goes through the fast `exp`.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    const C: f64 = 2.0 * 0.797_884_560_802_865_4; // 2 · √(2/π)
    let cube = x.clone() * x.clone() * x.clone();
    let inner = (x.clone() + cube.mul_scalar(0.044715)).mul_scalar(C);
    x * sigmoid(inner)
}

impl Transformer {
    /// Next-token logits at every position (teacher forcing, causal).
    ///
    /// # Shapes
    /// - `tokens`: `[batch, t]` with `t <= context`
    /// - returns `[batch, t, vocab]`
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        self.head.forward(self.hidden(tokens))
    }

    /// The final hidden states (after the last LayerNorm), which the output layer reads; a
    /// verifier puts its own head on them.
    ///
    /// # Shapes
    /// - `tokens`: `[batch, t]` with `t <= context`
    /// - returns `[batch, t, d_model]`
    pub fn hidden(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        let [b, t] = tokens.dims();
        let device = tokens.device();
        let positions = Tensor::<1, Int>::arange(0..t as i64, &device).reshape([1, t]);
        let mut x = self.tok.forward(tokens) + self.pos.forward(positions).expand([b, t, self.d_model()]);
        let mask = Tensor::<2, Bool>::tril_mask([t, t], 0, &device);
        for block in &self.blocks {
            let h = block.ln1.forward(x.clone());
            let q = Block::split_heads(block.q.forward(h.clone()), self.heads);
            let k = Block::split_heads(block.k.forward(h.clone()), self.heads);
            let v = Block::split_heads(block.v.forward(h), self.heads);
            x = x + block.attend(q, k, v, Some(mask.clone()));
            x = block.mlp(x);
        }
        self.ln_f.forward(x)
    }

    pub fn d_model(&self) -> usize {
        self.ln_f.gamma.dims()[0]
    }

    pub fn context(&self) -> usize {
        self.pos.weight.dims()[0]
    }

    pub fn heads(&self) -> usize {
        self.heads
    }

    pub fn layers(&self) -> usize {
        self.blocks.len()
    }
}

impl Transformer {
    pub fn vocab(&self) -> usize {
        self.head.weight.dims()[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_tanh_is_the_tanh_form_of_gelu() {
        let dev = Device::flex();
        let xs: Vec<f32> = (-60..=60).map(|i| i as f32 / 10.0).collect();
        let n = xs.len();
        let got = gelu_tanh(Tensor::<1>::from_data(TensorData::new(xs.clone(), [n]), &dev))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (x, g) in xs.iter().zip(got) {
            let x = *x as f64;
            let tanh_form = 0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh());
            assert!((g as f64 - tanh_form).abs() < 1e-5, "x = {x}: {g} vs {tanh_form}");
        }
    }
}
