//! Engine benchmarks: generated pipelines of trivial `command` stages, driven through the
//! release `pipeline` binary exactly as a user runs it.
//!
//! ```text
//! cargo bench --bench engine                 # every suite (the 10k cold runs take minutes)
//! cargo bench --bench engine -- 1k plan      # only suites whose name contains `1k` or `plan`
//! cargo bench --bench engine -- --reps 9     # repetitions of the fast cases (default 5)
//! cargo bench --bench engine -- --keep       # keep the generated pipelines and caches
//! ```
//!
//! Suites: `chain/1k`, `sweep/1k`, `chain/10k`, `sweep/10k` (plan, first run with `-j 2`,
//! no-op rerun, plan with everything cached, rerun after one edit) and `plan/100k` (plans of
//! 100,000 sweep points). Each measurement is one child process; wall time runs from spawn to
//! exit and peak memory is the child's `ru_maxrss` (see `engine/measure.rs`). The table is
//! printed as Markdown for docs/performance.md. Targets from issue 2: a no-op rerun of 10,000
//! stages in at most 300 ms; a plan of 100,000 sweep points in at most 2 s and 500 MB. The
//! process exits 1 when a target is missed.

#[path = "engine/cases.rs"]
mod cases;
#[path = "engine/generate.rs"]
mod generate;
#[path = "engine/measure.rs"]
mod measure;

use std::path::PathBuf;

use measure::{Pipeline, Sample};

/// A ceiling a case must stay under.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub ms: f64,
    pub mb: Option<f64>,
}

/// One line of the table.
struct Row {
    case: String,
    n: usize,
    samples: Vec<Sample>,
    target: Option<Target>,
}

impl Row {
    fn median_ms(&self) -> f64 {
        let mut ms: Vec<f64> = self.samples.iter().map(|s| s.ms).collect();
        ms.sort_by(f64::total_cmp);
        let mid = ms.len() / 2;
        if ms.len() % 2 == 1 { ms[mid] } else { (ms[mid - 1] + ms[mid]) / 2.0 }
    }
    fn min_ms(&self) -> f64 {
        self.samples.iter().map(|s| s.ms).fold(f64::INFINITY, f64::min)
    }
    fn peak_mb(&self) -> f64 {
        self.samples.iter().map(|s| s.peak_kb).max().unwrap_or(0) as f64 / 1024.0
    }
    /// Judged on the median time and the largest peak.
    fn passes(&self) -> Option<bool> {
        let t = self.target?;
        Some(self.median_ms() <= t.ms && t.mb.is_none_or(|mb| self.peak_mb() <= mb))
    }
}

/// What every suite works with.
pub struct Bench {
    pipeline: Pipeline,
    root: PathBuf,
    /// Repetitions of the fast cases, and of the 100k plans.
    reps: usize,
    big_reps: usize,
    rows: Vec<Row>,
}

impl Bench {
    /// Run `one` `reps` times (it gets the repetition index) and record the samples as a row.
    fn measure(
        &mut self,
        case: &str,
        n: usize,
        reps: usize,
        target: Option<Target>,
        mut one: impl FnMut(&Pipeline, usize) -> Result<Sample, String>,
    ) -> Result<(), String> {
        eprint!("{case}, N = {n}:");
        let mut samples = Vec::with_capacity(reps);
        for rep in 0..reps {
            let s = one(&self.pipeline, rep).map_err(|e| format!("{case}, N = {n}: {e}"))?;
            eprint!(" {:.0} ms", s.ms);
            samples.push(s);
        }
        eprintln!();
        self.rows.push(Row { case: case.to_string(), n, samples, target });
        Ok(())
    }
}

type Suite = (&'static str, fn(&mut Bench) -> Result<(), String>);

const SUITES: [Suite; 5] = [
    ("chain/1k", |b| cases::chain(b, 1_000)),
    ("sweep/1k", |b| cases::sweep(b, 1_000)),
    ("chain/10k", |b| cases::chain(b, 10_000)),
    ("sweep/10k", |b| cases::sweep(b, 10_000)),
    ("plan/100k", |b| cases::plan_points(b, 100_000)),
];

fn main() {
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}

/// Returns whether every target was met.
fn run() -> Result<bool, String> {
    let mut filters: Vec<String> = Vec::new();
    let (mut reps, mut keep) = (5, false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {} // passed by `cargo bench`
            "--keep" => keep = true,
            "--reps" => {
                reps = args.next().and_then(|v| v.parse().ok()).filter(|&r| r > 0).ok_or("--reps needs a number")?
            }
            s if s.starts_with('-') => return Err(format!("unknown option `{s}` (known: --reps N, --keep)")),
            s => filters.push(s.to_string()),
        }
    }
    let selected: Vec<&Suite> = SUITES
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    if selected.is_empty() {
        let names: Vec<&str> = SUITES.iter().map(|(n, _)| *n).collect();
        return Err(format!("no suite matches {filters:?}; suites: {}", names.join(", ")));
    }
    let tmp = tempfile::Builder::new().prefix("pav-bench-").tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let pipeline = Pipeline::locate(tmp.path())?;
    eprintln!("{}", machine());
    eprintln!("binary: {}\nscratch: {}\n", pipeline.bin.display(), tmp.path().display());
    let mut bench = Bench { pipeline, root: tmp.path().to_path_buf(), reps, big_reps: reps.min(3), rows: Vec::new() };
    let mut result = Ok(());
    for (name, suite) in selected {
        eprintln!("== {name}");
        result = suite(&mut bench);
        if result.is_err() {
            break;
        }
    }
    println!("{}", table(&bench.rows));
    if keep {
        eprintln!("kept {}", tmp.keep().display());
    }
    result?;
    let missed: Vec<String> =
        bench.rows.iter().filter(|r| r.passes() == Some(false)).map(|r| format!("{} (N = {})", r.case, r.n)).collect();
    if !missed.is_empty() {
        eprintln!("targets missed: {}", missed.join("; "));
    }
    Ok(missed.is_empty())
}

fn table(rows: &[Row]) -> String {
    let mut t = String::from(
        "| case | N | median ms | min ms | peak MB | runs | target | result |\n|---|--:|--:|--:|--:|--:|---|---|\n",
    );
    for r in rows {
        let target = match r.target {
            None => "".to_string(),
            Some(Target { ms, mb: None }) => format!("≤ {ms:.0} ms"),
            Some(Target { ms, mb: Some(mb) }) => format!("≤ {ms:.0} ms, ≤ {mb:.0} MB"),
        };
        let result = match r.passes() {
            None => "",
            Some(true) => "PASS",
            Some(false) => "FAIL",
        };
        t.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {} | {target} | {result} |\n",
            r.case,
            r.n,
            r.median_ms(),
            r.min_ms(),
            r.peak_mb(),
            r.samples.len()
        ));
    }
    t
}

/// Cores, CPU model, memory and date, for the report.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let field = |text: &str, key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "machine: {cores} cores, {}, {} memory, Linux {}; {date}",
        field(&read("/proc/cpuinfo"), "model name"),
        field(&read("/proc/meminfo"), "MemTotal"),
        read("/proc/sys/kernel/osrelease").trim()
    )
}
