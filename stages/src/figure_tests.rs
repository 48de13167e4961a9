//! The `figure` kind: rendering, aggregation, gathered inputs, filters, errors, determinism.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use serde_json::{Value, json};

use super::*;
use crate::table::{read_parquet, write_parquet};
use crate::train_policy::tests::run_kind;

/// A table with a string column `method`, an int column `n`, a float column `accuracy` and
/// an int column `seed`.
fn table(path: &Path, rows: &[(&str, i64, f64, i64)]) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("method", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0)))),
        ("n", Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1)))),
        ("accuracy", Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2)))),
        ("seed", Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.3)))),
    ];
    write_parquet(path, &RecordBatch::try_from_iter(columns).unwrap()).unwrap();
    path.to_path_buf()
}

fn small(dir: &Path) -> PathBuf {
    table(
        &dir.join("in/t.parquet"),
        &[
            ("orm", 1, 0.2, 0),
            ("orm", 2, 0.3, 0),
            ("orm", 4, 0.35, 0),
            ("pav", 1, 0.2, 0),
            ("pav", 2, 0.4, 0),
            ("pav", 4, 0.5, 0),
        ],
    )
}

/// (series, x, y, lo, hi, n) of a points table.
type Row = (String, f64, f64, Option<f64>, Option<f64>, i32);

fn points(path: &Path) -> Vec<Row> {
    let b = &read_parquet(path).unwrap()[0];
    let s = b.column_by_name("series").unwrap().as_string::<i32>();
    let f = |c: &str| b.column_by_name(c).unwrap().as_primitive::<Float64Type>().clone();
    let (x, y, lo, hi) = (f("x"), f("y"), f("lo"), f("hi"));
    let n = b.column_by_name("n").unwrap().as_primitive::<Int32Type>();
    let opt = |a: &Float64Array, i: usize| a.is_valid(i).then(|| a.value(i));
    (0..b.num_rows())
        .map(|i| (s.value(i).to_string(), x.value(i), y.value(i), opt(&lo, i), opt(&hi, i), n.value(i)))
        .collect()
}

fn figure(
    dir: &Path,
    name: &str,
    params: Value,
    inputs: &[(&str, PathBuf)],
) -> Result<BTreeMap<String, PathBuf>, StageError> {
    run_kind(&Figure, dir, name, params, 0, inputs)
}

#[test]
fn renders_a_small_table_to_svg_and_png() {
    let d = tempfile::tempdir().unwrap();
    let data = small(d.path());
    let params = json!({"title": "Accuracy vs N", "x": "n", "y": "accuracy", "series": "method",
        "legend": {"pav": "PAV beam"}, "log_x": true, "width": 640, "height": 400,
        "reference": [{"y": 0.45, "label": "paper PAV"}], "caption": "a & b", "paper": "PAV 0.5 at N=4"});
    let out = figure(d.path(), "fig", params, &[("data", data)]).unwrap();
    let svg = std::fs::read_to_string(&out["svg"]).unwrap();
    for want in ["Accuracy vs N", "PAV beam", "orm", "paper PAV", "<svg"] {
        assert!(svg.contains(want), "missing {want:?} in the SVG");
    }
    let png_bytes = std::fs::read(&out["png"]).unwrap();
    assert_eq!(&png_bytes[..8], b"\x89PNG\r\n\x1a\n");
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let reader = decoder.read_info().unwrap();
    assert_eq!((reader.info().width, reader.info().height), (640, 400));
    let p = points(&out["points"]);
    assert_eq!(p.len(), 6);
    assert_eq!((p[0].0.as_str(), p[0].1, p[0].2), ("orm", 1.0, 0.2));
    assert_eq!((p[5].0.as_str(), p[5].1, p[5].2, p[5].5), ("PAV beam", 4.0, 0.5, 1));
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(&out["meta"]).unwrap()).unwrap();
    assert_eq!(meta["series"], json!(["orm", "PAV beam"]));
    assert_eq!(meta["rows"], json!({"data": 6}));
    assert_eq!(meta["paper"], "PAV 0.5 at N=4");
    assert_eq!(meta["xlabel"], "n");
}

#[test]
fn the_png_has_text_without_system_fonts() {
    // The title area of an otherwise empty figure holds dark pixels only if glyphs were drawn.
    let d = tempfile::tempdir().unwrap();
    let data = small(d.path());
    let out = figure(d.path(), "fig", json!({"title": "TITLE", "x": "n", "y": "accuracy"}), &[("data", data)]).unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(std::fs::read(&out["png"]).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut buf).unwrap();
    let dark = buf.chunks(3).take(800 * 40).filter(|px| px.iter().all(|&c| c < 128)).count();
    assert!(dark > 30, "only {dark} dark pixels in the title strip");
}

/// `aggregate: median` with `band: quartiles`: numpy's default (linear) percentiles, computed
/// by hand: five rows 0, 0, 0.1, 1, 1 have median 0.1, quartiles 0 and 1; four rows 0.2, 0.4,
/// 0.6, 1.0 have median 0.5, 25th percentile 0.2 + 0.75 * 0.2 = 0.35, 75th 0.6 + 0.25 * 0.4 = 0.7.
#[test]
fn median_with_quartiles_is_robust_to_bimodal_runs() {
    let d = tempfile::tempdir().unwrap();
    let data = table(
        &d.path().join("t.parquet"),
        &[
            ("a", 1, 0.0, 0),
            ("a", 1, 1.0, 1),
            ("a", 1, 0.1, 2),
            ("a", 1, 0.0, 3),
            ("a", 1, 1.0, 4),
            ("a", 2, 0.6, 0),
            ("a", 2, 0.2, 1),
            ("a", 2, 1.0, 2),
            ("a", 2, 0.4, 3),
            ("a", 3, 0.9, 0),
        ],
    );
    let params = json!({"title": "t", "x": "n", "y": "accuracy", "aggregate": "median", "band": "quartiles"});
    let out = figure(d.path(), "fig", params, &[("data", data)]).unwrap();
    let p = points(&out["points"]);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert!(close(p[0].2, 0.1) && close(p[0].3.unwrap(), 0.0) && close(p[0].4.unwrap(), 1.0), "{p:?}");
    assert!(close(p[1].2, 0.5) && close(p[1].3.unwrap(), 0.35) && close(p[1].4.unwrap(), 0.7), "{p:?}");
    assert_eq!((p[2].2, p[2].3, p[2].4, p[2].5), (0.9, None, None, 1), "one row: no band");
    let bad = json!({"title": "t", "x": "n", "y": "accuracy", "band": "quartiles"});
    let e = figure(d.path(), "bad", bad, &[("data", d.path().join("t.parquet"))]).unwrap_err().to_string();
    assert!(e.contains("aggregate: median"), "{e}");
}

#[test]
fn band_ci95_is_the_student_t_interval_of_the_mean_over_seeds() {
    let d = tempfile::tempdir().unwrap();
    let data = table(
        &d.path().join("t.parquet"),
        &[("a", 1, 0.2, 0), ("a", 1, 0.4, 1), ("a", 1, 0.6, 2), ("a", 2, 0.5, 0), ("a", 2, 0.7, 1), ("a", 3, 0.9, 0)],
    );
    let out =
        figure(d.path(), "fig", json!({"title": "t", "x": "n", "y": "accuracy", "band": "ci95"}), &[("data", data)])
            .unwrap();
    let p = points(&out["points"]);
    // x = 1: mean 0.4, s = 0.2, se = 0.2 / sqrt(3), t(0.975, 2) = 4.302653 (textbook table);
    // x = 2: mean 0.6, s = sqrt(0.02), se = 0.1, t(0.975, 1) = 12.706205.
    let half1 = 4.302653 * 0.2 / 3f64.sqrt();
    let half2 = 12.706205 * 0.1;
    let close = |a: f64, b: f64| (a - b).abs() < 1e-5;
    assert_eq!(p[0].0, "accuracy", "without `series` the one line is named after y");
    assert!(close(p[0].2, 0.4) && close(p[0].3.unwrap(), 0.4 - half1) && close(p[0].4.unwrap(), 0.4 + half1), "{p:?}");
    assert_eq!(p[0].5, 3);
    assert!(close(p[1].2, 0.6) && close(p[1].3.unwrap(), 0.6 - half2) && close(p[1].4.unwrap(), 0.6 + half2), "{p:?}");
    assert_eq!((p[2].2, p[2].3, p[2].4, p[2].5), (0.9, None, None, 1), "one row: no band");

    // `clip` bounds the band, not the mean.
    let params = json!({"title": "t", "x": "n", "y": "accuracy", "band": "ci95", "clip": [0, 1]});
    let out = figure(d.path(), "clipped", params, &[("data", d.path().join("t.parquet"))]).unwrap();
    let c = points(&out["points"]);
    assert!(close(c[0].3.unwrap(), 0.0) && close(c[0].4.unwrap(), 0.4 + half1), "{c:?}");
    assert!(close(c[1].2, 0.6) && close(c[1].3.unwrap(), 0.0) && close(c[1].4.unwrap(), 1.0), "{c:?}");
    let meta: Value = serde_json::from_slice(&std::fs::read(&out["meta"]).unwrap()).unwrap();
    assert_eq!(meta["clip"], json!([0.0, 1.0]));
    assert!(meta["band"].as_str().unwrap().contains("Student t"), "{meta}");
}

#[test]
fn t_quantiles_match_the_table_and_approach_the_normal() {
    use crate::figure_points::t975;
    for (df, want) in [(1, 12.706205), (2, 4.302653), (4, 2.776445), (10, 2.228139), (30, 2.042272)] {
        assert!((t975(df) - want).abs() < 1e-5, "df {df}: {}", t975(df));
    }
    assert!((t975(100_000) - 1.959964).abs() < 1e-4);
}

#[test]
fn aggregate_last_max_min_and_lo_hi_columns() {
    let d = tempfile::tempdir().unwrap();
    let data = table(&d.path().join("t.parquet"), &[("a", 1, 0.5, 2), ("a", 1, 0.9, 0), ("a", 1, 0.1, 1)]);
    let run = |name: &str, extra: Value| {
        let mut params = json!({"title": "t", "x": "n", "y": "accuracy"});
        params.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        points(&figure(d.path(), name, params, &[("data", data.clone())]).unwrap()["points"])[0].2
    };
    assert_eq!(run("last", json!({"aggregate": "last"})), 0.1);
    assert_eq!(run("ordered", json!({"aggregate": "last", "order": "seed"})), 0.5);
    assert_eq!(run("max", json!({"aggregate": "max"})), 0.9);
    assert_eq!(run("min", json!({"aggregate": "min"})), 0.1);
    let out = figure(
        d.path(),
        "lohi",
        json!({"title": "t", "x": "n", "y": "accuracy", "lo": "seed", "hi": "seed"}),
        &[("data", data.clone())],
    )
    .unwrap();
    assert_eq!(points(&out["points"])[0].3, Some(1.0), "lo is the mean of the lo column");
}

#[test]
fn a_gathered_directory_adds_its_sweep_axes_as_columns() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("gathered");
    for (k, seed) in [("2", "0"), ("10", "0"), ("2", "1")] {
        let y = k.parse::<f64>().unwrap() / 100.0 + seed.parse::<f64>().unwrap();
        table(&root.join(format!("k={k}/seed={seed}/values.parquet")), &[("a", 1, y, 0), ("a", 2, y, 0)]);
    }
    let out = figure(
        d.path(),
        "fig",
        json!({"title": "t", "x": "n", "y": "accuracy", "series": ["k", "input"], "filter": {"seed": 0}}),
        &[("data", root)],
    )
    .unwrap();
    let p = points(&out["points"]);
    // Numbers sort numerically (2 before 10, though `k=10` sorts first as a path).
    let series: Vec<&str> = p.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(series, ["2, data", "2, data", "10, data", "10, data"]);
    assert_eq!(p[0].2, 0.02);
    assert_eq!(p[2].2, 0.1);
}

#[test]
fn filter_keeps_matching_rows_and_numbers_compare_numerically() {
    let d = tempfile::tempdir().unwrap();
    let data = small(d.path());
    let other = table(&d.path().join("o.parquet"), &[("orm", 4, 0.99, 0)]);
    let params = json!({"title": "t", "x": "n", "y": "accuracy", "series": "input", "filter": {"method": ["orm", "x"], "n": ["4", 2]}});
    let out = figure(d.path(), "fig", params, &[("data", data), ("data2", other)]).unwrap();
    let p = points(&out["points"]);
    let got: Vec<(&str, f64, f64)> = p.iter().map(|r| (r.0.as_str(), r.1, r.2)).collect();
    assert_eq!(got, [("data", 2.0, 0.3), ("data", 4.0, 0.35), ("data2", 4.0, 0.99)]);
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(&out["meta"]).unwrap()).unwrap();
    assert_eq!(meta["rows"], json!({"data": 6, "data2": 1}));
    assert_eq!(meta["rows_kept"], 3);
}

#[test]
fn rows_without_a_finite_x_or_y_are_skipped_and_counted() {
    let d = tempfile::tempdir().unwrap();
    let data =
        table(&d.path().join("t.parquet"), &[("a", 1, 0.5, 0), ("a", 2, f64::NAN, 0), ("a", 3, f64::INFINITY, 0)]);
    let out = figure(d.path(), "fig", json!({"title": "t", "x": "n", "y": "accuracy"}), &[("data", data)]).unwrap();
    assert_eq!(points(&out["points"]).len(), 1);
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(&out["meta"]).unwrap()).unwrap();
    assert_eq!(meta["skipped"], 2);
}

#[test]
fn an_unknown_column_lists_the_columns_and_suggests_the_closest() {
    let d = tempfile::tempdir().unwrap();
    let data = small(d.path());
    let e = figure(d.path(), "fig", json!({"title": "t", "x": "n", "y": "acuracy"}), &[("data", data.clone())])
        .unwrap_err()
        .to_string();
    assert!(e.contains("param `y`") && e.contains("no column `acuracy`"), "{e}");
    assert!(e.contains("method, n, accuracy, seed, input") && e.contains("did you mean `accuracy`?"), "{e}");
    let e = figure(
        d.path(),
        "f2",
        json!({"title": "t", "x": "n", "y": "accuracy", "filter": {"metod": "a"}}),
        &[("data", data)],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("param `filter`") && e.contains("did you mean `method`?"), "{e}");
}

#[test]
fn bad_params_name_the_field_and_a_fix() {
    let cases = [
        (json!({"x": "n", "y": "a"}), "param `title`: is required"),
        (json!({"title": "t", "x": "n", "y": "a", "aggregate": "mode"}), "mean, median, last, max, min"),
        (json!({"title": "t", "x": "n", "y": "a", "band": "ci90"}), "param `band`"),
        (json!({"title": "t", "x": "n", "y": "a", "band": "ci95", "aggregate": "max"}), "aggregate: mean"),
        (json!({"title": "t", "x": "n", "y": "a", "lo": "l"}), "param `hi`"),
        (json!({"title": "t", "x": "n", "y": "a", "reference": [{"y": "high"}]}), "{y: NUMBER, label: TEXT}"),
        (json!({"title": "t", "x": "n", "y": "a", "log_x": "yes"}), "param `log_x`"),
        (json!({"title": "t", "x": "n", "y": "a", "width": 5}), "param `width`"),
        (json!({"title": "t", "x": "n", "y": "a", "band": "ci95", "clip": [1, 0]}), "LOW < HIGH"),
        (json!({"title": "t", "x": "n", "y": "a", "band": "ci95", "clip": 1}), "e.g. `clip: [0, 1]`"),
        (json!({"title": "t", "x": "n", "y": "a", "clip": [0, 1]}), "`clip` bounds a band"),
    ];
    for (params, want) in cases {
        let e = FigureParams::read(params.as_object().unwrap()).unwrap_err().to_string();
        assert!(e.contains(want), "{params}: {e}");
    }
}

#[test]
fn the_same_inputs_give_byte_identical_figures() {
    let d = tempfile::tempdir().unwrap();
    let data = small(d.path());
    let params = json!({"title": "Same", "x": "n", "y": "accuracy", "series": "method", "band": "ci95"});
    let a = figure(d.path(), "a", params.clone(), &[("data", data.clone())]).unwrap();
    let b = figure(d.path(), "b", params, &[("data", data)]).unwrap();
    for port in ["svg", "png", "points", "meta"] {
        assert_eq!(std::fs::read(&a[port]).unwrap(), std::fs::read(&b[port]).unwrap(), "{port} differs");
    }
}

#[test]
fn tick_labels_are_short() {
    use crate::figure_draw::tick;
    assert_eq!(tick(0.0), "0");
    assert_eq!(tick(0.25), "0.25");
    assert_eq!(tick(1.0 / 3.0), "0.3333");
    assert_eq!(tick(16.0), "16");
    assert_eq!(tick(1234.0), "1234");
    assert_eq!(tick(2.5e6), "2.50e6");
}

#[test]
fn a_flat_non_negative_line_does_not_get_a_negative_axis() {
    use crate::figure_draw::range;
    let (lo, hi) = range([0.0, 0.0].into_iter(), 0.05);
    assert!((-0.05..0.0).contains(&lo) && hi == 0.5, "{lo} {hi}");
    assert_eq!(range([-1.0].into_iter(), 0.05), (-1.5, -0.5));
    assert_eq!(range([2.0].into_iter(), 0.05), (1.5, 2.5));
    assert_eq!(range([0.0, 1.0].into_iter(), 0.05), (-0.05, 1.05));
}
