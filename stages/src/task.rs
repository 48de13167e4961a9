//! The `task:` param shared by `problems`, `train-policy` and `sample`: which task, with its
//! constants, read from a stage's params with the defaults of the paper (planted) or of our
//! arithmetic chains.
//!
//! A trained policy records its task in its checkpoint, so `sample` (and later kinds) check
//! responses with exactly the task the policy was trained on.

use serde_json::{Map, Value, json};

use crate::contract::StageError;
use crate::params::Params;
use crate::tasks::arith::{Arith, Op, Problem};
use crate::tasks::jsonl;
use crate::tasks::planted::Planted;

/// Every param name a task may read (a kind that takes a task accepts all of them).
pub const TASK_PARAMS: &[&str] = &[
    "task",
    "vocab",
    "end",
    "length",
    "target",
    "steps",
    "modulus",
    "max_operand",
    "ops",
    "path",
    "problem_field",
    "answer_field",
    "solution_field",
];

/// A task with its constants.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    Planted(Planted),
    Arith(Arith),
    Jsonl(JsonlTask),
}

/// Where a JSONL task's problems (and, for training, worked solutions) come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonlTask {
    /// Relative to the defining pipeline file.
    pub path: String,
    pub problem_field: String,
    pub answer_field: String,
    /// Field holding a worked solution (one step per line), used as the teacher trace; when a
    /// line lacks it the trace is `\boxed{answer}` alone.
    pub solution_field: String,
}

fn param_err(field: &str, message: String) -> StageError {
    StageError::Param { field: field.into(), message }
}

impl Task {
    /// Read the task from a stage's params (`task` defaults to `arith`).
    pub fn from_params(p: &Params<'_>) -> Result<Task, StageError> {
        let name = p.str_or("task", "arith")?;
        let task = match name.as_str() {
            "planted" => {
                let d = Planted::default();
                let target =
                    p.uint_list_or("target", &d.target.iter().map(|&t| t as u64).collect::<Vec<_>>(), 1 << 16)?;
                Task::Planted(Planted {
                    vocab: p.uint_or("vocab", d.vocab as u64, 1 << 16)? as usize,
                    end: p.uint_or("end", d.end as u64, 1 << 16)? as usize,
                    length: p.uint_in("length", d.length as u64, 1, 4096)? as usize,
                    target: target.into_iter().map(|t| t as usize).collect(),
                })
            }
            "arith" => {
                let ops = p
                    .str_list_or("ops", &["+", "-", "*"])?
                    .iter()
                    .map(|s| {
                        Op::parse(s).ok_or_else(|| {
                            param_err("ops", format!("unknown operator `{s}`; expected \"+\", \"-\" or \"*\""))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let d = Arith::default();
                Task::Arith(Arith {
                    steps: p.uint_or("steps", d.steps as u64, 64)? as usize,
                    modulus: p.uint_or("modulus", d.modulus, 1_000_003)?,
                    max_operand: p.uint_or("max_operand", d.max_operand, 1_000_000)?,
                    ops,
                })
            }
            "jsonl" => Task::Jsonl(JsonlTask {
                path: p.str_or("path", "")?,
                problem_field: p.str_or("problem_field", "problem")?,
                answer_field: p.str_or("answer_field", "answer")?,
                solution_field: p.str_or("solution_field", "solution")?,
            }),
            other => {
                return Err(param_err(
                    "task",
                    format!("unknown task `{other}`; expected `planted`, `arith` or `jsonl`"),
                ));
            }
        };
        task.validate()?;
        Ok(task)
    }

    fn validate(&self) -> Result<(), StageError> {
        match self {
            Task::Planted(t) => t.validate().map_err(|m| param_err("task params", m)),
            Task::Arith(t) => t.validate().map_err(|m| param_err("task params", m)),
            Task::Jsonl(t) if t.path.is_empty() => Err(param_err(
                "path",
                "task `jsonl` needs `path:` (a JSONL file, relative to the pipeline file; list it in `deps` too)"
                    .into(),
            )),
            Task::Jsonl(_) => Ok(()),
        }
    }

    /// The task as params again (what a checkpoint records).
    pub fn to_params(&self) -> Map<String, Value> {
        let v = match self {
            Task::Planted(t) => {
                json!({"task": "planted", "vocab": t.vocab, "end": t.end, "length": t.length, "target": t.target})
            }
            Task::Arith(t) => json!({
                "task": "arith", "steps": t.steps, "modulus": t.modulus, "max_operand": t.max_operand,
                "ops": t.ops.iter().map(|o| o.symbol().to_string()).collect::<Vec<_>>(),
            }),
            Task::Jsonl(t) => json!({
                "task": "jsonl", "path": t.path, "problem_field": t.problem_field,
                "answer_field": t.answer_field, "solution_field": t.solution_field,
            }),
        };
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Task::Planted(_) => "planted",
            Task::Arith(_) => "arith",
            Task::Jsonl(_) => "jsonl",
        }
    }

    /// Check a text response (its steps) against the problem's reference answer: the stated
    /// answer (empty when none) and whether it is right.
    pub fn check_text(&self, reference: &str, steps: &[String]) -> (String, bool) {
        match self {
            Task::Arith(t) => {
                let answer = t.extract(steps).map(|a| a.to_string()).unwrap_or_default();
                let ok = !answer.is_empty() && answer == reference.trim();
                (answer, ok)
            }
            Task::Jsonl(_) => {
                let response = steps.join("\n");
                let answer = jsonl::extract_answer(&response).unwrap_or_default();
                (answer, jsonl::correct(&response, reference))
            }
            Task::Planted(t) => {
                let tokens: Option<Vec<usize>> = steps.iter().map(|s| s.parse().ok()).collect();
                let ok = tokens.is_some_and(|tk| t.reward(&tk) == 1.0);
                (steps.join(" "), ok)
            }
        }
    }
}

impl Problem {
    /// Read a problem back from its prompt (`start 17 | + 5 | * 3`).
    pub fn parse(prompt: &str) -> Option<Problem> {
        let mut parts = prompt.split('|').map(str::trim);
        let start = parts.next()?.strip_prefix("start ")?.trim().parse().ok()?;
        let ops = parts
            .map(|p| {
                let (op, b) = p.split_once(' ')?;
                Some((Op::parse(op)?, b.trim().parse().ok()?))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Problem { start, ops })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::item_rng;

    #[test]
    fn arith_prompts_parse_back() {
        let task = Arith::default();
        for i in 0..200 {
            let p = task.problem(&mut item_rng(1, 0, i));
            assert_eq!(Problem::parse(&p.prompt()), Some(p));
        }
        assert_eq!(Problem::parse("begin 3 | + 4"), None);
        assert_eq!(Problem::parse("start 3 | % 4"), None);
    }

    #[test]
    fn task_params_round_trip_and_bad_values_name_the_field() {
        for params in [
            json!({"task": "planted", "target": [1, 2]}),
            json!({"task": "arith", "steps": 3, "modulus": 13, "ops": ["+"]}),
            json!({"task": "jsonl", "path": "p.jsonl"}),
        ] {
            let m = params.as_object().unwrap().clone();
            let t = Task::from_params(&Params::new(&m)).unwrap();
            let again = t.to_params();
            assert_eq!(Task::from_params(&Params::new(&again)).unwrap(), t);
        }
        let bad = |v: Value| Task::from_params(&Params::new(v.as_object().unwrap())).unwrap_err().to_string();
        assert!(bad(json!({"task": "arith", "modulus": 12})).contains("must be a prime"));
        assert!(bad(json!({"task": "planted", "target": [3, 14]})).contains("not the end token"));
        assert!(bad(json!({"task": "planted", "target": "36035"})).contains("param `target`"));
        assert!(bad(json!({"task": "arith", "ops": ["/"]})).contains("unknown operator `/`"));
        assert!(bad(json!({"task": "jsonl"})).contains("param `path`"));
        assert!(bad(json!({"task": "go"})).contains("unknown task `go`"));
    }
}
