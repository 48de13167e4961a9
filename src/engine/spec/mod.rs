//! The pipeline spec: YAML in, validated [`Pipeline`] out.
//!
//! Two phases (ripgrep's low/high args): marked-yaml parses each file into nodes that carry
//! their position ([`yaml`], [`doc`] merges `extends`), then [`stage`] and [`validate`] build
//! the typed model in [`model`]. Every problem found is collected as a [`SpecError`] with a
//! location; [`load`] returns all of them at once, sorted, or the pipeline.
//!
//! Values keep their YAML type (`3` int, `3.0` float, `"3"` string); `${...}` references
//! ([`interp`]) stay parsed as templates until the DAG expands sweep points.

pub mod diag;
pub mod doc;
pub mod interp;
pub mod model;
pub mod source;
pub mod stage;
pub mod sweep;
pub mod validate;
pub mod yaml;

use std::path::Path;
use std::sync::Arc;

pub use diag::{SpecError, SpecErrors};
pub use model::{Gather, Need, Pipeline, Resources, StageDef, Sweep, Tpl};
pub use source::{Loc, Sources};

use crate::engine::exec::KindInfo;
use crate::engine::value::Value;

/// Load and validate a pipeline file.
pub fn load(path: &Path, kinds: &[KindInfo]) -> Result<Pipeline, SpecErrors> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let abs = source::normalize(&cwd.join(path));
    let mut sources = Sources::default();
    let mut errors = Vec::new();
    let doc = doc::load_doc(&abs, &mut sources, &mut errors, None, &mut Vec::new());
    let Some(doc) = doc else {
        return Err(SpecErrors::new(Arc::new(sources), errors));
    };

    let params = doc.params.iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect();
    let seed = match &doc.seed {
        None => 0,
        Some(n) => match n.as_scalar().map(yaml::scalar_value) {
            Some(Value::Int(i)) if i >= 0 => i as u64,
            _ => {
                errors.push(yaml::type_error(n, "seed", "a non-negative integer"));
                0
            }
        },
    };
    let global_sweep = doc.sweep.as_ref().and_then(|n| sweep::parse_sweep(n, "sweep", true, &mut errors));
    if let Some(s) = &global_sweep {
        validate::check_global_sweep(s, &params, &mut errors);
    }
    let mut stages = Vec::new();
    let mut raw_needs = Vec::new();
    for raw in &doc.stages {
        if let Some((def, needs)) = stage::parse_stage(raw, kinds, &mut errors) {
            stages.push(def);
            raw_needs.push(needs);
        }
    }
    // Only link when every stage parsed (every stage with a mapping body does): otherwise a
    // failed stage would show up as "unknown stage" in every stage that needs it.
    if stages.len() == doc.stages.len() {
        validate::link(&mut stages, raw_needs, &params, global_sweep.as_ref(), kinds, &mut errors);
    }
    for (name, loc) in &doc.added_params {
        if !stages.iter().any(|s| s.global_refs.contains(name)) {
            let cands: Vec<&str> = doc.params.keys().filter(|k| *k != name).map(String::as_str).collect();
            errors.push(
                SpecError::new(
                    "E024",
                    *loc,
                    format!("param `{name}` is not defined by the extended pipeline and no stage uses it"),
                )
                .label("unused param")
                .help(diag::suggest(name, &cands, "params of the extended pipeline")),
            );
        }
    }
    let sources = Arc::new(sources);
    if !errors.is_empty() {
        return Err(SpecErrors::new(sources, errors));
    }
    let name = doc.name.clone().unwrap_or_else(|| {
        abs.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "pipeline".into())
    });
    Ok(Pipeline { name, file: abs, sources, params, seed, sweep: global_sweep, stages })
}
