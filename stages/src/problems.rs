//! The `problems` kind: a table of problems for a task.
//!
//! Output `problems` (problems.parquet): `problem_id` int64, `split` string (`train`/`test`),
//! `prompt` string, `answer` string. Params: `task` (`planted`, `arith`, `jsonl`), `train` and
//! `test` (counts; for `jsonl`, `test_fraction` splits the file instead), and the task's own
//! params, read as every task-taking kind reads them ([`crate::task`]: `vocab`, `end`, `length`,
//! `target` for planted; `steps`, `modulus`, `max_operand`, `ops` for arith; `path`,
//! `problem_field`, `answer_field` for jsonl, whose file should also be listed in `deps` so that editing it
//! reruns the stage).

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use rand::Rng;

use crate::contract::{PortSpec, Stage, StageContext, StageError, StageInfo};
use crate::params::Params;
use crate::rng::item_rng;
use crate::table::write_parquet;
use crate::task::{JsonlTask, TASK_PARAMS, Task};
use crate::tasks::arith::Arith;
use crate::tasks::jsonl;

pub struct Problems;

const STREAM_PROBLEMS: u64 = 1;
const STREAM_SPLIT: u64 = 2;

/// One row of the table.
struct Row {
    split: &'static str,
    prompt: String,
    answer: String,
}

impl Stage for Problems {
    fn info(&self) -> StageInfo {
        StageInfo {
            kind: "problems",
            doc: "a table of problems (problem_id, split, prompt, answer) for the planted, arith or jsonl task",
            params: TASK_PARAMS.iter().chain(["train", "test", "test_fraction"].iter()).copied().collect(),
            inputs: vec![],
            outputs: vec![PortSpec::output("problems", "problems.parquet", "the problems")],
        }
    }

    fn version(&self) -> u32 {
        1
    }

    fn path_params(&self) -> &'static [&'static str] {
        // The jsonl task's problem file.
        &["path"]
    }

    fn run(&self, ctx: &mut StageContext<'_>) -> Result<(), StageError> {
        let p = Params::new(ctx.params);
        let task = Task::from_params(&p)?;
        let rows = match &task {
            Task::Planted(t) => {
                // The didactic task has one prompt: the empty prefix; the answer is the target.
                let answer = t.target.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" ");
                vec![
                    Row { split: "train", prompt: String::new(), answer: answer.clone() },
                    Row { split: "test", prompt: String::new(), answer },
                ]
            }
            Task::Arith(t) => arith_rows(t, &p, ctx.seed)?,
            Task::Jsonl(j) => jsonl_rows(j, &p, ctx)?,
        };
        writeln!(ctx.log, "task {}: {} problems", task.name(), rows.len())?;
        let schema = Arc::new(Schema::new(vec![
            Field::new("problem_id", DataType::Int64, false),
            Field::new("split", DataType::Utf8, false),
            Field::new("prompt", DataType::Utf8, false),
            Field::new("answer", DataType::Utf8, false),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(0..rows.len() as i64)),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.split))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.prompt.as_str()))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.answer.as_str()))),
        ];
        let batch = RecordBatch::try_new(schema, columns).map_err(|e| StageError::Failed(e.to_string()))?;
        let out =
            ctx.outputs.get("problems").ok_or_else(|| StageError::Failed("no path for output `problems`".into()))?;
        write_parquet(out, &batch)
    }
}

fn arith_rows(task: &Arith, p: &Params<'_>, seed: u64) -> Result<Vec<Row>, StageError> {
    let (train, test) = (p.uint_or("train", 256, 10_000_000)?, p.uint_or("test", 64, 10_000_000)?);
    Ok((0..train + test)
        .map(|i| {
            let prob = task.problem(&mut item_rng(seed, STREAM_PROBLEMS, i));
            Row {
                split: if i < train { "train" } else { "test" },
                prompt: prob.prompt(),
                answer: task.answer(&prob).to_string(),
            }
        })
        .collect())
}

fn jsonl_rows(j: &JsonlTask, p: &Params<'_>, ctx: &StageContext<'_>) -> Result<Vec<Row>, StageError> {
    let file = ctx.dir.join(&j.path);
    let problems = jsonl::read(&file, &j.problem_field, &j.answer_field).map_err(StageError::Failed)?;
    let frac = p.float_or("test_fraction", 0.2, 0.0, 1.0)?;
    Ok(problems
        .into_iter()
        .map(|q| {
            let test = item_rng(ctx.seed, STREAM_SPLIT, q.line as u64).random::<f64>() < frac;
            Row { split: if test { "test" } else { "train" }, prompt: q.prompt, answer: q.answer }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use arrow_array::cast::AsArray;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    fn run(params: serde_json::Value, dir: &std::path::Path) -> Result<RecordBatch, StageError> {
        let params = params.as_object().cloned().unwrap_or_default();
        let out = dir.join("problems.parquet");
        let outputs: BTreeMap<String, PathBuf> = [("problems".to_string(), out.clone())].into();
        let inputs = BTreeMap::new();
        let mut log = Vec::new();
        let mut ctx = StageContext { params: &params, seed: 9, dir, inputs: &inputs, outputs: &outputs, log: &mut log };
        Problems.run(&mut ctx)?;
        let file = std::fs::File::open(out)?;
        let mut reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
        Ok(reader.next().unwrap().unwrap())
    }

    #[test]
    fn jsonl_problems_are_split_deterministically() {
        let dir = tempfile::tempdir().unwrap();
        let lines: String = (0..50).map(|i| format!("{{\"q\": \"{i}+1\", \"a\": \"{}\"}}\n", i + 1)).collect();
        std::fs::write(dir.path().join("p.jsonl"), lines).unwrap();
        let params = serde_json::json!({"task": "jsonl", "path": "p.jsonl", "problem_field": "q", "answer_field": "a"});
        let a = run(params.clone(), dir.path()).unwrap();
        let b = run(params, dir.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.num_rows(), 50);
        // Each line's split is its own seeded draw (line numbers are 1-based): the same rule,
        // computed here independently, gives exactly the same rows, line by line.
        let split = a.column(1).as_string::<i32>();
        let want: Vec<&str> = (1..=50u64)
            .map(|line| if item_rng(9, STREAM_SPLIT, line).random::<f64>() < 0.2 { "test" } else { "train" })
            .collect();
        let got: Vec<&str> = split.iter().map(|s| s.unwrap()).collect();
        assert_eq!(got, want);
        let tests = want.iter().filter(|s| **s == "test").count();
        assert!(tests > 0 && tests < 50, "both splits are used ({tests} of 50 in test)");
        assert_eq!(a.column(3).as_string::<i32>().value(0), "1");
    }

    #[test]
    fn jsonl_without_path_names_the_param() {
        let dir = tempfile::tempdir().unwrap();
        let e = run(serde_json::json!({"task": "jsonl"}), dir.path()).unwrap_err();
        assert!(e.to_string().contains("param `path`"), "{e}");
        let e = run(serde_json::json!({"task": "chess"}), dir.path()).unwrap_err();
        assert!(e.to_string().contains("unknown task `chess`"), "{e}");
    }

    #[test]
    fn planted_problems_carry_the_target_param() {
        let dir = tempfile::tempdir().unwrap();
        let t = run(serde_json::json!({"task": "planted", "target": [1, 2, 3]}), dir.path()).unwrap();
        assert_eq!(t.num_rows(), 2);
        assert_eq!(t.column(3).as_string::<i32>().value(0), "1 2 3");
        let e = run(serde_json::json!({"task": "planted", "target": [1, 14]}), dir.path()).unwrap_err();
        assert!(e.to_string().contains("not the end token"), "{e}");
    }
}
