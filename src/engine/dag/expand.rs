//! Expansion of stages into instances, one per sweep point, with fingerprints and keys.
//!
//! Stages are visited in topological order. A stage's points come from (1) a natural join of
//! its inputs' points (a gathering input contributes its upstream's points minus the gathered
//! axes), (2) the whole-pipeline sweep restricted to the global params the stage reads, and
//! (3) the stage's own sweep. A stage therefore expands only along axes that can change what
//! it computes; instances whose fingerprints agree share one key and are computed once.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use super::{Binding, Instance, Point};
use crate::engine::hash::{CACHE_SCHEMA_VERSION, Digest, InputKey, StageFingerprint, digest_path};
use crate::engine::spec::interp::{Ns, Ref, Template};
use crate::engine::spec::sweep::MAX_POINTS;
use crate::engine::spec::{Gather, Pipeline, SpecError, StageDef, Tpl};
use crate::engine::value::Value;

/// A partial instance while joining inputs: point, bindings, upstream instance indices.
type Row = (Point, Vec<(String, Binding)>, Vec<usize>);

pub(super) struct Expander<'p> {
    pub p: &'p Pipeline,
    pub axes: Vec<String>,
    pub instances: Vec<Instance>,
    pub by_stage: Vec<Vec<usize>>,
    pub errors: Vec<SpecError>,
    global_points: Vec<Point>,
    dep_digests: HashMap<PathBuf, Result<Digest, String>>,
}

impl<'p> Expander<'p> {
    pub fn new(p: &'p Pipeline) -> Self {
        let mut axes: Vec<String> = Vec::new();
        if let Some(s) = &p.sweep {
            axes.extend(s.axes.iter().map(|(a, _)| a.clone()));
        }
        for st in &p.stages {
            if let Some(s) = &st.sweep {
                for (a, _) in &s.axes {
                    if !axes.contains(a) {
                        axes.push(a.clone());
                    }
                }
            }
        }
        let global_points = match &p.sweep {
            Some(s) => s
                .points()
                .into_iter()
                .map(|pt| pt.into_iter().enumerate().map(|(i, v)| (i as u32, v)).collect())
                .collect(),
            None => Vec::new(),
        };
        Expander {
            p,
            axes,
            instances: Vec::new(),
            by_stage: vec![Vec::new(); p.stages.len()],
            errors: Vec::new(),
            global_points,
            dep_digests: HashMap::new(),
        }
    }

    fn axis_id(&self, name: &str) -> Option<u32> {
        self.axes.iter().position(|a| a == name).map(|i| i as u32)
    }

    fn n_global(&self) -> u32 {
        self.p.sweep.as_ref().map(|s| s.axes.len() as u32).unwrap_or(0)
    }

    pub fn expand_stage(&mut self, si: usize) {
        let stage = &self.p.stages[si];
        let mut rows: Vec<Row> = vec![(Vec::new(), Vec::new(), Vec::new())];
        for need in &stage.needs {
            let up = &self.by_stage[need.stage];
            let file = self.p.stages[need.stage]
                .outputs
                .iter()
                .find(|(p, _)| *p == need.output)
                .map(|(_, f)| f.clone())
                .unwrap_or_default();
            let frags: Vec<Row> = match &need.gather {
                None => up
                    .iter()
                    .map(|&i| {
                        (
                            self.instances[i].point.clone(),
                            vec![(need.port.clone(), Binding::Single { instance: i, file: file.clone() })],
                            vec![i],
                        )
                    })
                    .collect(),
                Some(g) => {
                    let up_axes: Vec<u32> = up
                        .first()
                        .map(|&i| self.instances[i].point.iter().map(|(a, _)| *a).collect())
                        .unwrap_or_default();
                    let gathered: Vec<u32> = match g {
                        Gather::All => up_axes.clone(),
                        Gather::Axes(names) => {
                            let mut ids = Vec::new();
                            for n in names {
                                match self.axis_id(n).filter(|id| up_axes.contains(id)) {
                                    Some(id) => ids.push(id),
                                    None => {
                                        let cands: Vec<&str> =
                                            up_axes.iter().map(|&a| self.axes[a as usize].as_str()).collect();
                                        self.errors.push(
                                            SpecError::new("E066", need.loc, format!("stage `{}` gathers over axis `{n}`, but `{}` does not vary along it", stage.name, self.p.stages[need.stage].name))
                                                .help(crate::engine::spec::diag::suggest(n, &cands, "its axes")),
                                        );
                                        return;
                                    }
                                }
                            }
                            ids
                        }
                    };
                    let mut groups: BTreeMap<Point, Vec<(Point, usize)>> = BTreeMap::new();
                    for &i in up {
                        let (kept, sub): (Point, Point) =
                            self.instances[i].point.iter().cloned().partition(|(a, _)| !gathered.contains(a));
                        groups.entry(kept).or_default().push((sub, i));
                    }
                    groups
                        .into_iter()
                        .map(|(kept, members)| {
                            let ups: Vec<usize> = members.iter().map(|(_, i)| *i).collect();
                            let mut points: Vec<_> =
                                members.into_iter().map(|(sub, i)| (self.render_point(&sub), i)).collect();
                            // Sorted by hive path: the order of values in the YAML is no ingredient.
                            points.sort();
                            (kept, vec![(need.port.clone(), Binding::Gather { file: file.clone(), points })], ups)
                        })
                        .collect()
                }
            };
            rows = match join(rows, frags) {
                Ok(rows) => rows,
                Err(n) => return self.too_many_points(stage, n),
            };
        }
        // Whole-pipeline sweep: the axes of the global params this stage reads.
        let n_global = self.n_global();
        let mut wanted: Vec<u32> =
            stage.global_refs.iter().filter_map(|g| self.axis_id(g)).filter(|&a| a < n_global).collect();
        let received: Vec<u32> = rows
            .first()
            .map(|(pt, _, _)| pt.iter().map(|(a, _)| *a).filter(|&a| a < n_global).collect())
            .unwrap_or_default();
        // Global axes that arrive through different inputs were joined as a grid: they too are
        // filtered through the sweep's points, so zip and exclude hold downstream.
        if !wanted.is_empty() || received.len() > 1 {
            wanted.extend(received);
            wanted.sort_unstable();
            wanted.dedup();
            let mut proj: Vec<Point> = self
                .global_points
                .iter()
                .map(|pt| pt.iter().filter(|(a, _)| wanted.contains(a)).cloned().collect())
                .collect();
            proj.sort();
            proj.dedup();
            rows = match join(rows, proj.into_iter().map(|pt| (pt, Vec::new(), Vec::new())).collect()) {
                Ok(rows) => rows,
                Err(n) => return self.too_many_points(stage, n),
            };
        }
        // The stage's own sweep.
        if let Some(sweep) = &stage.sweep {
            let ids: Vec<u32> = sweep.axes.iter().filter_map(|(a, _)| self.axis_id(a)).collect();
            if let Some((pt, _, _)) = rows.first()
                && let Some((a, _)) = pt.iter().find(|(a, _)| ids.contains(a))
            {
                let name = &self.axes[*a as usize];
                self.errors.push(
                    SpecError::new(
                        "E067",
                        sweep.loc,
                        format!("stage `{}` sweeps axis `{name}`, which it already receives from upstream", stage.name),
                    )
                    .help("rename the axis, or gather it upstream with `stage[axis]`"),
                );
                return;
            }
            let own: Vec<Row> = sweep
                .points()
                .into_iter()
                .map(|vals| {
                    let mut pt: Point = ids.iter().copied().zip(vals).collect();
                    pt.sort_by_key(|(a, _)| *a);
                    (pt, Vec::new(), Vec::new())
                })
                .collect();
            rows = match join(rows, own) {
                Ok(rows) => rows,
                Err(n) => return self.too_many_points(stage, n),
            };
        }
        let deps = match self.stage_deps(stage) {
            Ok(d) => d,
            Err(e) => {
                self.errors.extend(e);
                return;
            }
        };
        for (point, bindings, upstream) in rows {
            match self.instance(si, point, bindings, upstream, &deps) {
                Ok(inst) => {
                    self.by_stage[si].push(self.instances.len());
                    self.instances.push(inst);
                }
                Err(e) => {
                    // One error per stage is enough: every point would repeat it.
                    self.errors.push(e);
                    return;
                }
            }
        }
    }

    fn too_many_points(&mut self, stage: &StageDef, n: u128) {
        self.errors.push(
            SpecError::new(
                "E072",
                stage.loc,
                format!(
                    "stage `{}` would have {n} instances (its inputs' points and its sweep combine as a grid), more than the limit of {MAX_POINTS}",
                    stage.name
                ),
            )
            .label("too many points")
            .help("gather an upstream axis (`needs: {x: stage[axis]}`), zip or exclude points, or split the study into several pipeline files"),
        );
    }

    fn stage_deps(&mut self, stage: &StageDef) -> Result<Vec<(String, Digest)>, Vec<SpecError>> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for (rel, loc) in &stage.deps {
            let path = crate::engine::spec::source::normalize(&stage.dir.join(rel));
            let d =
                self.dep_digests.entry(path.clone()).or_insert_with(|| digest_path(&path).map_err(|e| e.to_string()));
            match d {
                Ok(d) => out.push((normalize_rel(rel), d.clone())),
                Err(e) => errors.push(
                    SpecError::new(
                        "E070",
                        *loc,
                        format!("dependency `{rel}` of stage `{}` cannot be read: {e}", stage.name),
                    )
                    .label("missing file")
                    .help(format!("deps are relative to {}; create the file or fix the path", stage.dir.display())),
                ),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// `a=1/b=x` path segments of a point.
    pub fn render_point(&self, pt: &Point) -> Vec<(String, String)> {
        pt.iter().map(|(a, v)| (self.axes[*a as usize].clone(), v.render())).collect()
    }

    fn instance(
        &self,
        si: usize,
        point: Point,
        mut bindings: Vec<(String, Binding)>,
        mut upstream: Vec<usize>,
        deps: &[(String, Digest)],
    ) -> Result<Instance, SpecError> {
        let stage = &self.p.stages[si];
        let ctx = Ctx { ex: self, stage, point: &point, seed: self.p.seed, params: None };
        let seed = match &stage.seed {
            None => self.p.seed,
            Some(t) => match ctx.resolve(t)? {
                Value::Int(i) if i >= 0 => i as u64,
                other => {
                    return Err(SpecError::new(
                        "E071",
                        stage.loc,
                        format!("seed of stage `{}` resolved to {other}, expected a non-negative integer", stage.name),
                    )
                    .help("sweep seeds over integers"));
                }
            },
        };
        let ctx = Ctx { seed, ..ctx };
        let mut params = BTreeMap::new();
        for (k, t) in &stage.params {
            params.insert(k.clone(), ctx.resolve(t)?);
        }
        // Global params the command reads join the stage's params (a stage param of the same
        // name shadows them), so the command can keep `${params.*}` symbolic: a changed value
        // then shows up in `explain` as that param, not as "the command changed".
        if let Some(t) = &stage.cmd {
            for r in t.refs().filter(|r| r.ns == Ns::Params) {
                if !params.contains_key(r.head()) {
                    let head = Ref { ns: Ns::Params, path: vec![r.head().to_string()], loc: r.loc, raw: false };
                    let v = ctx.value(&head)?;
                    params.insert(r.head().to_string(), v);
                }
            }
        }
        // Files that a built-in kind reads by a param (the jsonl task's `path`) are deps too,
        // under the same name as in `deps:`, so listing the file there as well changes nothing.
        let mut deps = deps.to_vec();
        for name in &stage.path_params {
            if let Some(Value::Str(rel)) = params.get(name) {
                let path = crate::engine::spec::source::normalize(&stage.dir.join(rel));
                match digest_path(&path) {
                    Ok(d) => deps.push((normalize_rel(rel), d)),
                    Err(e) => {
                        return Err(SpecError::new(
                            "E070",
                            stage.loc,
                            format!(
                                "param `{name}` of stage `{}` names `{rel}`, which cannot be read: {e}",
                                stage.name
                            ),
                        )
                        .label("missing file")
                        .help(format!(
                            "the path is relative to {}; create the file or fix the param",
                            stage.dir.display()
                        )));
                    }
                }
            }
        }
        deps.sort();
        deps.dedup();
        let ctx = Ctx { params: Some(&params), ..ctx };
        let cmd = match &stage.cmd {
            Some(t) => {
                // Check nested paths resolve now rather than at execution.
                for r in t.refs().filter(|r| r.ns == Ns::Params) {
                    ctx.value(r)?;
                }
                Some(t.render_with(|r| ctx.render_cmd_ref(r))?)
            }
            None => None,
        };
        bindings.sort_by(|a, b| a.0.cmp(&b.0));
        upstream.sort_unstable();
        upstream.dedup();
        let inputs = bindings
            .iter()
            .map(|(port, b)| {
                let key = match b {
                    Binding::Single { instance, file } => {
                        InputKey::Single { key: self.instances[*instance].key.clone(), file: file.clone() }
                    }
                    Binding::Gather { file, points } => InputKey::Gather {
                        file: file.clone(),
                        points: points.iter().map(|(pt, i)| (hive(pt), self.instances[*i].key.clone())).collect(),
                    },
                };
                (port.clone(), key)
            })
            .collect();
        let mut outputs = stage.outputs.clone();
        outputs.sort();
        let fingerprint = StageFingerprint {
            schema: CACHE_SCHEMA_VERSION,
            kind: stage.kind.clone(),
            version: stage.version,
            params,
            cmd,
            outputs,
            inputs,
            deps,
            seed,
            compute: if stage.resources.gpus > 0 { "gpu".into() } else { "cpu".into() },
        };
        let key = fingerprint.key();
        let rendered = self.render_point(&point);
        let name = if rendered.is_empty() {
            stage.name.clone()
        } else {
            let parts: Vec<String> = rendered.iter().map(|(a, v)| format!("{a}={v}")).collect();
            format!("{}[{}]", stage.name, parts.join(","))
        };
        Ok(Instance { stage: si, point, name, inputs: bindings, upstream, fingerprint, key })
    }
}

/// `a=1/b=x`.
pub fn hive(pt: &[(String, String)]) -> String {
    pt.iter().map(|(a, v)| format!("{a}={v}")).collect::<Vec<_>>().join("/")
}

fn normalize_rel(rel: &str) -> String {
    crate::engine::spec::source::normalize(std::path::Path::new(rel)).to_string_lossy().replace('\\', "/")
}

/// Natural join of two row sets on their shared axes (every row of a set has the same axes).
/// The natural join of two sets of rows on their shared axes; `Err(n)` when it would have
/// `n` > [`MAX_POINTS`] rows (counted before anything is built, so an absurd product of
/// independent sweeps is an error, never an out-of-memory abort).
fn join(left: Vec<Row>, right: Vec<Row>) -> Result<Vec<Row>, u128> {
    let (Some(l0), Some(r0)) = (left.first(), right.first()) else {
        return Ok(Vec::new());
    };
    let shared: Vec<u32> = l0.0.iter().map(|(a, _)| *a).filter(|a| r0.0.iter().any(|(b, _)| b == a)).collect();
    let key =
        |pt: &Point| -> Vec<Value> { pt.iter().filter(|(a, _)| shared.contains(a)).map(|(_, v)| v.clone()).collect() };
    let mut index: HashMap<Vec<Value>, Vec<usize>> = HashMap::new();
    for (i, r) in right.iter().enumerate() {
        index.entry(key(&r.0)).or_default().push(i);
    }
    let total: u128 = left.iter().map(|l| index.get(&key(&l.0)).map_or(0, |m| m.len() as u128)).sum();
    if total > MAX_POINTS as u128 {
        return Err(total);
    }
    let mut out = Vec::with_capacity(total as usize);
    for l in &left {
        let Some(matches) = index.get(&key(&l.0)) else { continue };
        for &ri in matches {
            let r = &right[ri];
            let mut pt = l.0.clone();
            pt.extend(r.0.iter().filter(|(a, _)| !shared.contains(a)).cloned());
            pt.sort_by_key(|(a, _)| *a);
            let mut b = l.1.clone();
            b.extend(r.1.iter().cloned());
            let mut u = l.2.clone();
            u.extend(r.2.iter().copied());
            out.push((pt, b, u));
        }
    }
    Ok(out)
}

/// What references resolve against for one instance.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    ex: &'a Expander<'a>,
    stage: &'a StageDef,
    point: &'a Point,
    seed: u64,
    /// The stage's resolved params (available to `cmd`).
    params: Option<&'a BTreeMap<String, Value>>,
}

impl Ctx<'_> {
    fn sweep_value(&self, r: &Ref) -> Result<Value, SpecError> {
        let name = r.head();
        if let Some(id) = self.ex.axis_id(name)
            && let Some((_, v)) = self.point.iter().find(|(a, _)| *a == id)
        {
            return Ok(v.clone());
        }
        Err(SpecError::new("E068", r.loc, format!("`{r}`: axis `{name}` does not reach stage `{}`", self.stage.name))
            .label("axis not available here")
            .help("a stage sees the axes of its own sweep, of the stages it needs (unless gathered) and of the whole-pipeline sweep"))
    }

    fn param_value(&self, r: &Ref) -> Result<Value, SpecError> {
        let name = r.head();
        let root = match self.params.and_then(|p| p.get(name)) {
            Some(v) => v.clone(),
            None => {
                let global_axis = self.ex.axis_id(name).filter(|&a| a < self.ex.n_global());
                match global_axis.and_then(|id| self.point.iter().find(|(a, _)| *a == id)) {
                    Some((_, v)) => v.clone(),
                    None => self.ex.p.params.get(name).cloned().ok_or_else(|| unknown(r, self.stage))?,
                }
            }
        };
        let mut v = &root;
        for part in &r.path[1..] {
            match v {
                Value::Map(m) => v = m.get(part).ok_or_else(|| unknown(r, self.stage))?,
                _ => return Err(unknown(r, self.stage)),
            }
        }
        Ok(v.clone())
    }

    fn value(&self, r: &Ref) -> Result<Value, SpecError> {
        match r.ns {
            Ns::Params => self.param_value(r),
            Ns::Sweep => self.sweep_value(r),
            Ns::Seed => Ok(Value::Int(self.seed as i64)),
            Ns::Inputs | Ns::Outputs => Err(SpecError::new("E042", r.loc, format!("`{r}` is only available in `cmd`"))),
        }
    }

    fn render_cmd_ref(&self, r: &Ref) -> Result<Option<String>, SpecError> {
        match r.ns {
            Ns::Inputs | Ns::Outputs | Ns::Params | Ns::Seed => Ok(None),
            Ns::Sweep => {
                let v = self.value(r)?;
                Ok(Some(if r.raw { v.render() } else { crate::engine::exec::command::quote_value(&v) }))
            }
        }
    }

    fn resolve(&self, t: &Tpl) -> Result<Value, SpecError> {
        Ok(match t {
            Tpl::Lit(v) => v.clone(),
            Tpl::Str(tpl) => match tpl.single_ref() {
                Some(r) => self.value(r)?,
                None => Value::Str(render(tpl, self)?),
            },
            Tpl::List(l) => Value::List(l.iter().map(|t| self.resolve(t)).collect::<Result<_, _>>()?),
            Tpl::Map(m) => {
                Value::Map(m.iter().map(|(k, t)| Ok((k.clone(), self.resolve(t)?))).collect::<Result<_, SpecError>>()?)
            }
        })
    }
}

fn render(t: &Template, ctx: &Ctx<'_>) -> Result<String, SpecError> {
    t.render_final(|r| ctx.value(r).map(|v| v.render()))
}

fn unknown(r: &Ref, stage: &StageDef) -> SpecError {
    SpecError::new("E043", r.loc, format!("`{r}` does not resolve in stage `{}`", stage.name))
        .help("check the param name and, for a dotted path, that each level is a mapping")
}
