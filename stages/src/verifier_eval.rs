//! The evaluation table of `train-verifier`: per step index, how well the verifier's score
//! predicts the final outcome on held-out (and on its own training) problems.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use burn::prelude::*;

use crate::contract::StageError;
use crate::models::verifier::VerifierCheckpoint;
use crate::stats::{auroc, best_threshold, ece, error_at};
use crate::table::write_parquet;

/// One training or evaluation sequence: a whole seed response with its readouts.
#[derive(Debug, Clone)]
pub struct Example {
    pub problem_id: i64,
    pub tokens: Vec<u32>,
    /// Token index of each step boundary, step 0 first.
    pub positions: Vec<usize>,
    /// Per step: the label of each head (None = no label at that step).
    pub labels: Vec<Vec<Option<f64>>>,
    /// Per step: the Monte-Carlo `q` of the base policy, where labelled.
    pub q_mc: Vec<Option<f64>>,
    pub correct: bool,
}

/// One row of the evaluation table.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRow {
    /// `test` (held-out problems) or `train` (the verifier's own training problems).
    pub split: &'static str,
    /// Step index; -1 for the last step of each response.
    pub step: i32,
    pub n: i32,
    pub positives: i32,
    pub auroc: Option<f64>,
    pub ece: f64,
    pub mse: Option<f64>,
    pub error: f64,
    pub mean_score: f64,
}

/// Per step index: (score, Q head, Monte-Carlo q, final outcome) of every response reaching it;
/// key -1 collects each response's last step.
type ByStep = std::collections::BTreeMap<i32, Vec<(f64, f64, Option<f64>, bool)>>;

fn scored(ckpt: &VerifierCheckpoint, examples: &[Example], alpha: f64, device: &Device) -> Result<ByStep, StageError> {
    let context = ckpt.config.context;
    let positions: Vec<Vec<usize>> =
        examples.iter().map(|e| e.positions.iter().copied().take_while(|&p| p < context).collect()).collect();
    let values =
        ckpt.values_at(&examples.iter().map(|e| e.tokens.clone()).collect::<Vec<_>>(), &positions, 64, device)?;
    let mut by_step = ByStep::new();
    for ((ex, pos), vals) in examples.iter().zip(&positions).zip(values) {
        let scores = ckpt.meta.scores(&vals, alpha);
        for (h, sc) in scores.iter().enumerate() {
            by_step.entry(h as i32).or_default().push((sc.score, sc.q, ex.q_mc[h], ex.correct));
        }
        if pos.len() == ex.positions.len()
            && let Some(last) = scores.last()
        {
            by_step.entry(-1).or_default().push((last.score, last.q, ex.q_mc.last().copied().flatten(), ex.correct));
        }
    }
    Ok(by_step)
}

/// Evaluate on the `test` examples (and, to show over-fitting, on the `train` examples), with
/// thresholds chosen on the `train` examples.
pub fn evaluate(
    ckpt: &VerifierCheckpoint,
    train: &[Example],
    test: &[Example],
    alpha: f64,
    device: &Device,
) -> Result<Vec<EvalRow>, StageError> {
    let fit = scored(ckpt, train, alpha, device)?;
    let held = scored(ckpt, test, alpha, device)?;
    let mut rows = Vec::new();
    for (split, by_step) in [("test", &held), ("train", &fit)] {
        let mut block = Vec::new();
        for (&step, items) in by_step {
            let scores: Vec<f64> = items.iter().map(|i| i.0).collect();
            let qs: Vec<f64> = items.iter().map(|i| i.1.clamp(0.0, 1.0)).collect();
            let outcome: Vec<bool> = items.iter().map(|i| i.3).collect();
            let labelled: Vec<(f64, f64)> = items.iter().filter_map(|i| i.2.map(|m| (i.1, m))).collect();
            let threshold = fit.get(&step).map_or(0.5, |f| {
                best_threshold(&f.iter().map(|i| i.0).collect::<Vec<_>>(), &f.iter().map(|i| i.3).collect::<Vec<_>>()).0
            });
            block.push(EvalRow {
                split,
                step,
                n: items.len() as i32,
                positives: outcome.iter().filter(|&&o| o).count() as i32,
                auroc: auroc(&scores, &outcome),
                ece: ece(&qs, &outcome, 10),
                mse: (!labelled.is_empty())
                    .then(|| labelled.iter().map(|(q, m)| (q - m).powi(2)).sum::<f64>() / labelled.len() as f64),
                error: error_at(&scores, &outcome, threshold),
                mean_score: scores.iter().sum::<f64>() / scores.len().max(1) as f64,
            });
        }
        // The last-step row after the per-step rows.
        let first_is_last_step = block.first().is_some_and(|r| r.step == -1);
        block.rotate_left(usize::from(first_is_last_step));
        rows.extend(block);
    }
    Ok(rows)
}

/// Write an evaluation table.
pub fn write_eval(path: &std::path::Path, rows: &[EvalRow]) -> Result<(), StageError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("split", DataType::Utf8, false),
        Field::new("step", DataType::Int32, false),
        Field::new("n", DataType::Int32, false),
        Field::new("positives", DataType::Int32, false),
        Field::new("auroc", DataType::Float64, true),
        Field::new("ece", DataType::Float64, false),
        Field::new("mse", DataType::Float64, true),
        Field::new("error", DataType::Float64, false),
        Field::new("mean_score", DataType::Float64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.split))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.step))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.n))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.positives))),
        Arc::new(Float64Array::from(rows.iter().map(|r| r.auroc).collect::<Vec<_>>())),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.ece))),
        Arc::new(Float64Array::from(rows.iter().map(|r| r.mse).collect::<Vec<_>>())),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.error))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.mean_score))),
    ];
    let batch = RecordBatch::try_new(schema, columns).map_err(|e| StageError::Failed(e.to_string()))?;
    write_parquet(path, &batch)
}
