//! Rendering of spec errors (and baseline errors of `check`) with miette: each error with its `file:line:column`, the source
//! line underlined, the code and a help line.

use miette::{GraphicalReportHandler, GraphicalTheme};

use super::Printer;
use crate::engine::spec::SpecErrors;

pub fn render_spec_errors(errors: &SpecErrors, printer: &Printer) -> String {
    let n = errors.errors.len();
    render_diagnostics(
        errors,
        printer,
        &format!("error: the pipeline spec has {n} error{}; nothing was run\n", if n == 1 { "" } else { "s" }),
    )
}

/// Every error of `errors` rendered, then the closing line `closing`.
pub fn render_diagnostics(errors: &SpecErrors, printer: &Printer, closing: &str) -> String {
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
    out.push_str(closing);
    out
}
