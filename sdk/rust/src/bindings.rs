//! Bindings generated from the WIT package `talon:plugin@0.1.0`.
//!
//! Authors do not use this module directly: the SDK wraps the imports in
//! [`log`](crate::log), [`memory`](crate::memory) and
//! [`settings`](crate::settings), and [`export_plugin!`](crate::export_plugin)
//! implements the exports.

wit_bindgen::generate!({
    path: "../../wit/talon-plugin-0.1.0",
    world: "tool",
    pub_export_macro: true,
    export_macro_name: "export_tool_world",
    default_bindings_module: "talon_sdk::__private::bindings",
    additional_derives: [PartialEq, Eq],
});
