//! Writing output tables: Arrow record batches to Parquet (zstd), readable as they are by
//! polars, pyarrow and DuckDB. The engine commits the file into the cache atomically.

use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::contract::StageError;

/// Write one batch to `path`.
pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<(), StageError> {
    let file = std::fs::File::create(path)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(|e| StageError::Failed(e.to_string()))?))
        .build();
    let mut w = ArrowWriter::try_new(file, Arc::clone(&batch.schema()), Some(props))
        .map_err(|e| StageError::Failed(format!("cannot write {}: {e}", path.display())))?;
    w.write(batch).map_err(|e| StageError::Failed(format!("cannot write {}: {e}", path.display())))?;
    w.close().map_err(|e| StageError::Failed(format!("cannot finish {}: {e}", path.display())))?;
    Ok(())
}

/// One row of a `problems` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemRow {
    pub problem_id: i64,
    pub split: String,
    pub prompt: String,
    pub answer: String,
}

/// The most rows a built-in stage reads from one input table.
pub const MAX_TABLE_ROWS: i64 = 100_000_000;

/// Read every record batch of a Parquet file.
pub fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>, StageError> {
    let file = std::fs::File::open(path)
        .map_err(|e| StageError::Failed(format!("cannot open input table {}: {e}", path.display())))?;
    let not_parquet = |e| StageError::Failed(format!("{} is not a readable Parquet table: {e}", path.display()));
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).map_err(not_parquet)?;
    // The footer's row count is a claim that a corrupt or hostile file can inflate: refuse
    // what could not fit in memory instead of aborting on allocation.
    let rows = builder.metadata().file_metadata().num_rows();
    if !(0..=MAX_TABLE_ROWS).contains(&rows) {
        return Err(StageError::Failed(format!(
            "{} claims {rows} rows; built-in stages read at most {MAX_TABLE_ROWS} rows of a table",
            path.display()
        )));
    }
    let reader = builder.build().map_err(not_parquet)?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StageError::Failed(format!("cannot read {}: {e}", path.display())))
}

/// A column of a batch with the expected type, or an error naming the table, the column and
/// the expected type.
pub fn column<'b, T: 'static>(batch: &'b RecordBatch, path: &Path, name: &str, ty: &str) -> Result<&'b T, StageError> {
    batch.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<T>()).ok_or_else(|| {
        StageError::Failed(format!(
            "input table {} has no {ty} column `{name}`; is the input wired to the right stage's output?",
            path.display()
        ))
    })
}

/// Read a `problems` table (the output of the `problems` kind).
pub fn read_problems(path: &Path) -> Result<Vec<ProblemRow>, StageError> {
    use arrow_array::{Int64Array, StringArray};
    let mut out = Vec::new();
    for batch in read_parquet(path)? {
        let id = column::<Int64Array>(&batch, path, "problem_id", "int64")?;
        let split = column::<StringArray>(&batch, path, "split", "string")?;
        let prompt = column::<StringArray>(&batch, path, "prompt", "string")?;
        let answer = column::<StringArray>(&batch, path, "answer", "string")?;
        for i in 0..batch.num_rows() {
            out.push(ProblemRow {
                problem_id: id.value(i),
                split: split.value(i).to_string(),
                prompt: prompt.value(i).to_string(),
                answer: answer.value(i).to_string(),
            });
        }
    }
    Ok(out)
}
