//! One metric against one table: filter the rows (`where`), reduce the column to a number,
//! and compare it with the baseline value.
//!
//! Failures come in two kinds, as [`Problem`]s: the baseline asks for something the table
//! cannot give (a column it lacks, a filter that matches nothing, several rows without
//! `reduce`), which is a mistake in the baseline file (exit 2); or the data cannot be turned
//! into a number (a null, a NaN), which fails the metric (exit 1).

use std::path::Path;

use super::baseline::{Better, Metric, Number, Reduce, Tolerance};
use crate::engine::spec::diag::{SpecError, suggest};
use crate::engine::value::Value;
use crate::table::{Cell, read_columns};

/// Why a metric has no current value.
#[derive(Debug, Clone)]
pub enum Problem {
    /// The baseline asks for something this pipeline or table does not have (exit 2).
    Baseline(SpecError),
    /// The metric could not be evaluated (exit 1).
    Eval(SpecError),
}

impl Problem {
    pub fn error(&self) -> &SpecError {
        match self {
            Problem::Baseline(e) | Problem::Eval(e) => e,
        }
    }
}

/// Outcome of comparing a current value with the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Improved,
    Regressed,
}

/// The metric's current value from the Parquet table at `path`.
pub fn measure(m: &Metric, path: &Path) -> Result<Number, Problem> {
    let mut wanted: Vec<&str> = vec![m.column.as_str()];
    wanted.extend(m.filters.iter().map(|(c, _, _)| c.as_str()));
    let table = read_columns(path, &wanted)
        .map_err(|e| Problem::Eval(SpecError::new("B030", m.loc, format!("metric `{}`: {e}", m.name))))?;
    let names: Vec<&str> = table.names.iter().map(String::as_str).collect();
    let column = |name: &str| table.data.iter().find(|(n, _)| n == name).map(|(_, cells)| cells);
    let missing = |name: &str, loc, what: &str| {
        Problem::Baseline(
            SpecError::new("B020", loc, format!("metric `{}`: {what} `{name}` is not in the table", m.name))
                .label("no such column")
                .help(suggest(name, &names, "its columns")),
        )
    };
    let Some(values) = column(&m.column) else {
        return Err(missing(&m.column, m.column_loc, "column"));
    };
    // Apply the filters one by one, so that a filter that removes the last rows can be named.
    let mut keep: Vec<usize> = (0..table.rows as usize).collect();
    for (col, want, loc) in &m.filters {
        let Some(cells) = column(col) else {
            return Err(missing(col, *loc, "`where` column"));
        };
        let before = keep.len();
        keep.retain(|&r| cells.get(r).is_some_and(|c| matches(c, want)));
        if keep.is_empty() && m.reduce != Some(Reduce::Count) {
            let types = distinct_types(cells);
            let hint = if types.iter().any(|t| *t == want.type_name() || (is_num(t) && is_num(want.type_name()))) {
                String::new()
            } else {
                format!("; the column holds {}, the filter is a {}", types.join(" and "), want.type_name())
            };
            return Err(Problem::Baseline(
                SpecError::new(
                    "B021",
                    *loc,
                    format!(
                        "metric `{}`: no row matches; the table has {} rows, {before} before `{col} == {}`{hint}",
                        m.name,
                        table.rows,
                        want.render()
                    ),
                )
                .label("removed every remaining row")
                .help(sample_values(cells)),
            ));
        }
    }
    if keep.is_empty() && m.reduce != Some(Reduce::Count) {
        return Err(Problem::Baseline(SpecError::new(
            "B021",
            m.column_loc,
            format!("metric `{}`: the table has no rows", m.name),
        )));
    }
    let cells: Vec<&Cell> = keep.iter().map(|&r| &values[r]).collect();
    let numbers = || -> Result<Vec<Number>, Problem> { cells.iter().map(|c| number(m, c)).collect() };
    let out = match m.reduce {
        None if cells.len() > 1 => {
            return Err(Problem::Baseline(
                SpecError::new(
                    "B022",
                    m.loc,
                    format!("metric `{}`: {} rows match and there is no `reduce`", m.name, cells.len()),
                )
                .label("several rows")
                .help("narrow `where` to one row, or add `reduce:` (mean, min, max, last, sum or count)"),
            ));
        }
        None | Some(Reduce::Last) => number(m, cells[cells.len() - 1])?,
        Some(Reduce::Count) => Number::Int(cells.len() as i64),
        Some(Reduce::Mean) => {
            let ns = numbers()?;
            Number::Float(ns.iter().map(|n| n.as_f64()).sum::<f64>() / ns.len() as f64)
        }
        Some(Reduce::Sum) => {
            let ns = numbers()?;
            match ints(&ns) {
                Some(is) => is
                    .iter()
                    .try_fold(0i64, |a, b| a.checked_add(*b))
                    .map(Number::Int)
                    .unwrap_or_else(|| Number::Float(is.iter().map(|&i| i as f64).sum())),
                None => Number::Float(ns.iter().map(|n| n.as_f64()).sum()),
            }
        }
        Some(r @ (Reduce::Min | Reduce::Max)) => {
            let ns = numbers()?;
            let pick = |a: f64, b: f64| if r == Reduce::Min { a.min(b) } else { a.max(b) };
            match ints(&ns) {
                Some(is) => {
                    Number::Int(if r == Reduce::Min { is.iter().min() } else { is.iter().max() }.copied().unwrap_or(0))
                }
                None => Number::Float(ns.iter().map(|n| n.as_f64()).fold(ns[0].as_f64(), pick)),
            }
        }
    };
    if !out.as_f64().is_finite() {
        return Err(Problem::Eval(SpecError::new(
            "B031",
            m.column_loc,
            format!("metric `{}`: the value of `{}` is {}", m.name, m.column, out.render()),
        )));
    }
    Ok(out)
}

/// Compare `current` with the metric's baseline value: the difference and the verdict.
pub fn compare(m: &Metric, current: Number) -> (Number, Verdict) {
    let delta = match (m.value, current) {
        (Number::Int(b), Number::Int(c)) => c.checked_sub(b).map(Number::Int),
        _ => None,
    }
    .unwrap_or_else(|| Number::Float(current.as_f64() - m.value.as_f64()));
    (delta, verdict(m.value, delta, m.tolerance, m.better))
}

fn verdict(baseline: Number, delta: Number, t: Tolerance, better: Better) -> Verdict {
    let d = delta.as_f64();
    let within_abs = t.abs.is_some_and(|a| d.abs() <= a);
    let within_rel = t.rel.is_some_and(|r| d.abs() <= r * baseline.as_f64().abs());
    if within_abs || within_rel {
        return Verdict::Ok;
    }
    match better {
        Better::Higher if d > 0.0 => Verdict::Improved,
        Better::Lower if d < 0.0 => Verdict::Improved,
        _ => Verdict::Regressed,
    }
}

/// `column == value` by natural type; ints and floats compare as numbers.
fn matches(cell: &Cell, want: &Value) -> bool {
    match (cell, want) {
        (Cell::Bool(a), Value::Bool(b)) => a == b,
        (Cell::Int(a), Value::Int(b)) => a == b,
        (Cell::Float(a), Value::Float(b)) => a == b,
        (Cell::Int(a), Value::Float(b)) => (*a as f64) == *b,
        (Cell::Float(a), Value::Int(b)) => *a == (*b as f64),
        (Cell::Str(a), Value::Str(b)) => a == b,
        _ => false,
    }
}

/// A cell as a number: ints, floats, and bools as 0 / 1 (so that `mean` of a bool column is a
/// rate).
fn number(m: &Metric, cell: &Cell) -> Result<Number, Problem> {
    match cell {
        Cell::Int(i) => Ok(Number::Int(*i)),
        Cell::Float(f) => Ok(Number::Float(*f)),
        Cell::Bool(b) => Ok(Number::Int(i64::from(*b))),
        Cell::Null => Err(Problem::Eval(
            SpecError::new(
                "B031",
                m.column_loc,
                format!("metric `{}`: `{}` is null in a matching row", m.name, m.column),
            )
            .help("nulls cannot be compared; filter them out with `where` or fix the stage"),
        )),
        other => Err(Problem::Baseline(
            SpecError::new(
                "B023",
                m.column_loc,
                format!("metric `{}`: column `{}` holds {} values, not numbers", m.name, m.column, other.type_name()),
            )
            .label("not numeric")
            .help("a metric reads an int, float or bool column; `reduce: count` counts rows of any column"),
        )),
    }
}

fn ints(ns: &[Number]) -> Option<Vec<i64>> {
    ns.iter().map(|n| if let Number::Int(i) = n { Some(*i) } else { None }).collect()
}

fn is_num(t: &str) -> bool {
    t == "int" || t == "float"
}

fn distinct_types(cells: &[Cell]) -> Vec<&'static str> {
    let mut t: Vec<&'static str> = cells.iter().map(Cell::type_name).filter(|t| *t != "null").collect();
    t.sort();
    t.dedup();
    if t.is_empty() { vec!["nulls"] } else { t }
}

/// "values in the table: a, b, c" (the first few distinct ones).
fn sample_values(cells: &[Cell]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for c in cells {
        let text = match c {
            Cell::Null => "null".to_string(),
            Cell::Bool(b) => b.to_string(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => Number::Float(*f).render(),
            Cell::Str(s) => format!("{s:?}"),
            Cell::Other(_, s) => s.clone(),
        };
        if !seen.contains(&text) {
            seen.push(text);
        }
        if seen.len() > 8 {
            break;
        }
    }
    let more = if seen.len() > 8 { ", ..." } else { "" };
    seen.truncate(8);
    format!("values of this column: {}{more}", seen.join(", "))
}
