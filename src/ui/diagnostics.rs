//! Rendering of spec errors with miette: each error with its `file:line:column`, the source
//! line underlined, the code and a help line.

use miette::{GraphicalReportHandler, GraphicalTheme};

use super::Printer;
use crate::engine::spec::SpecErrors;

pub fn render_spec_errors(errors: &SpecErrors, printer: &Printer) -> String {
    let theme = if printer.color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100).with_context_lines(1);
    let mut out = String::new();
    for d in errors.diagnostics() {
        let mut s = String::new();
        if handler.render_report(&mut s, &d).is_err() {
            s = format!("{d}\n");
        }
        out.push_str(&s);
        out.push('\n');
    }
    let n = errors.errors.len();
    out.push_str(&format!(
        "error: the pipeline spec has {n} error{}; nothing was run\n",
        if n == 1 { "" } else { "s" }
    ));
    out
}
