//! The baseline file of `pipeline check`: YAML in, validated [`Baseline`] out.
//!
//! Two phases as for pipelines: marked-yaml parses the file into nodes that keep their
//! position, then each metric is checked key by key. Every problem is collected as a
//! [`SpecError`] pointing into the file (unknown keys with a did-you-mean, wrong types, missing
//! keys), so one run reports all of them. A metric keeps the location of each of its keys, so
//! that errors found later (a column the table lacks) point at the key that caused them, and
//! the exact text of its `value`, so that `--update` can rewrite just that scalar.

use std::path::Path;
use std::sync::Arc;

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{LoaderOptions, Node};

use crate::engine::spec::diag::SpecError;
use crate::engine::spec::source::{Loc, SourceFile, Sources, display_path, normalize};
use crate::engine::spec::yaml::{check_keys, key_loc, load_error, node_loc, node_value, scalar_value, type_error};
use crate::engine::value::{Value, render_float};

const METRIC_KEYS: &[&str] = &["stage", "point", "table", "column", "where", "reduce", "value", "tolerance", "better"];

/// A number from a baseline or a table: ints stay `i64`, floats `f64`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }

    /// YAML text that reads back as the same number and type (`1.0` stays a float).
    pub fn render(self) -> String {
        match self {
            Number::Int(i) => i.to_string(),
            Number::Float(f) => render_float(f),
        }
    }

    pub fn to_json(self) -> serde_json::Value {
        match self {
            Number::Int(i) => i.into(),
            Number::Float(f) => serde_json::Number::from_f64(f).map(serde_json::Value::Number).unwrap_or_default(),
        }
    }
}

/// How the matching rows become one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    Mean,
    Min,
    Max,
    Last,
    Sum,
    Count,
}

pub const REDUCE_NAMES: &[&str] = &["mean", "min", "max", "last", "sum", "count"];

/// Which direction of change is a regression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
    Both,
}

/// Allowed distance from the baseline value: within either bound passes.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Tolerance {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rel: Option<f64>,
}

/// One validated metric.
#[derive(Debug, Clone)]
pub struct Metric {
    pub name: String,
    pub loc: Option<Loc>,
    pub stage: String,
    pub stage_loc: Option<Loc>,
    /// The sweep point, from `stage[axis=value,...]` or `point:`, as (axis, rendered value).
    pub point: Option<Vec<(String, String)>>,
    pub table: Option<(String, Option<Loc>)>,
    pub column: String,
    pub column_loc: Option<Loc>,
    /// Column -> value, in file order.
    pub filters: Vec<(String, Value, Option<Loc>)>,
    pub reduce: Option<Reduce>,
    pub value: Number,
    pub value_loc: Option<Loc>,
    /// The value's text in the file, for `--update`.
    pub value_text: String,
    pub tolerance: Tolerance,
    pub better: Better,
}

/// A validated baseline file.
#[derive(Debug)]
pub struct Baseline {
    pub display: String,
    pub path: std::path::PathBuf,
    pub sources: Arc<Sources>,
    pub metrics: Vec<Metric>,
}

/// Read and validate a baseline file; on failure, every error found (and the sources they
/// point into).
pub fn load(path: &Path) -> Result<Baseline, (Arc<Sources>, Vec<SpecError>)> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let abs = normalize(&cwd.join(path));
    let display = display_path(&abs);
    let mut sources = Sources::default();
    let mut errors = Vec::new();
    let text = match std::fs::read_to_string(&abs) {
        Ok(t) => t,
        Err(e) => {
            let what = if e.kind() == std::io::ErrorKind::NotFound { "not found".to_string() } else { e.to_string() };
            errors.push(
                SpecError::new("B001", None, format!("cannot read baseline file `{display}`: {what}"))
                    .help("check the path; docs/check.md describes the format"),
            );
            return Err((Arc::new(sources), errors));
        }
    };
    let source = sources.add(SourceFile::new(abs.clone(), display.clone(), text.clone()));
    let top = Loc { source, line: 1, column: 1, len: 1 };
    let options = LoaderOptions::default().error_on_duplicate_keys(true).prevent_coercion(true);
    let metrics = match marked_yaml::parse_yaml_with_options(source, text.as_str(), options) {
        Err(e) => {
            errors.push(load_error(&e, source));
            Vec::new()
        }
        Ok(Node::Mapping(m)) => parse_top(&m, top, &mut errors),
        Ok(_) if text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) => {
            errors.push(
                SpecError::new("B002", Some(top), format!("baseline file `{display}` is empty"))
                    .help("start with `metrics:` and one entry per metric (docs/check.md)"),
            );
            Vec::new()
        }
        Ok(other) => {
            errors.push(type_error(&other, "baseline file", "a mapping with `metrics:`"));
            Vec::new()
        }
    };
    let sources = Arc::new(sources);
    if errors.is_empty() { Ok(Baseline { display, path: abs, sources, metrics }) } else { Err((sources, errors)) }
}

fn parse_top(top: &MarkedMappingNode, at: Loc, errors: &mut Vec<SpecError>) -> Vec<Metric> {
    check_keys(top, &["metrics"], "the baseline file", errors);
    let Some(node) = top.get_node("metrics") else {
        errors.push(
            SpecError::new("B002", Some(at), "the baseline file has no `metrics:`")
                .help("add `metrics:` with one entry per metric: `name: {stage, table, column, value, tolerance}`"),
        );
        return Vec::new();
    };
    let Node::Mapping(metrics) = node else {
        errors.push(type_error(node, "metrics", "a mapping of metric name to metric"));
        return Vec::new();
    };
    if metrics.is_empty() {
        errors.push(SpecError::new("B002", node_loc(node), "`metrics:` is empty").label("no metrics"));
    }
    metrics.iter().filter_map(|(name, body)| parse_metric(name, body, errors)).collect()
}

fn parse_metric(name: &MarkedScalarNode, body: &Node, errors: &mut Vec<SpecError>) -> Option<Metric> {
    let n = name.as_str();
    let Node::Mapping(m) = body else {
        errors.push(type_error(body, n, "a mapping with `stage`, `table`, `column`, `value` and `tolerance`"));
        return None;
    };
    let before = errors.len();
    check_keys(m, METRIC_KEYS, &format!("metric `{n}`"), errors);
    let stage = required(m, name, "stage", errors).and_then(|s| string(s, "stage", errors));
    let column = required(m, name, "column", errors).and_then(|s| string(s, "column", errors));
    let value = required(m, name, "value", errors).and_then(|v| number(v, "value", errors));
    let tolerance = required(m, name, "tolerance", errors).and_then(|t| tolerance(t, errors));
    let table = m.get_node("table").and_then(|t| string(t, "table", errors));
    let (stage, point) = match stage {
        Some((s, loc)) => match split_instance(&s) {
            Some((base, pt)) => ((base, loc), pt),
            None => {
                errors.push(
                    SpecError::new("B004", loc, format!("`stage`: cannot read `{s}` as a stage or an instance"))
                        .help("write `stage` or `stage[axis=value,...]`, or give the point as `point: {axis: value}`"),
                );
                ((s, loc), None)
            }
        },
        None => ((String::new(), None), None),
    };
    let point = match (point, m.get_node("point")) {
        (Some(_), Some(p)) => {
            errors.push(
                SpecError::new("B004", node_loc(p), "the point is given twice, in `stage` and in `point`")
                    .help("keep one of the two"),
            );
            None
        }
        (Some(p), None) => Some(p),
        (None, Some(p)) => point_map(p, errors),
        (None, None) => None,
    };
    let filters = match m.get_node("where") {
        None => Vec::new(),
        Some(Node::Mapping(w)) => w
            .iter()
            .filter_map(|(k, v)| match v {
                Node::Scalar(s) if !matches!(scalar_value(s), Value::Null) => {
                    Some((k.as_str().to_string(), scalar_value(s), key_loc(k)))
                }
                other => {
                    errors.push(type_error(other, &format!("where.{}", k.as_str()), "a string, int, float or bool"));
                    None
                }
            })
            .collect(),
        Some(other) => {
            errors.push(type_error(other, "where", "a mapping of column to value"));
            Vec::new()
        }
    };
    let reduce = m
        .get_node("reduce")
        .and_then(|r| choice(r, "reduce", REDUCE_NAMES, errors))
        .map(|i| [Reduce::Mean, Reduce::Min, Reduce::Max, Reduce::Last, Reduce::Sum, Reduce::Count][i]);
    let better = match m.get_node("better") {
        None => Some(Better::Both),
        Some(b) => choice(b, "better", &["higher", "lower", "both"], errors)
            .map(|i| [Better::Higher, Better::Lower, Better::Both][i]),
    };
    if errors.len() > before {
        return None;
    }
    let (value, value_node) = value?;
    Some(Metric {
        name: n.to_string(),
        loc: key_loc(name),
        stage: stage.0,
        stage_loc: stage.1,
        point,
        table,
        column: column.as_ref()?.0.clone(),
        column_loc: column?.1,
        filters,
        reduce,
        value,
        value_loc: value_node.0,
        value_text: value_node.1,
        tolerance: tolerance?,
        better: better?,
    })
}

/// The node of a required key, or an error at the metric's name.
fn required<'a>(
    m: &'a MarkedMappingNode,
    name: &MarkedScalarNode,
    key: &str,
    errors: &mut Vec<SpecError>,
) -> Option<&'a Node> {
    let node = m.get_node(key);
    if node.is_none() {
        errors.push(
            SpecError::new("B003", key_loc(name), format!("metric `{}` has no `{key}`", name.as_str()))
                .label(format!("no `{key}`"))
                .help(format!("add `{key}:` (docs/check.md)")),
        );
    }
    node
}

/// A plain or quoted string scalar, with its location.
fn string(node: &Node, field: &str, errors: &mut Vec<SpecError>) -> Option<(String, Option<Loc>)> {
    match node {
        Node::Scalar(s) if !s.as_str().is_empty() => Some((s.as_str().to_string(), node_loc(node))),
        _ => {
            errors.push(type_error(node, field, "a name"));
            None
        }
    }
}

/// An int or a float; returns the number and (location, text) of the scalar.
#[allow(clippy::type_complexity)]
fn number(node: &Node, field: &str, errors: &mut Vec<SpecError>) -> Option<(Number, (Option<Loc>, String))> {
    let n = match node.as_scalar().map(scalar_value) {
        Some(Value::Int(i)) => Number::Int(i),
        Some(Value::Float(f)) if f.is_finite() => Number::Float(f),
        _ => {
            errors.push(type_error(node, field, "a finite number"));
            return None;
        }
    };
    Some((n, (node_loc(node), node.as_scalar().map(|s| s.as_str().to_string()).unwrap_or_default())))
}

fn choice(node: &Node, field: &str, names: &[&str], errors: &mut Vec<SpecError>) -> Option<usize> {
    let got = node.as_scalar().map(|s| s.as_str()).unwrap_or("");
    let found = names.iter().position(|n| *n == got);
    if found.is_none() {
        let list = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        errors.push(b004(type_error(node, field, &format!("one of {list}"))));
    }
    found
}

fn tolerance(node: &Node, errors: &mut Vec<SpecError>) -> Option<Tolerance> {
    let Node::Mapping(m) = node else {
        errors.push(type_error(node, "tolerance", "a mapping such as `{abs: 0.01}` or `{rel: 0.05}`"));
        return None;
    };
    let before = errors.len();
    check_keys(m, &["abs", "rel"], "`tolerance`", errors);
    let mut bound = |key: &str| {
        let node = m.get_node(key)?;
        let (n, _) = number(node, &format!("tolerance.{key}"), errors)?;
        if n.as_f64() < 0.0 {
            errors.push(b004(type_error(node, &format!("tolerance.{key}"), "a number >= 0")));
            return None;
        }
        Some(n.as_f64())
    };
    let t = Tolerance { abs: bound("abs"), rel: bound("rel") };
    if errors.len() > before {
        return None;
    }
    if t.abs.is_none() && t.rel.is_none() {
        errors.push(
            SpecError::new("B004", node_loc(node), "`tolerance` needs `abs`, `rel` or both")
                .help("`{abs: 0.01}` allows |current - value| <= 0.01; `{rel: 0.05}` allows 5% of |value|"),
        );
        return None;
    }
    Some(t)
}

/// `point: {axis: value}` as (axis, rendered value), sorted by axis.
fn point_map(node: &Node, errors: &mut Vec<SpecError>) -> Option<Vec<(String, String)>> {
    let Node::Mapping(m) = node else {
        errors.push(type_error(node, "point", "a mapping of sweep axis to value, such as `{k: 4}`"));
        return None;
    };
    let mut out: Vec<(String, String)> =
        m.iter().map(|(k, v)| (k.as_str().to_string(), node_value(v).render())).collect();
    out.sort();
    Some(out)
}

/// `stage` -> (stage, None); `stage[a=1,b=x]` -> (stage, [(a, 1), (b, x)] sorted by axis).
#[allow(clippy::type_complexity)]
pub fn split_instance(s: &str) -> Option<(String, Option<Vec<(String, String)>>)> {
    let Some((base, rest)) = s.split_once('[') else {
        return Some((s.to_string(), None));
    };
    let inner = rest.strip_suffix(']')?;
    let mut point = Vec::new();
    for part in inner.split(',') {
        let (axis, value) = part.split_once('=')?;
        point.push((axis.trim().to_string(), value.trim().to_string()));
    }
    point.sort();
    Some((base.to_string(), Some(point)))
}

/// A value of the right type that is not one of the allowed ones.
fn b004(mut e: SpecError) -> SpecError {
    e.code = "B004";
    e
}

#[cfg(test)]
mod tests {
    use super::split_instance;

    #[test]
    fn instance_names_split_into_stage_and_sorted_point() {
        assert_eq!(split_instance("train"), Some(("train".into(), None)));
        assert_eq!(
            split_instance("s[k=4, a=x]"),
            Some(("s".into(), Some(vec![("a".into(), "x".into()), ("k".into(), "4".into())])))
        );
        assert_eq!(split_instance("s[k]"), None);
        assert_eq!(split_instance("s[k=1"), None);
    }
}
