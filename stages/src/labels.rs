//! The labels table that `rollout-label` writes and `prover-values` and `train-verifier` read:
//! one row per (problem_id, sample, step); docs/stages.md lists the columns.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use crate::contract::StageError;
use crate::table::write_parquet;

/// One row of a labels table.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelRow {
    pub problem_id: i64,
    pub sample: i32,
    pub step: i32,
    pub steps: i32,
    pub key: u64,
    pub rollouts: i32,
    pub successes: i32,
    pub q: f64,
    pub q_lo: f64,
    pub q_hi: f64,
    pub correct: bool,
    pub q_exact: Option<f64>,
    pub a_exact: Option<f64>,
}

/// Write a labels table; the exact columns only when the rows have them.
pub fn write_labels(path: &std::path::Path, rows: &[LabelRow]) -> Result<(), StageError> {
    let (fields, columns) = label_columns(rows);
    let batch =
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| StageError::Failed(e.to_string()))?;
    write_parquet(path, &batch)
}

/// The columns of a labels table (later kinds append their own).
pub fn label_columns(rows: &[LabelRow]) -> (Vec<Field>, Vec<ArrayRef>) {
    let mut fields = vec![
        Field::new("problem_id", DataType::Int64, false),
        Field::new("sample", DataType::Int32, false),
        Field::new("step", DataType::Int32, false),
        Field::new("steps", DataType::Int32, false),
        Field::new("prefix_hash", DataType::Utf8, false),
        Field::new("rollouts", DataType::Int32, false),
        Field::new("successes", DataType::Int32, false),
        Field::new("q", DataType::Float64, false),
        Field::new("q_lo", DataType::Float64, false),
        Field::new("q_hi", DataType::Float64, false),
        Field::new("correct", DataType::Boolean, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.problem_id))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.sample))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.step))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.steps))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| format!("{:016x}", r.key)))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.rollouts))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.successes))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.q))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.q_lo))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.q_hi))),
        Arc::new(BooleanArray::from(rows.iter().map(|r| r.correct).collect::<Vec<_>>())),
    ];
    if rows.first().is_some_and(|r| r.q_exact.is_some()) {
        fields.push(Field::new("q_exact", DataType::Float64, false));
        fields.push(Field::new("a_exact", DataType::Float64, true));
        columns.push(Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.q_exact.unwrap_or(f64::NAN)))));
        columns.push(Arc::new(Float64Array::from(rows.iter().map(|r| r.a_exact).collect::<Vec<_>>())));
    }
    (fields, columns)
}

/// Read a labels table (the output of `rollout-label`).
pub fn read_labels(path: &std::path::Path) -> Result<Vec<LabelRow>, StageError> {
    use crate::table::{column, read_parquet};
    let mut out = Vec::new();
    for batch in read_parquet(path)? {
        let id = column::<Int64Array>(&batch, path, "problem_id", "int64")?;
        let sample = column::<Int32Array>(&batch, path, "sample", "int32")?;
        let step = column::<Int32Array>(&batch, path, "step", "int32")?;
        let steps = column::<Int32Array>(&batch, path, "steps", "int32")?;
        let hash = column::<StringArray>(&batch, path, "prefix_hash", "string")?;
        let rollouts = column::<Int32Array>(&batch, path, "rollouts", "int32")?;
        let successes = column::<Int32Array>(&batch, path, "successes", "int32")?;
        let q = column::<Float64Array>(&batch, path, "q", "float64")?;
        let q_lo = column::<Float64Array>(&batch, path, "q_lo", "float64")?;
        let q_hi = column::<Float64Array>(&batch, path, "q_hi", "float64")?;
        let correct = column::<BooleanArray>(&batch, path, "correct", "bool")?;
        let exact = batch.column_by_name("q_exact").is_some();
        let (q_exact, a_exact) = if exact {
            (
                Some(column::<Float64Array>(&batch, path, "q_exact", "float64")?),
                Some(column::<Float64Array>(&batch, path, "a_exact", "float64")?),
            )
        } else {
            (None, None)
        };
        for i in 0..batch.num_rows() {
            out.push(LabelRow {
                problem_id: id.value(i),
                sample: sample.value(i),
                step: step.value(i),
                steps: steps.value(i),
                key: u64::from_str_radix(hash.value(i), 16).map_err(|_| {
                    StageError::Failed(format!(
                        "{}: row {i}: prefix_hash `{}` is not a 16-digit hex number; is this a `rollout-label` table?",
                        path.display(),
                        hash.value(i)
                    ))
                })?,
                rollouts: rollouts.value(i),
                successes: successes.value(i),
                q: q.value(i),
                q_lo: q_lo.value(i),
                q_hi: q_hi.value(i),
                correct: correct.value(i),
                q_exact: q_exact.map(|c| c.value(i)),
                a_exact: a_exact.and_then(|c| c.is_valid(i).then(|| c.value(i))),
            });
        }
    }
    Ok(out)
}
