//! The autoregressive MLP policies of the didactic task (paper §3: 3 layers of 128 units).
//!
//! The policy reads the tokens emitted so far as a fixed window of `context` slots (slot `j`
//! holds token `j`, or the padding id `vocab` when fewer tokens exist), embeds each slot,
//! concatenates the embeddings and runs `layers` × (Linear + ReLU) and a Linear to logits.
//! Two architectures (`arch`):
//! - `made` (the paper's, the default of `train-policy`): the layers are masked
//!   autoregressively and the output has one block of `vocab` logits per position; the block
//!   of the window's position is returned ([`super::made`]).
//! - `window` (the first version, kept for the ablation): unmasked layers and one Linear to
//!   `vocab` logits shared by all positions. Checkpoints written before `arch` existed have no
//!   `arch` and are this one.

use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, Relu};
use burn::prelude::*;

use super::made;

/// The architecture of the planted task's MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, burn::serde::Serialize, burn::serde::Deserialize)]
#[serde(crate = "burn::serde", rename_all = "lowercase")]
pub enum MlpArch {
    /// One output head shared by all positions.
    Window,
    /// Masked autoregressive layers with one output block per position.
    Made,
}

impl MlpArch {
    /// Parse the `arch` param; the message names the choices.
    pub fn parse(s: &str) -> Result<MlpArch, String> {
        match s {
            "made" => Ok(MlpArch::Made),
            "window" => Ok(MlpArch::Window),
            other => Err(format!(
                "expected `made` (masked, one output block per position: the paper's) or `window` (one shared output head), found `{other}`"
            )),
        }
    }
}

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
    /// `None` (checkpoints from before the MADE) is [`MlpArch::Window`].
    pub arch: Option<MlpArch>,
}

#[derive(Module, Debug)]
pub struct Mlp {
    embed: Embedding,
    hidden: Vec<Linear>,
    out: Linear,
    act: Relu,
    /// The MADE's masks, one per layer (none for the window MLP).
    #[module(skip)]
    masks: Vec<(Vec<f32>, [usize; 2])>,
    #[module(skip)]
    pad: usize,
}

impl MlpConfig {
    pub fn arch(&self) -> MlpArch {
        self.arch.unwrap_or(MlpArch::Window)
    }

    pub fn init(&self, device: &Device) -> Mlp {
        let hidden = (0..self.layers)
            .map(|i| {
                let input = if i == 0 { self.context * self.embed } else { self.hidden };
                LinearConfig::new(input, self.hidden).init(device)
            })
            .collect();
        let (outputs, masks) = match self.arch() {
            MlpArch::Window => (self.vocab, Vec::new()),
            MlpArch::Made => {
                (self.context * self.vocab, made::masks(self.context, self.embed, self.hidden, self.layers, self.vocab))
            }
        };
        Mlp {
            embed: EmbeddingConfig::new(self.vocab + 1, self.embed).init(device),
            hidden,
            out: LinearConfig::new(self.hidden, outputs).init(device),
            act: Relu::new(),
            masks,
            pad: self.pad(),
        }
    }

    /// The padding id of an empty slot.
    pub fn pad(&self) -> usize {
        self.vocab
    }

    /// Check a config read from a checkpoint; the message names the field.
    pub fn validate_loaded(&self) -> Result<(), String> {
        for (name, v, min) in [("vocab", self.vocab, 2), ("context", self.context, 1), ("embed", self.embed, 1)] {
            if v < min {
                return Err(format!("`{name}` is {v}, must be at least {min}"));
            }
        }
        if self.hidden == 0 || self.layers == 0 {
            return Err(format!("`hidden` ({}) and `layers` ({}) must be at least 1", self.hidden, self.layers));
        }
        Ok(())
    }
}

impl Mlp {
    /// The last hidden layer's activations.
    fn trunk(&self, window: Tensor<2, Int>) -> Tensor<2> {
        let [b, l] = window.dims();
        let x = self.embed.forward(window);
        let e = x.dims()[2];
        let mut x = x.reshape([b, l * e]);
        for (i, layer) in self.hidden.iter().enumerate() {
            let y = match self.masks.get(i) {
                Some(m) => made::masked(layer, x, m),
                None => layer.forward(x),
            };
            x = self.act.forward(y);
        }
        x
    }

    /// Next-token logits.
    ///
    /// # Shapes
    /// - `window`: `[batch, context]` token ids, `vocab` for empty slots
    /// - returns `[batch, vocab]`
    pub fn forward(&self, window: Tensor<2, Int>) -> Tensor<2> {
        match self.masks.last() {
            None => self.out.forward(self.trunk(window)),
            Some(m) => {
                let vocab = m.1[1] / window.dims()[1];
                let all = made::masked(&self.out, self.trunk(window.clone()), m);
                made::at_position(all, window, self.pad, vocab)
            }
        }
    }

    /// The MADE's logits of every position at once (block `t` is token `t`'s distribution
    /// given tokens `0..t`); the window MLP has no such output and gives its one head.
    ///
    /// # Shapes
    /// - `tokens`: `[batch, context]`
    /// - returns `[batch, context * vocab]` (MADE) or `[batch, vocab]` (window)
    pub fn forward_all(&self, tokens: Tensor<2, Int>) -> Tensor<2> {
        match self.masks.last() {
            None => self.out.forward(self.trunk(tokens)),
            Some(m) => made::masked(&self.out, self.trunk(tokens), m),
        }
    }
}

/// The window for a prefix: its tokens, then padding.
pub fn window(prefix: &[usize], config: &MlpConfig, out: &mut Vec<i64>) {
    for j in 0..config.context {
        out.push(prefix.get(j).map_or(config.pad() as i64, |&t| t as i64));
    }
}
