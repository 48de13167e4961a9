//! The HTML of `pipeline report`: one page, inline CSS, no scripts, nothing fetched. Every
//! text that comes from params, tables or paths is escaped here; only the figure SVGs, which
//! plotters wrote with their text escaped, are inlined as they are.

use std::fmt::Write;

use serde_json::Value;

use super::report_page::{FigureEntry, Report, TableEntry};
use crate::engine::exec::command::shell_quote;

const STYLE: &str = "
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1000px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.3em; margin-top: 2em; }
code { font-family: Menlo, Consolas, monospace; font-size: 0.9em; background: #f4f4f4; padding: 0 0.2em; }
section.figure { border-top: 1px solid #ddd; padding-top: 0.5em; }
.svg svg { max-width: 100%; height: auto; }
.caption { color: #444; } .paper { background: #fff8e1; border-left: 4px solid #f2b01e; padding: 0.4em 0.8em; }
.missing .note, .problem { background: #fdecea; border-left: 4px solid #d93025; padding: 0.4em 0.8em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.15em 0.5em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.provenance { font-size: 0.85em; color: #444; } .provenance ul { margin: 0.2em 0; }
.cached { color: #1e7e34; } .notrun { color: #d93025; } .muted { color: #777; }
";

/// Escape text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn meta_str<'a>(meta: Option<&'a Value>, field: &str) -> &'a str {
    meta.and_then(|m| m.get(field)).and_then(Value::as_str).unwrap_or("")
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let cached = r.instances.iter().filter(|i| i.manifest.is_some()).count();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Report: {name}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <header>\n<h1>Pipeline <code>{name}</code></h1>\n\
         <p>File <code>{file}</code> &middot; pav-pipeline {version} &middot; {n} stage instances, {cached} cached \
         &middot; {figs} figures</p>\n",
        name = escape(&r.pipeline),
        file = escape(&r.file),
        version = escape(&r.engine_version),
        n = r.instances.len(),
        figs = r.figures.len(),
    );
    if !r.figures.is_empty() || !r.tables.is_empty() {
        h.push_str("<nav><ol>\n");
        for (n, f) in r.figures.iter().enumerate() {
            let inst = &r.instances[f.instance];
            let state = if inst.manifest.is_some() { "" } else { " <span class=\"notrun\">(not run yet)</span>" };
            let _ = writeln!(h, "<li><a href=\"#figure-{}\">{}</a>{state}</li>", n + 1, escape(&f.title));
        }
        if !r.tables.is_empty() {
            h.push_str("<li><a href=\"#tables\">Key tables</a></li>\n");
        }
        h.push_str("</ol></nav>\n");
    }
    h.push_str("</header>\n");
    for (n, f) in r.figures.iter().enumerate() {
        figure(&mut h, r, n + 1, f);
    }
    if !r.tables.is_empty() {
        h.push_str("<section id=\"tables\">\n<h2>Key tables</h2>\n");
        for t in &r.tables {
            key_table(&mut h, r, t);
        }
        h.push_str("</section>\n");
    }
    stage_table(&mut h, r);
    h.push_str("</body>\n</html>\n");
    h
}

fn figure(h: &mut String, r: &Report, n: usize, f: &FigureEntry) {
    let inst = &r.instances[f.instance];
    let meta = f.meta.as_ref();
    let title = meta.and_then(|m| m.get("title")).and_then(Value::as_str).unwrap_or(&f.title);
    let point = if inst.point.is_empty() {
        String::new()
    } else {
        format!(" <span class=\"muted\">[{}]</span>", escape(&inst.point))
    };
    let class = if inst.manifest.is_some() { "figure" } else { "figure missing" };
    let _ = writeln!(h, "<section class=\"{class}\" id=\"figure-{n}\">\n<h2>{n}. {}{point}</h2>", escape(title));
    let _ = writeln!(h, "<p class=\"muted\">Stage instance <code>{}</code></p>", escape(&inst.name));
    if inst.manifest.is_none() {
        let _ = writeln!(
            h,
            "<p class=\"note\">Not run yet: <code>pipeline run {}</code> computes it.</p>",
            escape(&shell_quote(&r.file))
        );
    }
    if let Some(p) = &f.problem {
        let _ = writeln!(h, "<p class=\"problem\">Cannot show this figure: {}</p>", escape(p));
    }
    if let Some(svg) = &f.svg {
        let _ = writeln!(h, "<div class=\"svg\">\n{svg}\n</div>");
    }
    let caption = meta_str(meta, "caption");
    if !caption.is_empty() {
        let _ = writeln!(h, "<p class=\"caption\">{}</p>", escape(caption));
    }
    let paper = meta_str(meta, "paper");
    if !paper.is_empty() {
        let _ = writeln!(h, "<p class=\"paper\"><strong>Paper:</strong> {}</p>", escape(paper));
    }
    if let Some((columns, rows, total)) = &f.points {
        let shown = if rows.len() as u64 == *total { String::new() } else { format!(", first {} shown", rows.len()) };
        let _ = writeln!(
            h,
            "<details open>\n<summary><strong>Ours:</strong> the plotted points ({total} rows{shown})</summary>"
        );
        cells_table(h, columns, rows);
        h.push_str("</details>\n");
    }
    let _ = writeln!(h, "<div class=\"provenance\">Key <code>{}</code>; it reads:\n<ul>", escape(&inst.key));
    for (port, name, key) in &f.needs {
        let _ = writeln!(
            h,
            "<li><code>{}</code> &larr; <code>{}</code> key <code>{}</code></li>",
            escape(port),
            escape(name),
            escape(key)
        );
    }
    h.push_str("</ul></div>\n</section>\n");
}

fn cells_table(h: &mut String, columns: &[String], rows: &[Vec<String>]) {
    h.push_str("<table>\n<tr>");
    for c in columns {
        let _ = write!(h, "<th>{}</th>", escape(c));
    }
    h.push_str("</tr>\n");
    for row in rows {
        h.push_str("<tr>");
        for c in row {
            let class = if c.parse::<f64>().is_ok() { " class=\"num\"" } else { "" };
            let _ = write!(h, "<td{class}>{}</td>", escape(c));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

fn key_table(h: &mut String, r: &Report, t: &TableEntry) {
    let _ = writeln!(
        h,
        "<h3 id=\"table-{0}-{1}\"><code>{0}</code> &middot; <code>{1}</code></h3>",
        escape(&t.stage),
        escape(&t.port)
    );
    for p in &t.problems {
        let _ = writeln!(h, "<p class=\"problem\">{}</p>", escape(p));
    }
    if !t.not_run.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"note notrun\">Not run yet: {}; <code>pipeline run {}</code> computes them.</p>",
            escape(&t.not_run.join(", ")),
            escape(&shell_quote(&r.file))
        );
    }
    if !t.columns.is_empty() {
        let shown =
            if t.rows.len() as u64 == t.total { String::new() } else { format!(", first {} shown", t.rows.len()) };
        let _ = writeln!(h, "<details open>\n<summary>{} rows{shown}</summary>", t.total);
        cells_table(h, &t.columns, &t.rows);
        h.push_str("</details>\n");
    }
    if !t.sources.is_empty() {
        h.push_str("<div class=\"provenance\">From:\n<ul>");
        for (name, key) in &t.sources {
            let _ = writeln!(h, "<li><code>{}</code> key <code>{}</code></li>", escape(name), escape(key));
        }
        h.push_str("</ul></div>\n");
    }
}

fn stage_table(h: &mut String, r: &Report) {
    h.push_str(
        "<section id=\"stages\">\n<h2>Stage instances</h2>\n<table>\n\
         <tr><th>instance</th><th>point</th><th>kind</th><th>key</th><th>status</th><th>duration</th><th>rows</th></tr>\n",
    );
    for i in &r.instances {
        let short: String = i.key.chars().take(12).collect();
        let (status, seconds, rows) = match &i.manifest {
            Some(m) => {
                let rows: Vec<String> =
                    m.outputs.iter().filter_map(|o| o.rows.map(|n| format!("{}: {n}", o.port))).collect();
                ("<span class=\"cached\">cached</span>", format!("{:.2}s", m.seconds), rows.join(", "))
            }
            None => ("<span class=\"notrun\">not run</span>", String::new(), String::new()),
        };
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td><code title=\"{}\">{short}</code></td>\
             <td>{status}</td><td class=\"num\">{seconds}</td><td>{}</td></tr>",
            escape(&i.stage),
            escape(&i.point),
            escape(&i.kind),
            escape(&i.key),
            escape(&rows)
        );
    }
    h.push_str("</table>\n</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(escape(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
