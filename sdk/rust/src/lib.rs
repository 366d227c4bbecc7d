//! # talon-sdk: write Talon plugins in Rust
//!
//! A Talon plugin is a WebAssembly component (target `wasm32-wasip2`) that
//! offers tools to agents. With this crate a tool is a plain Rust function
//! whose argument is a struct marked [`#[talon_sdk::args]`](macro@args) (which
//! derives [`Deserialize`] and [`JsonSchema`]): the SDK turns the struct into
//! the JSON Schema the model sees, parses the JSON arguments the model sends
//! (malformed ones become [`ToolError::InvalidArguments`] with serde's message,
//! before your code runs), and returns your result, anything [`Serialize`],
//! as JSON.
//!
//! ```no_run
//! use talon_sdk::{ToolError, Tools};
//!
//! /// Arguments of `greet`.
//! #[talon_sdk::args]
//! struct GreetArgs {
//!     /// Who to greet.
//!     name: String,
//! }
//!
//! fn greet(args: GreetArgs) -> Result<String, ToolError> {
//!     talon_sdk::log::info(format!("greeting {}", args.name));
//!     Ok(format!("Hello, {}!", args.name))
//! }
//!
//! fn tools() -> Tools {
//!     Tools::new().tool("greet", "Greets someone by name.", greet)
//! }
//!
//! talon_sdk::export_plugin!(tools);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`; the crate
//! must be a `cdylib`. The template in `sdk/rust/template/` (written by
//! `talon plugin scaffold`) has everything set up.
//!
//! ## What a plugin can use
//!
//! - [`log`], [`memory`] and [`settings`]: Talon's host services.
//! - The standard library: `std::fs` sees the calling agent's workspace as
//!   `/` (and relative paths resolve there), clocks and random work. Files
//!   are only reachable if the operator granted `filesystem` at install;
//!   [`workspace`] turns the paths a model writes into safe ones.
//! - Outgoing HTTP through `wasi:http` ([`http`]), to the hosts the operator
//!   granted.
//!
//! Every call runs in a fresh instance with metered fuel, memory and time:
//! keep nothing in statics between calls (use [`memory`]). A panic aborts
//! the call and the host reports it as a failure; return a [`ToolError`]
//! instead.
//!
//! ## Skills
//!
//! A skill is a tool plugin that also gives agents instructions (prompt
//! text); export it with [`export_skill!`] and set `kind = "skill"` in its
//! manifest.
//!
//! ## Channels and hands
//!
//! Long-lived plugins of `talon:plugin@0.2.0` generate their own bindings:
//! [`channel_world!`] for a chat platform adapter (see [`channel`]),
//! [`hand_world!`] for an autonomous capability that drives an agent on a
//! schedule (see [`hand`]).

pub mod channel;
mod error;
pub mod hand;
pub mod http;
pub mod log;
pub mod memory;
pub mod net;
mod schema;
pub mod settings;
mod tools;
pub mod workspace;

#[doc(hidden)]
pub mod bindings;

pub use error::ToolError;

/// Marks a tool's arguments type: derives [`Deserialize`] and
/// [`JsonSchema`] through the SDK's re-exports, so the plugin needs no serde
/// or schemars dependency of its own.
///
/// Doc comments on the fields become property descriptions in the schema,
/// and serde attributes work as usual (`#[serde(default)]`,
/// `#[serde(rename_all = "...")]` placed *below* this attribute). An
/// `Option` field or one with `#[serde(default)]` is optional.
///
/// ```
/// /// Arguments of `search`.
/// #[talon_sdk::args]
/// struct SearchArgs {
///     /// What to look for.
///     query: String,
///     /// How many results to return (default 10).
///     #[serde(default)]
///     limit: Option<u32>,
/// }
/// ```
///
/// Without the attribute, write the derives and point them at the
/// re-exports: `#[derive(talon_sdk::Deserialize, talon_sdk::JsonSchema)]`,
/// `#[serde(crate = "talon_sdk::serde")]`,
/// `#[schemars(crate = "talon_sdk::schemars")]`.
pub use talon_sdk_macros::args;

pub use schema::parameters_schema;
/// Generates the bindings of the `channel` world of `talon:plugin@0.2.0`
/// in the calling module; see [`channel`].
pub use talon_sdk_macros::channel_world;
/// Generates the bindings of the `hand` world of `talon:plugin@0.2.0` in
/// the calling module; see [`hand`].
pub use talon_sdk_macros::hand_world;
/// Marks a tool's result type: derives [`Serialize`] through the SDK's
/// re-export. (Any `Serialize` type can be returned; this saves the
/// `#[serde(crate = "talon_sdk::serde")]` line.)
///
/// ```
/// #[talon_sdk::output]
/// struct Forecast {
///     city: String,
///     celsius: f64,
/// }
/// ```
pub use talon_sdk_macros::output;
pub use tools::{ToolInfo, Tools};

/// Re-exported so a plugin needs no other dependency for its arguments.
pub use schemars::{self, JsonSchema};
/// Re-exported so a plugin needs no other dependency for its arguments.
pub use serde::{self, Deserialize, Serialize};
/// Re-exported for tools that build or inspect JSON values.
pub use serde_json::{self, Value, json};

/// Version of the WIT package this SDK implements; goes in the manifest as
/// `wit = "..."`.
pub const WIT_VERSION: &str = "0.1.0";

/// Exports a tool plugin (the `tool` world of `talon:plugin@0.1.0`).
///
/// The argument is the path of a function `fn() -> Tools` listing the
/// plugin's tools. Invoke the macro once, at the root of the plugin crate.
///
/// ```no_run
/// # use talon_sdk::{ToolError, Tools};
/// fn ping(_: ()) -> Result<&'static str, ToolError> {
///     Ok("pong")
/// }
///
/// fn tools() -> Tools {
///     Tools::new().tool("ping", "Answers pong.", ping)
/// }
///
/// talon_sdk::export_plugin!(tools);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($tools:path) => {
        $crate::__export_tools!($tools);
        $crate::__private::bindings::export_tool_world!(
            __TalonPlugin with_types_in $crate::__private::bindings
        );
    };
}

/// Exports a skill plugin (the `skill` world): its tools, and instructions
/// added to the system prompt of every agent that has the skill.
///
/// The first argument is the `fn() -> Tools` as for [`export_plugin!`]; the
/// second is any expression giving the instructions as `&str` or `String`,
/// for example `include_str!("../INSTRUCTIONS.md")`. It is evaluated on each
/// call.
///
/// ```no_run
/// # use talon_sdk::{ToolError, Tools};
/// # fn ping(_: ()) -> Result<&'static str, ToolError> { Ok("pong") }
/// fn tools() -> Tools {
///     Tools::new().tool("ping", "Answers pong.", ping)
/// }
///
/// talon_sdk::export_skill!(tools, "Call `ping` whenever the user says hello.");
/// # fn main() {}
/// ```
///
/// The plugin's crate must name this dependency `talon-sdk` (no `package`
/// rename), because the generated glue refers to it by that name.
#[macro_export]
macro_rules! export_skill {
    ($tools:path, $instructions:expr $(,)?) => {
        $crate::export_plugin!($tools);

        // The `instructions` export is generated in the plugin crate itself:
        // a component's world is the union of the worlds its code embeds, so
        // the SDK must not embed this one in plugins that are plain tools.
        // The interface text is a copy of `instructions` in
        // wit/talon-plugin-0.1.0 (the SDK's tests check that they match).
        mod __talon_skill {
            $crate::__private::wit_bindgen::generate!({
                inline: "
                    package talon:plugin@0.1.0;
                    interface instructions {
                        instructions: func() -> string;
                    }
                    world skill-instructions {
                        export instructions;
                    }
                ",
                world: "skill-instructions",
                runtime_path: "talon_sdk::__private::wit_bindgen::rt",
            });

            pub(super) struct Instructions;

            impl exports::talon::plugin::instructions::Guest for Instructions {
                fn instructions() -> String {
                    super::__talon_instructions().into()
                }
            }

            export!(Instructions);
        }

        fn __talon_instructions() -> impl ::core::convert::Into<String> {
            $instructions
        }
    };
}

/// The `tools` export shared by [`export_plugin!`] and [`export_skill!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __export_tools {
    ($tools:path) => {
        #[doc(hidden)]
        struct __TalonPlugin;

        impl __TalonPlugin {
            fn registry() -> &'static $crate::Tools {
                static TOOLS: ::std::sync::OnceLock<$crate::Tools> = ::std::sync::OnceLock::new();
                TOOLS.get_or_init($tools)
            }
        }

        impl $crate::__private::ToolsGuest for __TalonPlugin {
            fn describe() -> ::std::vec::Vec<$crate::__private::ToolDescriptor> {
                $crate::__private::describe(Self::registry())
            }

            fn invoke(
                name: ::std::string::String,
                arguments: ::std::string::String,
            ) -> ::core::result::Result<::std::string::String, $crate::ToolError> {
                Self::registry().invoke(&name, &arguments)
            }
        }
    };
}

/// Glue used by the macros; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings;
    pub use crate::bindings::exports::talon::plugin::tools::Guest as ToolsGuest;
    pub use crate::bindings::talon::plugin::types::ToolDescriptor;
    pub use wit_bindgen;

    /// Converts the registry's descriptions into the WIT record.
    pub fn describe(tools: &crate::Tools) -> Vec<ToolDescriptor> {
        tools
            .describe()
            .into_iter()
            .map(|info| ToolDescriptor {
                name: info.name,
                description: info.description,
                parameters_schema: info.parameters_schema,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    /// The skill macro carries a copy of the `instructions` interface; it
    /// must stay identical to the released WIT.
    #[test]
    fn inline_instructions_interface_matches_the_wit_package() {
        let wit = include_str!("../../../wit/talon-plugin-0.1.0/plugin.wit");
        let normalized: String = wit
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("///") && !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(wit.contains("package talon:plugin@0.1.0;"));
        assert!(
            normalized.contains("interface instructions {\ninstructions: func() -> string;\n}"),
            "the instructions interface changed; update export_skill! in sdk/rust/src/lib.rs"
        );
    }
}
