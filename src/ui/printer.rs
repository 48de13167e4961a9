//! [`Printer`]: stdout for data, stderr for people.

use std::io::{IsTerminal, Write};

/// Terminal output for one command.
#[derive(Debug, Clone)]
pub struct Printer {
    pub color: bool,
    pub stderr_tty: bool,
    pub quiet: bool,
}

impl Printer {
    pub fn new(quiet: bool) -> Self {
        let stderr_tty = std::io::stderr().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Printer { color: stderr_tty && !no_color, stderr_tty, quiet }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
    }

    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    pub fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    pub fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    pub fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }

    /// A line of data on stdout. A closed pipe (`| head`) ends the process quietly.
    pub fn out(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{line}").is_err() {
            std::process::exit(0);
        }
    }

    /// A line for humans on stderr (suppressed by `--quiet`).
    pub fn info(&self, line: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }

    /// A closing summary line on stderr, printed even with `--quiet`.
    pub fn summary(&self, line: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    pub fn warn(&self, msg: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{} {msg}", self.yellow("warning:"));
    }

    pub fn error(&self, msg: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{} {msg}", self.red("error:"));
    }

    /// Ask a yes/no question on stderr and read the answer from stdin; only `y` or `yes`
    /// (any case) is yes. End of input or a read error is no.
    pub fn confirm(&self, question: &str) -> bool {
        let _ = write!(std::io::stderr().lock(), "{question}");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        match std::io::stdin().read_line(&mut answer) {
            Ok(n) if n > 0 => matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"),
            _ => false,
        }
    }

    /// Whether a person can answer questions: stdin and stderr are terminals.
    pub fn interactive(&self) -> bool {
        self.stderr_tty && std::io::stdin().is_terminal()
    }

    /// Raw text to stderr, unconditionally (error reports).
    pub fn err_raw(&self, text: &str) {
        let _ = write!(std::io::stderr().lock(), "{text}");
    }
}
