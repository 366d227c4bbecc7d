//! The Talon kernel: everything the daemon knows, independent of HTTP.
//!
//! The kernel owns the data directory ([`home::Home`]), the configuration
//! ([`config::Config`]), the redb store ([`store::Store`]) and the registries
//! built on it (agents, their key-value memory). The API crate turns HTTP
//! requests into calls on [`Kernel`]; nothing here knows about HTTP.

pub mod agent_logs;
pub mod agents;
pub mod audit;
pub mod config;
pub mod cron;
pub mod error;
pub mod events;
pub mod goals;
pub mod home;
mod journal;
pub mod kernel;
pub mod live;
mod llm;
pub mod memory;
pub mod plugins;
pub mod providers;
pub mod redact;
pub mod repair;
pub mod scheduling;
pub mod sessions;
pub mod store;
pub mod tasks;
pub mod templates;
pub mod triggers;
pub mod turn;
pub mod uploads;
pub mod workflows;
pub mod workspace;

pub use error::KernelError;
pub use kernel::Kernel;
pub use live::{TurnEvent, TurnReply};
pub use turn::MessageInput;
