//! What `pipeline diff` reads from a cache entry: the numeric columns of its one-row Parquet
//! outputs (metrics tables) and the digests of the tables its stage lists under `report:`.
//! Multi-row tables are compared only by digest (changed or not), never cell by cell.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::cache::{Cache, CacheFault};
use crate::engine::hash::{Digest, StageKey};
use crate::table::{Cell, read_columns};

/// A numeric cell of a metrics table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    pub fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    pub fn render(self) -> String {
        match self {
            Num::Int(i) => i.to_string(),
            Num::Float(f) => crate::engine::value::render_float(f),
        }
    }
}

/// What one cache entry holds for the diff.
#[derive(Debug, Default)]
pub struct EntryMetrics {
    /// (output port, column) -> value, for every one-row Parquet output.
    pub values: BTreeMap<(String, String), Num>,
    /// Output port -> digest, for every output.
    pub digests: BTreeMap<String, Digest>,
    /// Output ports that are one-row tables (their columns are in `values`).
    pub one_row: Vec<String>,
}

/// Read the metrics of the entry `key`. `Ok(None)`: not in the cache. A broken entry or an
/// unreadable table is an `Err` for a warning; the diff goes on without it.
pub fn read(cache: &Cache, key: &StageKey) -> Result<Option<EntryMetrics>, String> {
    let manifest = match cache.read_manifest(key) {
        Ok(m) => m,
        Err(CacheFault::Missing { .. }) => return Ok(None),
        Err(fault) => return Err(fault.to_string()),
    };
    let mut out = EntryMetrics::default();
    for o in &manifest.outputs {
        out.digests.insert(o.port.clone(), o.blake3.clone());
        if !o.file.ends_with(".parquet") || o.rows.is_some_and(|r| r != 1) {
            continue;
        }
        let path = cache.object_dir(key).join(&o.file);
        let names = read_columns(&path, &[])?;
        if names.rows != 1 {
            continue;
        }
        let wanted: Vec<&str> = names.names.iter().map(String::as_str).collect();
        let cols = read_columns(&path, &wanted)?;
        out.one_row.push(o.port.clone());
        for (column, cells) in cols.data {
            let value = match cells.first() {
                Some(Cell::Int(i)) => Num::Int(*i),
                Some(Cell::Float(f)) => Num::Float(*f),
                _ => continue,
            };
            out.values.insert((o.port.clone(), column), value);
        }
    }
    Ok(Some(out))
}
