//! Model throughput on the CPU default: training and sampling tokens per second of the
//! ~1M-parameter transformer, with and without the key/value cache.
//!
//! Run: `cargo bench -p pav-stages --bench policy` (add `-- quick` for a short run). Figures
//! and the comparison with PyTorch (benches/pytorch/transformer.py) are in
//! docs/performance.md.

#[path = "policy/cases.rs"]
mod cases;

use burn::prelude::Device;

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let device = Device::flex();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("backend flex, {threads} threads, {} parameters", cases::num_params(&device));
    let train = cases::train_tokens_per_s(&device, if quick { 3 } else { 20 });
    println!("train_tokens_per_s {train:.0}");
    let (batch, new) = (256, 64);
    let cached = cases::sample_tokens_per_s(&device, batch, new, true);
    println!("sample_kv_tokens_per_s {cached:.0}  (batch {batch}, {new} new tokens)");
    let recompute = cases::sample_tokens_per_s(&device, batch, new, false);
    println!("sample_recompute_tokens_per_s {recompute:.0}");
    println!("kv_speedup {:.1}x", cached / recompute);
}
