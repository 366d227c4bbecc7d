//! Outgoing HTTP for plugins over `wasi:http`: a blocking [`get`] with a
//! deadline and a body cap, and the URL handling it needs ([`url`]). The
//! host lets a request through only to the hosts the operator granted
//! (`permissions.network`); a refusal is [`FetchError::Denied`].
//!
//! `web_fetch` (a tool) and `web_watch` (a hand) both fetch through it.

mod get;
pub mod url;

pub use get::{FetchError, Response, get};
