//! `talon __compile`: the daemon's compiler process (hidden). The daemon
//! runs its own executable with it to compile a component it has verified,
//! so that the compiler's memory is returned when the process ends (see
//! `talon_runtime::compiler`). It reads the component from stdin and only
//! compiles: nothing is instantiated or run.

use std::path::PathBuf;

use clap::Args;

/// Arguments of `talon __compile`; the daemon passes its engine's settings.
#[derive(Debug, Args)]
pub struct CompileArgs {
    /// Instance slots of the daemon's engine (`[plugins] max_instances`).
    #[arg(long)]
    max_instances: u32,
    /// Linear memory per instance of the daemon's engine, in bytes.
    #[arg(long)]
    memory_bytes: usize,
    /// Compiles with the baseline compiler (Winch) instead of Cranelift.
    #[arg(long)]
    baseline: bool,
    /// Runs at the lowest CPU priority (the optimized build that replaces
    /// a baseline one, while calls run).
    #[arg(long)]
    background: bool,
    /// Where to write the compiled component.
    output: PathBuf,
}

/// Compiles the component on stdin into `output`.
pub fn run(args: CompileArgs) -> anyhow::Result<()> {
    talon_runtime::compiler::compile_child(
        args.max_instances,
        args.memory_bytes,
        args.baseline,
        args.background,
        &args.output,
    )?;
    Ok(())
}
