//! The rows a `figure` plots: every input table read into one frame of loosely typed cells.
//!
//! An input is a Parquet file or a gathered directory (`axis=value/.../<port>.parquet`, the
//! engine's links to each sweep point's output). Each row gets the sweep values of its
//! directory as columns (a value that parses as a number is a number) and `input`, the port it
//! came from. Columns missing from one input are null there. Cells are numbers (every Arrow
//! integer and float type), strings (strings and booleans) or null; other Arrow types read as
//! null and are named in the stage log.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;

use crate::contract::StageError;
use crate::table::read_parquet;

/// One value of a row.
#[derive(Debug, Clone)]
pub enum Cell {
    Null,
    Num(f64),
    Str(String),
}

impl Cell {
    /// A sweep value: a number when it parses as one, else a string.
    pub fn parse(s: &str) -> Cell {
        match s.parse::<f64>() {
            Ok(x) => Cell::Num(x),
            Err(_) => Cell::Str(s.to_string()),
        }
    }

    /// The number in this cell (strings that parse as numbers count).
    pub fn number(&self) -> Option<f64> {
        match self {
            Cell::Num(x) => Some(*x),
            Cell::Str(s) => s.trim().parse().ok(),
            Cell::Null => None,
        }
    }

    /// How the value reads in a legend: integers without a fraction, strings as they are.
    pub fn render(&self) -> String {
        match self {
            Cell::Null => "null".to_string(),
            Cell::Num(x) => format_number(*x),
            Cell::Str(s) => s.clone(),
        }
    }
}

/// Shortest round-trip text of a number, without `.0` for integers.
pub fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 { format!("{}", x as i64) } else { format!("{x}") }
}

impl PartialEq for Cell {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Cell {}
impl PartialOrd for Cell {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
/// Null first, then numbers (numerically), then strings.
impl Ord for Cell {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Cell::Null, Cell::Null) => Ordering::Equal,
            (Cell::Null, _) => Ordering::Less,
            (_, Cell::Null) => Ordering::Greater,
            (Cell::Num(a), Cell::Num(b)) => a.total_cmp(b),
            (Cell::Num(_), Cell::Str(_)) => Ordering::Less,
            (Cell::Str(_), Cell::Num(_)) => Ordering::Greater,
            (Cell::Str(a), Cell::Str(b)) => a.cmp(b),
        }
    }
}

/// Every input's rows; columns in order of first appearance.
#[derive(Debug, Default)]
pub struct Frame {
    pub columns: Vec<String>,
    /// Each row may be shorter than `columns`: the missing cells are null.
    pub rows: Vec<Vec<Cell>>,
    /// Input port -> rows read from it.
    pub per_input: BTreeMap<String, usize>,
    /// Columns of a type the figure cannot read (read as null).
    pub unreadable: Vec<String>,
}

const NULL: Cell = Cell::Null;

impl Frame {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The cell of row `r` in column `c` (null when the row's input lacks the column).
    pub fn cell(&self, r: usize, c: usize) -> &Cell {
        self.rows[r].get(c).unwrap_or(&NULL)
    }

    fn column_or_add(&mut self, name: &str) -> usize {
        match self.column(name) {
            Some(c) => c,
            None => {
                self.columns.push(name.to_string());
                self.columns.len() - 1
            }
        }
    }

    /// Append every row of input `port` at `path` (a file or a gathered directory).
    pub fn read_input(&mut self, port: &str, path: &Path) -> Result<(), StageError> {
        let mut files = Vec::new();
        if path.is_dir() {
            gathered_files(path, &mut Vec::new(), &mut files)?;
            if files.is_empty() {
                return Err(StageError::Failed(format!(
                    "input `{port}` is a gathered directory with no .parquet table under it ({})",
                    path.display()
                )));
            }
        } else {
            files.push((Vec::new(), path.to_path_buf()));
        }
        let before = self.rows.len();
        for (axes, file) in files {
            self.read_file(port, &axes, &file)?;
        }
        self.per_input.insert(port.to_string(), self.rows.len() - before);
        Ok(())
    }

    fn read_file(&mut self, port: &str, axes: &[(String, Cell)], path: &Path) -> Result<(), StageError> {
        for batch in read_parquet(path)? {
            let mut cols = Vec::new();
            for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
                let c = self.column_or_add(field.name());
                let cells = cells(array);
                if cells.is_none() && !self.unreadable.contains(field.name()) {
                    self.unreadable.push(field.name().clone());
                }
                cols.push((c, cells));
            }
            let mut extra: Vec<(usize, Cell)> = Vec::new();
            for (a, v) in axes {
                extra.push((self.column_or_add(a), v.clone()));
            }
            extra.push((self.column_or_add("input"), Cell::Str(port.to_string())));
            for i in 0..batch.num_rows() {
                let mut row = vec![Cell::Null; self.columns.len()];
                for (c, cells) in &cols {
                    if let Some(cells) = cells {
                        row[*c] = cells[i].clone();
                    }
                }
                for (c, v) in &extra {
                    row[*c] = v.clone();
                }
                self.rows.push(row);
            }
        }
        Ok(())
    }
}

/// The tables under a gathered directory with the sweep values of their path, sorted by path.
fn gathered_files(
    dir: &Path,
    axes: &mut Vec<(String, Cell)>,
    out: &mut Vec<(Vec<(String, Cell)>, PathBuf)>,
) -> Result<(), StageError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if path.is_dir() {
            match name.split_once('=') {
                Some((axis, value)) => {
                    axes.push((unescape(axis), Cell::parse(&unescape(value))));
                    gathered_files(&path, axes, out)?;
                    axes.pop();
                }
                None => gathered_files(&path, axes, out)?,
            }
        } else if name.ends_with(".parquet") {
            out.push((axes.clone(), path));
        }
    }
    Ok(())
}

/// Undo the engine's escaping of a path segment (`%XX`, and `%` alone for the empty string).
pub fn unescape(s: &str) -> String {
    if s == "%" {
        return String::new();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cells of one column, or `None` for a type the figure cannot read.
fn cells(array: &ArrayRef) -> Option<Vec<Cell>> {
    macro_rules! numbers {
        ($t:ty) => {{
            let a = array.as_primitive::<$t>();
            (0..a.len()).map(|i| if a.is_null(i) { Cell::Null } else { Cell::Num(a.value(i) as f64) }).collect()
        }};
    }
    let strings = |value: &dyn Fn(usize) -> String| -> Vec<Cell> {
        (0..array.len()).map(|i| if array.is_null(i) { Cell::Null } else { Cell::Str(value(i)) }).collect()
    };
    Some(match array.data_type() {
        DataType::Int8 => numbers!(Int8Type),
        DataType::Int16 => numbers!(Int16Type),
        DataType::Int32 => numbers!(Int32Type),
        DataType::Int64 => numbers!(Int64Type),
        DataType::UInt8 => numbers!(UInt8Type),
        DataType::UInt16 => numbers!(UInt16Type),
        DataType::UInt32 => numbers!(UInt32Type),
        DataType::UInt64 => numbers!(UInt64Type),
        DataType::Float32 => numbers!(Float32Type),
        DataType::Float64 => numbers!(Float64Type),
        DataType::Utf8 => strings(&|i| array.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => strings(&|i| array.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => strings(&|i| array.as_string_view().value(i).to_string()),
        DataType::Boolean => strings(&|i| array.as_boolean().value(i).to_string()),
        _ => return None,
    })
}
