//! Key-value memory that outlives a call.
//!
//! Each call runs in a fresh instance, so anything a plugin wants to remember
//! goes here. The host scopes keys to the calling agent and this plugin: two
//! agents never see each other's values, and neither do two plugins. Keys the
//! operator did not grant (the manifest's `permissions.memory` patterns) are
//! refused with [`MemoryError::Denied`].

use serde::Serialize;
use serde::de::DeserializeOwned;

#[cfg(target_arch = "wasm32")]
use crate::bindings::talon::plugin::memory as host;
use crate::error::ToolError;

pub use crate::bindings::talon::plugin::memory::MemoryError;

/// Outside a component (native unit tests) there is no host: every call
/// answers [`MemoryError::Unavailable`].
#[cfg(not(target_arch = "wasm32"))]
mod host {
    use super::MemoryError;

    fn unavailable<T>() -> Result<T, MemoryError> {
        Err(MemoryError::Unavailable(
            "no memory outside a component".into(),
        ))
    }

    pub fn get(_: &str) -> Result<Option<String>, MemoryError> {
        unavailable()
    }

    pub fn set(_: &str, _: &str) -> Result<(), MemoryError> {
        unavailable()
    }

    pub fn delete(_: &str) -> Result<bool, MemoryError> {
        unavailable()
    }

    pub fn list_keys(_: &str) -> Result<Vec<String>, MemoryError> {
        unavailable()
    }
}

/// Reads the value stored under `key`, or `None` if there is none.
pub fn get(key: &str) -> Result<Option<String>, MemoryError> {
    host::get(key)
}

/// Stores `value` under `key`, replacing what was there.
pub fn set(key: &str, value: &str) -> Result<(), MemoryError> {
    host::set(key, value)
}

/// Removes `key`; returns whether it existed.
pub fn delete(key: &str) -> Result<bool, MemoryError> {
    host::delete(key)
}

/// Lists the keys that start with `prefix` (`""` for all of this plugin's
/// keys for the calling agent).
pub fn list_keys(prefix: &str) -> Result<Vec<String>, MemoryError> {
    host::list_keys(prefix)
}

/// Reads a JSON value stored with [`set_json`].
///
/// A stored value that no longer parses as `T` (for example after the plugin
/// changed its format) is reported as [`ToolError::Failed`].
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, ToolError> {
    match get(key)? {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            ToolError::Failed(format!("memory key `{key}` holds unexpected data: {e}"))
        }),
    }
}

/// Stores `value` as JSON under `key`.
pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), ToolError> {
    let text = serde_json::to_string(value)
        .map_err(|e| ToolError::Failed(format!("cannot encode memory key `{key}`: {e}")))?;
    Ok(set(key, &text)?)
}
