//! What can go wrong: loading a package, calling a tool, and the guard
//! around every entry into guest code refusing or stopping a call.

use std::time::Duration;

/// A package or component could not be read, trusted or loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The manifest (`talon.toml` or the package's JSON) is malformed.
    #[error("invalid manifest: {0}")]
    Manifest(String),
    /// The package file is not a well-formed Talon package.
    #[error("invalid package: {0}")]
    Package(String),
    /// The package's bytes do not match its checksum or its signature: it was
    /// altered after it was packed.
    #[error("package is corrupt or was tampered with: {0}")]
    Tampered(String),
    /// The package carries no signature and development mode is off.
    #[error(
        "package is not signed; sign it with `talon plugin pack --key <secret key>`, \
         or set plugins.dev_mode = true to load unsigned packages"
    )]
    Unsigned,
    /// The signature is valid but its key is not in the trust store.
    #[error(
        "package is signed by key {key_id}, which is not trusted; add its public key \
         ({public_key}) to plugins.trusted_keys, or set plugins.dev_mode = true"
    )]
    Untrusted {
        /// Short id of the signing key.
        key_id: String,
        /// Hex public key of the signer.
        public_key: String,
    },
    /// A signing key file is malformed.
    #[error("invalid key: {0}")]
    Key(String),
    /// The component does not fit the world its manifest names.
    #[error("component does not implement the {world} world of talon:plugin@{version}: {detail}")]
    World {
        /// `tool`, `skill` or `channel`.
        world: &'static str,
        /// The version of `talon:plugin` the world was checked against.
        version: &'static str,
        /// What wasmtime found wrong.
        detail: String,
    },
    /// The component failed to compile.
    #[error("component failed to compile: {0}")]
    Compile(String),
    /// The plugin's own `describe` answered something unusable.
    #[error("plugin failed to describe its tools: {0}")]
    Describe(String),
    /// The guard refused to run the plugin's `describe` or `instructions`
    /// (no free slot), or stopped it (a limit, a trap, an exit).
    #[error("plugin could not describe itself: {0}")]
    Guard(#[from] GuardError),
    /// The engine could not be set up.
    #[error("engine: {0}")]
    Engine(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl LoadError {
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

/// A tool call did not produce a result.
///
/// The first four variants are the plugin's own typed answer (`tool-error` in
/// the WIT); [`InvokeError::Guard`] is the host refusing or stopping the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// The arguments do not fit the tool's schema.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// What the tool was asked about does not exist (a file, a record): the
    /// tool's own answer, not a missing tool.
    #[error("not found: {0}")]
    NotFound(String),
    /// The host refused something the tool needed (a host, a path, a key).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The tool reported a failure.
    #[error("tool failed: {0}")]
    Failed(String),
    /// The host's guard refused the call or stopped it (a limit, a trap, an
    /// exit, no free slot).
    #[error(transparent)]
    Guard(#[from] GuardError),
}

impl InvokeError {
    /// A short stable name of the variant, for metrics and the API.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidArguments(_) => "invalid_arguments",
            Self::NotFound(_) => "not_found",
            Self::PermissionDenied(_) => "permission_denied",
            Self::Failed(_) => "failed",
            Self::Guard(e) => e.kind(),
        }
    }

    /// Whether the host stopped or refused the call (a limit, a trap, no
    /// free slot), as opposed to the plugin answering with an error of its own.
    pub fn is_abort(&self) -> bool {
        matches!(self, Self::Guard(_))
    }

    /// The guard's error, if the host refused or stopped the call.
    pub fn guard(&self) -> Option<&GuardError> {
        match self {
            Self::Guard(e) => Some(e),
            _ => None,
        }
    }
}

/// Why the guard around guest code refused to enter it or stopped it. The
/// same for every entry: tool calls, `describe`, `instructions`, probes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// No instance slot became free in time: either the plugin already runs
    /// as many calls as it may, or the whole runtime is full. Try again
    /// after `retry_after` (the API answers 503 with `Retry-After`).
    #[error(
        "plugin {plugin} is busy: {reason}; retry after {}",
        humanize(*.retry_after)
    )]
    Busy {
        /// The plugin that was refused.
        plugin: String,
        /// Which limit was reached.
        reason: String,
        /// When a retry has a fair chance.
        retry_after: Duration,
    },
    /// The call burned all the fuel it was given (for example an endless loop).
    #[error("out of fuel: the call used its limit of {limit} units")]
    OutOfFuel {
        /// The call's fuel limit.
        limit: u64,
    },
    /// The call ran past its wall-clock deadline, in guest code or waiting
    /// on a host call.
    #[error("timed out after {}", humanize(*.limit))]
    Timeout {
        /// The call's deadline.
        limit: Duration,
    },
    /// The plugin tried to grow its memory past its limit.
    #[error("memory limit exceeded: the plugin asked for {requested} bytes, the limit is {limit}")]
    MemoryLimit {
        /// Bytes the plugin tried to hold.
        requested: usize,
        /// The call's memory limit in bytes.
        limit: usize,
    },
    /// The plugin made the host hold more of something than one call may
    /// (resource-table entries such as `wasi:http` fields, requests, bodies
    /// and streams).
    #[error("resource limit exceeded: at most {limit} {what} per call")]
    ResourceLimit {
        /// What ran out.
        what: &'static str,
        /// The per-call limit.
        limit: usize,
    },
    /// The result is larger than the host accepts from one call.
    #[error("result too large: {size} bytes, the limit is {limit}")]
    ResultTooLarge {
        /// Bytes of the result.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// A write into the agent's workspace was refused (the guest saw
    /// `insufficient-space`, ENOSPC) because it would have taken the
    /// workspace past its quota, and the call then failed.
    #[error(
        "workspace quota exceeded: the agent's workspace may hold at most {limit} bytes, \
         and a write past that was refused (the plugin reported: {detail})"
    )]
    WorkspaceQuota {
        /// The quota in bytes.
        limit: u64,
        /// What the plugin made of the refusal (its error or trap).
        detail: String,
    },
    /// The plugin called `exit` (WASI `wasi:cli/exit`) instead of returning.
    #[error("plugin exited with status {0}")]
    Exited(i32),
    /// The plugin's stack overflowed (for example unbounded recursion).
    #[error("stack overflow")]
    StackOverflow,
    /// The plugin trapped (a panic, `unreachable`, an out-of-bounds access...).
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The plugin could not be instantiated (a host-side failure before any
    /// of its code ran, or a failure linking it).
    #[error("plugin could not start: {0}")]
    Instantiate(String),
}

impl GuardError {
    /// A short stable name of the variant, for metrics and the API.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Busy { .. } => "busy",
            Self::OutOfFuel { .. } => "out_of_fuel",
            Self::Timeout { .. } => "timeout",
            Self::MemoryLimit { .. } => "memory_limit",
            Self::ResourceLimit { .. } => "resource_limit",
            Self::ResultTooLarge { .. } => "result_too_large",
            Self::WorkspaceQuota { .. } => "workspace_quota",
            Self::Exited(_) => "exited",
            Self::StackOverflow => "stack_overflow",
            Self::Trap(_) => "trap",
            Self::Instantiate(_) => "instantiate",
        }
    }

    /// How long to wait before retrying, for [`GuardError::Busy`].
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Busy { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

fn humanize(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}
