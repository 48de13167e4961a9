//! Why a stage instance must run: a pure comparison of two fingerprints into typed reasons.
//! Rendering the reasons into sentences happens in `Display`, separately from the comparison.

use std::collections::BTreeSet;
use std::fmt;

use super::fingerprint::{InputKey, StageFingerprint};
use crate::engine::value::Value;

/// One ingredient that differs between the previous run and now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirtyReason {
    /// No earlier run of this instance is recorded.
    NeverRan,
    /// The key is unchanged but its cache entry is gone or broken.
    EntryMissing,
    /// The key changed, but the previous result's manifest is gone (gc), so the changed
    /// ingredient cannot be named.
    PreviousUnknown,
    SchemaChanged {
        old: u32,
        new: u32,
    },
    KindChanged {
        old: String,
        new: String,
    },
    VersionChanged {
        kind: String,
        old: u32,
        new: u32,
    },
    ParamChanged {
        name: String,
        old: Value,
        new: Value,
    },
    ParamAdded {
        name: String,
        value: Value,
    },
    ParamRemoved {
        name: String,
        value: Value,
    },
    CmdChanged {
        old: Option<String>,
        new: Option<String>,
    },
    OutputsChanged,
    /// The upstream feeding `port` has a different key (it changed or will rerun).
    InputChanged {
        port: String,
        upstream: Option<String>,
    },
    InputAdded {
        port: String,
    },
    InputRemoved {
        port: String,
    },
    DepChanged {
        path: String,
    },
    DepAdded {
        path: String,
    },
    DepRemoved {
        path: String,
    },
    SeedChanged {
        old: u64,
        new: u64,
    },
    ComputeChanged {
        old: String,
        new: String,
    },
}

/// Compare the previous fingerprint of an instance with the current one.
/// `upstream_name` maps an input port to the current upstream instance name, for messages.
pub fn compare(
    old: &StageFingerprint,
    new: &StageFingerprint,
    upstream_name: &dyn Fn(&str) -> Option<String>,
) -> Vec<DirtyReason> {
    let StageFingerprint { schema, kind, version, params, cmd, outputs, inputs, deps, seed, compute } = new;
    let mut out = Vec::new();
    if old.schema != *schema {
        out.push(DirtyReason::SchemaChanged { old: old.schema, new: *schema });
    }
    if old.kind != *kind {
        out.push(DirtyReason::KindChanged { old: old.kind.clone(), new: kind.clone() });
    } else if old.version != *version {
        out.push(DirtyReason::VersionChanged { kind: kind.clone(), old: old.version, new: *version });
    }
    let names: BTreeSet<&String> = old.params.keys().chain(params.keys()).collect();
    for name in names {
        match (old.params.get(name), params.get(name)) {
            (Some(a), Some(b)) if a != b => {
                out.push(DirtyReason::ParamChanged { name: name.clone(), old: a.clone(), new: b.clone() })
            }
            (None, Some(b)) => out.push(DirtyReason::ParamAdded { name: name.clone(), value: b.clone() }),
            (Some(a), None) => out.push(DirtyReason::ParamRemoved { name: name.clone(), value: a.clone() }),
            _ => {}
        }
    }
    if old.cmd != *cmd {
        out.push(DirtyReason::CmdChanged { old: old.cmd.clone(), new: cmd.clone() });
    }
    if old.outputs != *outputs {
        out.push(DirtyReason::OutputsChanged);
    }
    let ports: BTreeSet<&String> = old.inputs.iter().map(|(p, _)| p).chain(inputs.iter().map(|(p, _)| p)).collect();
    let find = |list: &'_ [(String, InputKey)], p: &str| list.iter().find(|(q, _)| q == p).map(|(_, k)| k.clone());
    for port in ports {
        match (find(&old.inputs, port), find(inputs, port)) {
            (Some(a), Some(b)) if a != b => {
                out.push(DirtyReason::InputChanged { port: port.clone(), upstream: upstream_name(port) })
            }
            (None, Some(_)) => out.push(DirtyReason::InputAdded { port: port.clone() }),
            (Some(_), None) => out.push(DirtyReason::InputRemoved { port: port.clone() }),
            _ => {}
        }
    }
    let paths: BTreeSet<&String> = old.deps.iter().map(|(p, _)| p).chain(deps.iter().map(|(p, _)| p)).collect();
    for path in paths {
        let a = old.deps.iter().find(|(p, _)| p == path);
        let b = deps.iter().find(|(p, _)| p == path);
        match (a, b) {
            (Some(a), Some(b)) if a.1 != b.1 => out.push(DirtyReason::DepChanged { path: path.clone() }),
            (None, Some(_)) => out.push(DirtyReason::DepAdded { path: path.clone() }),
            (Some(_), None) => out.push(DirtyReason::DepRemoved { path: path.clone() }),
            _ => {}
        }
    }
    if old.seed != *seed {
        out.push(DirtyReason::SeedChanged { old: old.seed, new: *seed });
    }
    if old.compute != *compute {
        out.push(DirtyReason::ComputeChanged { old: old.compute.clone(), new: compute.clone() });
    }
    out
}

impl fmt::Display for DirtyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirtyReason::NeverRan => write!(f, "no earlier run of this stage is recorded in this cache"),
            DirtyReason::EntryMissing => {
                write!(f, "nothing changed, but the cached result is missing or broken (removed by gc or corrupted)")
            }
            DirtyReason::PreviousUnknown => write!(
                f,
                "something it depends on changed; the previous result was removed (gc), so it cannot say what"
            ),
            DirtyReason::SchemaChanged { old, new } => {
                write!(f, "the cache schema changed {old} -> {new} (a new pav-pipeline release)")
            }
            DirtyReason::KindChanged { old, new } => write!(f, "kind changed `{old}` -> `{new}`"),
            DirtyReason::VersionChanged { kind, old, new } => {
                write!(f, "the implementation of kind `{kind}` changed (version {old} -> {new})")
            }
            DirtyReason::ParamChanged { name, old, new } => write!(f, "param `{name}` changed {old} -> {new}"),
            DirtyReason::ParamAdded { name, value } => write!(f, "param `{name}` was added (= {value})"),
            DirtyReason::ParamRemoved { name, value } => write!(f, "param `{name}` was removed (was {value})"),
            DirtyReason::CmdChanged { old, new } => write!(
                f,
                "the command changed from `{}` to `{}`",
                old.as_deref().unwrap_or("<none>"),
                new.as_deref().unwrap_or("<none>")
            ),
            DirtyReason::OutputsChanged => write!(f, "the declared outputs changed"),
            DirtyReason::InputChanged { port, upstream: Some(up) } => {
                write!(f, "input `{port}` changed: upstream `{up}` has a new result")
            }
            DirtyReason::InputChanged { port, upstream: None } => write!(f, "input `{port}` changed"),
            DirtyReason::InputAdded { port } => write!(f, "input `{port}` was added"),
            DirtyReason::InputRemoved { port } => write!(f, "input `{port}` was removed"),
            DirtyReason::DepChanged { path } => write!(f, "dependency file `{path}` changed"),
            DirtyReason::DepAdded { path } => write!(f, "dependency file `{path}` was added to deps"),
            DirtyReason::DepRemoved { path } => write!(f, "dependency file `{path}` was removed from deps"),
            DirtyReason::SeedChanged { old, new } => write!(f, "seed changed {old} -> {new}"),
            DirtyReason::ComputeChanged { old, new } => write!(f, "compute class changed `{old}` -> `{new}`"),
        }
    }
}
