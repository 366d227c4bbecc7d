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
