//! `pipeline report`: one self-contained HTML page with every figure, its points and the keys
//! behind them.

use crate::fixture::Project;

/// Small `problems` tables (fast, real Parquet) -> a per-point figure and a gathered one.
const PIPELINE: &str = r#"
seed: 1
stages:
  problems:
    kind: problems
    sweep: {train: [4, 6]}
    params: {task: arith, train: "${sweep.train}", test: 2, steps: 2}
  ids:
    kind: figure
    needs: {data: problems}
    params:
      title: "Problem ids <by split>"
      x: problem_id
      y: problem_id
      series: split
      caption: "ids & splits"
      paper: "the paper reports 42"
  sizes:
    kind: figure
    needs: {data: "problems[*]"}
    params: {title: "Largest id per sweep point", x: train, y: problem_id, series: split, aggregate: max}
"#;

const FIGURES: [&str; 3] = ["ids[train=4]", "ids[train=6]", "sizes"];

fn assert_self_contained(html: &str) {
    for bad in ["<script src", "<link", "@import", "url(http", "src=\"http"] {
        assert!(!html.contains(bad), "the report references something external: {bad:?}");
    }
}

#[test]
fn report_shows_every_figure_with_its_points_and_keys() {
    let p = Project::new();
    p.write("p.yaml", PIPELINE);
    let r = p.run("p.yaml", &[]);
    assert!(r.ok, "{r:?}");
    let out = p.pipeline(&["report", "p.yaml"]).expect_code(0);
    assert!(out.stderr.contains("p-report.html"), "{}", out.stderr);
    let html = p.read("p-report.html");
    assert_self_contained(&html);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<svg").count(), 3, "one inline SVG per figure instance");
    assert!(!html.contains("<?xml"));
    for title in ["Problem ids &lt;by split&gt;", "Largest id per sweep point"] {
        assert!(html.contains(title), "missing title {title:?}");
    }
    assert!(!html.contains("Problem ids <by split>"), "a title reached the page unescaped");
    assert!(html.contains("ids &amp; splits") && html.contains("the paper reports 42"));
    for f in FIGURES {
        assert!(html.contains(r.key(f)), "missing the key of {f}");
    }
    // Provenance: the keys of the stages each figure reads.
    for up in ["problems[train=4]", "problems[train=6]"] {
        assert!(html.contains(r.key(up)), "missing the key of {up}");
    }
    // The points tables (Ours) and the instance table.
    assert!(html.contains("<th>series</th>") && html.contains("<td>test</td>"), "no points table");
    assert!(html.contains("5 stage instances, 5 cached"), "header");
    assert_eq!(html.matches("class=\"cached\"").count(), 5);
    // Same cache, same page.
    p.pipeline(&["report", "p.yaml", "-o", "out/r.html"]).expect_code(0);
    assert_eq!(p.read("out/r.html"), html);
}

#[test]
fn report_before_running_marks_and_names_the_missing_figures() {
    let p = Project::new();
    p.write("p.yaml", PIPELINE);
    let out = p.pipeline(&["report", "p.yaml"]).expect_code(1);
    for f in FIGURES {
        assert!(out.stderr.contains(f), "warning does not name {f}:\n{}", out.stderr);
    }
    assert!(out.stderr.contains("pipeline run p.yaml"), "{}", out.stderr);
    let html = p.read("p-report.html");
    assert_self_contained(&html);
    assert_eq!(html.matches("Not run yet").count(), 3);
    assert!(html.contains("Problem ids &lt;by split&gt;"), "the title comes from the params before a run");
    // After running only one figure, the other two are still missing.
    p.pipeline(&["run", "p.yaml", "sizes"]).expect_code(0);
    let out = p.pipeline(&["report", "p.yaml"]).expect_code(1);
    assert!(out.stderr.contains("ids[train=4]") && !out.stderr.contains("sizes"), "{}", out.stderr);
}

#[test]
fn report_of_a_missing_or_invalid_pipeline_is_a_spec_error() {
    let p = Project::new();
    p.pipeline(&["report", "nope.yaml"]).expect_code(2);
    p.write("bad.yaml", "stages:\n  f:\n    kind: figure\n    params: {titel: x}\n");
    let out = p.pipeline(&["report", "bad.yaml"]).expect_code(2);
    assert!(out.stderr.contains("did you mean `title`?"), "{}", out.stderr);
    assert!(!p.path("bad-report.html").exists());
}

#[test]
fn report_tables_gather_every_sweep_point_with_its_axes_and_keys() {
    let p = Project::new();
    p.write(
        "p.yaml",
        r#"
seed: 1
stages:
  problems:
    kind: problems
    sweep: {train: [4, 6]}
    params: {task: arith, train: "${sweep.train}", test: 2, steps: 2}
    report: {problems: [split, problem_id]}
  all:
    kind: problems
    params: {task: arith, train: 3, test: 1, steps: 2}
    report: [problems]
  typo:
    kind: problems
    params: {task: arith, train: 2, test: 1, steps: 2}
    report: {problems: [split, answr]}
"#,
    );
    // Before a run: the tables are listed as not run, and the page is still written.
    p.pipeline(&["report", "p.yaml"]).expect_code(0);
    let html = p.read("p-report.html");
    assert!(
        html.contains("Key tables") && html.contains("Not run yet: problems[train=4], problems[train=6]"),
        "{html}"
    );

    let r = p.run("p.yaml", &[]);
    assert!(r.ok, "{r:?}");
    p.pipeline(&["report", "p.yaml"]).expect_code(0);
    let html = p.read("p-report.html");
    assert_self_contained(&html);
    // The swept stage: one table, its axis first, 6 + 8 rows from two entries.
    let start = html.find("<code>problems</code> &middot; <code>problems</code>").expect("no table of `problems`");
    let section = &html[start..html[start..].find("</ul></div>").map_or(html.len(), |e| start + e)];
    assert!(section.contains("<tr><th>train</th><th>split</th><th>problem_id</th></tr>"), "{section}");
    assert!(section.contains("14 rows"), "{section}");
    assert_eq!(section.matches("<tr><td class=\"num\">4</td>").count(), 6, "{section}");
    assert_eq!(section.matches("<tr><td class=\"num\">6</td>").count(), 8, "{section}");
    assert!(section.contains(r.key("problems[train=4]")) && section.contains(r.key("problems[train=6]")));
    // Every column when none is listed; a column the table lacks is named on the page.
    assert!(html.contains("<th>problem_id</th><th>split</th><th>prompt</th><th>answer</th>"), "{html}");
    assert!(html.contains("typo: `problems` has no column `answr`") && html.contains("fix `report:` of stage `typo`"));
}
