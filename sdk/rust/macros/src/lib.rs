//! Attribute macros re-exported by `talon-sdk` as `#[talon_sdk::args]` and
//! `#[talon_sdk::output]`.
//!
//! They only add derives pointing serde and schemars at the copies that
//! `talon-sdk` re-exports, so a plugin needs no dependency besides the SDK.
//! No parsing is done (no `syn`): the attributes are put in front of the
//! item unchanged.

use proc_macro::TokenStream;

/// Derives `Deserialize` and `JsonSchema` for a tool's arguments type.
#[proc_macro_attribute]
pub fn args(attr: TokenStream, item: TokenStream) -> TokenStream {
    with_prefix(
        attr,
        item,
        "#[derive(::talon_sdk::Deserialize, ::talon_sdk::JsonSchema)] \
         #[serde(crate = \"::talon_sdk::serde\")] \
         #[schemars(crate = \"::talon_sdk::schemars\")]",
    )
}

/// Derives `Serialize` for a tool's result type.
#[proc_macro_attribute]
pub fn output(attr: TokenStream, item: TokenStream) -> TokenStream {
    with_prefix(
        attr,
        item,
        "#[derive(::talon_sdk::Serialize)] #[serde(crate = \"::talon_sdk::serde\")]",
    )
}

fn with_prefix(attr: TokenStream, item: TokenStream, prefix: &str) -> TokenStream {
    if !attr.is_empty() {
        return compile_error("this attribute takes no arguments");
    }
    match prefix.parse::<TokenStream>() {
        Ok(mut out) => {
            out.extend(item);
            out
        }
        Err(e) => compile_error(&format!("talon-sdk-macros: {e}")),
    }
}

fn compile_error(message: &str) -> TokenStream {
    format!("::core::compile_error!({message:?});")
        .parse()
        .unwrap_or_default()
}

/// Generates the bindings of the `channel` world of `talon:plugin@0.2.0` in
/// the calling module (use it through `talon_sdk::channel_world!`). The
/// WIT is carried inside this macro, so a plugin outside Talon's repository
/// needs no copy of it; the bindings are generated in the plugin crate
/// itself because a component's world is the union of the worlds its code
/// embeds, and a channel must not also claim the `tool` world.
#[proc_macro]
pub fn channel_world(input: TokenStream) -> TokenStream {
    world_0_2_0("channel", input)
}

/// Generates the bindings of the `hand` world of `talon:plugin@0.2.0` in the
/// calling module (use it through `talon_sdk::hand_world!`), for the same
/// reasons as [`channel_world!`](macro@channel_world).
#[proc_macro]
pub fn hand_world(input: TokenStream) -> TokenStream {
    world_0_2_0("hand", input)
}

/// The bindings of one world of `talon:plugin@0.2.0`, generated in place.
fn world_0_2_0(world: &str, input: TokenStream) -> TokenStream {
    if !input.is_empty() {
        return compile_error(&format!("{world}_world!() takes no arguments"));
    }
    const WIT: &str = include_str!("../../../../wit/talon-plugin-0.2.0/plugin.wit");
    format!(
        "::talon_sdk::__private::wit_bindgen::generate!({{
            inline: {WIT:?},
            world: {world:?},
            pub_export_macro: true,
            runtime_path: \"::talon_sdk::__private::wit_bindgen::rt\",
        }});"
    )
    .parse()
    .unwrap_or_default()
}
