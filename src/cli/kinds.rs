use crate::engine::exec::KindRegistry;
use crate::ops::{Context, OpError};

/// List the stage kinds: `command` and the built-in kinds with their params and ports
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn exec(ctx: &Context, _a: Args) -> Result<(), OpError> {
    let p = &ctx.printer;
    p.out("command  run a shell command (`cmd:`) with declared inputs and outputs");
    for k in ctx.kinds.kinds() {
        p.out(&format!("{}  (version {})  {}", k.name, k.version, k.doc));
        p.out(&format!("    params: {}", k.params.join(", ")));
        let ins: Vec<String> = k
            .inputs
            .iter()
            .map(|i| if k.optional_inputs.contains(i) { format!("{i} (optional)") } else { i.clone() })
            .collect();
        p.out(&format!("    inputs: {}", ins.join(", ")));
        let outs: Vec<String> = k.outputs.iter().map(|(p, f)| format!("{p} ({f})")).collect();
        p.out(&format!("    outputs: {}", outs.join(", ")));
    }
    Ok(())
}
