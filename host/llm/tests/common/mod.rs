//! Shared helpers: the real drivers, over HTTP, against `talon-test-llm`.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::time::Duration;

use futures::StreamExt;
use talon_llm::{
    BreakerConfig, CompletionRequest, EventStream, LlmClient, LlmError, Message, ResilienceConfig,
    RetryPolicy, StreamEvent, Target, Timeouts, ToolSpec,
};
use talon_test_llm::TestLlm;

/// The key the tests give every provider.
pub const KEY: &str = "test-key";

/// One of the three wire formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Anthropic,
    Gemini,
}

/// All formats, for tests that must hold for each.
pub const ALL: [Wire; 3] = [Wire::OpenAi, Wire::Anthropic, Wire::Gemini];

impl Wire {
    /// The built-in provider using this format.
    pub fn provider(self) -> &'static str {
        match self {
            Wire::OpenAi => "openai",
            Wire::Anthropic => "anthropic",
            Wire::Gemini => "gemini",
        }
    }

    /// A catalogued model of that provider.
    pub fn model(self) -> &'static str {
        match self {
            Wire::OpenAi => "gpt-4o-mini",
            Wire::Anthropic => "claude-haiku-4-5-20251001",
            Wire::Gemini => "gemini-2.5-flash",
        }
    }

    /// The provider pointed at the test server, with [`KEY`].
    pub fn target(self, server: &TestLlm) -> Target {
        let base_url = match self {
            Wire::OpenAi => server.openai_url(),
            Wire::Anthropic => server.anthropic_url(),
            Wire::Gemini => server.gemini_url(),
        };
        Target::new(self.provider())
            .with_api_key(KEY)
            .with_base_url(base_url)
    }

    /// A one-message request for [`Wire::model`].
    pub fn request(self, text: &str) -> CompletionRequest {
        CompletionRequest::new(self.model()).with_message(Message::user(text))
    }
}

/// Settings that keep tests fast: millisecond backoff, short timeouts.
pub fn fast() -> ResilienceConfig {
    ResilienceConfig {
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_retry_after: Duration::from_secs(2),
        },
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(10),
            stream_idle: Duration::from_secs(10),
            call_deadline: Duration::from_secs(30),
        },
        breaker: BreakerConfig {
            failure_threshold: 5,
            cooldown: Duration::from_secs(30),
        },
    }
}

/// A client that never reads the real environment, with [`fast`] settings.
pub fn client() -> LlmClient {
    LlmClient::new()
        .with_env_lookup(|_| None)
        .with_resilience(fast())
}

/// A client with the given settings for every provider.
pub fn client_with(resilience: ResilienceConfig) -> LlmClient {
    LlmClient::new()
        .with_env_lookup(|_| None)
        .with_resilience(resilience)
}

/// A word-count tool.
pub fn word_count_tool() -> ToolSpec {
    ToolSpec::new(
        "word_count",
        "Counts the words of a text",
        serde_json::json!({
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
            "additionalProperties": false
        }),
    )
}

/// Every item of a stream, errors included.
pub async fn drain(mut stream: EventStream) -> Vec<Result<StreamEvent, LlmError>> {
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item);
    }
    items
}

/// Every event of a stream that must not fail.
pub async fn events(stream: EventStream) -> Vec<StreamEvent> {
    drain(stream)
        .await
        .into_iter()
        .map(|item| item.expect("stream item"))
        .collect()
}
