//! Hands: autonomous capabilities that drive an agent on a schedule (the
//! `hand` world of `talon:plugin@0.2.0`).
//!
//! A hand is one long-lived instance per activation: the host asks it to
//! `describe` itself when it is installed (its settings schema, the role of
//! the agent it drives, how often it ticks), calls `activate` with the
//! operator's settings (already validated against the schema), then `tick`
//! on its schedule, `metrics` for its dashboard and `deactivate` when it
//! stops. Statics last as long as the instance; anything that must survive
//! a restart of the daemon or of the instance (a trap restarts it) goes in
//! [`memory`](crate::memory), which for a hand is scoped to its agent. The
//! `agent` import sends a message to the hand's agent and returns its
//! reply, and notifies the agent's owner.
//!
//! Generate the bindings in the plugin crate with [`hand_world!`](crate::hand_world),
//! implement the generated `Guest` trait and export it:
//!
//! ```ignore
//! mod wit {
//!     talon_sdk::hand_world!();
//! }
//! use wit::exports::talon::plugin::hand_lifecycle::{Guest, HandError, HandInfo, Metric};
//! use wit::talon::plugin::agent;
//!
//! struct MyHand;
//! impl Guest for MyHand { /* describe, activate, tick, metrics, deactivate */ }
//! wit::export!(MyHand with_types_in wit);
//! ```
//!
//! `plugins/web_watch` is a complete hand written this way. The manifest
//! says `kind = "hand"`, `wit = "0.2.0"`, and requests the hosts and memory
//! keys it needs under `[permissions]`.

/// Version of the WIT package hands are built against; goes in the
/// manifest as `wit = "..."`.
pub const WIT_VERSION: &str = "0.2.0";
