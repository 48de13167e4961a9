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

    /// For a transformer policy, an error naming the first problem whose prompt fills the
    /// context (see [`TransformerConfig::check_prompts`]); the planted MLP has no prompts.
    pub fn check_prompts(&self, problems: &[crate::table::ProblemRow], stage: &str) -> Result<(), StageError> {
        match &self.model {
            PolicyModel::Transformer(c, _) => c
                .check_prompts(problems.iter().map(|r| (r.problem_id, r.prompt.as_str())), stage)
                .map_err(StageError::Failed),
            PolicyModel::Mlp(..) => Ok(()),
        }
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
                c.validate_loaded().map_err(|e| failed("bad MLP config in", dir, e))?;
                let m =
                    c.init(device).try_load_file(&weights).map_err(|e| failed("cannot load weights from", dir, e))?;
                PolicyModel::Mlp(c, m)
            }
            Some("transformer") => {
                let c: TransformerConfig =
                    serde_json::from_value(model_cfg).map_err(|e| failed("bad transformer config in", dir, e))?;
                c.validate_loaded().map_err(|e| failed("bad transformer config in", dir, e))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::ProblemRow;
    use crate::tokenizer::VOCAB;

    fn policy(dir: &Path, context: usize) -> Checkpoint {
        let dev = Device::flex();
        let c = TransformerConfig::new(VOCAB)
            .with_context(context)
            .with_d_model(8)
            .with_layers(1)
            .with_heads(2)
            .with_d_ff(8);
        let ckpt = Checkpoint { model: PolicyModel::Transformer(c.clone(), c.init(&dev)), task: Map::new() };
        ckpt.save(dir).unwrap();
        Checkpoint::load(dir, &dev).unwrap()
    }

    /// A hand-edited config.json whose shape the model cannot have is refused at load time,
    /// naming the file and the field.
    #[test]
    fn a_policy_config_the_passes_cannot_run_is_refused_naming_the_field() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("p");
        policy(&dir, 16);
        let original: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        for (pointer, value, expected) in
            [("/model/heads", 3, "`heads`"), ("/model/heads", 0, "`heads`"), ("/model/vocab", 20, "`vocab`")]
        {
            let mut meta = original.clone();
            *meta.pointer_mut(pointer).unwrap() = json!(value);
            std::fs::write(dir.join("config.json"), meta.to_string()).unwrap();
            let Err(e) = Checkpoint::load(&dir, &Device::flex()) else { panic!("{pointer} = {value}: loaded") };
            let e = e.to_string();
            assert!(e.contains(expected) && e.contains(&dir.display().to_string()), "{pointer} = {value}: {e}");
        }
    }

    /// The planted MLP's config: a MADE and a window MLP round-trip, a config from before
    /// `arch` existed loads as the window MLP, and impossible shapes or an unknown `arch` are
    /// refused naming the file and the field.
    #[test]
    fn mlp_configs_round_trip_and_bad_ones_are_refused() {
        use crate::models::mlp::MlpArch;
        let d = tempfile::tempdir().unwrap();
        let dev = Device::flex();
        for arch in [MlpArch::Made, MlpArch::Window] {
            let dir = d.path().join(format!("{arch:?}"));
            let c = MlpConfig::new(15, 10).with_arch(Some(arch)).with_hidden(8).with_embed(4);
            Checkpoint { model: PolicyModel::Mlp(c.clone(), c.init(&dev)), task: Map::new() }.save(&dir).unwrap();
            let PolicyModel::Mlp(back, _) = Checkpoint::load(&dir, &dev).unwrap().model else { panic!("an MLP") };
            assert_eq!(back, c);
        }
        let dir = d.path().join("Window");
        let original: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        let mut old = original.clone();
        old["model"].as_object_mut().unwrap().remove("arch");
        std::fs::write(dir.join("config.json"), old.to_string()).unwrap();
        let PolicyModel::Mlp(back, _) = Checkpoint::load(&dir, &dev).unwrap().model else { panic!("an MLP") };
        assert_eq!(back.arch(), MlpArch::Window, "no `arch`: the first version's window MLP");
        for (pointer, value, expected) in [
            ("/model/arch", json!("mades"), "unknown variant `mades`"),
            ("/model/hidden", json!(0), "`hidden`"),
            ("/model/vocab", json!(1), "`vocab`"),
        ] {
            let mut meta = original.clone();
            *meta.pointer_mut(pointer).unwrap() = value.clone();
            std::fs::write(dir.join("config.json"), meta.to_string()).unwrap();
            let Err(e) = Checkpoint::load(&dir, &dev) else { panic!("{pointer} = {value}: loaded") };
            let e = e.to_string();
            assert!(e.contains(expected) && e.contains(&dir.display().to_string()), "{pointer} = {value}: {e}");
        }
    }

    /// A prompt that fills the context is an error naming the problem, the lengths and the
    /// param to change; a prompt that leaves one token of room is accepted.
    #[test]
    fn a_prompt_that_fills_the_context_is_an_error_naming_the_problem() {
        let d = tempfile::tempdir().unwrap();
        let prompt = "1 + 2 = ?";
        let len = crate::tokenizer::encode_prompt(prompt).len();
        let row = |id| ProblemRow { problem_id: id, split: "train".into(), prompt: prompt.into(), answer: "3".into() };
        let fits = policy(&d.path().join("a"), len + 1);
        assert!(fits.check_prompts(&[row(1), row(2)], "sample").is_ok());
        let full = policy(&d.path().join("b"), len);
        let e = full.check_prompts(&[row(7)], "sample").unwrap_err().to_string();
        for part in ["`sample`", "problem 7", &format!("{len} tokens"), "`context`"] {
            assert!(e.contains(part), "missing {part:?} in: {e}");
        }
    }
}
