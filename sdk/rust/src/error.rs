//! Tool errors: the typed variant of the WIT contract, and conversions from
//! the errors plugins meet most.

use std::fmt;

pub use crate::bindings::talon::plugin::types::ToolError;

impl ToolError {
    /// The arguments do not fit the schema; `reason` says how.
    pub fn invalid_arguments(reason: impl fmt::Display) -> Self {
        Self::InvalidArguments(reason.to_string())
    }

    /// Something the tool looked for does not exist.
    pub fn not_found(what: impl fmt::Display) -> Self {
        Self::NotFound(what.to_string())
    }

    /// The host refused something the tool needed (a host, a path, a key).
    pub fn permission_denied(reason: impl fmt::Display) -> Self {
        Self::PermissionDenied(reason.to_string())
    }

    /// Anything else went wrong.
    pub fn failed(reason: impl fmt::Display) -> Self {
        Self::Failed(reason.to_string())
    }

    /// The message, whatever the variant.
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidArguments(m)
            | Self::NotFound(m)
            | Self::PermissionDenied(m)
            | Self::Failed(m) => m,
        }
    }
}

/// File errors keep their meaning: a missing file is `not-found`, a refused
/// one `permission-denied`. Prefer adding the path yourself with
/// [`ToolError::not_found`] and friends; this conversion is for `?`.
impl From<std::io::Error> for ToolError {
    fn from(error: std::io::Error) -> Self {
        use std::io::ErrorKind;
        match error.kind() {
            ErrorKind::NotFound => Self::NotFound(error.to_string()),
            ErrorKind::PermissionDenied => Self::PermissionDenied(error.to_string()),
            ErrorKind::InvalidInput | ErrorKind::InvalidData => {
                Self::InvalidArguments(error.to_string())
            }
            _ => Self::Failed(error.to_string()),
        }
    }
}

/// Memory refusals are permission errors; the rest are failures.
impl From<crate::memory::MemoryError> for ToolError {
    fn from(error: crate::memory::MemoryError) -> Self {
        use crate::memory::MemoryError;
        match error {
            MemoryError::Denied(m) => Self::PermissionDenied(format!("memory: {m}")),
            MemoryError::TooLarge(m) => Self::Failed(format!("memory: {m}")),
            MemoryError::Unavailable(m) => Self::Failed(format!("memory: {m}")),
        }
    }
}
