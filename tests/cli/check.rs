//! `pipeline check`: metrics read from a stage's Parquet output compared with a baseline file;
//! exit codes, `--update`, `--junit`, `--no-run` and the errors a baseline can contain.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use crate::fixture::{Output, Project, locations, redactions};

/// Four rows of (method, n, accuracy, solved).
fn write_results(path: &Path) {
    let schema = Arc::new(
        parse_message_type(
            "message results {
                REQUIRED BYTE_ARRAY method (UTF8);
                REQUIRED INT64 n;
                REQUIRED DOUBLE accuracy;
                REQUIRED BOOLEAN solved;
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
                let m: Vec<ByteArray> =
                    ["beam-pav", "beam-pav", "bon-orm", "bon-orm"].iter().map(|s| ByteArray::from(*s)).collect();
                col.typed::<ByteArrayType>().write_batch(&m, None, None).unwrap();
            }
            1 => {
                col.typed::<Int64Type>().write_batch(&[16, 32, 16, 32], None, None).unwrap();
            }
            2 => {
                col.typed::<DoubleType>().write_batch(&[0.5625, 0.625, 0.5, 0.5], None, None).unwrap();
            }
            _ => {
                col.typed::<BoolType>().write_batch(&[true, true, false, true], None, None).unwrap();
            }
        }
        col.close().unwrap();
        column += 1;
    }
    group.close().unwrap();
    writer.close().unwrap();
}

const PIPELINE: &str = r#"
stages:
  search:
    kind: command
    deps: [data.parquet]
    cmd: echo >> counts/search; cp data.parquet ${outputs.results}
    outputs: [results]
"#;

const BASELINE: &str = r#"
# Search results of the fixture pipeline.
metrics:
  beam-pav-at-16:
    stage: search
    table: results
    column: accuracy
    where: {method: beam-pav, n: 16}
    value: 0.5625        # measured once
    tolerance: {abs: 0.01}
  mean-accuracy:
    stage: search
    column: accuracy
    reduce: mean
    value: 0.546875
    tolerance: {rel: 0.01}
  solve-rate:
    stage: search
    column: solved
    reduce: mean
    value: 0.75
    tolerance: {abs: 0.05}
  rows:
    stage: search
    column: n
    reduce: count
    value: 4
    tolerance: {abs: 0}
"#;

fn project(baseline: &str) -> Project {
    let p = Project::new();
    write_results(&p.path("data.parquet"));
    p.write("p.yaml", PIPELINE);
    p.write("base.yaml", baseline);
    p
}

fn check(p: &Project, extra: &[&str]) -> Output {
    let mut args = vec!["check", "p.yaml", "--baseline", "base.yaml"];
    args.extend_from_slice(extra);
    p.pipeline(&args)
}

#[test]
fn check_passes_on_its_baseline_and_prints_the_table() {
    let p = project(BASELINE);
    let out = check(&p, &[]).expect_code(0);
    assert_eq!(p.count("search"), 1, "check runs the pipeline first");
    redactions(&p).bind(|| insta::assert_snapshot!("check_table", out.stdout));
    assert!(out.stderr.contains("4 ok, 0 improved, 0 regressed, 0 errors"), "{}", out.stderr);
    // A second check is a cache hit.
    check(&p, &[]).expect_code(0);
    assert_eq!(p.count("search"), 1);
}

#[test]
fn a_regression_beyond_tolerance_exits_1_and_names_the_metric() {
    let p = project(&BASELINE.replace("value: 0.5625", "value: 0.6"));
    let out = check(&p, &[]).expect_code(1);
    let line = out.stdout.lines().find(|l| l.starts_with("beam-pav-at-16")).expect("a row for the metric");
    assert!(line.contains("REGRESSED") && line.contains("-0.0375"), "{}", out.stdout);
    assert!(out.stderr.contains("regressed: `beam-pav-at-16`"), "{}", out.stderr);
    // Within tolerance is not a regression.
    p.write("base.yaml", &BASELINE.replace("value: 0.5625", "value: 0.57"));
    check(&p, &[]).expect_code(0);
}

#[test]
fn better_higher_lets_an_improvement_pass_and_flags_it() {
    let p = project(&BASELINE.replace("value: 0.5625", "value: 0.5\n    better: higher"));
    let out = check(&p, &[]).expect_code(0);
    let line = out.stdout.lines().find(|l| l.starts_with("beam-pav-at-16")).unwrap();
    assert!(line.contains("improved"), "{}", out.stdout);
    assert!(out.stderr.contains("--update` records the new values"), "{}", out.stderr);
    // The same change is a regression when lower is better.
    p.write("base.yaml", &BASELINE.replace("value: 0.5625", "value: 0.5\n    better: lower"));
    check(&p, &[]).expect_code(1);
}

#[test]
fn update_rewrites_only_the_values_then_check_passes() {
    let p = project(&BASELINE.replace("value: 0.5625", "value: 0.6").replace("value: 4", "value: 3"));
    check(&p, &[]).expect_code(1);
    let out = check(&p, &["--update"]).expect_code(0);
    assert!(out.stderr.contains("updated `beam-pav-at-16`: 0.6 -> 0.5625"), "{}", out.stderr);
    assert!(out.stderr.contains("updated `rows`: 3 -> 4"), "{}", out.stderr);
    assert_eq!(p.read("base.yaml"), crate::fixture::dedent(BASELINE), "only the two values change");
    check(&p, &[]).expect_code(0);
}

#[test]
fn junit_has_one_testcase_per_metric_and_a_failure_for_the_regression() {
    let p = project(&BASELINE.replace("beam-pav-at-16:", "'beam<16>&pav':").replace("value: 0.5625", "value: 0.6"));
    check(&p, &["--junit", "reports/check.xml"]).expect_code(1);
    let xml = p.read("reports/check.xml");
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"pipeline check\""), "{xml}");
    assert!(xml.contains("tests=\"4\" failures=\"1\""), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 4, "{xml}");
    assert_eq!(xml.matches("</testcase>").count(), 4, "{xml}");
    assert_eq!(xml.matches("<failure ").count(), 1, "{xml}");
    assert!(xml.contains("<testcase name=\"beam&lt;16&gt;&amp;pav\""), "names are escaped: {xml}");
    assert!(!xml.contains("beam<16>"), "{xml}");
    let failure = &xml[xml.find("<failure ").unwrap()..];
    assert!(failure.starts_with("<failure message=\"beam&lt;16&gt;&amp;pav moved from 0.6 to 0.5625"), "{xml}");
    assert!(xml.trim_end().ends_with("</testsuite>"), "{xml}");
    assert!(p.root().join("reports").read_dir().unwrap().count() == 1, "no temp file is left");
}

#[test]
fn no_run_reads_only_the_cache() {
    let p = project(BASELINE);
    let out = check(&p, &["--no-run"]).expect_code(1);
    assert_eq!(p.count("search"), 0);
    assert!(out.stderr.contains("`search` has no cached result"), "{}", out.stderr);
    assert!(out.stderr.contains("run `pipeline run p.yaml` first"), "{}", out.stderr);
    p.run("p.yaml", &[]);
    check(&p, &["--no-run"]).expect_code(0);
    assert_eq!(p.count("search"), 1);
}

#[test]
fn json_summary_lists_every_metric() {
    let p = project(&BASELINE.replace("value: 0.5625", "value: 0.6"));
    let out = p.pipeline(&["--json", "check", "p.yaml", "--baseline", "base.yaml"]).expect_code(1);
    let v: serde_json::Value = out.json();
    assert_eq!(v["ok"], false);
    assert_eq!(v["counts"]["regressed"], 1);
    assert_eq!(v["metrics"][0]["metric"], "beam-pav-at-16");
    assert_eq!(v["metrics"][0]["status"], "regressed");
    assert_eq!(v["metrics"][0]["current"], 0.5625);
    assert_eq!(v["metrics"][2]["current"], 0.75, "mean of a bool column is a rate");
    assert_eq!(v["metrics"][3]["current"], 4);
}

#[test]
fn a_missing_baseline_file_is_a_usage_error() {
    let p = project(BASELINE);
    let out = p.pipeline(&["check", "p.yaml", "--baseline", "nope.yaml"]).expect_code(2);
    assert!(out.stderr.contains("cannot read baseline file `nope.yaml`: not found"), "{}", out.stderr);
    assert_eq!(p.count("search"), 0, "nothing runs");
}

#[test]
fn malformed_yaml_points_at_line_and_column() {
    let p = project("metrics:\n  acc:\n    stage: search\n    where: method: beam\n    value: 1\n");
    let out = check(&p, &[]).expect_code(2);
    assert_eq!(p.count("search"), 0);
    redactions(&p).bind(|| insta::assert_snapshot!("check_malformed_baseline", out.stderr));
}

#[test]
fn unknown_keys_and_bad_values_are_reported_all_at_once() {
    let p = project(
        &BASELINE
            .replace("    column: accuracy\n    reduce: mean", "    colum: accuracy\n    reduce: median")
            .replace("tolerance: {abs: 0}", "tolerance: {abs: -1}"),
    );
    let out = check(&p, &[]).expect_code(2);
    assert!(out.stderr.contains("unknown key `colum` in metric `mean-accuracy`"), "{}", out.stderr);
    assert!(out.stderr.contains("did you mean `column`?"), "{}", out.stderr);
    assert!(out.stderr.contains("metric `mean-accuracy` has no `column`"), "{}", out.stderr);
    assert!(out.stderr.contains("`reduce`: expected one of `mean`"), "{}", out.stderr);
    assert!(out.stderr.contains("`tolerance.abs`: expected a number >= 0"), "{}", out.stderr);
    assert_eq!(locations(&out.stderr, "base.yaml"), vec![(10, 3), (12, 5), (13, 13), (27, 22)], "{}", out.stderr);
    assert!(out.stderr.contains("the baseline has 4 errors; nothing was run"), "{}", out.stderr);
    assert_eq!(p.count("search"), 0);
}

#[test]
fn a_stage_or_output_the_pipeline_lacks_is_named_with_a_suggestion() {
    let p = project(&BASELINE.replace("stage: search\n    table: results", "stage: serch\n    table: results"));
    let out = check(&p, &[]).expect_code(2);
    assert!(
        out.stderr.contains("base.yaml:4:12: metric `beam-pav-at-16`: no stage `serch` in pipeline `p`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("did you mean `search`?"), "{}", out.stderr);
    assert_eq!(p.count("search"), 0, "nothing runs");
    p.write("base.yaml", &BASELINE.replace("table: results", "table: result"));
    let out = check(&p, &[]).expect_code(2);
    assert!(out.stderr.contains("stage `search` has no output `result`"), "{}", out.stderr);
    assert!(out.stderr.contains("did you mean `results`?"), "{}", out.stderr);
}

#[test]
fn a_column_the_table_lacks_lists_the_columns() {
    let p = project(&BASELINE.replace("column: accuracy\n    where", "column: acuracy\n    where"));
    let out = check(&p, &[]).expect_code(2);
    assert!(
        out.stderr.contains("base.yaml:6:13: metric `beam-pav-at-16`: column `acuracy` is not in the table"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("did you mean `accuracy`? (its columns: `method`, `n`, `accuracy`, `solved`)"),
        "{}",
        out.stderr
    );
    let row = out.stdout.lines().find(|l| l.starts_with("beam-pav-at-16")).unwrap();
    assert!(row.trim_end().ends_with("error"), "{}", out.stdout);
}

#[test]
fn filters_that_match_no_row_or_several_rows_are_explained() {
    let p = project(&BASELINE.replace("where: {method: beam-pav, n: 16}", "where: {method: beam-pav, n: '16'}"));
    let out = check(&p, &[]).expect_code(2);
    assert!(out.stderr.contains("base.yaml:7:31: metric `beam-pav-at-16`: no row matches;"), "{}", out.stderr);
    let flat = out.stderr.split_whitespace().filter(|w| *w != "│").collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("the table has 4 rows, 2 before `n == 16`; the column holds int, the filter is a string"),
        "{}",
        out.stderr
    );
    p.write("base.yaml", &BASELINE.replace("where: {method: beam-pav, n: 16}", "where: {method: beam-pav}"));
    let out = check(&p, &[]).expect_code(2);
    assert!(out.stderr.contains("2 rows match and there is no `reduce`"), "{}", out.stderr);
}

#[test]
fn a_failed_stage_makes_its_metrics_errors() {
    let p = project(BASELINE);
    p.write("p.yaml", &PIPELINE.replace("cp data.parquet", "exit 3; cp data.parquet"));
    let out = check(&p, &[]).expect_code(1);
    assert!(out.stderr.contains("stage `search` failed"), "{}", out.stderr);
    assert!(
        out.stderr.contains("base.yaml:4:12: metric `beam-pav-at-16`: stage `search` failed in this run"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("4 metrics could not be evaluated"), "{}", out.stderr);
    assert_eq!(out.stdout.lines().filter(|l| l.trim_end().ends_with(" error")).count(), 4, "{}", out.stdout);
}

#[test]
fn the_shipped_ci_baseline_binds_to_its_pipeline() {
    // Without running anything: every metric names a real stage, output and point (else exit 2);
    // with an empty cache each one is "not computed yet" (exit 1). `.ci/run` runs it for real.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let p = Project::new();
    let (file, baseline) = (repo.join("pipelines/ci.yaml"), repo.join("baselines/ci.yaml"));
    let out = p
        .pipeline(&["check", file.to_str().unwrap(), "--baseline", baseline.to_str().unwrap(), "--no-run"])
        .expect_code(1);
    assert!(out.stderr.contains("6 metrics could not be evaluated"), "{}", out.stderr);
}
