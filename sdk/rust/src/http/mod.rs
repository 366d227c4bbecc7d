//! Outgoing HTTP for plugins over `wasi:http`, to the hosts the operator
//! granted in the plugin's `[permissions] network` (a loopback or private
//! server only through a literal `ip:port` grant); a refused request fails
//! with [`HttpError::Denied`].
//!
//! [`request`] sends and waits within one deadline. A long poll that should
//! outlive one channel call (Telegram's `getUpdates`, Matrix's `/sync`)
//! uses [`start`]: the [`Pending`] request keeps running in the host between
//! calls, and each `receive` waits a little on it with [`Pending::wait`].
//! [`get`] fetches a page cut at a size limit (`web_fetch`, `web_watch`);
//! [`url`] parses and resolves the URLs it needs.

mod client;
mod get;
pub mod url;

pub use client::{HttpError, Pending, Request, Response, encode, request, sleep_ms, start};
pub use get::get;
