//! Run progress: a bar on a terminal, one plain line per finished stage otherwise.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Printer;
use crate::engine::schedule::{Outcome, Reporter, Status};

pub struct Progress {
    printer: Printer,
    bar: Option<ProgressBar>,
    done: usize,
    total: usize,
    /// Instances running now, shown after the bar.
    running: Vec<String>,
}

impl Progress {
    pub fn new(printer: &Printer, total: usize) -> Self {
        let bar = (printer.stderr_tty && !printer.quiet && total > 0).then(|| {
            let b = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {elapsed} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Progress { printer: printer.clone(), bar, done: 0, total, running: Vec::new() }
    }

    fn show_running(&self) {
        if let Some(b) = &self.bar {
            let msg =
                if self.running.is_empty() { String::new() } else { format!("running {}", self.running.join(", ")) };
            b.set_message(msg);
        }
    }

    fn line(&self, text: String) {
        match &self.bar {
            Some(b) => b.println(text),
            None => self.printer.info(&text),
        }
    }
}

impl Reporter for Progress {
    fn started(&mut self, instance: &str) {
        self.running.push(instance.to_string());
        self.show_running();
    }

    fn finished(&mut self, o: &Outcome) {
        self.done += 1;
        if let Some(pos) = self.running.iter().position(|r| *r == o.instance) {
            self.running.remove(pos);
            self.show_running();
        }
        let p = &self.printer;
        let (verb, quiet) = match o.status {
            Status::Cached => (p.dim("cached "), true),
            Status::Ran => (p.green("ran    "), false),
            Status::Failed => (p.red("FAILED "), false),
            Status::Skipped => (p.yellow("skipped"), false),
        };
        let secs = if o.status == Status::Ran || o.status == Status::Failed {
            format!(" ({:.2}s)", o.seconds)
        } else {
            String::new()
        };
        // On a terminal, cache hits only move the bar; in logs every instance gets a line.
        if !(quiet && self.bar.is_some()) {
            self.line(format!("[{}/{}] {verb} {}{secs}", self.done, self.total, o.instance));
        }
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    fn warn(&mut self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(format!("{} {msg}", self.printer.yellow("warning:"))),
            None => self.printer.warn(msg),
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
