//! {{description}}

use talon_sdk::{ToolError, Tools};

/// The arguments of `{{name}}`. Doc comments on the fields are what the model
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
    Tools::new().tool("{{name}}", "{{description}}", run)
}

talon_sdk::export_plugin!(tools);

#[cfg(test)]
mod tests {
    use super::*;

    // Tools run natively too: `cargo test`.
    #[test]
    fn greets() {
        let out = tools().invoke("{{name}}", r#"{"name": "world", "excitement": 2}"#);
        assert_eq!(out, Ok(r#"{"message":"Hello, world!!"}"#.into()));
    }

    #[test]
    fn refuses_an_empty_name() {
        assert!(matches!(
            tools().invoke("{{name}}", r#"{"name": " "}"#),
            Err(ToolError::InvalidArguments(_))
        ));
    }
}
