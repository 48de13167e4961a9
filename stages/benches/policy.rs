//! Model throughput on the CPU default: training and sampling tokens per second of the
//! ~1M-parameter transformer, with and without the key/value cache.
//!
//! Run: `cargo bench -p pav-stages --bench policy` (add `-- quick` for a short run, and any of
//! `train`, `train-burn`, `kv`, `recompute`, `recompute-burn` to run only those cases). Figures
//! and the comparison with PyTorch (benches/pytorch/transformer.py) are in
//! docs/performance.md.

#[path = "policy/cases.rs"]
mod cases;

use burn::prelude::Device;
use cases::Decode;

// As in the `pipeline` binary that runs the stages.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let quick = args.iter().any(|a| a == "quick");
    let cases: Vec<&String> = args.iter().filter(|a| *a != "quick").collect();
    let want = |name: &str| cases.is_empty() || cases.iter().any(|c| *c == name);
    let device = Device::flex();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("backend flex, {threads} threads, {} parameters", cases::num_params(&device));
    let steps = if quick { 3 } else { 20 };
    if want("train") {
        let train = cases::train_tokens_per_s(&device, steps, true);
        println!("train_tokens_per_s {train:.0}  (batch 32 x 128 tokens, Adam; host training pass)");
    }
    if want("train-burn") {
        let train = cases::train_tokens_per_s(&device, steps, false);
        println!("train_burn_tokens_per_s {train:.0}  (the same through burn's autodiff)");
    }
    let (batch, new) = (256, 64);
    let run = |name: &str, decode| want(name).then(|| cases::sample_tokens_per_s(&device, batch, new, decode));
    let cached = run("kv", Decode::Cached);
    if let Some(c) = cached {
        println!("sample_kv_tokens_per_s {c:.0}  (batch {batch}, {new} new tokens)");
    }
    let recompute = run("recompute", Decode::Recompute);
    if let Some(r) = recompute {
        println!("sample_recompute_tokens_per_s {r:.0}  (the whole prefix at every step, host forward pass)");
    }
    if let Some(r) = run("recompute-burn", Decode::RecomputeBurn) {
        println!("sample_recompute_burn_tokens_per_s {r:.0}  (the same through burn ops)");
    }
    if let (Some(c), Some(r)) = (cached, recompute) {
        println!("kv_speedup {:.1}x", c / r);
    }
}
