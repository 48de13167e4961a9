//! Reading a stage's params (JSON values from the YAML) into typed values, with errors that
//! name the field, say what was expected, and show what was found. Unknown keys never reach a
//! stage: the spec validator checks them against the kind's declared params.

use serde_json::{Map, Value};

use crate::contract::StageError;

/// Typed access to a stage's params.
pub struct Params<'a> {
    map: &'a Map<String, Value>,
}

fn bad(field: &str, expected: &str, found: &Value) -> StageError {
    StageError::Param { field: field.to_string(), message: format!("expected {expected}, found {found}") }
}

impl<'a> Params<'a> {
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Params { map }
    }

    pub fn str_or(&self, field: &str, default: &str) -> Result<String, StageError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(default.to_string()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(bad(field, "a string", v)),
        }
    }

    /// A non-negative integer no larger than `max`.
    pub fn uint_or(&self, field: &str, default: u64, max: u64) -> Result<u64, StageError> {
        self.uint_in(field, default, 0, max)
    }

    /// A number in `[lo, hi]`.
    pub fn float_or(&self, field: &str, default: f64, lo: f64, hi: f64) -> Result<f64, StageError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => match v.as_f64() {
                Some(x) if (lo..=hi).contains(&x) => Ok(x),
                _ => Err(bad(field, &format!("a number in [{lo}, {hi}]"), v)),
            },
        }
    }

    pub fn str_list_or(&self, field: &str, default: &[&str]) -> Result<Vec<String>, StageError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(default.iter().map(|s| s.to_string()).collect()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_string).ok_or_else(|| bad(field, "a list of strings", i)))
                .collect(),
            Some(v) => Err(bad(field, "a list of strings", v)),
        }
    }
    /// A list of non-negative integers, each no larger than `max`.
    pub fn uint_list_or(&self, field: &str, default: &[u64], max: u64) -> Result<Vec<u64>, StageError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(default.to_vec()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_u64()
                        .filter(|&n| n <= max)
                        .ok_or_else(|| bad(field, &format!("a list of integers in 0..={max}"), i))
                })
                .collect(),
            Some(v) => Err(bad(field, &format!("a list of integers in 0..={max}"), v)),
        }
    }

    /// An integer in `lo..=hi`.
    pub fn uint_in(&self, field: &str, default: u64, lo: u64, hi: u64) -> Result<u64, StageError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => match v.as_u64() {
                Some(n) if (lo..=hi).contains(&n) => Ok(n),
                _ => Err(bad(field, &format!("an integer in {lo}..={hi}"), v)),
            },
        }
    }

    pub fn bool_or(&self, field: &str, default: bool) -> Result<bool, StageError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(bad(field, "true or false", v)),
        }
    }

    /// The raw value of a param, if set.
    pub fn raw(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }
}
