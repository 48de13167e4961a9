//! Reading marked-yaml nodes: files, syntax errors, scalars into typed values, and the shared
//! checks (unknown keys with did-you-mean, wrong node types) used by the validator.

use std::path::Path;

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{LoadError, LoaderOptions, Node};

use super::diag::{SpecError, suggest};
use super::source::{Loc, SourceFile, Sources, display_path};
use crate::engine::value::Value;

/// Read and parse one file into `sources`; on failure push the error and return `None`.
pub fn load_file(
    path: &Path,
    sources: &mut Sources,
    errors: &mut Vec<SpecError>,
    from: Option<Loc>,
) -> Option<(usize, MarkedMappingNode)> {
    let display = display_path(path);
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            let what = if e.kind() == std::io::ErrorKind::NotFound { "not found".to_string() } else { e.to_string() };
            errors.push(
                SpecError::new("E001", from, format!("cannot read pipeline file `{display}`: {what}"))
                    .label("referenced here")
                    .help("check the path; relative paths in `extends` start at the extending file's directory"),
            );
            return None;
        }
    };
    let index = sources.add(SourceFile::new(path.to_path_buf(), display.clone(), text));
    let text = sources.files[index].text.clone();
    if text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
        errors.push(
            SpecError::new(
                "E002",
                Some(Loc { source: index, line: 1, column: 1, len: 1 }),
                format!("pipeline file `{display}` is empty"),
            )
            .help("a pipeline needs at least `stages:` (see docs/yaml-reference.md)"),
        );
        return None;
    }
    let options = LoaderOptions::default().error_on_duplicate_keys(true).prevent_coercion(true).toplevel_mapping();
    match marked_yaml::parse_yaml_with_options(index, text.as_str(), options) {
        Ok(Node::Mapping(m)) => Some((index, m)),
        Ok(_) => {
            errors.push(
                SpecError::new(
                    "E003",
                    Some(Loc { source: index, line: 1, column: 1, len: 1 }),
                    "the top level of a pipeline file must be a mapping",
                )
                .help("start with `stages:`"),
            );
            None
        }
        Err(e) => {
            errors.push(load_error(&e, index));
            None
        }
    }
}

/// A marked-yaml load error as a spec error (E003 syntax, E004 duplicate key).
pub fn load_error(e: &LoadError, source: usize) -> SpecError {
    let at = |m: &marked_yaml::Marker| Some(Loc { source, line: m.line(), column: m.column(), len: 1 });
    match e {
        LoadError::ScanError(m, se) => SpecError::new("E003", at(m), format!("YAML syntax error: {}", se.info()))
            .label("here")
            .help("check indentation and quoting; a value starting with `{`, `[`, `*` or `&` needs quotes"),
        LoadError::DuplicateKey(d) => {
            let loc = Loc::of_span(d.key.span(), d.key.as_str().chars().count());
            let prev = d.prev_key.span().start().map(|m| format!("line {}", m.line())).unwrap_or_default();
            SpecError::new("E004", loc, format!("duplicate key `{}` (first defined at {prev})", d.key.as_str()))
                .label("duplicate")
                .help("remove one of the two entries")
        }
        LoadError::UnexpectedAnchor(m) => SpecError::new("E003", at(m), "YAML anchors and aliases are not supported")
            .help("use `extends:` and `${params.*}` references to share values"),
        LoadError::UnexpectedTag(m) => {
            SpecError::new("E003", at(m), "YAML tags (`!tag`) are not supported").help("remove the tag")
        }
        LoadError::MappingKeyMustBeScalar(m) => SpecError::new("E003", at(m), "mapping keys must be plain scalars"),
        LoadError::TopLevelMustBeMapping(m) | LoadError::TopLevelMustBeSequence(m) => {
            SpecError::new("E003", at(m), "the top level of a pipeline file must be a mapping")
                .help("start with `stages:`")
        }
    }
}

/// Location of a node's start, underlining `len` characters.
pub fn node_loc(node: &Node) -> Option<Loc> {
    let len = match node {
        Node::Scalar(s) => s.as_str().chars().count().max(1),
        _ => 1,
    };
    Loc::of_span(node.span(), len)
}

pub fn key_loc(key: &MarkedScalarNode) -> Option<Loc> {
    Loc::of_span(key.span(), key.as_str().chars().count().max(1))
}

/// The kind of node, for "expected X, found Y" messages.
pub fn node_kind(node: &Node) -> &'static str {
    match node {
        Node::Scalar(_) => "a scalar",
        Node::Mapping(_) => "a mapping",
        Node::Sequence(_) => "a list",
    }
}

/// Typed value of a scalar. Plain scalars are typed (null, bool, int, float, string);
/// quoted scalars are always strings.
pub fn scalar_value(s: &MarkedScalarNode) -> Value {
    let text = s.as_str();
    if !s.may_coerce() {
        return Value::Str(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Value::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    // YAML 1.2 core schema: 0o17 (octal) and 0x1F (hex) integers.
    let radix = |prefix: &str, r: u32| text.strip_prefix(prefix).and_then(|d| i64::from_str_radix(d, r).ok());
    if let Some(i) = radix("0o", 8).or_else(|| radix("0x", 16)) {
        return Value::Int(i);
    }
    if let Some(b) = s.as_bool() {
        return Value::Bool(b);
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::Int(i);
    }
    let numeric = text.trim_start_matches(['-', '+']).starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && text.chars().any(|c| c.is_ascii_digit());
    if numeric && let Ok(f) = text.parse::<f64>() {
        return Value::Float(f);
    }
    Value::Str(text.to_string())
}

/// Whole node as a value (no templates). Used for sweep values and global params.
pub fn node_value(node: &Node) -> Value {
    match node {
        Node::Scalar(s) => scalar_value(s),
        Node::Sequence(seq) => Value::List(seq.iter().map(node_value).collect()),
        Node::Mapping(m) => Value::Map(m.iter().map(|(k, v)| (k.as_str().to_string(), node_value(v))).collect()),
    }
}

/// Push an error for each key of `map` not in `allowed`.
pub fn check_keys(map: &MarkedMappingNode, allowed: &[&str], context: &str, errors: &mut Vec<SpecError>) {
    for key in map.keys() {
        if !allowed.contains(&key.as_str()) {
            errors.push(
                SpecError::new("E010", key_loc(key), format!("unknown key `{}` in {context}", key.as_str()))
                    .label("unknown key")
                    .help(suggest(key.as_str(), allowed, "allowed keys")),
            );
        }
    }
}

/// "expected X, found Y" at `node`.
pub fn type_error(node: &Node, field: &str, expected: &str) -> SpecError {
    let found = match node {
        Node::Scalar(s) => format!("{} `{}`", scalar_value(s).type_name(), s.as_str()),
        other => node_kind(other).to_string(),
    };
    SpecError::new("E011", node_loc(node), format!("`{field}`: expected {expected}, found {found}"))
        .label(format!("expected {expected}"))
}

/// A name of a stage, port or axis: letters, digits, `_` and `-`, not starting with `-`.
pub fn is_name(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('-') && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub fn check_name(key: &MarkedScalarNode, what: &str, errors: &mut Vec<SpecError>) -> bool {
    if is_name(key.as_str()) {
        return true;
    }
    errors.push(
        SpecError::new("E012", key_loc(key), format!("invalid {what} name `{}`", key.as_str()))
            .label("invalid name")
            .help("use letters, digits, `_` and `-` (no dots, brackets or spaces)"),
    );
    false
}

#[cfg(test)]
mod tests {
    use marked_yaml::Node;

    use super::*;

    fn typed(yaml: &str) -> Value {
        let options = LoaderOptions::default().prevent_coercion(true);
        let node = marked_yaml::parse_yaml_with_options(0, format!("v: {yaml}"), options).unwrap();
        match node.as_mapping().and_then(|m| m.get_node("v")) {
            Some(Node::Scalar(s)) => scalar_value(s),
            _ => panic!("no scalar"),
        }
    }

    #[test]
    fn yaml_core_schema_scalars() {
        assert_eq!(typed("3"), Value::Int(3));
        assert_eq!(typed("3.0"), Value::Float(3.0));
        assert_eq!(typed("'3'"), Value::Str("3".into()));
        assert_eq!(typed("True"), Value::Bool(true));
        assert_eq!(typed("yes"), Value::Str("yes".into()));
        assert_eq!(typed("~"), Value::Null);
        assert_eq!(typed("0x1F"), Value::Int(31));
        assert_eq!(typed("0o17"), Value::Int(15));
        assert_eq!(typed(".Inf"), Value::Float(f64::INFINITY));
        assert_eq!(typed("1e-3"), Value::Float(0.001));
        assert_eq!(typed("abc1"), Value::Str("abc1".into()));
    }
}
