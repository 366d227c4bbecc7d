//! The Talon kernel: everything the daemon knows, independent of HTTP.
//!
//! The API crate turns HTTP requests into calls on [`Kernel`], the one entry
//! point; nothing here knows about HTTP. The kernel is grouped by domain, and
//! dependencies point one way, down this list:
//!
//! | layer | modules | may use |
//! |---|---|---|
//! | composition | [`kernel`] | every domain |
//! | automation | [`automation`]: cron jobs and schedules, triggers, workflows, goals, the task queue | conversation, agents, foundation |
//! | conversation | [`conversation`]: sessions, the agent loop, live turns, logs, usage | agents, plugins, providers, foundation |
//! | extensions and models | [`plugins`]: installed components and their tools; [`providers`]: models, keys, endpoints | agents (plugins, for agent memory), foundation |
//! | agents | [`agents`]: records, manifests, templates, workspaces, uploads, memory | foundation |
//! | foundation | [`shared`], [`store`] (tables, migrations, journal, audit chain), [`events`], [`config`], [`home`], [`clock`], [`error`] | nothing above |
//!
//! Each domain's state and logic live in one struct the kernel holds
//! ([`agents::Agents`], [`plugins::Plugins`], [`providers::Providers`],
//! [`conversation::Conversations`], [`automation::Automation`]); a domain
//! reaches the store only through its own store functions, and the time only
//! through the one clock in [`shared::Shared`]. `tests/layers.rs` checks
//! the direction of every `crate::` import and that no two modules import
//! each other around a circle.

pub mod a2a;
pub mod agents;
pub mod approvals;
pub mod automation;
pub mod channels;
pub mod clock;
pub mod config;
pub mod conversation;
pub mod error;
pub mod events;
pub mod hands;
pub mod home;
pub mod kernel;
pub mod mcp;
pub mod plugins;
pub mod providers;
pub mod shared;
pub mod store;
pub mod webhooks;

pub use error::KernelError;
pub use kernel::Kernel;
