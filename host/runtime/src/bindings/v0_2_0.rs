//! Host bindings of the `channel` world of `talon:plugin@0.2.0`. The
//! imports it shares with 0.1.0 (log, memory, settings) are served by the
//! 0.1.0 implementations through the conversions below, so there is one
//! implementation of each host service.

use crate::host::CallState;

wasmtime::component::bindgen!({
    path: "../../wit/talon-plugin-0.2.0",
    world: "channel",
    imports: { default: async },
    exports: { default: async },
});

use super::v0_1_0::talon::plugin as v1;
use talon::plugin::{channel_types, log, memory, settings};

impl channel_types::Host for CallState {}

impl log::Host for CallState {
    async fn log(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Trace => v1::log::Level::Trace,
            log::Level::Debug => v1::log::Level::Debug,
            log::Level::Info => v1::log::Level::Info,
            log::Level::Warn => v1::log::Level::Warn,
            log::Level::Error => v1::log::Level::Error,
        };
        v1::log::Host::log(self, level, message).await
    }
}

impl settings::Host for CallState {
    async fn get(&mut self, key: String) -> Option<String> {
        v1::settings::Host::get(self, key).await
    }
}

fn memory_error(e: v1::memory::MemoryError) -> memory::MemoryError {
    match e {
        v1::memory::MemoryError::Denied(m) => memory::MemoryError::Denied(m),
        v1::memory::MemoryError::TooLarge(m) => memory::MemoryError::TooLarge(m),
        v1::memory::MemoryError::Unavailable(m) => memory::MemoryError::Unavailable(m),
    }
}

impl memory::Host for CallState {
    async fn get(&mut self, key: String) -> Result<Option<String>, memory::MemoryError> {
        v1::memory::Host::get(self, key).await.map_err(memory_error)
    }

    async fn set(&mut self, key: String, value: String) -> Result<(), memory::MemoryError> {
        v1::memory::Host::set(self, key, value)
            .await
            .map_err(memory_error)
    }

    async fn delete(&mut self, key: String) -> Result<bool, memory::MemoryError> {
        v1::memory::Host::delete(self, key)
            .await
            .map_err(memory_error)
    }

    async fn list_keys(&mut self, prefix: String) -> Result<Vec<String>, memory::MemoryError> {
        v1::memory::Host::list_keys(self, prefix)
            .await
            .map_err(memory_error)
    }
}
