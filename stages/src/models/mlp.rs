//! The autoregressive MLP policy of the didactic task (paper §3: 3 layers of 128 units).
//!
//! The policy reads the tokens emitted so far as a fixed window of `context` slots (slot `j`
//! holds token `j`, or the padding id `vocab` when fewer tokens exist), embeds each slot,
//! concatenates the embeddings and runs `layers` × (Linear + ReLU) and a Linear to `vocab`
//! next-token logits.

use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, Relu};
use burn::prelude::*;

/// Shape of the MLP policy; saved beside its weights.
#[derive(Config, Debug, PartialEq)]
pub struct MlpConfig {
    /// Output vocabulary (the task's tokens, end token included).
    pub vocab: usize,
    /// Number of slots: the response length.
    pub context: usize,
    #[config(default = 16)]
    pub embed: usize,
    #[config(default = 128)]
    pub hidden: usize,
    #[config(default = 3)]
    pub layers: usize,
}

#[derive(Module, Debug)]
pub struct Mlp {
    embed: Embedding,
    hidden: Vec<Linear>,
    out: Linear,
    act: Relu,
}

impl MlpConfig {
    pub fn init(&self, device: &Device) -> Mlp {
        let hidden = (0..self.layers)
            .map(|i| {
                let input = if i == 0 { self.context * self.embed } else { self.hidden };
                LinearConfig::new(input, self.hidden).init(device)
            })
            .collect();
        Mlp {
            embed: EmbeddingConfig::new(self.vocab + 1, self.embed).init(device),
            hidden,
            out: LinearConfig::new(self.hidden, self.vocab).init(device),
            act: Relu::new(),
        }
    }

    /// The padding id of an empty slot.
    pub fn pad(&self) -> usize {
        self.vocab
    }
}

impl Mlp {
    /// Next-token logits.
    ///
    /// # Shapes
    /// - `window`: `[batch, context]` token ids, `vocab` for empty slots
    /// - returns `[batch, vocab]`
    pub fn forward(&self, window: Tensor<2, Int>) -> Tensor<2> {
        let [b, l] = window.dims();
        let x = self.embed.forward(window);
        let e = x.dims()[2];
        let mut x = x.reshape([b, l * e]);
        for layer in &self.hidden {
            x = self.act.forward(layer.forward(x));
        }
        self.out.forward(x)
    }
}

/// The window for a prefix: its tokens, then padding.
pub fn window(prefix: &[usize], config: &MlpConfig, out: &mut Vec<i64>) {
    for j in 0..config.context {
        out.push(prefix.get(j).map_or(config.pad() as i64, |&t| t as i64));
    }
}
