//! Parquet outputs: row counts in manifests and `status`, schema / rows / head in `show`.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use crate::fixture::Project;

/// Three rows: (id, name, score).
fn write_table(path: &Path) {
    let schema = Arc::new(
        parse_message_type(
            "message scores {
                REQUIRED INT64 id;
                REQUIRED BYTE_ARRAY name (UTF8);
                REQUIRED DOUBLE score;
            }",
        )
        .unwrap(),
    );
    let file = File::create(path).unwrap();
    let mut writer = SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build())).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut column = 0;
    while let Some(mut col) = group.next_column().unwrap() {
        match column {
            0 => {
                col.typed::<Int64Type>().write_batch(&[1, 2, 3], None, None).unwrap();
            }
            1 => {
                let names: Vec<ByteArray> = ["alice", "bob", "carol"].iter().map(|s| ByteArray::from(*s)).collect();
                col.typed::<ByteArrayType>().write_batch(&names, None, None).unwrap();
            }
            _ => {
                col.typed::<DoubleType>().write_batch(&[0.5, 0.25, 1.0], None, None).unwrap();
            }
        }
        col.close().unwrap();
        column += 1;
    }
    group.close().unwrap();
    writer.close().unwrap();
}

#[test]
fn show_and_manifest_describe_a_parquet_output() {
    let p = Project::new();
    write_table(&p.path("data.parquet"));
    p.write(
        "p.yaml",
        r#"
        stages:
          load:
            kind: command
            deps: [data.parquet]
            cmd: cp data.parquet ${outputs.table}
            outputs: [table]
          copy:
            kind: command
            needs: {src: load}
            cmd: cp "$PIPELINE_INPUT_SRC" "$PIPELINE_OUTPUT_TABLE"
            outputs: [table]
        "#,
    );
    let r = p.run("p.yaml", &[]);

    for stage in ["load", "copy"] {
        let manifest = p.manifest(r.key(stage));
        let out = &manifest["outputs"][0];
        assert_eq!(out["port"], "table");
        assert_eq!(out["file"], "table.parquet");
        assert_eq!(out["rows"], 3, "{manifest:#}");
    }

    let out = p.pipeline(&["show", "p.yaml", "copy"]).expect_code(0);
    let path = p.cache().join("views/p/copy/table.parquet");
    let text = &out.stdout;
    assert!(text.contains(&format!("output `table`: {}", path.display())), "{text}");
    assert!(text.contains("    rows: 3\n"), "{text}");
    for column in ["id: ", "name: ", "score: "] {
        assert!(text.contains(&format!("      {column}")), "no column {column} in:\n{text}");
    }
    assert!(text.contains("    head (3 rows):"), "{text}");
    let head: Vec<Vec<&str>> =
        text.lines().skip_while(|l| !l.contains("head (")).skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(head[0], ["id", "name", "score"], "{text}");
    assert_eq!(head[1][0], "1");
    assert!(head[1][1].contains("alice") && head[3][1].contains("carol"), "{text}");
    assert_eq!(head[2][2], "0.25");

    let rows: Vec<serde_json::Value> = p.pipeline(&["--json", "status", "p.yaml"]).expect_code(0).json();
    assert!(rows.iter().all(|r| r["rows"] == 3), "{rows:?}");

    // Changing the data file (a dep) reruns both stages, and the new row count shows.
    write_table_rows(&p.path("data.parquet"), 5);
    let r2 = p.run("p.yaml", &[]);
    assert_eq!(r2.ran, 2);
    assert_eq!(p.manifest(r2.key("copy"))["outputs"][0]["rows"], 5);
}

/// A single INT64 column with `n` rows.
fn write_table_rows(path: &Path, n: i64) {
    let schema = Arc::new(parse_message_type("message t { REQUIRED INT64 x; }").unwrap());
    let mut writer = SerializedFileWriter::new(File::create(path).unwrap(), schema, Default::default()).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut col = group.next_column().unwrap().unwrap();
    let values: Vec<i64> = (0..n).collect();
    col.typed::<Int64Type>().write_batch(&values, None, None).unwrap();
    col.close().unwrap();
    group.close().unwrap();
    writer.close().unwrap();
}
