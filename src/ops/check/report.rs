//! What `pipeline check` prints and writes: the human table (stdout), the `--json` summary
//! (stdout), and the JUnit XML file for CI systems (written atomically).

use std::path::Path;

use serde::Serialize;

use super::baseline::{Baseline, Better, Number, Tolerance};
use super::measure::{Problem, Verdict};
use crate::engine::spec::source::Sources;
use crate::ui::Printer;
use crate::ui::table::render_table;

/// One evaluated metric.
#[derive(Debug, Clone)]
pub struct Row {
    pub metric: String,
    /// The instance the metric reads (`stage` or `stage[axis=value]`).
    pub stage: String,
    pub baseline: Number,
    pub tolerance: Tolerance,
    pub better: Better,
    pub result: Result<(Number, Number, Verdict), Problem>,
}

impl Row {
    pub fn status(&self) -> &'static str {
        match &self.result {
            Ok((_, _, Verdict::Ok)) => "ok",
            Ok((_, _, Verdict::Improved)) => "improved",
            Ok((_, _, Verdict::Regressed)) => "REGRESSED",
            Err(_) => "error",
        }
    }

    /// One sentence for a regression or an error (JUnit message, JSON).
    pub fn message(&self, sources: &Sources) -> Option<String> {
        match &self.result {
            Ok((current, delta, Verdict::Regressed)) => Some(format!(
                "{} moved from {} to {} ({}), beyond the tolerance {}",
                self.metric,
                self.baseline.render(),
                current.render(),
                signed(*delta),
                tolerance(&self.tolerance)
            )),
            Ok(_) => None,
            Err(p) => {
                let e = p.error();
                let at = e.loc.map(|l| format!("{}: ", l.render(sources))).unwrap_or_default();
                let help = e.help.as_ref().map(|h| format!(" ({h})")).unwrap_or_default();
                Some(format!("{at}{}{help}", e.message))
            }
        }
    }
}

/// `±0.03`, `±5%`, or both.
pub fn tolerance(t: &Tolerance) -> String {
    let abs = t.abs.map(|a| format!("±{}", Number::Float(a).render_short()));
    let rel = t.rel.map(|r| format!("±{}%", Number::Float(r * 100.0).render_short()));
    [abs, rel].into_iter().flatten().collect::<Vec<_>>().join(" or ")
}

/// A difference with its sign, rounded for reading (comparisons use the exact value).
pub fn signed(d: Number) -> String {
    match d {
        Number::Int(i) => format!("{i:+}"),
        Number::Float(f) => {
            let s = Number::Float(f).render_short();
            if f >= 0.0 { format!("+{s}") } else { s }
        }
    }
}

impl Number {
    /// At most 6 significant digits, for tables.
    pub fn render_short(self) -> String {
        match self {
            Number::Int(i) => i.to_string(),
            Number::Float(0.0) => "0".into(),
            Number::Float(f) if (1e-4..1e9).contains(&f.abs()) => {
                let magnitude = f.abs().log10().floor() as i32;
                let decimals = (5 - magnitude).max(0) as usize;
                let s = format!("{f:.decimals$}");
                if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
            }
            Number::Float(f) => format!("{f:.4e}"),
        }
    }
}

/// The table on stdout, statuses coloured.
pub fn print_table(p: &Printer, rows: &[Row]) {
    let header: Vec<String> =
        ["metric", "stage", "baseline", "current", "delta", "tolerance", "status"].map(String::from).to_vec();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let (current, delta) = match &r.result {
                Ok((c, d, _)) => (c.render_short(), signed(*d)),
                Err(_) => ("-".into(), "-".into()),
            };
            let mut tol = tolerance(&r.tolerance);
            if r.better != Better::Both {
                tol.push_str(&format!(" ({} is better)", if r.better == Better::Higher { "higher" } else { "lower" }));
            }
            vec![r.metric.clone(), r.stage.clone(), r.baseline.render_short(), current, delta, tol, r.status().into()]
        })
        .collect();
    for (i, line) in render_table(&header, &cells).into_iter().enumerate() {
        let line = match i.checked_sub(1).map(|r| &rows[r]) {
            None => p.bold(&line),
            Some(r) => match r.status() {
                "ok" => line,
                "improved" => p.yellow(&line),
                _ => p.red(&line),
            },
        };
        p.out(&line);
    }
}

#[derive(Serialize)]
struct JsonMetric<'a> {
    metric: &'a str,
    stage: &'a str,
    baseline: serde_json::Value,
    current: Option<serde_json::Value>,
    delta: Option<serde_json::Value>,
    tolerance: &'a Tolerance,
    better: Better,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// Counts by status.
#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub ok: usize,
    pub improved: usize,
    pub regressed: usize,
    pub errors: usize,
}

impl Counts {
    pub fn of(rows: &[Row]) -> Counts {
        let mut c = Counts::default();
        for r in rows {
            match r.status() {
                "ok" => c.ok += 1,
                "improved" => c.improved += 1,
                "REGRESSED" => c.regressed += 1,
                _ => c.errors += 1,
            }
        }
        c
    }
}

/// The `--json` summary.
pub fn json(pipeline: &str, baseline: &Baseline, rows: &[Row], updated: Option<&[(String, String, String)]>) -> String {
    let counts = Counts::of(rows);
    let metrics: Vec<JsonMetric> = rows
        .iter()
        .map(|r| JsonMetric {
            metric: &r.metric,
            stage: &r.stage,
            baseline: r.baseline.to_json(),
            current: r.result.as_ref().ok().map(|(c, _, _)| c.to_json()),
            delta: r.result.as_ref().ok().map(|(_, d, _)| d.to_json()),
            tolerance: &r.tolerance,
            better: r.better,
            status: match r.status() {
                "REGRESSED" => "regressed",
                s => s,
            },
            message: r.message(&baseline.sources),
        })
        .collect();
    let mut v = serde_json::json!({
        "pipeline": pipeline,
        "baseline": baseline.display,
        "ok": counts.regressed == 0 && counts.errors == 0,
        "counts": counts,
        "metrics": metrics,
    });
    if let Some(u) = updated {
        v["updated"] = u.iter().map(|(m, old, new)| serde_json::json!({"metric": m, "old": old, "new": new})).collect();
    }
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// JUnit XML: one `<testsuite name="pipeline check">`, one `<testcase>` per metric, a
/// `<failure>` for each regression or error.
pub fn junit(pipeline: &str, baseline: &Baseline, rows: &[Row], seconds: f64) -> String {
    let counts = Counts::of(rows);
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuite name=\"pipeline check\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\" time=\"{seconds:.3}\">\n",
        rows.len(),
        counts.regressed + counts.errors
    ));
    x.push_str(&format!(
        "  <properties>\n    <property name=\"pipeline\" value=\"{}\"/>\n    <property name=\"baseline\" value=\"{}\"/>\n  </properties>\n",
        escape(pipeline),
        escape(&baseline.display)
    ));
    for r in rows {
        let open = format!(
            "  <testcase name=\"{}\" classname=\"{}\"",
            escape(&r.metric),
            escape(&format!("{pipeline}.{}", r.stage))
        );
        let detail = match &r.result {
            Ok((c, d, _)) => format!(
                "baseline {} current {} delta {} tolerance {}",
                r.baseline.render(),
                c.render(),
                signed(*d),
                tolerance(&r.tolerance)
            ),
            Err(_) => String::new(),
        };
        match r.message(&baseline.sources) {
            None => x.push_str(&format!("{open}>\n    <system-out>{}</system-out>\n  </testcase>\n", escape(&detail))),
            Some(msg) => {
                let kind = if r.result.is_ok() { "regressed" } else { "error" };
                x.push_str(&format!(
                    "{open}>\n    <failure message=\"{}\" type=\"{kind}\">{}</failure>\n  </testcase>\n",
                    escape(&msg),
                    escape(if detail.is_empty() { &msg } else { &detail })
                ));
            }
        }
    }
    x.push_str("</testsuite>\n");
    x
}

/// Text for an XML attribute or element: the five entities escaped, characters that XML 1.0
/// cannot hold dropped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Write `text` to `path` atomically, with normal permissions.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    crate::ops::write_file::write_atomic(path, text.as_bytes())
}
