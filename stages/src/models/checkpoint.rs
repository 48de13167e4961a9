//! A policy checkpoint: a directory holding `model.bpk` (burn's burnpack record of the
//! weights) and `config.json` (the architecture, the task it was trained on, and the
//! tokenizer), so that a checkpoint alone is enough to rebuild and use the policy.

use std::path::Path;

use burn::module::{ModuleMapper, Param, ParamId};
use burn::prelude::*;
use serde_json::{Map, Value, json};

use super::mlp::{Mlp, MlpConfig};
use super::transformer::{Transformer, TransformerConfig};
use crate::contract::StageError;

/// The model inside a checkpoint.
// One checkpoint is in memory at a time: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum PolicyModel {
    Mlp(MlpConfig, Mlp),
    Transformer(TransformerConfig, Transformer),
}

/// A loaded policy: model plus the task params it was trained on.
#[derive(Debug)]
pub struct Checkpoint {
    pub model: PolicyModel,
    pub task: Map<String, Value>,
}

/// Renumbers parameters 0, 1, 2, ... in module order before saving: burn draws parameter ids
/// at random, and they are written into the file, so without this the same weights would give
/// different bytes (and different cache digests) on every run.
#[derive(Default)]
pub(crate) struct CanonicalIds {
    next: u64,
}

impl CanonicalIds {
    fn id(&mut self) -> ParamId {
        self.next += 1;
        ParamId::from(self.next - 1)
    }
}

impl ModuleMapper for CanonicalIds {
    fn map_float<const D: usize>(&mut self, mut param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.id = self.id();
        param
    }

    fn map_int<const D: usize>(&mut self, mut param: Param<Tensor<D, Int>>) -> Param<Tensor<D, Int>> {
        param.id = self.id();
        param
    }

    fn map_bool<const D: usize>(&mut self, mut param: Param<Tensor<D, Bool>>) -> Param<Tensor<D, Bool>> {
        param.id = self.id();
        param
    }
}

const TOKENIZER: &str = "bytes-v1";

fn failed(what: &str, dir: &Path, e: impl std::fmt::Display) -> StageError {
    StageError::Failed(format!("{what} {}: {e}", dir.display()))
}

impl Checkpoint {
    /// Write the checkpoint into `dir` (created).
    pub fn save(&self, dir: &Path) -> Result<(), StageError> {
        std::fs::create_dir_all(dir)?;
        let (arch, config) = match &self.model {
            PolicyModel::Mlp(c, _) => ("mlp", serde_json::to_value(c)),
            PolicyModel::Transformer(c, _) => ("transformer", serde_json::to_value(c)),
        };
        let config = config.map_err(|e| failed("cannot encode the config of", dir, e))?;
        let meta = json!({"arch": arch, "model": config, "task": self.task, "tokenizer": TOKENIZER});
        let text = serde_json::to_string_pretty(&meta).map_err(|e| failed("cannot encode", dir, e))?;
        std::fs::write(dir.join("config.json"), text + "\n")?;
        let weights = dir.join("model.bpk");
        match &self.model {
            PolicyModel::Mlp(_, m) => m.clone().map(&mut CanonicalIds::default()).save_file(&weights),
            PolicyModel::Transformer(_, m) => m.clone().map(&mut CanonicalIds::default()).save_file(&weights),
        }
        .map_err(|e| failed("cannot write weights to", dir, e))
    }

    /// Read a checkpoint written by [`Checkpoint::save`]; errors name the file and the problem.
    pub fn load(dir: &Path, device: &Device) -> Result<Checkpoint, StageError> {
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| {
            failed(
                "not a policy checkpoint (no readable config.json; the input must be a `train-policy` checkpoint):",
                dir,
                e,
            )
        })?;
        let meta: Value = serde_json::from_str(&text).map_err(|e| failed("malformed config.json in", dir, e))?;
        let task = meta.get("task").and_then(Value::as_object).cloned().unwrap_or_default();
        if meta.get("tokenizer").and_then(Value::as_str) != Some(TOKENIZER) {
            return Err(failed("unknown tokenizer in", dir, format!("expected `{TOKENIZER}`")));
        }
        let model_cfg = meta.get("model").cloned().unwrap_or(Value::Null);
        let weights = dir.join("model.bpk");
        let model = match meta.get("arch").and_then(Value::as_str) {
            Some("mlp") => {
                let c: MlpConfig =
                    serde_json::from_value(model_cfg).map_err(|e| failed("bad MLP config in", dir, e))?;
                let m =
                    c.init(device).try_load_file(&weights).map_err(|e| failed("cannot load weights from", dir, e))?;
                PolicyModel::Mlp(c, m)
            }
            Some("transformer") => {
                let c: TransformerConfig =
                    serde_json::from_value(model_cfg).map_err(|e| failed("bad transformer config in", dir, e))?;
                let m =
                    c.init(device).try_load_file(&weights).map_err(|e| failed("cannot load weights from", dir, e))?;
                PolicyModel::Transformer(c, m)
            }
            Some("verifier") => {
                return Err(failed(
                    "expected a policy checkpoint, found a verifier in",
                    dir,
                    "wire the `policy` output of a `train-policy` (or `rl`) stage",
                ));
            }
            other => return Err(failed("unknown architecture in", dir, format!("{other:?}"))),
        };
        Ok(Checkpoint { model, task })
    }
}
