//! The `sample` kind: `n` responses per problem from a policy checkpoint.
//!
//! Output `samples` (samples.parquet): problem_id int64, sample int32, steps list<string>,
//! response string, answer string, correct bool, logprob float64 (log-probability of the
//! response under the policy at temperature 1), tokens int32 (response tokens generated).
//! Responses are checked with the task recorded in the checkpoint. Sample `s` of problem `p`
//! draws from its own generator (seed, p, s), so raising `n` keeps the first samples as they
//! were, and no result depends on batch size or thread count.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use crate::contract::{PortSpec, Stage, StageContext, StageError, StageInfo};
use crate::generate::{Generated, SampleOpts, generate_planted, generate_text};
use crate::models::checkpoint::{Checkpoint, PolicyModel};
use crate::models::device::device;
use crate::params::Params;
use crate::rng::item_rng;
use crate::table::{ProblemRow, read_problems, write_parquet};
use crate::task::Task;
use crate::tokenizer;
use crate::train_policy::port;

pub struct Sample;

const STREAM_SAMPLE: u64 = 21;

/// The generator of sample `s` of problem `p`.
pub fn sample_rng(seed: u64, problem_id: i64, s: u64) -> rand_chacha::ChaCha8Rng {
    item_rng(seed, STREAM_SAMPLE, ((problem_id as u64) << 32) | s)
}

/// One output row.
pub struct SampleRow {
    pub problem_id: i64,
    pub sample: i32,
    pub steps: Vec<String>,
    pub response: String,
    pub answer: String,
    pub correct: bool,
    pub logprob: f64,
    pub tokens: i32,
}

fn param_err(field: &str, message: impl Into<String>) -> StageError {
    StageError::Param { field: field.into(), message: message.into() }
}

impl Stage for Sample {
    fn info(&self) -> StageInfo {
        StageInfo {
            kind: "sample",
            doc: "n responses per problem from a policy checkpoint, checked by the task",
            params: vec!["n", "split", "temperature", "max_steps", "max_tokens", "batch", "device"],
            inputs: vec![
                PortSpec::input("problems", "a `problems` table"),
                PortSpec::input("policy", "a `train-policy` (or `rl`) checkpoint"),
            ],
            outputs: vec![PortSpec::output("samples", "samples.parquet", "one row per response")],
        }
    }

    // 2: rows sharing a prompt decode from one prefilled copy of it (numerics may differ in
    // the last bits from version 1's lockstep batches).
    fn version(&self) -> u32 {
        // 3: the transformer decodes on the host (models/host.rs): the same function, other
        // float roundings, so sampled tokens can differ from version 2's.
        // 4: gemm's AVX-512 kernels (its `x86-v4` feature, ADR 0009) on machines that have
        // them: other float roundings there.
        // 5: planted decoding forwards only the rows still live (other batch shapes, so other
        // roundings are possible); the planted policy is a MADE by default.
        5
    }

    fn run(&self, ctx: &mut StageContext<'_>) -> Result<(), StageError> {
        let p = Params::new(ctx.params);
        let n = p.uint_in("n", 4, 1, 1 << 20)?;
        let split = p.str_or("split", "all")?;
        if !["all", "train", "test"].contains(&split.as_str()) {
            return Err(param_err("split", format!("expected `all`, `train` or `test`, found `{split}`")));
        }
        let opts = SampleOpts {
            temperature: p.float_or("temperature", 1.0, 0.0, 100.0)?,
            max_steps: p.uint_in("max_steps", 64, 1, 1 << 20)? as usize,
            max_tokens: p.uint_in("max_tokens", 512, 1, 1 << 20)? as usize,
            batch: p.uint_in("batch", 256, 1, 1 << 20)? as usize,
        };
        let dev = device(&p.str_or("device", "cpu")?).map_err(|m| param_err("device", m))?;
        let problems: Vec<ProblemRow> = read_problems(port(ctx.inputs, "problems", "sample")?)?
            .into_iter()
            .filter(|r| split == "all" || r.split == split)
            .collect();
        let ckpt = Checkpoint::load(port(ctx.inputs, "policy", "sample")?, &dev)?;
        ckpt.check_prompts(&problems, "sample")?;
        let task = Task::from_params(&Params::new(&ckpt.task))?;
        let rows = sample_rows(&ckpt, &task, &problems, n, opts, ctx.seed, &dev)?;
        let right = rows.iter().filter(|r| r.correct).count();
        writeln!(
            ctx.log,
            "{} problems x {n} samples: {right} correct ({:.3})",
            problems.len(),
            right as f64 / rows.len().max(1) as f64
        )?;
        write_samples(port(ctx.outputs, "samples", "sample")?, &rows)
    }
}

/// Sample and check `n` responses for every problem.
pub fn sample_rows(
    ckpt: &Checkpoint,
    task: &Task,
    problems: &[ProblemRow],
    n: u64,
    opts: SampleOpts,
    seed: u64,
    dev: &burn::prelude::Device,
) -> Result<Vec<SampleRow>, StageError> {
    let ids: Vec<(usize, u64)> = (0..problems.len()).flat_map(|i| (0..n).map(move |s| (i, s))).collect();
    let mut rngs: Vec<_> = ids.iter().map(|&(i, s)| sample_rng(seed, problems[i].problem_id, s)).collect();
    let generated: Vec<Generated> = match (&ckpt.model, task) {
        (PolicyModel::Mlp(config, model), Task::Planted(t)) => {
            let prefixes = vec![Vec::new(); ids.len()];
            generate_planted(model, config, t, &prefixes, &mut rngs, opts, dev)
        }
        (PolicyModel::Transformer(_, model), Task::Arith(_) | Task::Jsonl(_)) => {
            let prefixes: Vec<Vec<u32>> =
                ids.iter().map(|&(i, _)| tokenizer::encode_prompt(&problems[i].prompt)).collect();
            generate_text(model, &prefixes, &mut rngs, opts, dev)
        }
        _ => {
            return Err(StageError::Failed(format!(
                "the checkpoint's model does not fit its task `{}` (an MLP serves `planted`, a transformer the text tasks)",
                task.name()
            )));
        }
    };
    Ok(ids
        .iter()
        .zip(generated)
        .map(|(&(i, s), g)| {
            let prob = &problems[i];
            let (steps, response) = match task {
                Task::Planted(_) => {
                    let steps: Vec<String> = g.tokens.iter().map(|t| t.to_string()).collect();
                    let response = steps.join(" ");
                    (steps, response)
                }
                _ => {
                    let response = tokenizer::decode(&g.tokens);
                    (tokenizer::steps(&response), response)
                }
            };
            let (answer, correct) = task.check_text(&prob.answer, &steps);
            SampleRow {
                problem_id: prob.problem_id,
                sample: s as i32,
                steps,
                response,
                answer,
                correct,
                logprob: g.logprob,
                tokens: g.tokens.len() as i32,
            }
        })
        .collect())
}

/// Write a samples table.
pub fn write_samples(path: &std::path::Path, rows: &[SampleRow]) -> Result<(), StageError> {
    let mut steps = ListBuilder::new(StringBuilder::new());
    for r in rows {
        for s in &r.steps {
            steps.values().append_value(s);
        }
        steps.append(true);
    }
    let steps = steps.finish();
    let schema = Arc::new(Schema::new(vec![
        Field::new("problem_id", DataType::Int64, false),
        Field::new("sample", DataType::Int32, false),
        Field::new("steps", steps.data_type().clone(), false),
        Field::new("response", DataType::Utf8, false),
        Field::new("answer", DataType::Utf8, false),
        Field::new("correct", DataType::Boolean, false),
        Field::new("logprob", DataType::Float64, false),
        Field::new("tokens", DataType::Int32, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.problem_id))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.sample))),
        Arc::new(steps),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.response.as_str()))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.answer.as_str()))),
        Arc::new(BooleanArray::from(rows.iter().map(|r| r.correct).collect::<Vec<_>>())),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.logprob))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.tokens))),
    ];
    let batch = RecordBatch::try_new(schema, columns).map_err(|e| StageError::Failed(e.to_string()))?;
    write_parquet(path, &batch)
}

/// The columns of a samples table that later kinds read.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRef {
    pub problem_id: i64,
    pub sample: i32,
    pub steps: Vec<String>,
    pub correct: bool,
}

/// Read a samples table (the output of `sample`, or any table with its columns).
pub fn read_samples(path: &std::path::Path) -> Result<Vec<SampleRef>, StageError> {
    use arrow_array::ListArray;

    use crate::table::{column, read_parquet};
    let mut out = Vec::new();
    for batch in read_parquet(path)? {
        let id = column::<Int64Array>(&batch, path, "problem_id", "int64")?;
        let sample = column::<Int32Array>(&batch, path, "sample", "int32")?;
        let steps = column::<ListArray>(&batch, path, "steps", "list<string>")?;
        let correct = column::<BooleanArray>(&batch, path, "correct", "bool")?;
        for i in 0..batch.num_rows() {
            let list = steps.value(i);
            let list = list.as_any().downcast_ref::<StringArray>().ok_or_else(|| {
                StageError::Failed(format!("input table {}: column `steps` must be list<string>", path.display()))
            })?;
            out.push(SampleRef {
                problem_id: id.value(i),
                sample: sample.value(i),
                steps: (0..list.len()).map(|j| list.value(j).to_string()).collect(),
                correct: correct.value(i),
            });
        }
    }
    Ok(out)
}
