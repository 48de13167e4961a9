//! Parquet inspection with the `parquet` crate (no Arrow, no polars): row counts for
//! manifests, and schema / rows / head for `pipeline show`. Lives outside the engine, which
//! sees it only as a [`RowCounter`].

use std::fs::File;
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::engine::cache::RowCounter;

/// Summary of a Parquet file.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// (column, type) in file order.
    pub columns: Vec<(String, String)>,
    pub rows: u64,
    /// The first rows, each cell rendered as text.
    pub head: Vec<Vec<String>>,
}

/// Read the schema, row count and the first `head` rows of a Parquet file.
pub fn inspect(path: &Path, head: usize) -> Result<TableInfo, String> {
    let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| format!("{} is not a readable Parquet file: {e}", path.display()))?;
    let meta = reader.metadata().file_metadata();
    let rows = meta.num_rows().max(0) as u64;
    let schema = meta.schema_descr();
    let columns: Vec<(String, String)> = schema
        .columns()
        .iter()
        .map(|c| {
            let logical =
                c.logical_type_ref().map(|l| format!("{l:?}")).unwrap_or_else(|| format!("{}", c.physical_type()));
            (c.path().string(), logical)
        })
        .collect();
    let mut out = Vec::new();
    if head > 0 {
        let iter = reader.get_row_iter(None).map_err(|e| format!("cannot read rows of {}: {e}", path.display()))?;
        for row in iter.take(head) {
            let row = row.map_err(|e| format!("cannot read a row of {}: {e}", path.display()))?;
            // A cell is one line: newlines and tabs inside strings are shown escaped.
            out.push(
                row.get_column_iter().map(|(_, f)| f.to_string().replace('\n', "\\n").replace('\t', "\\t")).collect(),
            );
        }
    }
    Ok(TableInfo { columns, rows, head: out })
}

/// Row counts from Parquet footers (no data pages are read).
pub struct ParquetRows;

impl RowCounter for ParquetRows {
    fn rows(&self, path: &Path) -> Option<u64> {
        let file = File::open(path).ok()?;
        let reader = SerializedFileReader::new(file).ok()?;
        Some(reader.metadata().file_metadata().num_rows().max(0) as u64)
    }
}
