//! From rows to plotted points: keep the rows the `filter` selects, split them into series
//! (one per distinct tuple of the `series` columns, sorted by value), and reduce the rows that
//! share (series, x) to one point by the `aggregate` rule, with an optional band.
//!
//! `band: ci95` draws the 95% Student t interval of the mean over the rows of a point (e.g.
//! seeds): mean ± t(0.975, n - 1) · s / sqrt(n) with `s` the sample standard deviation; a point
//! of one row has no band. With 3 seeds t is 4.30, not 1.96: a normal quantile would claim 95%
//! for what is closer to an 80% interval. `lo` / `hi` columns are reduced like `y` (mean, or the
//! chosen row's values). `clip` bounds the band (not `y`) to a range, e.g. [0, 1] for accuracies.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use serde_json::Value;

use crate::contract::StageError;
use crate::figure_data::{Cell, Frame};

/// How rows that share (series, x) become one point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Mean,
    /// The median of the rows (the mean of the two middle ones for an even count).
    Median,
    /// The row with the largest `order` value, else the last one read.
    Last,
    Max,
    Min,
}

/// Column indices and rules, resolved against a [`Frame`].
#[derive(Debug, Clone)]
pub struct PointSpec {
    pub x: usize,
    pub y: usize,
    pub series: Vec<usize>,
    pub lo: Option<usize>,
    pub hi: Option<usize>,
    pub ci95: bool,
    /// The 25th to 75th percentile band (with [`Aggregate::Median`]).
    pub quartiles: bool,
    pub aggregate: Aggregate,
    pub order: Option<usize>,
    pub log_x: bool,
    pub log_y: bool,
    /// Bounds for `lo` / `hi` (e.g. 0 and 1 for a rate).
    pub clip: Option<(f64, f64)>,
}

/// One plotted point.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub lo: Option<f64>,
    pub hi: Option<f64>,
    /// Rows reduced into this point.
    pub n: i32,
}

/// One line of the figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series values, rendered and joined by ", " (empty without `series`).
    pub key: String,
    /// The legend text (`legend[key]`, else the key, else the y label).
    pub label: String,
    pub points: Vec<Point>,
}

/// Does a cell match one `filter` value? Numbers compare numerically.
pub fn matches(cell: &Cell, want: &Value) -> bool {
    match want {
        Value::Null => matches!(cell, Cell::Null),
        Value::Number(n) => n.as_f64().is_some_and(|w| cell.number() == Some(w)),
        Value::String(s) => match cell {
            Cell::Str(c) => c == s,
            Cell::Num(x) => s.trim().parse::<f64>().ok() == Some(*x),
            Cell::Null => false,
        },
        Value::Bool(b) => cell.render() == b.to_string(),
        _ => false,
    }
}

/// Indices of the rows that pass every filter.
pub fn filter_rows(frame: &Frame, filters: &[(usize, Vec<Value>)]) -> Vec<usize> {
    (0..frame.rows.len())
        .filter(|&r| filters.iter().all(|(c, wants)| wants.iter().any(|w| matches(frame.cell(r, *c), w))))
        .collect()
}

/// The series of the kept rows and how many rows were skipped for a missing or non-finite x
/// or y (or a non-positive one on a log axis).
pub fn build_series(
    frame: &Frame,
    rows: &[usize],
    spec: &PointSpec,
    label_of: &dyn Fn(&str) -> String,
) -> (Vec<Series>, usize) {
    let mut skipped = 0;
    // (series tuple, x, row) in read order; a stable sort keeps that order within a point.
    let mut keyed: Vec<(Vec<Cell>, f64, usize)> = Vec::new();
    for &r in rows {
        let x = frame.cell(r, spec.x).number().filter(|v| v.is_finite() && (!spec.log_x || *v > 0.0));
        let y = frame.cell(r, spec.y).number().filter(|v| v.is_finite() && (!spec.log_y || *v > 0.0));
        match (x, y) {
            (Some(x), Some(_)) => keyed.push((spec.series.iter().map(|&c| frame.cell(r, c).clone()).collect(), x, r)),
            _ => skipped += 1,
        }
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut out: Vec<Series> = Vec::new();
    let mut i = 0;
    while i < keyed.len() {
        let mut j = i;
        while j < keyed.len() && keyed[j].0 == keyed[i].0 && keyed[j].1 == keyed[i].1 {
            j += 1;
        }
        let group: Vec<usize> = keyed[i..j].iter().map(|k| k.2).collect();
        let point = reduce(frame, &group, keyed[i].1, spec);
        let key = keyed[i].0.iter().map(Cell::render).collect::<Vec<_>>().join(", ");
        match out.last_mut() {
            Some(s) if s.key == key => s.points.push(point),
            _ => out.push(Series { label: label_of(&key), key, points: vec![point] }),
        }
        i = j;
    }
    (out, skipped)
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (12.71 at 1, 4.30 at 2,
/// 1.98 at 120).
pub fn t975(df: usize) -> f64 {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    // df >= 1 and scale 1 are valid parameters, so `new` cannot fail; 1.96 is the df -> inf limit.
    StudentsT::new(0.0, 1.0, df as f64).map_or(1.96, |t| t.inverse_cdf(0.975))
}

fn clip(mut p: Point, range: Option<(f64, f64)>) -> Point {
    if let Some((a, b)) = range {
        p.lo = p.lo.map(|v| v.clamp(a, b));
        p.hi = p.hi.map(|v| v.clamp(a, b));
    }
    p
}

fn reduce(frame: &Frame, group: &[usize], x: f64, spec: &PointSpec) -> Point {
    let num = |r: usize, c: Option<usize>| c.and_then(|c| frame.cell(r, c).number()).filter(|v| v.is_finite());
    let ys: Vec<f64> = group.iter().map(|&r| num(r, Some(spec.y)).unwrap_or(f64::NAN)).collect();
    let n = group.len() as i32;
    let pick = |r: usize| {
        let point =
            Point { x, y: num(r, Some(spec.y)).unwrap_or(f64::NAN), lo: num(r, spec.lo), hi: num(r, spec.hi), n };
        clip(point, spec.clip)
    };
    match spec.aggregate {
        Aggregate::Mean => {
            let mean = ys.iter().sum::<f64>() / ys.len() as f64;
            let (mut lo, mut hi) = (
                mean_of(group.iter().filter_map(|&r| num(r, spec.lo))),
                mean_of(group.iter().filter_map(|&r| num(r, spec.hi))),
            );
            if spec.ci95 && ys.len() >= 2 {
                let var = ys.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / (ys.len() - 1) as f64;
                let half = t975(ys.len() - 1) * (var / ys.len() as f64).sqrt();
                lo = Some(mean - half);
                hi = Some(mean + half);
            }
            clip(Point { x, y: mean, lo, hi, n }, spec.clip)
        }
        Aggregate::Median => {
            let mut sorted = ys.clone();
            sorted.sort_by(f64::total_cmp);
            let (lo, hi) = if spec.quartiles && sorted.len() >= 2 {
                (Some(quantile(&sorted, 0.25)), Some(quantile(&sorted, 0.75)))
            } else {
                (None, None)
            };
            clip(Point { x, y: quantile(&sorted, 0.5), lo, hi, n }, spec.clip)
        }
        Aggregate::Last => {
            let last = match spec.order {
                // Largest order value wins; ties and nulls go to the row read last.
                Some(c) => {
                    let key = |r: usize| frame.cell(r, c).number().unwrap_or(f64::NEG_INFINITY);
                    // `max_by` keeps the last of equal elements: the row read last.
                    group.iter().copied().max_by(|&a, &b| key(a).total_cmp(&key(b))).unwrap_or(group[group.len() - 1])
                }
                None => group[group.len() - 1],
            };
            pick(last)
        }
        Aggregate::Max | Aggregate::Min => {
            let mut best = 0;
            for (k, y) in ys.iter().enumerate() {
                let better = if spec.aggregate == Aggregate::Max { *y > ys[best] } else { *y < ys[best] };
                if better {
                    best = k;
                }
            }
            pick(group[best])
        }
    }
}

/// The `q` quantile of sorted values by linear interpolation between order statistics
/// (numpy's default): position `q * (n - 1)`.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos - pos.floor());
    match sorted.get(i + 1) {
        Some(next) => sorted[i] + f * (next - sorted[i]),
        None => sorted[i],
    }
}

fn mean_of(values: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = values.collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The `points` table: series (legend text), x, y, lo, hi, n.
pub fn points_batch(series: &[Series]) -> Result<RecordBatch, StageError> {
    let rows: Vec<(&str, &Point)> =
        series.iter().flat_map(|s| s.points.iter().map(move |p| (s.label.as_str(), p))).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("series", DataType::Utf8, false),
        Field::new("x", DataType::Float64, false),
        Field::new("y", DataType::Float64, false),
        Field::new("lo", DataType::Float64, true),
        Field::new("hi", DataType::Float64, true),
        Field::new("n", DataType::Int32, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.1.x))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.1.y))),
        Arc::new(Float64Array::from(rows.iter().map(|r| r.1.lo).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(rows.iter().map(|r| r.1.hi).collect::<Vec<_>>())),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.1.n))),
    ];
    RecordBatch::try_new(schema, columns).map_err(|e| StageError::Failed(e.to_string()))
}
