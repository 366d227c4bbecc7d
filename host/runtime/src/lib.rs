//! Talon's plugin runtime.
//!
//! Every extension of Talon is a WebAssembly component implementing a world
//! of `talon:plugin@0.1.0` (see `wit/`). This crate holds what runs them:
//!
//! - [`Runtime`]: one wasmtime engine with fuel, epoch deadlines, a memory
//!   limiter and the pooling allocator; compiled components cached on disk.
//! - The guard (`guard.rs`): the one path into guest code. Every entry
//!   (tool calls, `describe`, `instructions`, probes) takes an instance slot
//!   (per plugin and in all), runs under fuel, a yielding epoch deadline and
//!   an outer timeout, with host resources, results and logs capped by the
//!   [`Ceilings`]; refusals and stops are named [`GuardError`]s.
//! - [`Plugin`]: a loaded component; [`Runtime::invoke`] calls one of its
//!   tools in a fresh store and reports what the call [`Cost`].
//! - [`Package`]: the signed file operators install, and [`TrustStore`].
//! - [`channel`]: channels, components of the 0.2.0 `channel` world that
//!   live as long as they are enabled, one instance each under a
//!   supervisor that restarts it with backoff; TCP only to granted pairs.
//! - [`hand`]: hands, components of the 0.2.0 `hand` world activated with
//!   settings and ticked by the embedder, one instance each under the same
//!   kind of supervisor; they drive an agent through [`hand::AgentHost`].
//! - [`Manifest`] and [`Permissions`]: what a plugin asks for and is granted;
//!   network grants are enforced after DNS resolution, files through a
//!   preopen of the calling agent's workspace only.
//!
//! It knows nothing of HTTP or agents: the kernel decides who calls what.

mod bindings;
mod cache;
mod ceilings;
pub mod channel;
pub mod compiler;
pub mod error;
mod guard;
pub mod hand;
mod hand_adapter;
mod host;
mod live;
pub mod log;
pub mod manifest;
pub mod package;
pub mod permissions;
mod plugin;
mod runtime;
pub mod scaffold;
pub mod schema;
pub mod signing;
mod slots;
mod ticker;
pub mod tls;
mod wake;
pub mod workspace;

pub use ceilings::Ceilings;
pub use compiler::Compiler;
pub use error::{GuardError, InvokeError, LoadError};
pub use host::{MAX_MEMORY_KEY, MAX_MEMORY_VALUE, MemoryBackend};
pub use manifest::{
    CHANNEL_WIT_VERSION, Filesystem, HAND_WIT_VERSION, HAND_WIT_VERSIONS, HandSection, Kind,
    Limits, Manifest, Permissions, ToolSpec, WIT_VERSION,
};
pub use package::{Package, Trust};
pub use plugin::{CallContext, Cost, Description, EffectiveLimits, Invocation, Plugin};
pub use runtime::{Baseline, PoolRetention, Runtime, RuntimeConfig, Tier};
pub use signing::{PublicKey, SecretKey, TrustStore};
pub use slots::RETRY_AFTER;
