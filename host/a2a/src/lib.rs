//! The Agent-to-Agent protocol (A2A), without HTTP serving or storage.
//!
//! Talon speaks A2A 1.0 (JSON-RPC methods `SendMessage`, `SendStreamingMessage`,
//! `GetTask`, `CancelTask`, `SubscribeToTask`; protobuf-JSON shapes such as
//! `TASK_STATE_COMPLETED`) and accepts 0.3 (`message/send`, `message/stream`,
//! `tasks/get`, `tasks/cancel`, `tasks/resubscribe`; `kind`-tagged shapes)
//! on the same endpoint, as the `a2a-sdk` reference implementation does.
//!
//! - [`jsonrpc`]: the envelope, the method table and the spec's error codes.
//! - [`wire`]: a task in either version's shape, and the text of a message.
//! - [`card`]: Talon's agent card, and the checks a remote card must pass.
//! - [`client`]: discovering a remote agent and sending it a task.
//!
//! The kernel stores tasks and runs them; the API serves them over HTTP.

pub mod card;
pub mod client;
pub mod jsonrpc;
pub mod wire;

pub use card::{CardInput, RemoteCard, SkillInput};
pub use client::{Client, ClientError, RemoteTask};
pub use jsonrpc::{Method, RpcError, RpcRequest};
pub use wire::{TaskState, TaskView, Version};
