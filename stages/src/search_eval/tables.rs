//! The Parquet tables of `search-eval`: results, efficiency and picks.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use super::{EfficiencyRow, Pick, ResultRow};
use crate::contract::StageError;
use crate::table::write_parquet;

fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<RecordBatch, StageError> {
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| StageError::Failed(e.to_string()))
}

pub(super) fn write_results(path: &std::path::Path, rows: &[ResultRow], seed: u64) -> Result<(), StageError> {
    let f64s =
        |f: &dyn Fn(&ResultRow) -> f64| -> ArrayRef { Arc::new(Float64Array::from_iter_values(rows.iter().map(f))) };
    let i64s = |f: &dyn Fn(&ResultRow) -> u64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| f(r) as i64)))
    };
    let fields = vec![
        Field::new("method", DataType::Utf8, false),
        Field::new("n", DataType::Int32, false),
        Field::new("accuracy", DataType::Float64, false),
        Field::new("acc_lo", DataType::Float64, false),
        Field::new("acc_hi", DataType::Float64, false),
        Field::new("tokens", DataType::Int64, false),
        Field::new("steps_sampled", DataType::Int64, false),
        Field::new("verifier_calls", DataType::Int64, false),
        Field::new("problems", DataType::Int32, false),
        Field::new("seed", DataType::Int64, false),
        Field::new("gain_vs_orm", DataType::Float64, true),
    ];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.method.as_str()))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.n))),
        f64s(&|r| r.accuracy),
        f64s(&|r| r.acc_lo),
        f64s(&|r| r.acc_hi),
        i64s(&|r| r.ledger.tokens),
        i64s(&|r| r.ledger.steps_sampled),
        i64s(&|r| r.ledger.verifier_calls),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.problems))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|_| seed as i64))),
        Arc::new(Float64Array::from(rows.iter().map(|r| r.gain_vs_orm).collect::<Vec<_>>())),
    ];
    write_parquet(path, &batch(fields, columns)?)
}

pub(super) fn write_picks(path: &std::path::Path, picks: &[Pick]) -> Result<(), StageError> {
    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{Array, BooleanArray};
    let mut steps = ListBuilder::new(StringBuilder::new());
    for p in picks {
        for s in &p.steps {
            steps.values().append_value(s);
        }
        steps.append(true);
    }
    let steps = steps.finish();
    let fields = vec![
        Field::new("method", DataType::Utf8, false),
        Field::new("n", DataType::Int32, false),
        Field::new("problem_id", DataType::Int64, false),
        Field::new("steps", steps.data_type().clone(), false),
        Field::new("correct", DataType::Boolean, false),
        Field::new("score", DataType::Float64, true),
    ];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(picks.iter().map(|p| p.method.as_str()))),
        Arc::new(Int32Array::from_iter_values(picks.iter().map(|p| p.n))),
        Arc::new(Int64Array::from_iter_values(picks.iter().map(|p| p.problem_id))),
        Arc::new(steps),
        Arc::new(BooleanArray::from(picks.iter().map(|p| p.correct).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(picks.iter().map(|p| p.score).collect::<Vec<_>>())),
    ];
    write_parquet(path, &batch(fields, columns)?)
}

pub(super) fn write_efficiency(path: &std::path::Path, rows: &[EfficiencyRow]) -> Result<(), StageError> {
    let opt = |f: &dyn Fn(&EfficiencyRow) -> Option<f64>| -> ArrayRef {
        Arc::new(Float64Array::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let fields = vec![
        Field::new("method", DataType::Utf8, false),
        Field::new("orm_n", DataType::Int32, false),
        Field::new("orm_accuracy", DataType::Float64, false),
        Field::new("orm_tokens", DataType::Int64, false),
        Field::new("match_n", DataType::Int32, true),
        Field::new("match_tokens", DataType::Int64, true),
        Field::new("compute_ratio", DataType::Float64, true),
        Field::new("efficiency", DataType::Float64, true),
        Field::new("gain_at_max_n", DataType::Float64, true),
        Field::new("mean_gain", DataType::Float64, true),
    ];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.method.as_str()))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.orm_n))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.orm_accuracy))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.orm_tokens as i64))),
        Arc::new(Int32Array::from(rows.iter().map(|r| r.match_n).collect::<Vec<_>>())),
        Arc::new(Int64Array::from(rows.iter().map(|r| r.match_tokens.map(|t| t as i64)).collect::<Vec<_>>())),
        opt(&|r| r.compute_ratio),
        opt(&|r| r.efficiency),
        opt(&|r| r.gain_at_max_n),
        opt(&|r| r.mean_gain),
    ];
    write_parquet(path, &batch(fields, columns)?)
}
