//! One stage: raw YAML mapping -> [`StageDef`] (phase 1, local checks only).

use std::collections::BTreeMap;

use marked_yaml::Node;
use marked_yaml::types::MarkedScalarNode;

use super::diag::{SpecError, suggest};
use super::doc::RawStage;
use super::interp::Template;
use super::model::{Gather, Resources, StageDef, Tpl};
use super::source::Loc;
use super::yaml::{check_keys, check_name, is_name, key_loc, node_loc, node_value, scalar_value, type_error};
use crate::engine::exec::KindInfo;
use crate::engine::value::Value;

pub const STAGE_KEYS: &[&str] =
    &["kind", "doc", "cmd", "deps", "outputs", "needs", "params", "sweep", "seed", "resources", "report", "timeout"];
pub const RESERVED_FILES: &[&str] = &["manifest.json", "manifest.json.tmp", "stage.log"];

/// A `needs:` entry before the upstream's outputs are known.
#[derive(Debug, Clone)]
pub struct RawNeed {
    pub port: String,
    pub stage: String,
    pub output: Option<String>,
    pub gather: Option<Gather>,
    pub loc: Option<Loc>,
}

/// Parse one stage. Needs are returned separately: they are resolved once every stage is known.
pub fn parse_stage(
    raw: &RawStage,
    kinds: &[KindInfo],
    errors: &mut Vec<SpecError>,
) -> Option<(StageDef, Vec<RawNeed>)> {
    let name = &raw.name;
    let map = &raw.node;
    check_keys(map, STAGE_KEYS, &format!("stage `{name}`"), errors);
    let kind_node = map.get_node("kind")?;
    let Some(kind) = kind_node.as_scalar().map(|s| s.as_str().to_string()) else {
        errors.push(type_error(kind_node, &format!("stages.{name}.kind"), "a kind name"));
        return None;
    };
    let info = kinds.iter().find(|k| k.name == kind);
    // An unknown kind is reported, and the stage is still checked as far as possible (so that
    // every error of the file shows up in one run).
    let known = kind == "command" || info.is_some();
    if !known {
        let mut names: Vec<&str> = vec!["command"];
        names.extend(kinds.iter().map(|k| k.name.as_str()));
        errors.push(
            SpecError::new("E016", node_loc(kind_node), format!("unknown kind `{kind}` in stage `{name}`"))
                .label("unknown kind")
                .help(suggest(&kind, &names, "known kinds")),
        );
    }
    let field = |f: &str| format!("stages.{name}.{f}");

    let cmd = match (map.get_node("cmd"), info) {
        (Some(n), None) => match n.as_scalar() {
            Some(s) => template(s, errors).inspect(|t| {
                for r in t.refs_inside_shell_quotes() {
                    errors.push(
                        SpecError::new("E075", r.loc, format!("`{r}` stands inside quotes in the command of stage `{name}`"))
                            .label("quoted twice")
                            .help(format!(
                                "values are shell-quoted for you: remove the quotes around it, or write `${{raw:{}}}` to quote it yourself",
                                r.to_string().trim_start_matches("${").trim_end_matches('}')
                            )),
                    );
                }
            }),
            None => {
                errors.push(type_error(n, &field("cmd"), "a shell command string"));
                None
            }
        },
        (Some(n), Some(_)) => {
            errors.push(
                SpecError::new(
                    "E031",
                    node_loc(n),
                    format!("stage `{name}` of built-in kind `{kind}` cannot have `cmd`"),
                )
                .help("remove `cmd:`, or use `kind: command` to run your own program"),
            );
            None
        }
        (None, None) if !known => None,
        // A misspelt `cmd` (`cmdd: ...`) is already reported as an unknown key with a did-you-mean.
        (None, None)
            if map.keys().any(|k| k.as_str() != "cmd" && strsim::damerau_levenshtein(k.as_str(), "cmd") <= 1) =>
        {
            None
        }
        (None, None) => {
            errors.push(
                SpecError::new(
                    "E030",
                    Loc::of_span(kind_node.span(), kind.len()),
                    format!("stage `{name}` of kind `command` needs `cmd:`"),
                )
                .help("add `cmd: <shell command>` that writes each output to ${outputs.PORT}"),
            );
            None
        }
        (None, Some(_)) => None,
    };

    let deps = map.get_node("deps").map(|n| string_list(n, &field("deps"), errors)).unwrap_or_default();
    let outputs = match map.get_node("outputs") {
        Some(n) => parse_outputs(n, name, info, errors),
        None => info.map(|k| k.outputs.clone()).unwrap_or_default(),
    };
    let mut params = BTreeMap::new();
    if let Some(n) = map.get_node("params") {
        parse_params(n, &field("params"), &mut params, errors);
    }
    let mut seed = map.get_node("seed").and_then(|n| parse_seed(n, &field("seed"), errors));
    for patch in &raw.patches {
        if let Some(n) = patch.get_node("params") {
            parse_params(n, &field("params"), &mut params, errors);
        }
        if let Some(n) = patch.get_node("seed") {
            seed = parse_seed(n, &field("seed"), errors);
        }
    }
    if let Some(info) = info {
        let allowed: Vec<&str> = info.params.iter().map(String::as_str).collect();
        // The stage's own params and those of every patch from an extending file.
        for m in std::iter::once(map).chain(&raw.patches).filter_map(|b| b.get_node("params")?.as_mapping()) {
            for (k, v) in m.iter() {
                if let Node::Scalar(s) = v
                    && scalar_value(s) == Value::Null
                    && allowed.contains(&k.as_str())
                {
                    // `key:` with nothing after it is null in YAML: a kind would take it as
                    // "use the default" or fail deep inside; neither is what was meant.
                    errors.push(
                        SpecError::new(
                            "E073",
                            // An empty value has no text of its own: point at its key.
                            if s.as_str().is_empty() { key_loc(k) } else { node_loc(v) },
                            format!("param `{}` of stage `{name}` has no value (YAML reads it as null)", k.as_str()),
                        )
                        .label("no value")
                        .help("give it a value, or delete the line to use the kind's default (`pipeline kinds` lists them)"),
                    );
                }
                if !allowed.contains(&k.as_str()) {
                    errors.push(
                        SpecError::new("E017", key_loc(k), format!("kind `{kind}` has no param `{}`", k.as_str()))
                            .label("unknown param")
                            .help(suggest(k.as_str(), &allowed, "its params")),
                    );
                }
            }
        }
    }
    let needs = map.get_node("needs").map(|n| parse_needs(n, &field("needs"), errors)).unwrap_or_default();
    let sweep = map.get_node("sweep").and_then(|n| super::sweep::parse_sweep(n, &field("sweep"), false, errors));
    let resources =
        map.get_node("resources").map(|n| parse_resources(n, &field("resources"), errors)).unwrap_or_default();
    let report =
        map.get_node("report").map(|n| parse_report(n, &field("report"), &outputs, errors)).unwrap_or_default();
    let timeout = map.get_node("timeout").and_then(|n| parse_timeout(n, &field("timeout"), errors));
    if let (Some(_), Some(_), Some(n)) = (timeout, info, map.get_node("timeout")) {
        errors.push(
            SpecError::new("E074", node_loc(n), format!("`timeout` applies to `command` stages; `{kind}` is a built-in kind"))
                .label("not for built-in kinds")
                .help("built-in kinds run inside `pipeline` and cannot be stopped midway safely; bound their work with their own params (iterations, samples)"),
        );
    }

    let def = StageDef {
        name: name.clone(),
        loc: raw.loc,
        version: info.map(|k| k.version).unwrap_or(crate::engine::exec::command::COMMAND_VERSION),
        path_params: info.map(|k| k.path_params.clone()).unwrap_or_default(),
        kind,
        dir: raw.dir.clone(),
        params,
        cmd,
        deps,
        outputs,
        needs: Vec::new(),
        sweep,
        seed,
        resources,
        report,
        timeout,
        global_refs: Default::default(),
    };
    Some((def, needs))
}

/// Parse a string scalar into a template; a quoted scalar starts one column later.
pub fn template(s: &MarkedScalarNode, errors: &mut Vec<SpecError>) -> Option<Template> {
    let mut loc = Loc::of_span(s.span(), s.as_str().chars().count().max(1));
    if !s.may_coerce() {
        loc = loc.map(|l| l.shifted(1, l.len));
    }
    match Template::parse(s.as_str(), loc) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(
                SpecError::new("E040", loc.map(|l| l.shifted(e.offset, e.len)), e.message)
                    .label("here")
                    .help_opt(e.help),
            );
            None
        }
    }
}

fn tpl(node: &Node, errors: &mut Vec<SpecError>) -> Tpl {
    match node {
        Node::Scalar(s) if s.as_str().contains("${") => match template(s, errors) {
            Some(t) if t.has_refs() => Tpl::Str(t),
            Some(t) => Tpl::Lit(Value::Str(t.render_final(|_| Ok::<_, ()>(String::new())).unwrap_or_default())),
            None => Tpl::Lit(Value::Null),
        },
        Node::Scalar(s) => Tpl::Lit(scalar_value(s)),
        Node::Sequence(seq) => {
            let items: Vec<Tpl> = seq.iter().map(|n| tpl(n, errors)).collect();
            if items.iter().all(|t| matches!(t, Tpl::Lit(_))) { Tpl::Lit(node_value(node)) } else { Tpl::List(items) }
        }
        Node::Mapping(m) => {
            let items: BTreeMap<String, Tpl> =
                m.iter().map(|(k, v)| (k.as_str().to_string(), tpl(v, errors))).collect();
            if items.values().all(|t| matches!(t, Tpl::Lit(_))) { Tpl::Lit(node_value(node)) } else { Tpl::Map(items) }
        }
    }
}

pub fn parse_params(node: &Node, field: &str, out: &mut BTreeMap<String, Tpl>, errors: &mut Vec<SpecError>) {
    let Some(m) = node.as_mapping() else {
        errors.push(type_error(node, field, "a mapping of param names to values"));
        return;
    };
    for (k, v) in m.iter() {
        if check_name(k, "param", errors) {
            out.insert(k.as_str().to_string(), tpl(v, errors));
        }
    }
}

fn parse_seed(node: &Node, field: &str, errors: &mut Vec<SpecError>) -> Option<Tpl> {
    match node {
        Node::Scalar(s) if s.as_str().contains("${") => template(s, errors).map(Tpl::Str),
        Node::Scalar(s) => match scalar_value(s) {
            Value::Int(i) if i >= 0 => Some(Tpl::Lit(Value::Int(i))),
            _ => {
                errors.push(type_error(node, field, "a non-negative integer"));
                None
            }
        },
        _ => {
            errors.push(type_error(node, field, "a non-negative integer"));
            None
        }
    }
}

fn string_list(node: &Node, field: &str, errors: &mut Vec<SpecError>) -> Vec<(String, Option<Loc>)> {
    let items: Vec<&Node> = match node {
        Node::Sequence(s) => s.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::new();
    for n in items {
        match n.as_scalar() {
            Some(s) if !s.as_str().is_empty() => out.push((s.as_str().to_string(), node_loc(n))),
            _ => errors.push(type_error(n, field, "a file path")),
        }
    }
    out
}

fn parse_outputs(
    node: &Node,
    stage: &str,
    info: Option<&KindInfo>,
    errors: &mut Vec<SpecError>,
) -> Vec<(String, String)> {
    let field = format!("stages.{stage}.outputs");
    let mut out: Vec<(String, String, Option<Loc>)> = Vec::new();
    match node {
        Node::Sequence(seq) => {
            for n in seq.iter() {
                match n.as_scalar() {
                    Some(s) if check_name(s, "output port", errors) => {
                        let file = info
                            .and_then(|k| k.outputs.iter().find(|(p, _)| p == s.as_str()).map(|(_, f)| f.clone()))
                            .unwrap_or_else(|| format!("{}.parquet", s.as_str()));
                        out.push((s.as_str().to_string(), file, node_loc(n)));
                    }
                    Some(_) => {}
                    None => errors.push(type_error(n, &field, "an output port name")),
                }
            }
        }
        Node::Mapping(m) => {
            for (k, v) in m.iter() {
                if !check_name(k, "output port", errors) {
                    continue;
                }
                match v.as_scalar() {
                    Some(f) => out.push((k.as_str().to_string(), f.as_str().to_string(), node_loc(v))),
                    None => errors.push(type_error(v, &format!("{field}.{}", k.as_str()), "a file name")),
                }
            }
        }
        other => errors.push(type_error(other, &field, "a list of port names or a mapping port -> file name")),
    }
    for (i, (port, file, loc)) in out.iter().enumerate() {
        if let Some(why) = bad_output_file(file) {
            errors.push(
                SpecError::new("E032", *loc, format!("output `{port}` of stage `{stage}`: file `{file}` {why}"))
                    .label("invalid output path")
                    .help("name a file or directory directly inside the stage's own directory, such as `table.parquet` or `ckpt`"),
            );
        }
        if out[..i].iter().any(|(p, f, _)| p == port || f == file) {
            errors.push(
                SpecError::new("E033", *loc, format!("stage `{stage}` declares output `{port}` (file `{file}`) twice"))
                    .help("give each output its own port and file"),
            );
        }
        if let Some(info) = info
            && !info.outputs.iter().any(|(p, _)| p == port)
        {
            let names: Vec<&str> = info.outputs.iter().map(|(p, _)| p.as_str()).collect();
            errors.push(
                SpecError::new("E034", *loc, format!("kind `{}` has no output `{port}`", info.name)).help(suggest(
                    port,
                    &names,
                    "its outputs",
                )),
            );
        }
    }
    out.into_iter().map(|(p, f, _)| (p, f)).collect()
}

/// Why an output file name is not allowed, if it is not.
pub fn bad_output_file(file: &str) -> Option<&'static str> {
    let path = std::path::Path::new(file);
    if file.is_empty() {
        return Some("is empty");
    }
    if path.is_absolute() {
        return Some("is an absolute path and escapes the stage's directory");
    }
    if path.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return Some("escapes the stage's directory (`..` or `.` components are not allowed)");
    }
    // The cache stores, digests and links each output as one entry of the object directory.
    if file.contains(['/', '\\']) {
        return Some("is a nested path; an output is one file or directory (write `ckpt` and put files inside it)");
    }
    if RESERVED_FILES.contains(&file) {
        return Some("is reserved by the cache");
    }
    None
}

fn parse_needs(node: &Node, field: &str, errors: &mut Vec<SpecError>) -> Vec<RawNeed> {
    let mut out = Vec::new();
    let mut one = |port: Option<&MarkedScalarNode>, value: &Node, errors: &mut Vec<SpecError>| {
        let Some(s) = value.as_scalar() else {
            errors.push(type_error(value, field, "`stage`, `stage.port`, `stage[*]` or `stage[axis,...]`"));
            return;
        };
        let loc = node_loc(value);
        match parse_need_ref(s.as_str()) {
            Ok((stage, output, gather)) => {
                let port = match port {
                    Some(p) if check_name(p, "input port", errors) => p.as_str().to_string(),
                    Some(_) => return,
                    None => stage.clone(),
                };
                out.push(RawNeed { port, stage, output, gather, loc });
            }
            Err(msg) => errors
                .push(SpecError::new("E041", loc, format!("malformed need `{}`: {msg}", s.as_str())).help(
                    "write `stage`, `stage.port`, `stage[*]` (gather every sweep point) or `stage[axis1,axis2]`",
                )),
        }
    };
    match node {
        Node::Mapping(m) => m.iter().for_each(|(k, v)| one(Some(k), v, errors)),
        Node::Sequence(s) => s.iter().for_each(|v| one(None, v, errors)),
        other => errors.push(type_error(other, field, "a mapping of input ports to stages")),
    }
    out
}

/// `stage`, `stage.port`, `stage[*]`, `stage.port[a,b]`.
pub fn parse_need_ref(s: &str) -> Result<(String, Option<String>, Option<Gather>), String> {
    let s = s.trim();
    let (head, gather) = match s.find('[') {
        Some(i) => {
            let Some(inner) = s[i + 1..].strip_suffix(']') else {
                return Err("`[` without a closing `]` at the end".into());
            };
            let g = if inner.trim() == "*" {
                Gather::All
            } else {
                let axes: Vec<String> = inner.split(',').map(|a| a.trim().to_string()).collect();
                if axes.iter().any(|a| !is_name(a)) {
                    return Err("inside `[...]` write `*` or axis names separated by commas".into());
                }
                Gather::Axes(axes)
            };
            (&s[..i], Some(g))
        }
        None => (s, None),
    };
    let mut parts = head.splitn(2, '.');
    let stage = parts.next().unwrap_or("").to_string();
    let output = parts.next().map(str::to_string);
    if !is_name(&stage) || output.as_deref().is_some_and(|o| !is_name(o)) {
        return Err("stage and port names use letters, digits, `_` and `-`".into());
    }
    Ok((stage, output, gather))
}

/// `report: [PORT, ...]` or `report: {PORT: [COLUMN, ...], ...}`: output tables that
/// `pipeline report` shows (all columns, or the listed ones).
fn parse_report(
    node: &Node,
    field: &str,
    outputs: &[(String, String)],
    errors: &mut Vec<SpecError>,
) -> Vec<(String, Vec<String>)> {
    let ports: Vec<&str> = outputs.iter().map(|(p, _)| p.as_str()).collect();
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let port = |n: &Node, seen: &[(String, Vec<String>)], errors: &mut Vec<SpecError>| -> Option<String> {
        let Some(name) = n.as_scalar().map(|s| s.as_str().to_string()).filter(|s| !s.is_empty()) else {
            errors.push(type_error(n, field, "an output port name"));
            return None;
        };
        if !ports.contains(&name.as_str()) {
            errors.push(
                SpecError::new(
                    "E035",
                    node_loc(n),
                    format!("`{field}` names `{name}`, which is not an output of the stage"),
                )
                .label("unknown output")
                .help(suggest(&name, &ports, "its outputs")),
            );
            return None;
        }
        if seen.iter().any(|(p, _)| *p == name) {
            errors.push(SpecError::new("E035", node_loc(n), format!("`{field}` names `{name}` twice")).label("again"));
            return None;
        }
        Some(name)
    };
    match node {
        Node::Sequence(seq) => {
            for n in seq.iter() {
                if let Some(p) = port(n, &out, errors) {
                    out.push((p, Vec::new()));
                }
            }
        }
        Node::Scalar(_) => {
            if let Some(p) = port(node, &out, errors) {
                out.push((p, Vec::new()));
            }
        }
        Node::Mapping(m) => {
            for (k, v) in m.iter() {
                let key = Node::Scalar(k.clone());
                let Some(p) = port(&key, &out, errors) else { continue };
                let columns = match v {
                    Node::Sequence(seq) => seq
                        .iter()
                        .filter_map(|c| match c.as_scalar() {
                            Some(s) if !s.as_str().is_empty() => Some(s.as_str().to_string()),
                            _ => {
                                errors.push(type_error(c, &format!("{field}.{p}"), "a column name"));
                                None
                            }
                        })
                        .collect(),
                    other => {
                        errors.push(type_error(
                            other,
                            &format!("{field}.{p}"),
                            "a list of column names, e.g. [method, n, accuracy]",
                        ));
                        Vec::new()
                    }
                };
                out.push((p, columns));
            }
        }
    }
    out
}

/// `timeout: 90` (seconds) or `"90s"`, `"30m"`, `"2h"`, `"1d"`; at least one second.
fn parse_timeout(node: &Node, field: &str, errors: &mut Vec<SpecError>) -> Option<std::time::Duration> {
    let expected = "a duration such as 90 (seconds), \"30m\", \"2h\" or \"1d\"";
    let secs = match node.as_scalar().map(scalar_value) {
        Some(Value::Int(i)) if i >= 1 => Some(i as u64),
        Some(Value::Str(s)) => {
            let s = s.trim();
            let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
            let per = match unit {
                "s" | "" => Some(1u64),
                "m" => Some(60),
                "h" => Some(3600),
                "d" => Some(86_400),
                _ => None,
            };
            match (num.parse::<u64>().ok(), per) {
                (Some(n), Some(per)) if n >= 1 => n.checked_mul(per),
                _ => None,
            }
        }
        _ => None,
    };
    if secs.is_none() {
        errors.push(type_error(node, field, expected));
    }
    secs.map(std::time::Duration::from_secs)
}

fn parse_resources(node: &Node, field: &str, errors: &mut Vec<SpecError>) -> Resources {
    let mut r = Resources::default();
    let Some(m) = node.as_mapping() else {
        errors.push(type_error(node, field, "a mapping such as {cpus: 1, gpus: 0}"));
        return r;
    };
    check_keys(m, &["cpus", "gpus"], field, errors);
    let num = |k: &str, min: i64, errors: &mut Vec<SpecError>| -> Option<u32> {
        let n = m.get_node(k)?;
        match n.as_scalar().map(scalar_value) {
            Some(Value::Int(i)) if i >= min && i <= 1024 => Some(i as u32),
            _ => {
                errors.push(type_error(n, &format!("{field}.{k}"), &format!("an integer >= {min}")));
                None
            }
        }
    };
    if let Some(c) = num("cpus", 1, errors) {
        r.cpus = c;
    }
    if let Some(g) = num("gpus", 0, errors) {
        r.gpus = g;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_cannot_add_a_param_that_a_builtin_kind_does_not_have() {
        let fit = KindInfo {
            name: "fit".into(),
            version: 1,
            doc: String::new(),
            params: vec!["lr".into()],
            inputs: Vec::new(),
            optional_inputs: Vec::new(),
            outputs: vec![("model".into(), "model.bin".into())],
            path_params: Vec::new(),
        };
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("base.yaml"), "stages:\n  train:\n    kind: fit\n    params: {lr: 0.1}\n")
            .unwrap();
        std::fs::write(d.path().join("p.yaml"), "extends: base.yaml\nstages:\n  train:\n    params: {lrr: 0.2}\n")
            .unwrap();
        let errors = crate::engine::spec::load(&d.path().join("p.yaml"), std::slice::from_ref(&fit)).unwrap_err();
        let e017: Vec<&SpecError> = errors.errors.iter().filter(|e| e.code == "E017").collect();
        assert_eq!(e017.len(), 1, "{:?}", errors.errors);
        assert!(e017[0].message.contains("`lrr`") && e017[0].loc.is_some_and(|l| l.line == 4), "{:?}", e017[0]);
    }
}
