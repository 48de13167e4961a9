//! The only writer to the terminal. Data (`--json`, `plan`, `show`, `dag`) goes to stdout;
//! everything meant for a human (progress, warnings, errors, summaries) goes to stderr.
//! Colour only on a terminal and never with `NO_COLOR`.

pub mod diagnostics;
pub mod printer;
pub mod progress;
pub mod table;

pub use printer::Printer;
