//! The `figure` kind: a line chart (SVG and PNG) of one or more tables, with the points it
//! drew as a table and a JSON record of what it shows.
//!
//! Inputs `data` (required) and `data2`..`data4` are Parquet tables or gathered directories;
//! their rows are concatenated with the sweep values and the input port (`input`) as columns
//! ([`crate::figure_data`]). `filter` keeps rows, `series` splits them into lines, rows that
//! share (series, x) are reduced to one point by `aggregate`, with a band from `lo`/`hi`
//! columns or `band: ci95` ([`crate::figure_points`]); [`crate::figure_draw`] renders it.
//!
//! Outputs: `svg` (figure.svg), `png` (figure.png), `points` (points.parquet: series string,
//! x float64, y float64, lo float64 nullable, hi float64 nullable, n int32 = rows reduced into
//! the point; series is the legend text), `meta` (figure.json: title, caption, paper, labels,
//! series labels, rows per input, skipped rows). Rows whose x or y is missing or not finite
//! are skipped and counted.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::contract::{PortSpec, Stage, StageContext, StageError, StageInfo};
use crate::figure_data::Frame;
use crate::figure_draw::{Plot, png, svg};
use crate::figure_points::{Aggregate, PointSpec, build_series, filter_rows, points_batch};
use crate::params::Params;
use crate::table::write_parquet;
use crate::train_policy::port;

pub struct Figure;

const PARAMS: &[&str] = &[
    "title",
    "x",
    "y",
    "xlabel",
    "ylabel",
    "series",
    "filter",
    "lo",
    "hi",
    "band",
    "aggregate",
    "order",
    "log_x",
    "log_y",
    "clip",
    "legend",
    "caption",
    "paper",
    "reference",
    "width",
    "height",
];

/// Input ports, in the order their rows are read.
pub const INPUTS: [&str; 4] = ["data", "data2", "data3", "data4"];

/// The params, typed; column names are checked against the data in [`Figure::run`].
#[derive(Debug, Clone, PartialEq)]
pub struct FigureParams {
    pub title: String,
    pub x: String,
    pub y: String,
    pub xlabel: String,
    pub ylabel: String,
    pub series: Vec<String>,
    pub filter: Vec<(String, Vec<Value>)>,
    pub lo: Option<String>,
    pub hi: Option<String>,
    pub ci95: bool,
    /// `band: quartiles`: the 25th to 75th percentile of the rows of a point.
    pub quartiles: bool,
    pub aggregate: Aggregate,
    pub order: Option<String>,
    pub log_x: bool,
    pub log_y: bool,
    pub clip: Option<(f64, f64)>,
    pub legend: BTreeMap<String, String>,
    pub caption: String,
    pub paper: String,
    pub reference: Vec<(f64, String)>,
    pub width: u32,
    pub height: u32,
}

fn perr(field: &str, message: impl Into<String>) -> StageError {
    StageError::Param { field: field.into(), message: message.into() }
}

fn required_str(map: &Map<String, Value>, field: &str, example: &str) -> Result<String, StageError> {
    match map.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        None | Some(Value::Null) => Err(perr(field, format!("is required; add e.g. `{field}: {example}`"))),
        Some(v) => Err(perr(field, format!("expected a non-empty string, found {v}; e.g. `{field}: {example}`"))),
    }
}

fn optional_str(map: &Map<String, Value>, field: &str) -> Result<Option<String>, StageError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(perr(field, format!("expected a column name (a string), found {v}"))),
    }
}

impl FigureParams {
    pub fn read(map: &Map<String, Value>) -> Result<FigureParams, StageError> {
        let p = Params::new(map);
        let title = required_str(map, "title", "\"Accuracy vs N\"")?;
        let x = required_str(map, "x", "n")?;
        let y = required_str(map, "y", "accuracy")?;
        let series = match map.get("series") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(v @ Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| perr("series", format!("expected a column name or a list of them, found {v}")))?,
            Some(v) => {
                return Err(perr(
                    "series",
                    format!("expected a column name or a list of them, found {v}; e.g. `series: method`"),
                ));
            }
        };
        let filter = match map.get("filter") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::Array(items) if items.iter().all(|i| !i.is_array() && !i.is_object()) => Ok((k.clone(), items.clone())),
                    Value::Array(_) | Value::Object(_) => Err(perr(
                        "filter",
                        format!("column `{k}`: expected a value or a list of values, found {v}; e.g. `filter: {{method: [orm, pav], n: 4}}`"),
                    )),
                    v => Ok((k.clone(), vec![v.clone()])),
                })
                .collect::<Result<_, _>>()?,
            Some(v) => {
                return Err(perr("filter", format!("expected a map column -> value(s), found {v}; e.g. `filter: {{split: test}}`")));
            }
        };
        let lo = optional_str(map, "lo")?;
        let hi = optional_str(map, "hi")?;
        match (&lo, &hi) {
            (Some(_), None) => return Err(perr("hi", "`lo` is set but `hi` is not; a band needs both columns")),
            (None, Some(_)) => return Err(perr("lo", "`hi` is set but `lo` is not; a band needs both columns")),
            _ => {}
        }
        let (ci95, quartiles) = match map.get("band") {
            None | Some(Value::Null) => (false, false),
            Some(Value::String(s)) if s == "ci95" => (true, false),
            Some(Value::String(s)) if s == "quartiles" => (false, true),
            Some(v) => {
                return Err(perr(
                    "band",
                    format!(
                        "expected `ci95` (the 95% Student t interval of the mean) or `quartiles` (25th to 75th percentile, with `aggregate: median`), found {v}"
                    ),
                ));
            }
        };
        let clip = match map.get("clip") {
            None | Some(Value::Null) => None,
            Some(Value::Array(b)) => match (b.first().and_then(Value::as_f64), b.get(1).and_then(Value::as_f64)) {
                (Some(a), Some(z)) if b.len() == 2 && a.is_finite() && z.is_finite() && a < z => Some((a, z)),
                _ => {
                    return Err(perr(
                        "clip",
                        format!(
                            "expected [LOW, HIGH] with LOW < HIGH, found {}; e.g. `clip: [0, 1]` for a rate",
                            Value::Array(b.clone())
                        ),
                    ));
                }
            },
            Some(v) => {
                return Err(perr("clip", format!("expected [LOW, HIGH], found {v}; e.g. `clip: [0, 1]` for a rate")));
            }
        };
        if clip.is_some() && !ci95 && !quartiles && lo.is_none() {
            return Err(perr("clip", "`clip` bounds a band; set `band: ci95` or `lo`/`hi`, or remove `clip`"));
        }
        let aggregate = match p.str_or("aggregate", "mean")?.as_str() {
            "mean" => Aggregate::Mean,
            "last" => Aggregate::Last,
            "max" => Aggregate::Max,
            "min" => Aggregate::Min,
            "median" => Aggregate::Median,
            other => {
                return Err(perr(
                    "aggregate",
                    format!("expected one of mean, median, last, max, min, found `{other}`"),
                ));
            }
        };
        if quartiles && lo.is_some() {
            return Err(perr("band", "`band: quartiles` computes the band itself; remove `lo`/`hi` or `band`"));
        }
        if quartiles && aggregate != Aggregate::Median {
            return Err(perr(
                "band",
                "`band: quartiles` is a band around the median; use `aggregate: median` or drop `band`",
            ));
        }
        if ci95 && lo.is_some() {
            return Err(perr("band", "`band: ci95` computes the band itself; remove `lo`/`hi` or `band`"));
        }
        if ci95 && aggregate != Aggregate::Mean {
            return Err(perr("band", "`band: ci95` is a band around the mean; use `aggregate: mean` or drop `band`"));
        }
        let order = optional_str(map, "order")?;
        if order.is_some() && aggregate != Aggregate::Last {
            return Err(perr("order", "only `aggregate: last` uses `order`; set `aggregate: last` or remove `order`"));
        }
        let legend = match map.get("legend") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    v => Err(perr("legend", format!("label of `{k}`: expected a string, found {v}"))),
                })
                .collect::<Result<_, _>>()?,
            Some(v) => {
                return Err(perr(
                    "legend",
                    format!("expected a map series value -> label, found {v}; e.g. `legend: {{orm: ORM best-of-N}}`"),
                ));
            }
        };
        let reference = match map.get("reference") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| match (i.get("y").and_then(Value::as_f64), i.get("label").and_then(Value::as_str)) {
                    (Some(y), Some(l)) if i.as_object().is_some_and(|o| o.len() == 2) => Ok((y, l.to_string())),
                    _ => Err(perr("reference", format!("expected {{y: NUMBER, label: TEXT}}, found {i}; e.g. `reference: [{{y: 0.62, label: paper}}]`"))),
                })
                .collect::<Result<_, _>>()?,
            Some(v) => return Err(perr("reference", format!("expected a list of {{y, label}}, found {v}"))),
        };
        Ok(FigureParams {
            xlabel: p.str_or("xlabel", &x)?,
            ylabel: p.str_or("ylabel", &y)?,
            title,
            x,
            y,
            series,
            filter,
            lo,
            hi,
            ci95,
            quartiles,
            aggregate,
            order,
            log_x: p.bool_or("log_x", false)?,
            log_y: p.bool_or("log_y", false)?,
            clip,
            legend,
            caption: p.str_or("caption", "")?,
            paper: p.str_or("paper", "")?,
            reference,
            width: p.uint_in("width", 800, 100, 8000)? as u32,
            height: p.uint_in("height", 500, 100, 8000)? as u32,
        })
    }
}

/// Column `name` of the frame, or an error naming the param, the columns there are and the
/// closest one.
pub fn resolve_column(frame: &Frame, field: &str, name: &str) -> Result<usize, StageError> {
    frame.column(name).ok_or_else(|| {
        let closest = frame
            .columns
            .iter()
            .map(|c| (strsim::jaro_winkler(name, c), c))
            .filter(|(s, _)| *s > 0.7)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, c)| format!("; did you mean `{c}`?"))
            .unwrap_or_default();
        perr(
            field,
            format!(
                "no column `{name}` in the inputs (columns: {}){closest} Name one of these columns.",
                frame.columns.join(", ")
            ),
        )
    })
}

impl Stage for Figure {
    fn info(&self) -> StageInfo {
        StageInfo {
            kind: "figure",
            doc: "a line chart (SVG, PNG) of gathered tables, with the plotted points and what the paper reports",
            params: PARAMS.to_vec(),
            inputs: vec![
                PortSpec::input("data", "a table, or a gathered directory of tables (sweep values become columns)"),
                PortSpec::optional("data2", "another table or gathered directory (rows get `input: data2`)"),
                PortSpec::optional("data3", "another table or gathered directory (rows get `input: data3`)"),
                PortSpec::optional("data4", "another table or gathered directory (rows get `input: data4`)"),
            ],
            outputs: vec![
                PortSpec::output("svg", "figure.svg", "the figure as SVG"),
                PortSpec::output("png", "figure.png", "the figure as PNG"),
                PortSpec::output("points", "points.parquet", "the plotted points: series, x, y, lo, hi, n"),
                PortSpec::output("meta", "figure.json", "title, caption, paper, labels, series, row counts"),
            ],
        }
    }

    fn version(&self) -> u32 {
        // 3: `band: ci95` uses Student t quantiles (was 1.96); `clip`; figure.json says the band.
        // (`aggregate: median` and `band: quartiles` are new params: old outputs are unchanged.)
        3
    }

    fn run(&self, ctx: &mut StageContext<'_>) -> Result<(), StageError> {
        let fp = FigureParams::read(ctx.params)?;
        let mut frame = Frame::default();
        port(ctx.inputs, "data", "figure")?;
        for name in INPUTS {
            if let Some(path) = ctx.inputs.get(name) {
                frame.read_input(name, path)?;
                writeln!(ctx.log, "input `{name}`: {} rows", frame.per_input[name])?;
            }
        }
        if !frame.unreadable.is_empty() {
            writeln!(ctx.log, "columns of a type the figure does not read (null): {}", frame.unreadable.join(", "))?;
        }
        let col = |field: &str, name: &str| resolve_column(&frame, field, name);
        let opt = |field: &str, name: &Option<String>| name.as_deref().map(|n| col(field, n)).transpose();
        let spec = PointSpec {
            x: col("x", &fp.x)?,
            y: col("y", &fp.y)?,
            series: fp.series.iter().map(|s| col("series", s)).collect::<Result<_, _>>()?,
            lo: opt("lo", &fp.lo)?,
            hi: opt("hi", &fp.hi)?,
            ci95: fp.ci95,
            quartiles: fp.quartiles,
            aggregate: fp.aggregate,
            order: opt("order", &fp.order)?,
            log_x: fp.log_x,
            log_y: fp.log_y,
            clip: fp.clip,
        };
        let filters: Vec<(usize, Vec<Value>)> =
            fp.filter.iter().map(|(c, v)| Ok((col("filter", c)?, v.clone()))).collect::<Result<_, StageError>>()?;
        let rows = filter_rows(&frame, &filters);
        let label_of = |key: &str| match fp.legend.get(key) {
            Some(l) => l.clone(),
            None if key.is_empty() => fp.ylabel.clone(),
            None => key.to_string(),
        };
        let (series, skipped) = build_series(&frame, &rows, &spec, &label_of);
        writeln!(
            ctx.log,
            "{} of {} rows pass the filter; {skipped} skipped (x or y missing or not finite)",
            rows.len(),
            frame.rows.len()
        )?;
        for k in fp.legend.keys().filter(|k| !series.iter().any(|s| &s.key == *k)) {
            writeln!(ctx.log, "warning: `legend` names series `{k}`, which the data does not have")?;
        }
        if series.is_empty() {
            return Err(StageError::Failed(format!(
                "nothing to plot: {} rows read, {} pass the filter, {skipped} have no finite `{}`/`{}`; check `filter` and the columns",
                frame.rows.len(),
                rows.len(),
                fp.x,
                fp.y
            )));
        }
        let plot = Plot {
            title: &fp.title,
            xlabel: &fp.xlabel,
            ylabel: &fp.ylabel,
            series: &series,
            reference: &fp.reference,
            log_x: fp.log_x,
            log_y: fp.log_y,
            width: fp.width,
            height: fp.height,
        };
        std::fs::write(port(ctx.outputs, "svg", "figure")?, svg(&plot)?)?;
        std::fs::write(port(ctx.outputs, "png", "figure")?, png(&plot)?)?;
        write_parquet(port(ctx.outputs, "points", "figure")?, &points_batch(&series)?)?;
        let meta = json!({
            "title": fp.title,
            "caption": fp.caption,
            "paper": fp.paper,
            "x": fp.x,
            "y": fp.y,
            "xlabel": fp.xlabel,
            "ylabel": fp.ylabel,
            "series": series.iter().map(|s| s.label.clone()).collect::<Vec<_>>(),
            "band": match (fp.ci95, &fp.lo) {
                (true, _) => Some("95% Student t interval of the mean over the rows of a point".to_string()),
                _ if fp.quartiles => Some("25th to 75th percentile of the rows of a point".to_string()),
                (false, Some(lo)) => Some(format!("columns {lo} .. {}", fp.hi.as_deref().unwrap_or(""))),
                (false, None) => None,
            },
            "clip": fp.clip.map(|(a, z)| [a, z]),
            "reference": fp.reference.iter().map(|(y, l)| json!({"y": y, "label": l})).collect::<Vec<_>>(),
            "rows": frame.per_input,
            "rows_kept": rows.len(),
            "skipped": skipped,
            "points": series.iter().map(|s| s.points.len()).sum::<usize>(),
        });
        let text = serde_json::to_string_pretty(&meta).map_err(|e| StageError::Failed(e.to_string()))?;
        std::fs::write(port(ctx.outputs, "meta", "figure")?, text + "\n")?;
        writeln!(ctx.log, "{} series, {} points", series.len(), meta["points"])?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "figure_tests.rs"]
mod tests;
