//! Host bindings of the `hand` world of `talon:plugin@0.1.0`. Its log,
//! memory and settings imports are the ones generated for the 0.1.0 `tool`
//! world (one implementation serves both); only `agent` and
//! `hand-lifecycle` are generated here. `agent` is served by the 0.2.0
//! implementation (same functions, same types), and the exports are driven
//! through the adapter in `hand_adapter.rs`.

wasmtime::component::bindgen!({
    path: "../../wit/talon-plugin-0.1.0",
    world: "hand",
    imports: { default: async },
    exports: { default: async },
    with: {
        "talon:plugin/log": super::v0_1_0::talon::plugin::log,
        "talon:plugin/memory": super::v0_1_0::talon::plugin::memory,
        "talon:plugin/settings": super::v0_1_0::talon::plugin::settings,
    },
});

use super::v0_2_0_hand::talon::plugin::agent as v2;
use crate::host::CallState;

impl talon::plugin::agent::Host for CallState {
    async fn send(&mut self, message: String) -> Result<String, String> {
        v2::Host::send(self, message).await
    }

    async fn notify_owner(&mut self, message: String) {
        v2::Host::notify_owner(self, message).await
    }
}
