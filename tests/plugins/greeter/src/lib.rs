//! A small skill for the tests: a `greet` tool that remembers whom it
//! greeted (in the calling agent's memory), and instructions for agents.

use talon_sdk::{ToolError, Tools};

/// Arguments of `greet`.
#[talon_sdk::args]
struct GreetArgs {
    /// Whom to greet.
    name: String,
}

/// What `greet` returns.
#[talon_sdk::output]
struct Greeting {
    greeting: String,
    /// How many times this name was greeted before, when an agent is calling.
    seen_before: Option<u32>,
}

fn greet(args: GreetArgs) -> Result<Greeting, ToolError> {
    let key = format!("greeted/{}", args.name);
    // Memory exists only when an agent is calling; a direct call has none.
    let seen_before = match talon_sdk::memory::get(&key) {
        Ok(previous) => {
            let count = previous.and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
            talon_sdk::memory::set(&key, &(count + 1).to_string())
                .map_err(|e| ToolError::failed(format!("{e:?}")))?;
            Some(count)
        }
        Err(_) => None,
    };
    Ok(Greeting {
        greeting: format!("Hello, {}!", args.name),
        seen_before,
    })
}

fn tools() -> Tools {
    Tools::new().tool("greet", "Greets someone by name.", greet)
}

talon_sdk::export_skill!(
    tools,
    "When someone introduces themselves, call `greet` with their name."
);
