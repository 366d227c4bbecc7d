//! Talon's LLM layer: provider-neutral conversation types, drivers for the
//! three wire formats that cover the providers people use (OpenAI-compatible
//! Chat Completions, Anthropic Messages, Google Gemini), a catalog of
//! providers and models, and the resilience around every call (timeouts,
//! a deadline per call, retries with backoff, a cap on streamed output, a
//! circuit breaker per provider endpoint).
//!
//! The kernel holds one [`LlmClient`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), talon_llm::LlmError> {
//! use talon_llm::{CompletionRequest, LlmClient, Message, Target};
//!
//! let client = LlmClient::new();
//! let request = CompletionRequest::new("sonnet")
//!     .with_system("You are terse.")
//!     .with_message(Message::user("Hello"));
//! let answer = client.complete(&Target::new("anthropic"), request).await?;
//! println!("{} ({} tokens)", answer.text, answer.usage.total());
//! # Ok(())
//! # }
//! ```
//!
//! Streaming returns an [`EventStream`] of [`StreamEvent`]s; [`collect`]
//! folds one into the same [`CompletionResponse`] a blocking call returns.

#![warn(missing_docs)]

mod anthropic;
mod catalog;
pub mod chat_api;
mod client;
mod driver;
mod error;
mod gemini;
mod openai;
mod probe;
mod resilience;
pub mod sse;
mod stream;
mod transport;
mod types;
mod wire;

pub use anthropic::ANTHROPIC_VERSION;
pub use catalog::{
    DriverKind, MaxTokensField, ModelCatalog, ModelInfo, OPENAI_COMPATIBLE, ProviderInfo,
    builtin_providers,
};
pub use client::{LlmClient, ResolvedModel, Target, validate_api_key, validate_base_url};
pub use driver::{Driver, DriverConfig, build_driver};
pub use error::{LlmError, TimeoutPhase};
pub use probe::ProbeReport;
pub use resilience::{
    BreakerConfig, BreakerPermit, BreakerState, BreakerStatus, CircuitBreaker, ResilienceConfig,
    RetryPolicy, Timeouts,
};
pub use stream::{EventStream, ResponseBuilder, collect};
pub use types::{
    CompletionRequest, CompletionResponse, ContentPart, Message, ResponseFormat, Role, StopReason,
    StreamEvent, ToolCall, ToolChoice, ToolSpec, Usage,
};
