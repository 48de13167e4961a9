//! Rollout labelling throughput on the CPU default: labelled prefixes, rollouts and tokens per
//! second, and the rollouts saved by sharing identical prefixes, on the arithmetic setting of
//! pipelines/arith.yaml (2-operation chains mod 7, the small transformer policy, 2 seeds per
//! problem, n_mc = 8).
//!
//! Run: `cargo bench -p pav-stages --bench label` (add `-- quick` for fewer problems and a
//! shorter policy training). Figures are in docs/performance.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use pav_stages::models::checkpoint::Checkpoint;
use pav_stages::rollout_label::label;
use pav_stages::rollouts::Roller;
use pav_stages::sample::read_samples;
use pav_stages::table::read_problems;
use pav_stages::task::Task;
use pav_stages::{Stage, StageContext};
use serde_json::{Value, json};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn run(
    stage: &dyn Stage,
    dir: &Path,
    name: &str,
    params: Value,
    inputs: &[(&str, &Path)],
) -> BTreeMap<String, PathBuf> {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).expect("output directory");
    let outputs: BTreeMap<String, PathBuf> =
        stage.info().outputs.iter().map(|p| (p.name.to_string(), out.join(p.file))).collect();
    let inputs: BTreeMap<String, PathBuf> = inputs.iter().map(|(k, v)| (k.to_string(), v.to_path_buf())).collect();
    let params = params.as_object().cloned().unwrap_or_default();
    let mut log = Vec::new();
    let mut ctx = StageContext { params: &params, seed: 0, dir, inputs: &inputs, outputs: &outputs, log: &mut log };
    stage.run(&mut ctx).unwrap_or_else(|e| panic!("{name}: {e}"));
    outputs
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let tmp = tempfile::tempdir().expect("temporary directory");
    let d = tmp.path();
    let task = json!({"task": "arith", "steps": 2, "modulus": 7, "max_operand": 3, "ops": ["+", "-"]});
    let with = |extra: Value| {
        let mut m = task.as_object().cloned().unwrap_or_default();
        m.extend(extra.as_object().cloned().unwrap_or_default());
        Value::Object(m)
    };
    let train = if quick { 128 } else { 1024 };
    let probs = run(&pav_stages::problems::Problems, d, "problems", with(json!({"train": train, "test": 0})), &[]);
    let model = json!({"d_model": 64, "layers": 2, "heads": 4, "d_ff": 256, "context": 96,
                       "iterations": if quick { 100 } else { 400 }, "learning_rate": 0.003, "traces": 1});
    let pol =
        run(&pav_stages::train_policy::TrainPolicy, d, "policy", with(model), &[("problems", &probs["problems"])]);
    let seeds = run(
        &pav_stages::sample::Sample,
        d,
        "seeds",
        json!({"n": 2}),
        &[("problems", &probs["problems"]), ("policy", &pol["policy"])],
    );
    let device = burn::prelude::Device::flex();
    let ckpt = Checkpoint::load(&pol["policy"], &device).expect("policy");
    let task = Task::from_params(&pav_stages::params::Params::new(&ckpt.task)).expect("task");
    let opts = pav_stages::generate::SampleOpts { temperature: 1.0, max_steps: 64, max_tokens: 512, batch: 256 };
    let roller = Roller::Policy { ckpt, task, opts, device };
    let problems = read_problems(&probs["problems"]).expect("problems");
    let seeds = read_samples(&seeds["samples"]).expect("seeds");
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("backend flex, {threads} threads, {} problems x 2 seeds, n_mc 8", problems.len());
    let start = Instant::now();
    let (_, s) = label(&roller, &problems, &seeds, 8, None, 0, |_, _| {}).expect("labelling");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "labelled_prefixes_per_s {:.0}  ({} prefixes, {} terminal, in {secs:.1} s)",
        s.prefixes as f64 / secs,
        s.prefixes,
        s.terminal
    );
    println!(
        "rollouts_per_s {:.0}  ({} rollouts of {} distinct prefixes)",
        s.rollouts as f64 / secs,
        s.rollouts,
        s.unique_prefixes
    );
    println!("rollout_tokens_per_s {:.0}  ({} tokens)", s.tokens as f64 / secs, s.tokens);
    let without = s.rollouts + s.rollouts_saved;
    println!(
        "rollouts_saved_by_sharing {} of {without} ({:.1}%)",
        s.rollouts_saved,
        100.0 * s.rollouts_saved as f64 / without.max(1) as f64
    );
}
