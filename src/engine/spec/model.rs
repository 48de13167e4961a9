//! The validated pipeline: what everything after `spec` takes. Nothing downstream can see
//! YAML or an unvalidated spec.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use super::interp::Template;
use super::source::{Loc, Sources};
use crate::engine::value::Value;

/// A param value that may contain references, kept as parsed until a sweep point is known.
#[derive(Debug, Clone, PartialEq)]
pub enum Tpl {
    /// No reference anywhere inside.
    Lit(Value),
    /// A string with references (one exact reference keeps the referenced type).
    Str(Template),
    List(Vec<Tpl>),
    Map(BTreeMap<String, Tpl>),
}

impl Tpl {
    /// Visit every template inside.
    pub fn templates<'a>(&'a self, out: &mut Vec<&'a Template>) {
        match self {
            Tpl::Lit(_) => {}
            Tpl::Str(t) => out.push(t),
            Tpl::List(l) => l.iter().for_each(|t| t.templates(out)),
            Tpl::Map(m) => m.values().for_each(|t| t.templates(out)),
        }
    }
}

/// How an input port takes a swept upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gather {
    /// `stage[*]`: every axis of the upstream.
    All,
    /// `stage[a,b]`: only these axes; the others still expand this stage.
    Axes(Vec<String>),
}

/// One entry of `needs:`.
#[derive(Debug, Clone)]
pub struct Need {
    pub port: String,
    /// Index of the upstream stage in [`Pipeline::stages`].
    pub stage: usize,
    /// Upstream output port (resolved: the single output when not named).
    pub output: String,
    pub gather: Option<Gather>,
    pub loc: Option<Loc>,
}

/// A sweep: axes with values, combined as a grid, with zipped groups and excluded points.
#[derive(Debug, Clone, Default)]
pub struct Sweep {
    /// Axis name (for the global sweep, the param name without `params.`) and its values.
    pub axes: Vec<(String, Vec<Value>)>,
    /// Groups of axes that advance together (equal lengths, validated).
    pub zip: Vec<Vec<String>>,
    /// Points to drop: every listed axis must match.
    pub exclude: Vec<BTreeMap<String, Value>>,
    pub loc: Option<Loc>,
}

/// Resources a stage asks of the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    pub cpus: u32,
    pub gpus: u32,
}

impl Default for Resources {
    fn default() -> Self {
        Resources { cpus: 1, gpus: 0 }
    }
}

/// One validated stage definition (before sweep expansion).
#[derive(Debug, Clone)]
pub struct StageDef {
    pub name: String,
    pub loc: Option<Loc>,
    pub kind: String,
    /// Implementation version of the kind (`COMMAND_VERSION` for `command`).
    pub version: u32,
    /// Params of a built-in kind whose value is a file it reads (see `KindInfo::path_params`).
    pub path_params: Vec<String>,
    /// Directory of the file that defines the stage: the command's working directory and the
    /// base of `deps`.
    pub dir: PathBuf,
    pub params: BTreeMap<String, Tpl>,
    pub cmd: Option<Template>,
    /// Declared file dependencies, relative to `dir`, with their locations.
    pub deps: Vec<(String, Option<Loc>)>,
    /// Output port -> file name inside the stage directory, in declaration order.
    pub outputs: Vec<(String, String)>,
    pub needs: Vec<Need>,
    pub sweep: Option<Sweep>,
    pub seed: Option<Tpl>,
    pub resources: Resources,
    /// Output tables `pipeline report` shows: (port, columns; empty = every column). Not part
    /// of the stage's identity.
    pub report: Vec<(String, Vec<String>)>,
    /// `timeout:` of a command stage: killed and failed when it runs longer. Not part of the
    /// stage's identity.
    pub timeout: Option<std::time::Duration>,
    /// Global params this stage reads (through its params, command or seed).
    pub global_refs: BTreeSet<String>,
}

/// A validated pipeline.
#[derive(Debug)]
pub struct Pipeline {
    /// Name used for views and last/ pointers: `name:` in the file, else the file stem.
    pub name: String,
    pub file: PathBuf,
    pub sources: Arc<Sources>,
    pub params: BTreeMap<String, Value>,
    pub seed: u64,
    /// The whole-pipeline sweep over params (axis = param name).
    pub sweep: Option<Sweep>,
    pub stages: Vec<StageDef>,
}

impl Pipeline {
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }
}
