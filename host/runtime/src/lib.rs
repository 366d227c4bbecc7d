//! Talon's plugin runtime.
//!
//! Every extension of Talon is a WebAssembly component implementing a world
//! of `talon:plugin@0.1.0` (see `wit/`). This crate holds what runs them:
//!
//! - [`Runtime`]: one wasmtime engine with fuel, epoch deadlines, a memory
//!   limiter and the pooling allocator; compiled components cached on disk.
//! - [`Plugin`]: a loaded component; [`Runtime::invoke`] calls one of its
//!   tools in a fresh store and reports what the call [`Cost`].
//! - [`Package`]: the signed file operators install, and [`TrustStore`].
//! - [`Manifest`] and [`Permissions`]: what a plugin asks for and is granted;
//!   network grants are enforced after DNS resolution, files through a
//!   preopen of the calling agent's workspace only.
//!
//! It knows nothing of HTTP or agents: the kernel decides who calls what.

mod bindings;
mod cache;
pub mod error;
mod host;
pub mod manifest;
pub mod package;
pub mod permissions;
mod plugin;
mod runtime;
pub mod scaffold;
pub mod signing;
mod ticker;

pub use error::{InvokeError, LoadError};
pub use host::{MAX_MEMORY_KEY, MAX_MEMORY_VALUE, MemoryBackend};
pub use manifest::{Filesystem, Kind, Limits, Manifest, Permissions, ToolSpec, WIT_VERSION};
pub use package::{Package, Trust};
pub use plugin::{CallContext, Cost, Description, EffectiveLimits, Invocation, Plugin};
pub use runtime::{Ceilings, Runtime, RuntimeConfig};
pub use signing::{PublicKey, SecretKey, TrustStore};
