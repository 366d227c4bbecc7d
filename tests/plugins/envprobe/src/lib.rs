//! `env`: the value of one environment variable as the guest sees it, or
//! null when the host did not pass it.

use talon_sdk::{ToolError, Tools};

/// Arguments of `env`.
#[talon_sdk::args]
struct EnvArgs {
    /// The variable's name.
    name: String,
}

/// What `env` returns.
#[talon_sdk::output]
struct Seen {
    /// The value, when the variable is visible.
    value: Option<String>,
    /// How many variables the guest sees in all.
    visible: u32,
}

fn env(args: EnvArgs) -> Result<Seen, ToolError> {
    Ok(Seen {
        value: std::env::var(&args.name).ok(),
        visible: std::env::vars().count() as u32,
    })
}

fn tools() -> Tools {
    Tools::new().tool("env", "Reads one environment variable.", env)
}

talon_sdk::export_plugin!(tools);
