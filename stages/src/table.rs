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
