//! The tools the MCP conformance suite's server checks call by name.

use talon_sdk::{ToolError, Tools};

/// The checked tools take no arguments.
#[talon_sdk::args]
struct NoArgs {}

/// `test_simple_text`: the text the suite's description asks for.
fn simple_text(_: NoArgs) -> Result<String, ToolError> {
    Ok("This is a simple text response for testing.".to_string())
}

/// `test_error_handling`: a tool-level failure, which MCP carries as
/// `isError: true` with the reason as text.
fn error_handling(_: NoArgs) -> Result<String, ToolError> {
    Err(ToolError::failed(
        "This tool intentionally returns an error for testing",
    ))
}

fn tools() -> Tools {
    Tools::new()
        .tool(
            "test_simple_text",
            "Returns a simple text response.",
            simple_text,
        )
        .tool(
            "test_error_handling",
            "Always fails, to test error results.",
            error_handling,
        )
}

talon_sdk::export_skill!(
    tools,
    "Fixture tools for the MCP conformance suite; not for agents."
);
