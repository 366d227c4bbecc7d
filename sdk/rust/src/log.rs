//! Structured logs, attributed to the plugin by the host.
//!
//! Messages go to the daemon's log with the plugin's name and the calling
//! agent attached, so there is no need to repeat them. Standard output and
//! standard error are not logs: the host may discard them.

pub use crate::bindings::talon::plugin::log::Level;

/// Logs `message` at `level`.
///
/// Outside a component (native unit tests) the message goes to standard
/// error, so tools that log can be tested with `cargo test`.
pub fn log(level: Level, message: impl AsRef<str>) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::talon::plugin::log::log(level, message.as_ref());
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {}", message.as_ref());
}

/// Logs very detailed diagnostics, usually filtered out.
pub fn trace(message: impl AsRef<str>) {
    log(Level::Trace, message);
}

/// Logs diagnostics for plugin authors.
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, message);
}

/// Logs a normal event worth keeping.
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message);
}

/// Logs something unexpected that the tool recovered from.
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message);
}

/// Logs a failure.
pub fn error(message: impl AsRef<str>) {
    log(Level::Error, message);
}
