//! What the HTML report shows, as plain data: filled by `report` from the DAG and the cache,
//! rendered by `report_html`. Neither of the two imports the other.

use serde_json::Value;

use crate::engine::cache::Manifest;

/// One stage instance, as the page shows it.
pub struct InstanceEntry {
    pub name: String,
    pub stage: String,
    /// `axis=value, ...`, empty without a sweep point.
    pub point: String,
    pub kind: String,
    pub key: String,
    pub manifest: Option<Manifest>,
}

/// One figure instance.
pub struct FigureEntry {
    pub instance: usize,
    /// The `title` param (known before the figure runs).
    pub title: String,
    /// From figure.json, when cached.
    pub meta: Option<Value>,
    /// The SVG document without its XML declaration.
    pub svg: Option<String>,
    /// Header and rows of points.parquet (at most `POINT_ROWS` of `report.rs`) and its total row count.
    pub points: Option<(Vec<String>, Vec<Vec<String>>, u64)>,
    /// (port, upstream instance name, upstream key) of every input.
    pub needs: Vec<(String, String, String)>,
    /// Why a cached figure's files could not be read, if they could not.
    pub problem: Option<String>,
}

/// One `report:` table of a stage: its rows from every cached instance, with the sweep point's
/// axes as the first columns.
pub struct TableEntry {
    pub stage: String,
    pub port: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Rows over all cached instances (shown or not).
    pub total: u64,
    /// (instance name, key) of every cached instance the rows come from.
    pub sources: Vec<(String, String)>,
    /// Instances of the stage not in the cache.
    pub not_run: Vec<String>,
    pub problems: Vec<String>,
}

/// Everything on the page.
pub struct Report {
    pub file: String,
    pub pipeline: String,
    pub engine_version: String,
    pub instances: Vec<InstanceEntry>,
    pub figures: Vec<FigureEntry>,
    pub tables: Vec<TableEntry>,
}
