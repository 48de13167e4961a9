//! The `pipeline` binary. mimalloc: planning 10^5 instances is allocation-bound, and glibc's
//! allocator made a no-op rerun of 10^4 stages a third slower (docs/performance.md).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(pav_pipeline::cli::main());
}
