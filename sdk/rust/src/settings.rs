//! Settings the operator configured for this plugin, such as an endpoint URL
//! or a default language. They are read-only for the plugin.

use std::str::FromStr;

use crate::error::ToolError;

/// The setting `key`, or `None` if the operator did not set it.
///
/// Outside a component (native unit tests) no setting is set.
pub fn get(key: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::talon::plugin::settings::get(key);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = key;
        None
    }
}

/// The setting `key`, or `default` if it is not set.
pub fn get_or(key: &str, default: &str) -> String {
    get(key).unwrap_or_else(|| default.to_string())
}

/// The setting `key` parsed as `T`, or `default` if it is not set.
///
/// A value that does not parse is an error that names the key, so the
/// operator can fix it, rather than a silent fallback to the default.
pub fn parse_or<T>(key: &str, default: T) -> Result<T, ToolError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match get(key) {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|e| ToolError::Failed(format!("setting `{key}` = {text:?} is invalid: {e}"))),
    }
}

/// The setting `key`; a missing one is an error telling the operator to set it.
pub fn require(key: &str) -> Result<String, ToolError> {
    get(key).ok_or_else(|| {
        ToolError::Failed(format!(
            "setting `{key}` is not set; the operator must configure it for this plugin"
        ))
    })
}
