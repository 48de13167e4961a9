//! Process verifiers: the transformer trunk with a scalar head per predicted value, read at step
//! boundaries (the newline that ends each step; step 0 reads the newline that ends the prompt).
//!
//! A verifier checkpoint says what its values mean and how they combine into a step's score:
//! - `orm`: one head, the probability that the response ends correct; score = that value.
//! - `pqv`: one head, `Q^pi` of the prefix; score = `Q^pi`.
//! - `pav` with a Best-of-K prover: one head, `Q^pi`, plus the closed-form transform
//!   `A = (1 - Q(h-1))^K - (1 - Q(h))^K` (paper App. D: a Q-model plus the transform);
//!   score = `Q^pi + alpha * A`.
//! - `pav` with a prover checkpoint: two heads on one trunk, `Q^pi` and `Q^mu` (trained on the
//!   prover's own rollouts); `A = Q^mu(h) - Q^mu(h-1)`; score = `Q^pi + alpha * A`.
//!
//! At step 0 there is no action, so `A = 0` and the score is `Q^pi`.

use std::path::Path;

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use serde_json::{Map, Value, json};

use super::checkpoint::CanonicalIds;
use super::transformer::{Transformer, TransformerConfig};
use crate::contract::StageError;
use crate::tokenizer::PAD;

/// The trunk and its value heads.
#[derive(Module, Debug)]
pub struct Verifier {
    pub trunk: Transformer,
    pub value: Linear,
}

impl Verifier {
    /// A fresh verifier: a new trunk, or `trunk` (a policy's transformer, whose language-model
    /// head is then unused), and `outputs` value heads.
    pub fn new(trunk: Transformer, d_model: usize, outputs: usize, device: &Device) -> Verifier {
        Verifier { trunk, value: LinearConfig::new(d_model, outputs).init(device) }
    }

    /// Value logits at every position: `[batch, t]` tokens -> `[batch, t, outputs]`.
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        self.value.forward(self.trunk.hidden(tokens))
    }
}

/// Which prover a PAV's advantage comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProverSpec {
    /// No advantage term (ORM, PQV).
    None,
    /// Best-of-K of the base policy, by the closed form from `Q^pi`.
    BestOfK(u32),
    /// A prover checkpoint, through a second head trained on its rollouts.
    Learned,
}

/// What a verifier predicts and how it scores a step.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifierMeta {
    /// `orm`, `pqv` or `pav`.
    pub target: String,
    pub prover: ProverSpec,
    /// The weight of the advantage in the score (the default; search may override it).
    pub alpha: f64,
    /// The task params of the policy whose responses it scores.
    pub task: Map<String, Value>,
}

/// One step's score and its parts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepScore {
    /// `Q^pi` (or, for an ORM, the predicted outcome).
    pub q: f64,
    /// The prover's advantage (0 without a prover and at step 0).
    pub a: f64,
    /// `q + alpha * a`.
    pub score: f64,
}

impl VerifierMeta {
    /// Number of value heads.
    pub fn outputs(&self) -> usize {
        if self.prover == ProverSpec::Learned { 2 } else { 1 }
    }

    /// Scores of steps `0..` of one response from its head values (probabilities), `values[h]`
    /// holding the heads at step `h`.
    pub fn scores(&self, values: &[Vec<f64>], alpha: f64) -> Vec<StepScore> {
        values
            .iter()
            .enumerate()
            .map(|(h, v)| {
                let q = v[0];
                let a = match (self.prover, h) {
                    (_, 0) | (ProverSpec::None, _) => 0.0,
                    (ProverSpec::BestOfK(k), _) => (1.0 - values[h - 1][0]).powi(k as i32) - (1.0 - q).powi(k as i32),
                    (ProverSpec::Learned, _) => v[1] - values[h - 1][1],
                };
                StepScore { q, a, score: q + alpha * a }
            })
            .collect()
    }
}

/// A verifier with its shape and meaning.
#[derive(Debug)]
pub struct VerifierCheckpoint {
    pub config: TransformerConfig,
    pub model: Verifier,
    pub meta: VerifierMeta,
}

const TOKENIZER: &str = "bytes-v1";

fn failed(what: &str, dir: &Path, e: impl std::fmt::Display) -> StageError {
    StageError::Failed(format!("{what} {}: {e}", dir.display()))
}

impl VerifierCheckpoint {
    pub fn save(&self, dir: &Path) -> Result<(), StageError> {
        std::fs::create_dir_all(dir)?;
        let prover = match self.meta.prover {
            ProverSpec::None => json!({"kind": "none"}),
            ProverSpec::BestOfK(k) => json!({"kind": "bok", "k": k}),
            ProverSpec::Learned => json!({"kind": "learned"}),
        };
        let config = serde_json::to_value(&self.config).map_err(|e| failed("cannot encode the config of", dir, e))?;
        let meta = json!({
            "arch": "verifier", "model": config, "outputs": self.meta.outputs(), "target": self.meta.target,
            "prover": prover, "alpha": self.meta.alpha, "task": self.meta.task, "tokenizer": TOKENIZER,
        });
        let text = serde_json::to_string_pretty(&meta).map_err(|e| failed("cannot encode", dir, e))?;
        std::fs::write(dir.join("config.json"), text + "\n")?;
        self.model
            .clone()
            .map(&mut CanonicalIds::default())
            .save_file(dir.join("model.bpk"))
            .map_err(|e| failed("cannot write weights to", dir, e))
    }

    /// Read a verifier written by [`VerifierCheckpoint::save`]; a policy checkpoint or anything
    /// else gives an error that says what the directory is.
    pub fn load(dir: &Path, device: &Device) -> Result<VerifierCheckpoint, StageError> {
        let text = std::fs::read_to_string(dir.join("config.json")).map_err(|e| {
            failed("not a verifier checkpoint (no readable config.json; wire a `train-verifier` output):", dir, e)
        })?;
        let meta: Value = serde_json::from_str(&text).map_err(|e| failed("malformed config.json in", dir, e))?;
        match meta.get("arch").and_then(Value::as_str) {
            Some("verifier") => {}
            Some(other) => {
                return Err(failed(
                    &format!("expected a verifier checkpoint, found a `{other}` policy checkpoint in"),
                    dir,
                    "wire the `verifier` output of a `train-verifier` stage",
                ));
            }
            None => return Err(failed("unknown architecture in", dir, "no `arch`")),
        }
        if meta.get("tokenizer").and_then(Value::as_str) != Some(TOKENIZER) {
            return Err(failed("unknown tokenizer in", dir, format!("expected `{TOKENIZER}`")));
        }
        let config: TransformerConfig = serde_json::from_value(meta.get("model").cloned().unwrap_or(Value::Null))
            .map_err(|e| failed("bad model config in", dir, e))?;
        config.validate_loaded().map_err(|e| failed("bad model config in", dir, e))?;
        // Every field `save` writes is required: a checkpoint that lacks one was not written by
        // this version, and a default (e.g. alpha 0) would silently change what it scores.
        let missing = |field: &str, expected: &str| {
            failed(
                &format!("config.json lacks `{field}` ({expected}) in"),
                dir,
                "re-run the `train-verifier` stage that wrote it",
            )
        };
        let prover = match meta.pointer("/prover/kind").and_then(Value::as_str) {
            Some("none") => ProverSpec::None,
            Some("bok") => {
                let k = meta.pointer("/prover/k").and_then(Value::as_u64).filter(|&k| k >= 1 && k <= u32::MAX as u64);
                ProverSpec::BestOfK(k.ok_or_else(|| missing("prover.k", "an integer >= 1"))? as u32)
            }
            Some("learned") => ProverSpec::Learned,
            other => return Err(failed("unknown prover in", dir, format!("{other:?}"))),
        };
        let target = match meta.get("target").and_then(Value::as_str) {
            Some(t @ ("orm" | "pqv" | "pav")) => t.to_string(),
            _ => return Err(missing("target", "one of orm, pqv, pav")),
        };
        let vmeta = VerifierMeta {
            target,
            prover,
            alpha: meta.get("alpha").and_then(Value::as_f64).ok_or_else(|| missing("alpha", "a number"))?,
            task: meta.get("task").and_then(Value::as_object).cloned().ok_or_else(|| missing("task", "a mapping"))?,
        };
        let blank = Verifier::new(config.init(device), config.d_model, vmeta.outputs(), device);
        let model =
            blank.try_load_file(dir.join("model.bpk")).map_err(|e| failed("cannot load weights from", dir, e))?;
        Ok(VerifierCheckpoint { config, model, meta: vmeta })
    }

    /// Head values (probabilities) at `positions[i]` of each sequence `seqs[i]`, in batches of
    /// `batch` sequences. A position past the end of its own sequence is an error. A sequence
    /// longer than the context is read on its first `context` tokens, and a position beyond
    /// them (a step cut by the context, e.g. a response that filled it) reads the last token
    /// inside: the value of the longest prefix the model can see.
    pub fn values_at(
        &self,
        seqs: &[Vec<u32>],
        positions: &[Vec<usize>],
        batch: usize,
        device: &Device,
    ) -> Result<Vec<Vec<Vec<f64>>>, StageError> {
        let outs = self.meta.outputs();
        let context = self.config.context;
        let mut result = Vec::with_capacity(seqs.len());
        for (chunk, pos) in seqs.chunks(batch.max(1)).zip(positions.chunks(batch.max(1))) {
            for (s, ps) in chunk.iter().zip(pos) {
                if let Some(&p) = ps.iter().find(|&&p| p >= s.len()) {
                    return Err(StageError::Failed(format!(
                        "the verifier is asked for a value at token {p} of a sequence of {} tokens (a bug in \
                         the caller: positions must lie inside their sequence)",
                        s.len()
                    )));
                }
            }
            let t = chunk.iter().map(Vec::len).max().unwrap_or(1).clamp(1, context);
            let b = chunk.len();
            let mut input = Vec::with_capacity(b * t);
            for s in chunk {
                input.extend((0..t).map(|i| s.get(i).copied().unwrap_or(PAD) as i64));
            }
            let x = Tensor::<2, Int>::from_data(TensorData::new(input, [b, t]), device);
            let v: Vec<f32> = sigmoid(self.model.forward(x))
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| StageError::Failed(format!("reading the verifier's values: {e:?}")))?;
            for (i, ps) in pos.iter().enumerate() {
                result.push(
                    ps.iter()
                        .map(|&p| (0..outs).map(|o| v[(i * t + p.min(t - 1)) * outs + o] as f64).collect())
                        .collect(),
                );
            }
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::transformer::TransformerConfig;

    /// A checkpoint whose config.json lacks a field `save` writes is refused with the field's
    /// name, not read with a default.
    #[test]
    fn a_config_without_a_saved_field_is_an_error_naming_it() {
        let dev = Device::flex();
        let d = tempfile::tempdir().unwrap();
        let config = TransformerConfig::new(crate::tokenizer::VOCAB)
            .with_context(8)
            .with_d_model(8)
            .with_layers(1)
            .with_heads(2)
            .with_d_ff(8);
        let meta =
            VerifierMeta { target: "pav".into(), prover: ProverSpec::BestOfK(4), alpha: 0.5, task: Default::default() };
        let model = Verifier::new(config.init(&dev), 8, meta.outputs(), &dev);
        let dir = d.path().join("v");
        VerifierCheckpoint { config, model, meta }.save(&dir).unwrap();
        let loaded = VerifierCheckpoint::load(&dir, &dev).unwrap();
        assert_eq!(
            (loaded.meta.alpha, loaded.meta.prover, loaded.meta.target.as_str()),
            (0.5, ProverSpec::BestOfK(4), "pav")
        );
        let original: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        for (pointer, field) in
            [("/alpha", "`alpha`"), ("/target", "`target`"), ("/task", "`task`"), ("/prover/k", "`prover.k`")]
        {
            let mut meta = original.clone();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            let parent = if parent.is_empty() { &mut meta } else { meta.pointer_mut(parent).unwrap() };
            parent.as_object_mut().unwrap().remove(key);
            std::fs::write(dir.join("config.json"), meta.to_string()).unwrap();
            let Err(e) = VerifierCheckpoint::load(&dir, &dev) else { panic!("{pointer}: loaded without it") };
            assert!(e.to_string().contains(field), "{pointer}: {e}");
        }
        // A model shape the passes cannot run (heads not dividing d_model, another vocabulary)
        // is refused when loading, not found later as a panic or as silently wrong scores.
        for (pointer, value, expected) in [("/model/heads", 3, "`heads`"), ("/model/vocab", 20, "`vocab`")] {
            let mut meta = original.clone();
            *meta.pointer_mut(pointer).unwrap() = json!(value);
            std::fs::write(dir.join("config.json"), meta.to_string()).unwrap();
            let Err(e) = VerifierCheckpoint::load(&dir, &dev) else { panic!("{pointer}: loaded with {value}") };
            assert!(e.to_string().contains(expected) && e.to_string().contains("config"), "{pointer}: {e}");
        }
    }
}
