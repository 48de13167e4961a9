//! The `pipeline` command line: clap derive, one file per subcommand. Each subcommand fills
//! an options struct and calls one function in `ops`. Exit codes: 0 ok, 1 a stage failed (or
//! verify found broken entries), 2 usage or spec error, 101 internal error.

mod check;
mod completions;
mod dag;
mod diff;
mod explain;
mod gc;
mod kinds;
mod log;
mod plan;
mod report;
mod run;
mod show;
mod status;
mod verify;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::kinds::Builtins;
use crate::ops::{Context, OpError};
use crate::ui::Printer;
use crate::ui::diagnostics::render_spec_errors;

/// Declarative, cached experiment pipelines for process-verifier research.
///
/// A pipeline is a YAML file of stages with params and sweeps. Each stage's result is cached
/// under a key that hashes everything it depends on, so a rerun computes only what changed.
#[derive(Debug, Parser)]
#[command(name = "pipeline", version, propagate_version = true)]
pub struct Cli {
    /// Cache root [default: ./cache]
    #[arg(long, global = true, env = "PIPELINE_CACHE", value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Print a machine-readable JSON summary on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only errors and the final summary
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Run(run::Args),
    Plan(plan::Args),
    Explain(explain::Args),
    Status(status::Args),
    Show(show::Args),
    Log(log::Args),
    Diff(diff::Args),
    Report(report::Args),
    Dag(dag::Args),
    Verify(verify::Args),
    Check(check::Args),
    Gc(gc::Args),
    Kinds(kinds::Args),
    Completions(completions::Args),
}

/// Entry point of the binary; returns the exit code.
pub fn main() -> i32 {
    std::panic::set_hook(Box::new(|info| {
        if crate::engine::exec::panic::capture(info) {
            return;
        }
        eprintln!("error: internal error in pav-pipeline: {info}");
        eprintln!("This is a bug; please report it with the command you ran and this message.");
    }));
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let printer = Printer::new(cli.quiet);
    let ctx = Context {
        printer: printer.clone(),
        cache_root: cli.cache.clone().unwrap_or_else(|| PathBuf::from("cache")),
        json: cli.json,
        kinds: Builtins::new(),
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(&ctx, cli.command)));
    match result {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => report(&printer, e),
        Err(_) => 101,
    }
}

fn dispatch(ctx: &Context, command: Command) -> Result<(), OpError> {
    match command {
        Command::Run(a) => run::exec(ctx, a),
        Command::Plan(a) => plan::exec(ctx, a),
        Command::Explain(a) => explain::exec(ctx, a),
        Command::Status(a) => status::exec(ctx, a),
        Command::Show(a) => show::exec(ctx, a),
        Command::Log(a) => log::exec(ctx, a),
        Command::Diff(a) => diff::exec(ctx, a),
        Command::Report(a) => report::exec(ctx, a),
        Command::Dag(a) => dag::exec(ctx, a),
        Command::Verify(a) => verify::exec(ctx, a),
        Command::Check(a) => check::exec(ctx, a),
        Command::Gc(a) => gc::exec(ctx, a),
        Command::Kinds(a) => kinds::exec(ctx, a),
        Command::Completions(a) => completions::exec(ctx, a),
    }
}

fn report(p: &Printer, e: OpError) -> i32 {
    let code = e.exit_code();
    match e {
        OpError::Spec(errors) => p.err_raw(&render_spec_errors(&errors, p)),
        OpError::Usage { message, help } => {
            p.error(&message);
            if let Some(h) = help {
                p.err_raw(&format!("  help: {h}\n"));
            }
        }
        OpError::StageFailed => {}
        OpError::Failed(msg) => p.error(&msg),
    }
    code
}
