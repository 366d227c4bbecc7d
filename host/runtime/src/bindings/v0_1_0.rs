//! Host bindings of the `tool` world of `talon:plugin@0.1.0`, generated from
//! the WIT in `wit/`. Skills implement the same world plus `instructions`,
//! which the runtime reads through the dynamic API (see `plugin.rs`).

wasmtime::component::bindgen!({
    path: "../../wit/talon-plugin-0.1.0",
    world: "tool",
    imports: { default: async },
    exports: { default: async },
});
