//! Host bindings of the `hand` world of `talon:plugin@0.2.0`. The imports
//! it shares with the `channel` world (log, memory, settings) are the ones
//! generated in `v0_2_0`, so one implementation serves both; only `agent`
//! (implemented in `hand.rs`) and `hand-lifecycle` are generated here.

wasmtime::component::bindgen!({
    path: "../../wit/talon-plugin-0.2.0",
    world: "hand",
    imports: { default: async },
    exports: { default: async },
    with: {
        "talon:plugin/log": super::v0_2_0::talon::plugin::log,
        "talon:plugin/memory": super::v0_2_0::talon::plugin::memory,
        "talon:plugin/settings": super::v0_2_0::talon::plugin::settings,
    },
});
