//! The backend and device, picked here and nowhere else.
//!
//! The CPU default is burn's `flex` backend (pure Rust, SIMD kernels, rayon threads): the
//! fastest CPU backend that builds offline from crates.io alone (docs/adr/0005-burn-backend.md).
//! The `wgpu` and `cuda` cargo features add GPU devices, chosen by a stage's `device:` param.
//!
//! Weight initialisation draws from the backend's generator, which burn may keep per process
//! rather than per device; [`seeded`] holds a process-wide lock around seeding and drawing, so
//! two stages initialising models on worker threads at once still get their own seeds' weights.

use std::sync::Mutex;

use burn::module::{ModuleMapper, Param};
use burn::prelude::*;

static INIT: Mutex<()> = Mutex::new(());

/// The device named by a stage's `device:` param: `cpu` (default), `wgpu`, `cuda`.
pub fn device(name: &str) -> Result<Device, String> {
    match name {
        "cpu" => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(0)),
        #[cfg(not(feature = "wgpu"))]
        "wgpu" => Err(not_compiled(name)),
        #[cfg(not(feature = "cuda"))]
        "cuda" => Err(not_compiled(name)),
        other => Err(format!("unknown device `{other}`; expected `cpu`, `wgpu` or `cuda`")),
    }
}

fn not_compiled(name: &str) -> String {
    format!(
        "device `{name}` is not compiled in; rebuild with `cargo build --release --features {name}` \
         (see docs/adr/0005-burn-backend.md), or use `device: cpu`"
    )
}

/// Whether results on this device are bit-reproducible across machines of the same kind
/// (the CPU is; GPU kernels may reorder reductions).
pub fn compute_class(name: &str) -> &'static str {
    if name == "cpu" { "cpu" } else { "gpu" }
}

/// Build a module with `init` right after seeding the device, with no other seeded
/// initialisation in between. burn initialises parameters lazily (on first use), so every
/// parameter is materialised here, under the lock; otherwise the weights would be drawn later
/// from whatever state the shared generator had reached.
pub fn seeded<M: Module>(device: &Device, seed: u64, init: impl FnOnce() -> M) -> M {
    let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
    device.seed(seed);
    init().map(&mut Materialize)
}

/// Touches every parameter, which forces its lazy initialiser to run.
struct Materialize;

impl ModuleMapper for Materialize {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let _ = param.val();
        param
    }

    fn map_int<const D: usize>(&mut self, param: Param<Tensor<D, Int>>) -> Param<Tensor<D, Int>> {
        let _ = param.val();
        param
    }

    fn map_bool<const D: usize>(&mut self, param: Param<Tensor<D, Bool>>) -> Param<Tensor<D, Bool>> {
        let _ = param.val();
        param
    }
}
