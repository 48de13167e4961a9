//! Parquet inspection with the `parquet` crate (no Arrow, no polars): row counts for
//! manifests, schema / rows / head for `pipeline show`, and typed columns for `pipeline check`.
//! Lives outside the engine, which sees it only as a [`RowCounter`].

use std::fs::File;
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use parquet::schema::types::Type;

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

/// One cell of a table, by its natural type.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    /// Any signed or unsigned integer that fits an `i64`.
    Int(i64),
    /// float16, float32 or float64.
    Float(f64),
    Str(String),
    /// Anything else (decimal, date, bytes, list, struct), with its type and text.
    Other(&'static str, String),
}

impl Cell {
    pub fn type_name(&self) -> &'static str {
        match self {
            Cell::Null => "null",
            Cell::Bool(_) => "bool",
            Cell::Int(_) => "int",
            Cell::Float(_) => "float",
            Cell::Str(_) => "string",
            Cell::Other(t, _) => t,
        }
    }

    fn of(field: &Field) -> Cell {
        match field {
            Field::Null => Cell::Null,
            Field::Bool(b) => Cell::Bool(*b),
            Field::Byte(i) => Cell::Int((*i).into()),
            Field::Short(i) => Cell::Int((*i).into()),
            Field::Int(i) => Cell::Int((*i).into()),
            Field::Long(i) => Cell::Int(*i),
            Field::UByte(i) => Cell::Int((*i).into()),
            Field::UShort(i) => Cell::Int((*i).into()),
            Field::UInt(i) => Cell::Int((*i).into()),
            Field::ULong(i) => i64::try_from(*i).map(Cell::Int).unwrap_or(Cell::Other("uint64", i.to_string())),
            Field::Float16(f) => Cell::Float(f64::from(*f)),
            Field::Float(f) => Cell::Float((*f).into()),
            Field::Double(f) => Cell::Float(*f),
            Field::Str(s) => Cell::Str(s.clone()),
            other => Cell::Other("non-scalar", other.to_string()),
        }
    }
}

/// Some columns of a table, read in full.
#[derive(Debug, Clone)]
pub struct Columns {
    /// Every top-level column of the file, in file order.
    pub names: Vec<String>,
    pub rows: u64,
    /// The requested columns that exist, each as all its cells.
    pub data: Vec<(String, Vec<Cell>)>,
}

/// The most rows [`read_columns`] reads: each becomes a [`Cell`] per column in memory.
pub const MAX_READ_ROWS: u64 = 100_000_000;

/// Read the named top-level columns of a Parquet file (names it lacks are skipped: compare
/// with [`Columns::names`]).
pub fn read_columns(path: &Path, wanted: &[&str]) -> Result<Columns, String> {
    let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| format!("{} is not a readable Parquet file: {e}", path.display()))?;
    let meta = reader.metadata().file_metadata();
    let rows = meta.num_rows().max(0) as u64;
    if rows > MAX_READ_ROWS {
        return Err(format!(
            "{} claims {rows} rows, more than the {MAX_READ_ROWS} that are read into memory here; if the file is real, summarise it in a stage first",
            path.display()
        ));
    }
    let root = meta.schema_descr().root_schema();
    let fields = root.get_fields();
    let names: Vec<String> = fields.iter().map(|f| f.name().to_string()).collect();
    let picked: Vec<_> = fields.iter().filter(|f| wanted.contains(&f.name())).cloned().collect();
    let mut data: Vec<(String, Vec<Cell>)> =
        // The footer's count is a claim: grow as rows arrive rather than trust it up front.
        picked.iter().map(|f| (f.name().to_string(), Vec::with_capacity(rows.min(1 << 16) as usize))).collect();
    if !picked.is_empty() {
        let projection = Type::group_type_builder(root.name())
            .with_fields(picked)
            .build()
            .map_err(|e| format!("cannot select columns of {}: {e}", path.display()))?;
        let iter = reader
            .get_row_iter(Some(projection))
            .map_err(|e| format!("cannot read rows of {}: {e}", path.display()))?;
        for row in iter {
            let row = row.map_err(|e| format!("cannot read a row of {}: {e}", path.display()))?;
            for ((_, field), (_, column)) in row.get_column_iter().zip(data.iter_mut()) {
                column.push(Cell::of(field));
            }
        }
    }
    Ok(Columns { names, rows, data })
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
