//! The registry of built-in kinds: adapts `pav_stages`' [`Stage`] contract to the engine's
//! [`KindRegistry`]. The only module of this crate that touches `pav_stages`.

use std::collections::BTreeMap;
use std::io::Write;

use pav_stages::{Stage, StageContext};

use crate::engine::exec::{Job, KindInfo, KindRegistry};

pub struct Builtins {
    stages: Vec<Box<dyn Stage>>,
    infos: Vec<KindInfo>,
}

impl Builtins {
    pub fn new() -> Self {
        let stages = pav_stages::builtin_kinds();
        let infos = stages
            .iter()
            .map(|s| {
                let i = s.info();
                KindInfo {
                    name: i.kind.to_string(),
                    version: s.version(),
                    doc: i.doc.to_string(),
                    params: i.params.iter().map(|p| p.to_string()).collect(),
                    inputs: i.inputs.iter().map(|p| p.name.to_string()).collect(),
                    optional_inputs: i.inputs.iter().filter(|p| p.optional).map(|p| p.name.to_string()).collect(),
                    outputs: i.outputs.iter().map(|p| (p.name.to_string(), p.file.to_string())).collect(),
                    path_params: s.path_params().iter().map(|p| p.to_string()).collect(),
                }
            })
            .collect();
        Builtins { stages, infos }
    }
}

impl Default for Builtins {
    fn default() -> Self {
        Self::new()
    }
}

impl KindRegistry for Builtins {
    fn kinds(&self) -> &[KindInfo] {
        &self.infos
    }

    fn run(&self, job: &Job<'_>, log: &mut dyn Write) -> Result<(), String> {
        let stage = self
            .stages
            .iter()
            .find(|s| s.info().kind == job.kind)
            .ok_or_else(|| format!("unknown built-in kind `{}`", job.kind))?;
        let params: serde_json::Map<String, serde_json::Value> =
            job.params.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
        let inputs: BTreeMap<String, std::path::PathBuf> = job.inputs.clone();
        let mut ctx =
            StageContext { params: &params, seed: job.seed, dir: job.dir, inputs: &inputs, outputs: &job.outputs, log };
        stage.run(&mut ctx).map_err(|e| e.to_string())
    }
}
