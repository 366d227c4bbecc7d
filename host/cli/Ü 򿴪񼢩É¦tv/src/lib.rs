//! The database plugin.

use talon_sdk::{ToolError, Tools};

/// The arguments of `database`. Doc comments on the fields are what the model
/// reads about each argument: write them for it.
#[talon_sdk::args]
struct Args {
    /// Who or what to greet.
    name: String,
    /// How many exclamation marks to add (default 1).
    #[serde(default)]
    excitement: Option<u8>,
}

/// The result, returned to the agent as JSON.
#[talon_sdk::output]
struct Greeting {
    message: String,
}

/// The tool itself: typed arguments in, a result or a `ToolError` out.
fn run(args: Args) -> Result<Greeting, ToolError> {
    if args.name.trim().is_empty() {
        return Err(ToolError::invalid_arguments("name must not be empty"));
    }
    let marks = "!".repeat(usize::from(args.excitement.unwrap_or(1)));
    talon_sdk::log::info(format!("greeting {}", args.name));
    Ok(Greeting {
        message: format!("Hello, {}{marks}", args.name),
    })
}

/// Every tool of the plugin: name, description for the model, function.
fn tools() -> Tools {
    Tools::new().tool("database", "The database plugin.", run)
}

talon_sdk::export_skill!(tools, "Describe here when an agent with this skill should use its tools.");
