//! Param values: the typed, canonical form of a YAML scalar, list or mapping.
//!
//! YAML text is only a carrier: `3`, `3.0` and `"3"` are three different values (int, float,
//! string), a mapping's keys are kept sorted (so key order in the file never matters), and a
//! float is compared and hashed by its bits with `-0.0` folded into `0.0`. Values render into
//! command lines and hive-style directory names with [`Value::render`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A param value.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// The float with `-0.0` folded into `0.0` and every NaN made the same NaN.
    pub fn canonical_float(f: f64) -> f64 {
        if f == 0.0 {
            0.0
        } else if f.is_nan() {
            f64::NAN
        } else {
            f
        }
    }

    /// A short name of the type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "mapping",
        }
    }

    /// The text a value becomes inside a command line or a path segment.
    /// Scalars render bare; lists and mappings render as compact JSON.
    pub fn render(&self) -> String {
        match self {
            Value::Null => "null".to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => render_float(*f),
            Value::Str(s) => s.clone(),
            Value::List(_) | Value::Map(_) => serde_json::to_string(self).unwrap_or_default(),
        }
    }

    /// Convert into a JSON value. NaN and infinities, which JSON cannot hold, become the
    /// strings `.nan`, `.inf` and `-.inf` (their YAML spelling), so that a kind expecting a
    /// number rejects them by name instead of reading null as "not set".
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Float(f) if !f.is_finite() => J::String(
                if f.is_nan() {
                    ".nan"
                } else if *f > 0.0 {
                    ".inf"
                } else {
                    "-.inf"
                }
                .to_string(),
            ),
            Value::List(items) => J::Array(items.iter().map(Value::to_json).collect()),
            Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            other => serde_json::to_value(other).unwrap_or(J::Null),
        }
    }
}

/// Shortest text that reads back as the same float, always with a `.` or exponent so that a
/// float never looks like an int (`1.0`, `0.1`, `1e-7`).
pub fn render_float(f: f64) -> String {
    let f = Value::canonical_float(f);
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 { format!("{f:.1}") } else { format!("{f}") }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => {
                Value::canonical_float(*a).to_bits() == Value::canonical_float(*b).to_bits()
            }
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Value {
    fn rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) => 2,
            Value::Float(_) => 3,
            Value::Str(_) => 4,
            Value::List(_) => 5,
            Value::Map(_) => 6,
        }
    }
}

/// A total order (type first, then value; floats by `total_cmp`), so points sort stably.
impl Ord for Value {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Float(a), Value::Float(b)) => Value::canonical_float(*a).total_cmp(&Value::canonical_float(*b)),
            (Value::Str(a), Value::Str(b)) => a.cmp(b),
            (Value::List(a), Value::List(b)) => a.cmp(b),
            (Value::Map(a), Value::Map(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::hash::Hash for Value {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Value::Null => {}
            Value::Bool(b) => b.hash(state),
            Value::Int(i) => i.hash(state),
            Value::Float(f) => Value::canonical_float(*f).to_bits().hash(state),
            Value::Str(s) => s.hash(state),
            Value::List(l) => l.hash(state),
            Value::Map(m) => m.hash(state),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => write!(f, "{s:?}"),
            other => f.write_str(&other.render()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_floats_reach_kinds_as_their_yaml_names_not_as_null() {
        let v = Value::Map(BTreeMap::from([
            ("a".to_string(), Value::Float(f64::INFINITY)),
            ("b".to_string(), Value::List(vec![Value::Float(f64::NEG_INFINITY), Value::Float(f64::NAN)])),
            ("c".to_string(), Value::Float(0.5)),
            ("d".to_string(), Value::Null),
        ]));
        assert_eq!(v.to_json(), serde_json::json!({"a": ".inf", "b": ["-.inf", ".nan"], "c": 0.5, "d": null}));
    }

    #[test]
    fn floats_render_distinct_from_ints() {
        assert_eq!(Value::Float(1.0).render(), "1.0");
        assert_eq!(Value::Float(0.1).render(), "0.1");
        assert_eq!(Value::Int(1).render(), "1");
        assert_eq!(Value::Float(-0.0).render(), "0.0");
    }

    #[test]
    fn negative_zero_equals_zero() {
        assert_eq!(Value::Float(-0.0), Value::Float(0.0));
        assert_ne!(Value::Float(0.0), Value::Int(0));
    }
}
