//! The Model Context Protocol in Talon.
//!
//! [`server`] is Talon as an MCP server: the tools the operator exposes and
//! agents as tools, served over streamable HTTP by the official SDK (`rmcp`).
//! It knows nothing of the kernel: the API hands it a [`server::Host`] that
//! lists and calls tools through the kernel's own tool path, so a call made
//! over MCP is permission-checked, metered and audited like any other.
//! [`endpoint`] puts the SDK's HTTP service behind a front that answers
//! malformed, oversized and batched JSON-RPC with the spec's error codes.
//! [`client`] is Talon as a client of other servers, over stdio,
//! streamable HTTP ([`http`]) or legacy HTTP+SSE ([`sse`]).

pub mod client;
pub mod endpoint;
pub mod http;
pub mod server;
pub mod sse;

pub use endpoint::{Endpoint, EndpointConfig};
pub use server::{CallOutcome, Host, HostError, McpServer, ToolSpec};
