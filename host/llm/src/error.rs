//! Typed errors of the LLM layer.

use std::fmt;
use std::time::Duration;

/// What a timeout was waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// Establishing the TCP/TLS connection.
    Connect,
    /// A whole blocking request (sending, waiting, reading the answer).
    Request,
    /// The gap between two pieces of a streamed answer (or before the
    /// response headers of a streaming request).
    StreamIdle,
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Connect => "connecting",
            TimeoutPhase::Request => "waiting for the whole response",
            TimeoutPhase::StreamIdle => "waiting for the next piece of the stream",
        })
    }
}

/// Everything that can go wrong talking to a model.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The provider needs an API key and none was given or found.
    #[error(
        "no API key for LLM provider {provider}: set the {env} environment variable (or configure an API key for {provider})"
    )]
    MissingApiKey {
        /// The provider.
        provider: String,
        /// The environment variable that would supply the key.
        env: String,
    },
    /// No provider by that name is registered.
    #[error("unknown LLM provider {provider:?} (known: {})", .known.join(", "))]
    UnknownProvider {
        /// The name asked for.
        provider: String,
        /// The names that exist.
        known: Vec<String>,
    },
    /// The model is not in the catalog (only raised where the catalog must
    /// know it, e.g. to price usage or to infer the provider).
    #[error("unknown model {model:?}")]
    UnknownModel {
        /// The name asked for.
        model: String,
    },
    /// The provider answered with an HTTP error.
    #[error("{provider} returned HTTP {status}: {message}")]
    Http {
        /// The provider.
        provider: String,
        /// HTTP status code.
        status: u16,
        /// The message from the provider's error JSON (or the start of the body).
        message: String,
    },
    /// The provider answered 429.
    #[error("{provider} rate limit exceeded{}: {message}", retry_after_text(.retry_after))]
    RateLimited {
        /// The provider.
        provider: String,
        /// How long the provider asked us to wait, if it said.
        retry_after: Option<Duration>,
        /// The provider's message.
        message: String,
    },
    /// Nothing arrived in time. Not retried: a provider that let one
    /// attempt run out would most likely let the next one run out too.
    #[error("{provider} timed out after {}s {phase}", .after.as_secs_f64())]
    Timeout {
        /// The provider.
        provider: String,
        /// What we were waiting for.
        phase: TimeoutPhase,
        /// The limit that expired.
        after: Duration,
    },
    /// The connection could not be made or broke.
    #[error("connection to {provider} failed: {detail}")]
    Connect {
        /// The provider.
        provider: String,
        /// What the HTTP client said.
        detail: String,
    },
    /// The call (all its attempts and, when streamed, the whole stream) did
    /// not finish within its deadline.
    #[error(
        "{provider} did not finish answering within the call deadline of {}s (all attempts included)",
        .limit.as_secs_f64()
    )]
    Deadline {
        /// The provider.
        provider: String,
        /// The deadline that expired.
        limit: Duration,
    },
    /// A streamed answer grew past what the request's `max_tokens` allows;
    /// the stream was cut and its connection closed.
    #[error(
        "{provider} streamed more than {limit_bytes} bytes of output, more than max_tokens = {max_tokens} allows; the stream was cut"
    )]
    OutputTooLarge {
        /// The provider.
        provider: String,
        /// The cap on streamed text and tool-call arguments, in bytes.
        limit_bytes: usize,
        /// The request's token limit the cap derives from.
        max_tokens: u32,
    },
    /// The endpoint's circuit breaker is open: recent calls failed, so this
    /// one fails fast instead of waiting on a provider that is down.
    #[error("{provider} at {endpoint} is failing; circuit breaker open, next attempt allowed in {}s", .retry_in.as_secs_f64().ceil())]
    CircuitOpen {
        /// The provider.
        provider: String,
        /// The base URL its breaker guards.
        endpoint: String,
        /// Time until a probe call will be let through.
        retry_in: Duration,
    },
    /// A successful response that is not what the wire format promises.
    #[error("could not decode the provider's response: {detail}")]
    Decode {
        /// What was wrong.
        detail: String,
    },
    /// A streamed answer broke off or reported an error mid-way.
    #[error("stream failed: {detail}")]
    Stream {
        /// What was wrong.
        detail: String,
    },
    /// The request cannot be expressed in the provider's format (e.g. a
    /// tool result whose call is not in the conversation, for Gemini, which
    /// matches results to calls by name).
    #[error("invalid request: {detail}")]
    InvalidRequest {
        /// What was wrong.
        detail: String,
    },
}

fn retry_after_text(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(after) => format!(" (retry after {:.3}s)", after.as_secs_f64()),
        None => String::new(),
    }
}

impl LlmError {
    /// Whether trying the same request again may succeed: rate limits,
    /// server errors (5xx, including Anthropic's 529 "overloaded") and
    /// connection failures. Timeouts are not: retrying a provider that does
    /// not answer multiplies the wait (three attempts of five minutes held a
    /// turn for a quarter of an hour) for little chance of an answer.
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Http { status, .. } => *status >= 500,
            LlmError::RateLimited { .. } | LlmError::Connect { .. } => true,
            _ => false,
        }
    }

    /// How long the provider asked to wait before retrying, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether this outcome says the provider is unhealthy, which is what a
    /// circuit breaker counts. A client error (400, 401, a missing key...)
    /// says nothing about the provider's health; garbage or a broken stream
    /// after a 200 does.
    pub(crate) fn counts_against_provider(&self) -> bool {
        self.is_retryable()
            || matches!(
                self,
                LlmError::Timeout { .. }
                    | LlmError::Deadline { .. }
                    | LlmError::OutputTooLarge { .. }
                    | LlmError::Decode { .. }
                    | LlmError::Stream { .. }
            )
    }

    pub(crate) fn decode(detail: impl Into<String>) -> Self {
        LlmError::Decode {
            detail: detail.into(),
        }
    }

    pub(crate) fn stream(detail: impl Into<String>) -> Self {
        LlmError::Stream {
            detail: detail.into(),
        }
    }

    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        LlmError::InvalidRequest {
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_key_names_the_variable() {
        let error = LlmError::MissingApiKey {
            provider: "openai".into(),
            env: "OPENAI_API_KEY".into(),
        };
        assert!(
            error
                .to_string()
                .contains("set the OPENAI_API_KEY environment variable")
        );
    }

    #[test]
    fn retryability_follows_the_status() {
        let http = |status| LlmError::Http {
            provider: "p".into(),
            status,
            message: String::new(),
        };
        assert!(http(500).is_retryable());
        assert!(http(529).is_retryable());
        assert!(!http(400).is_retryable());
        assert!(!http(401).is_retryable());
        assert!(
            LlmError::RateLimited {
                provider: "p".into(),
                retry_after: None,
                message: String::new()
            }
            .is_retryable()
        );
        assert!(!LlmError::stream("x").is_retryable());
        let timeout = LlmError::Timeout {
            provider: "p".into(),
            phase: TimeoutPhase::Request,
            after: Duration::from_secs(1),
        };
        assert!(!timeout.is_retryable());
        assert!(timeout.counts_against_provider());
        let deadline = LlmError::Deadline {
            provider: "p".into(),
            limit: Duration::from_secs(2),
        };
        assert!(!deadline.is_retryable());
        assert!(deadline.counts_against_provider());
        assert_eq!(
            deadline.to_string(),
            "p did not finish answering within the call deadline of 2s (all attempts included)"
        );
        assert!(LlmError::stream("x").counts_against_provider());
        assert!(!http(404).counts_against_provider());
    }

    #[test]
    fn messages_are_readable() {
        let error = LlmError::UnknownProvider {
            provider: "nope".into(),
            known: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            error.to_string(),
            "unknown LLM provider \"nope\" (known: a, b)"
        );
        let error = LlmError::RateLimited {
            provider: "groq".into(),
            retry_after: Some(Duration::from_millis(1500)),
            message: "slow down".into(),
        };
        assert_eq!(
            error.to_string(),
            "groq rate limit exceeded (retry after 1.500s): slow down"
        );
        let error = LlmError::CircuitOpen {
            provider: "openai".into(),
            endpoint: "https://api.openai.com/v1".into(),
            retry_in: Duration::from_millis(2500),
        };
        assert!(error.to_string().contains("next attempt allowed in 3s"));
    }
}
