//! From a validated pipeline to the graph of stage instances.
//!
//! [`graph`] orders the stages (and names any cycle), [`expand`] turns each stage into one
//! instance per sweep point with its fingerprint and key, and [`select`] picks the instances
//! a command targets plus everything upstream of them. Instances are stored in topological
//! order: every instance comes after all instances it reads from.

pub mod expand;
pub mod graph;
pub mod select;

use std::sync::Arc;

use crate::engine::hash::{StageFingerprint, StageKey};
use crate::engine::spec::{Pipeline, SpecErrors};
use crate::engine::value::Value;

/// A sweep point: (axis id, value), sorted by axis id.
pub type Point = Vec<(u32, Value)>;

/// What feeds one input port of an instance.
#[derive(Debug, Clone)]
pub enum Binding {
    /// One output file of one upstream instance.
    Single { instance: usize, file: String },
    /// The same output of several upstream instances, each under its hive path.
    Gather { file: String, points: Vec<(Vec<(String, String)>, usize)> },
}

/// One stage at one sweep point.
#[derive(Debug, Clone)]
pub struct Instance {
    pub stage: usize,
    pub point: Point,
    /// `stage` or `stage[axis=value,...]`.
    pub name: String,
    /// Input port -> binding, sorted by port.
    pub inputs: Vec<(String, Binding)>,
    /// Upstream instance indices (sorted, unique).
    pub upstream: Vec<usize>,
    pub fingerprint: StageFingerprint,
    pub key: StageKey,
}

/// The expanded pipeline.
#[derive(Debug)]
pub struct Dag {
    pub pipeline: Pipeline,
    /// Axis id -> axis name.
    pub axes: Vec<String>,
    /// In topological order.
    pub instances: Vec<Instance>,
    /// Stage index -> its instances.
    pub by_stage: Vec<Vec<usize>>,
}

impl Dag {
    /// Order the stages, expand sweeps, compute every key.
    pub fn build(pipeline: Pipeline) -> Result<Dag, SpecErrors> {
        let order = match graph::topo_order(&pipeline) {
            Ok(o) => o,
            Err(errors) => return Err(SpecErrors::new(Arc::clone(&pipeline.sources), errors)),
        };
        let mut ex = expand::Expander::new(&pipeline);
        for si in order {
            ex.expand_stage(si);
        }
        let expand::Expander { axes, instances, by_stage, errors, .. } = ex;
        if !errors.is_empty() {
            return Err(SpecErrors::new(Arc::clone(&pipeline.sources), errors));
        }
        Ok(Dag { pipeline, axes, instances, by_stage })
    }

    /// The point of an instance as (axis name, rendered value) pairs.
    pub fn point_segments(&self, i: usize) -> Vec<(String, String)> {
        self.instances[i].point.iter().map(|(a, v)| (self.axes[*a as usize].clone(), v.render())).collect()
    }

    pub fn stage_name(&self, i: usize) -> &str {
        &self.pipeline.stages[self.instances[i].stage].name
    }
}
