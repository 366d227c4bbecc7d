//! The kernel's error type.

use crate::config::ConfigError;
use crate::store::StoreError;

/// What can go wrong inside the kernel, classified so the API can pick a status code.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The input was malformed or violated a rule; the message says what.
    #[error("{0}")]
    Invalid(String),
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this; the message says what would allow it.
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with the current state (a duplicate, for example).
    #[error("{0}")]
    Conflict(String),
    /// The configuration could not be read, parsed or written.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A model provider could not answer.
    #[error(transparent)]
    Llm(#[from] talon_llm::LlmError),
    /// A spending limit was reached; the message names it.
    #[error("{0}")]
    BudgetExceeded(String),
    /// What was sent would take something past a size quota; the message
    /// names the quota and its config key.
    #[error("{0}")]
    TooLarge(String),
    /// A remote A2A agent could not be reached, timed out, or answered
    /// with something that is not A2A.
    #[error(transparent)]
    Peer(#[from] talon_a2a::ClientError),
}

/// A recovery step at start that must write: skipped with a warning when the
/// disk is full (the daemon then comes up read-only) and done at the next
/// start instead.
pub(crate) fn unless_disk_full<T: Default>(
    result: Result<T, KernelError>,
    step: &str,
) -> Result<T, KernelError> {
    match result {
        Err(KernelError::Store(StoreError::DiskFull(reason))) => {
            tracing::warn!(%reason, step, "the disk is full: left for the next start");
            Ok(T::default())
        }
        other => other,
    }
}
