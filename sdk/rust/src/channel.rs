//! Channels: bridges to chat platforms (the `channel` world of
//! `talon:plugin@0.2.0`).
//!
//! A channel is one long-lived instance per configured channel: the host
//! calls `connect` with the configuration, then `receive` in a loop (each
//! call waits at most the given time for the platform), `send` for
//! replies and `health` to ask whether the platform is still reachable.
//! State lives in statics for the instance's life; if the instance traps,
//! the host starts a fresh one (statics empty) and calls `connect` again.
//!
//! Generate the bindings in the plugin crate with [`channel_world!`](crate::channel_world),
//! implement the generated `Guest` trait, export it with the generated
//! `export!` macro, and reach the platform with [`net`](crate::net):
//!
//! ```ignore
//! mod wit {
//!     talon_sdk::channel_world!();
//! }
//! use wit::exports::talon::plugin::channel_adapter::Guest;
//! use wit::talon::plugin::channel_types::*;
//!
//! struct MyChannel;
//! impl Guest for MyChannel { /* describe, connect, receive, send, ... */ }
//! wit::export!(MyChannel with_types_in wit);
//! ```
//!
//! `plugins/irc` is a complete channel written this way. The manifest says
//! `kind = "channel"`, `wit = "0.2.0"` and lists the sockets it needs
//! under `[permissions] sockets = ["irc.example.org:6667"]`.

/// Version of the WIT package channels are built against; goes in the
/// manifest as `wit = "..."`.
pub const WIT_VERSION: &str = "0.2.0";
