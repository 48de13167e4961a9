//! The `prover-values` kind: values and advantages of Best-of-K provers, from one labelling run.
//!
//! Best-of-K of the base policy, `BoK(pi)`, samples K responses and keeps a correct one if any,
//! so its value needs no new rollouts (paper App. D, design 5.1):
//! `q_bok = 1 - (1 - q)^K` and `a_bok(step h) = (1 - q(h-1))^K - (1 - q(h))^K`, with `q` the base
//! policy's Monte-Carlo value of the prefix. `k` is this kind's param, not the labeller's, so a
//! sweep over K reuses one `rollout-label` run.
//!
//! With `k: 1` on labels rolled out by another checkpoint, the same columns are that prover's
//! own value and advantage, `a = q(h) - q(h-1)`.
//!
//! Output `values` (values.parquet): every column of the labels table, then k int32,
//! q_bok float64, a_bok float64 (null at step 0, where there is no step, and after a gap in
//! the labelled steps), one block of rows per K.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use serde_json::Value;

use crate::contract::{PortSpec, Stage, StageContext, StageError, StageInfo};
use crate::labels::{LabelRow, label_columns, read_labels};
use crate::table::write_parquet;
use crate::train_policy::port;

pub struct ProverValues;

/// `Q` of Best-of-K given the base policy's `q`.
pub fn q_bok(q: f64, k: u32) -> f64 {
    1.0 - (1.0 - q).powi(k as i32)
}

/// `A` of Best-of-K for a step that moved the base policy's value from `q_prev` to `q`.
pub fn a_bok(q_prev: f64, q: f64, k: u32) -> f64 {
    (1.0 - q_prev).powi(k as i32) - (1.0 - q).powi(k as i32)
}

/// The `k` param: one integer or a list, each at least 1.
pub fn read_ks(value: Option<&Value>) -> Result<Vec<u32>, StageError> {
    let bad = |v: &Value| StageError::Param {
        field: "k".into(),
        message: format!(
            "expected an integer K >= 1 (Best-of-K) or a list of them, found {v}; e.g. `k: 4` or `k: [1, 2, 4, 8]`"
        ),
    };
    let one = |v: &Value| v.as_u64().filter(|&k| (1..=1 << 20).contains(&k)).map(|k| k as u32).ok_or_else(|| bad(v));
    match value {
        None => Ok(vec![1, 2, 4, 8, 16, 32]),
        Some(Value::Array(items)) if !items.is_empty() => items.iter().map(one).collect(),
        Some(v @ Value::Array(_)) => Err(bad(v)),
        Some(v) => Ok(vec![one(v)?]),
    }
}

/// For every row, the value of the previous step of the same response, if it was labelled.
pub fn previous_q(rows: &[LabelRow]) -> Vec<Option<f64>> {
    let mut index = std::collections::HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        index.insert((r.problem_id, r.sample, r.step), i);
    }
    rows.iter().map(|r| index.get(&(r.problem_id, r.sample, r.step - 1)).map(|&j| rows[j].q)).collect()
}

impl Stage for ProverValues {
    fn info(&self) -> StageInfo {
        StageInfo {
            kind: "prover-values",
            doc: "Best-of-K prover values and advantages from one labelling run (q_bok, a_bok per K)",
            params: vec!["k"],
            inputs: vec![PortSpec::input("labels", "a `rollout-label` table")],
            outputs: vec![PortSpec::output("values", "values.parquet", "the labels with k, q_bok, a_bok")],
        }
    }

    fn version(&self) -> u32 {
        1
    }

    fn run(&self, ctx: &mut StageContext<'_>) -> Result<(), StageError> {
        let ks = read_ks(ctx.params.get("k").filter(|v| !v.is_null()))?;
        let rows = read_labels(port(ctx.inputs, "labels", "prover-values")?)?;
        let prev = previous_q(&rows);
        let (base_fields, base_columns) = label_columns(&rows);
        let mut batches = Vec::new();
        let mut fields = base_fields;
        fields.push(Field::new("k", DataType::Int32, false));
        fields.push(Field::new("q_bok", DataType::Float64, false));
        fields.push(Field::new("a_bok", DataType::Float64, true));
        let schema = Arc::new(Schema::new(fields));
        for &k in &ks {
            let mut columns = base_columns.clone();
            columns.push(Arc::new(Int32Array::from(vec![k as i32; rows.len()])) as ArrayRef);
            columns.push(Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| q_bok(r.q, k)))));
            columns.push(Arc::new(Float64Array::from(
                rows.iter().zip(&prev).map(|(r, p)| p.map(|qp| a_bok(qp, r.q, k))).collect::<Vec<_>>(),
            )));
            batches.push(
                RecordBatch::try_new(Arc::clone(&schema), columns).map_err(|e| StageError::Failed(e.to_string()))?,
            );
            let mean_abs: f64 = rows.iter().zip(&prev).filter_map(|(r, p)| p.map(|qp| a_bok(qp, r.q, k).abs())).sum();
            let n = prev.iter().filter(|p| p.is_some()).count().max(1);
            writeln!(ctx.log, "K = {k:>3}: mean |a_bok| {:.4} over {n} steps", mean_abs / n as f64)?;
        }
        let batch =
            arrow_select::concat::concat_batches(&schema, &batches).map_err(|e| StageError::Failed(e.to_string()))?;
        write_parquet(port(ctx.outputs, "values", "prover-values")?, &batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_param_accepts_one_or_a_list_and_rejects_zero() {
        assert_eq!(read_ks(None).unwrap(), vec![1, 2, 4, 8, 16, 32]);
        assert_eq!(read_ks(Some(&serde_json::json!(4))).unwrap(), vec![4]);
        assert_eq!(read_ks(Some(&serde_json::json!([2, 8]))).unwrap(), vec![2, 8]);
        for bad in [serde_json::json!(0), serde_json::json!([1, 0]), serde_json::json!([]), serde_json::json!("4")] {
            let e = read_ks(Some(&bad)).unwrap_err().to_string();
            assert!(e.contains("param `k`") && e.contains("K >= 1"), "{e}");
        }
    }

    #[test]
    fn bok_with_k_one_is_the_policy_itself_and_advantages_telescope() {
        let qs = [0.2, 0.5, 0.1, 1.0];
        for w in qs.windows(2) {
            assert!((a_bok(w[0], w[1], 1) - (w[1] - w[0])).abs() < 1e-15);
        }
        for k in [1, 4, 32] {
            let sum: f64 = qs.windows(2).map(|w| a_bok(w[0], w[1], k)).sum();
            assert!((sum - (q_bok(1.0, k) - q_bok(0.2, k))).abs() < 1e-12);
        }
        assert!((q_bok(0.5, 2) - 0.75).abs() < 1e-15);
    }
}
