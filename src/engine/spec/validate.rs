//! Phase 2 of validation: everything that needs the whole pipeline: needs resolved to
//! upstream outputs, `${...}` references checked against params, ports and axes, the global
//! sweep checked against global params, and the global params each stage reads.

use std::collections::{BTreeMap, BTreeSet};

use super::diag::{SpecError, suggest};
use super::interp::{Ns, Ref};
use super::model::{Need, StageDef, Sweep, Tpl};
use super::stage::RawNeed;
use crate::engine::exec::KindInfo;
use crate::engine::value::Value;

/// Resolve `needs` of every stage and check references. `raw_needs[i]` belongs to `stages[i]`.
pub fn link(
    stages: &mut [StageDef],
    raw_needs: Vec<Vec<RawNeed>>,
    params: &BTreeMap<String, Value>,
    global_sweep: Option<&Sweep>,
    kinds: &[KindInfo],
    errors: &mut Vec<SpecError>,
) {
    let names: Vec<String> = stages.iter().map(|s| s.name.clone()).collect();
    let index: std::collections::HashMap<&str, usize> =
        names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let outputs: Vec<Vec<(String, String)>> = stages.iter().map(|s| s.outputs.clone()).collect();
    let global_axes: BTreeSet<&str> =
        global_sweep.map(|s| s.axes.iter().map(|(a, _)| a.as_str()).collect()).unwrap_or_default();
    let all_axes: BTreeSet<String> = stages
        .iter()
        .filter_map(|s| s.sweep.as_ref())
        .flat_map(|s| s.axes.iter().map(|(a, _)| a.clone()))
        .chain(global_axes.iter().map(|a| a.to_string()))
        .collect();

    for (stage, raw) in stages.iter_mut().zip(raw_needs) {
        // Every declared input port, resolved or not: a broken need is reported once, at the
        // need, and not again at each `${inputs.PORT}` that uses it.
        let declared_ports: BTreeSet<String> = raw.iter().map(|rn| rn.port.clone()).collect();
        // Needs.
        for rn in raw {
            let Some(up) = index.get(rn.stage.as_str()).copied() else {
                let cands: Vec<&str> = names.iter().map(String::as_str).collect();
                errors.push(
                    SpecError::new(
                        "E060",
                        rn.loc,
                        format!("stage `{}` needs unknown stage `{}`", stage.name, rn.stage),
                    )
                    .label("unknown stage")
                    .help(suggest(&rn.stage, &cands, "stages")),
                );
                continue;
            };
            let ups = &outputs[up];
            let output = match &rn.output {
                Some(o) if ups.iter().any(|(p, _)| p == o) => o.clone(),
                Some(o) => {
                    let cands: Vec<&str> = ups.iter().map(|(p, _)| p.as_str()).collect();
                    errors.push(
                        SpecError::new("E061", rn.loc, format!("stage `{}` has no output `{o}`", rn.stage))
                            .label("unknown output port")
                            .help(suggest(o, &cands, &format!("outputs of `{}`", rn.stage))),
                    );
                    continue;
                }
                None if ups.len() == 1 => ups[0].0.clone(),
                None => {
                    let cands: Vec<String> = ups.iter().map(|(p, _)| format!("`{}.{p}`", rn.stage)).collect();
                    let msg = if ups.is_empty() {
                        format!("stage `{}` has no outputs to read", rn.stage)
                    } else {
                        format!("stage `{}` has {} outputs; name the one to read", rn.stage, ups.len())
                    };
                    errors.push(SpecError::new("E062", rn.loc, msg).help(if cands.is_empty() {
                        "declare `outputs:` on the upstream stage".to_string()
                    } else {
                        format!("write one of {}", cands.join(", "))
                    }));
                    continue;
                }
            };
            if stage.needs.iter().any(|n| n.port == rn.port) {
                errors.push(
                    SpecError::new(
                        "E063",
                        rn.loc,
                        format!("input port `{}` of stage `{}` is given twice", rn.port, stage.name),
                    )
                    .help("give each input its own port name"),
                );
                continue;
            }
            stage.needs.push(Need { port: rn.port, stage: up, output, gather: rn.gather, loc: rn.loc });
        }
        if let Some(info) = kinds.iter().find(|k| k.name == stage.kind) {
            for n in &stage.needs {
                if !info.inputs.contains(&n.port) {
                    let cands: Vec<&str> = info.inputs.iter().map(String::as_str).collect();
                    errors.push(
                        SpecError::new("E064", n.loc, format!("kind `{}` has no input `{}`", info.name, n.port))
                            .help(suggest(&n.port, &cands, "its inputs")),
                    );
                }
            }
            for p in &info.inputs {
                if !info.optional_inputs.contains(p) && !stage.needs.iter().any(|n| n.port == *p) {
                    errors.push(
                        SpecError::new(
                            "E065",
                            stage.loc,
                            format!("stage `{}` (kind `{}`) has no input `{p}`", stage.name, info.name),
                        )
                        .help(format!("add `needs: {{{p}: <stage>}}`")),
                    );
                }
            }
        }

        // References.
        let own_axes: BTreeSet<&str> =
            stage.sweep.as_ref().map(|s| s.axes.iter().map(|(a, _)| a.as_str()).collect()).unwrap_or_default();
        for a in &own_axes {
            if global_axes.contains(a) {
                errors.push(
                    SpecError::new(
                        "E057",
                        stage.sweep.as_ref().and_then(|s| s.loc),
                        format!("stage `{}` sweeps axis `{a}`, which the whole-pipeline sweep also sweeps", stage.name),
                    )
                    .help("rename the stage's axis"),
                );
            }
        }
        let mut globals = BTreeSet::new();
        let check = |r: &Ref,
                     ctx: RefContext,
                     stage: &StageDef,
                     globals: &mut BTreeSet<String>,
                     errors: &mut Vec<SpecError>| {
            let name = r.head();
            let err = |msg: String, help: String| SpecError::new("E042", r.loc, msg).label("here").help(help);
            match (r.ns, ctx) {
                (Ns::Inputs | Ns::Outputs, RefContext::Params | RefContext::Seed) => {
                    errors.push(err(
                        format!("`{r}` cannot be used in stage params or seed"),
                        "input and output paths exist only in `cmd`".into(),
                    ));
                }
                (Ns::Seed, RefContext::Seed) => errors
                    .push(err("the seed cannot reference itself".into(), "write a number or `${sweep.AXIS}`".into())),
                (Ns::Seed, _) => {}
                (Ns::Inputs, RefContext::Cmd) => {
                    if !declared_ports.contains(name) {
                        let cands: Vec<&str> = declared_ports.iter().map(String::as_str).collect();
                        errors.push(err(
                            format!("stage `{}` has no input port `{name}`", stage.name),
                            suggest(name, &cands, "inputs declared in `needs`"),
                        ));
                    }
                }
                (Ns::Outputs, RefContext::Cmd) => {
                    if !stage.outputs.iter().any(|(p, _)| p == name) {
                        let cands: Vec<&str> = stage.outputs.iter().map(|(p, _)| p.as_str()).collect();
                        errors.push(err(
                            format!("stage `{}` has no output port `{name}`", stage.name),
                            suggest(name, &cands, "outputs declared in `outputs`"),
                        ));
                    }
                }
                (Ns::Params, ctx) => {
                    let own = ctx == RefContext::Cmd && stage.params.contains_key(name);
                    if own {
                        return;
                    }
                    if params.contains_key(name) {
                        globals.insert(name.to_string());
                        return;
                    }
                    let mut cands: Vec<&str> = params.keys().map(String::as_str).collect();
                    if ctx == RefContext::Cmd {
                        cands.extend(stage.params.keys().map(String::as_str));
                    }
                    let hint = if ctx == RefContext::Params && stage.params.contains_key(name) {
                        "stage params cannot reference each other; move the value to the global `params:`".to_string()
                    } else {
                        suggest(name, &cands, "params")
                    };
                    errors.push(err(format!("unknown param `{name}` in `{r}` (stage `{}`)", stage.name), hint));
                }
                (Ns::Sweep, _) => {
                    if global_axes.contains(name) {
                        globals.insert(name.to_string());
                    } else if !all_axes.contains(name) {
                        let cands: Vec<&str> = all_axes.iter().map(String::as_str).collect();
                        errors.push(err(
                            format!("unknown sweep axis `{name}` in `{r}` (stage `{}`)", stage.name),
                            suggest(name, &cands, "sweep axes"),
                        ));
                    }
                }
            }
        };
        let mut param_tpls = Vec::new();
        stage.params.values().for_each(|t| t.templates(&mut param_tpls));
        for t in param_tpls {
            for r in t.refs() {
                check(r, RefContext::Params, stage, &mut globals, errors);
            }
        }
        if let Some(Tpl::Str(t)) = &stage.seed {
            for r in t.refs() {
                check(r, RefContext::Seed, stage, &mut globals, errors);
            }
        }
        if let Some(cmd) = &stage.cmd {
            for r in cmd.refs() {
                check(r, RefContext::Cmd, stage, &mut globals, errors);
            }
        }
        stage.global_refs = globals;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefContext {
    Params,
    Seed,
    Cmd,
}

/// Check the global sweep's axes name global params.
pub fn check_global_sweep(sweep: &Sweep, params: &BTreeMap<String, Value>, errors: &mut Vec<SpecError>) {
    let cands: Vec<&str> = params.keys().map(String::as_str).collect();
    for (axis, _) in &sweep.axes {
        if !params.contains_key(axis) {
            errors.push(
                SpecError::new(
                    "E058",
                    sweep.loc,
                    format!("the whole-pipeline sweep sweeps `params.{axis}`, but there is no global param `{axis}`"),
                )
                .help(suggest(axis, &cands, "global params")),
            );
        }
    }
}
