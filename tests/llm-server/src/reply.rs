//! The script's entries: what the server answers to one request.

use super::*;

/// What a reply does: answer, fail, or fail mid-stream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Answer {
        text: String,
        calls: Vec<(String, String)>,
    },
    Error {
        status: u16,
        message: String,
        headers: Vec<(String, String)>,
    },
    /// A 200 streaming response whose first event is an error.
    StreamError { message: String },
    /// Never answers: no status, no headers.
    Hang,
    /// Starts answering and never stops: `piece` again and again.
    Endless { piece: String },
    /// Starts answering with `text`, then sends nothing more, ever.
    Stall { text: String },
}

/// One scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub(crate) kind: Kind,
    pub(crate) delay: Duration,
    pub(crate) chunks: usize,
    pub(crate) chunk_delay: Duration,
    pub(crate) usage: Option<(u64, u64)>,
    pub(crate) max_tokens: bool,
    pub(crate) truncated: bool,
    pub(crate) thought_signature: Option<String>,
}

impl Reply {
    fn new(kind: Kind) -> Self {
        Reply {
            kind,
            delay: Duration::ZERO,
            chunks: 1,
            chunk_delay: Duration::ZERO,
            usage: None,
            max_tokens: false,
            truncated: false,
            thought_signature: None,
        }
    }

    /// A text answer.
    pub fn text(text: impl Into<String>) -> Self {
        Self::new(Kind::Answer {
            text: text.into(),
            calls: Vec::new(),
        })
    }

    /// An answer calling one tool. `arguments` is sent as given, so it can
    /// be deliberately malformed JSON. (Anthropic and Gemini carry arguments
    /// as JSON objects in blocking answers and Gemini in streamed ones too;
    /// arguments that are not a JSON object are sent there as a JSON string,
    /// which the real services never do but clients must survive.)
    pub fn tool_call(name: impl Into<String>, arguments: impl Into<String>) -> Self {
        Self::tool_calls([(name.into(), arguments.into())])
    }

    /// An answer calling several tools at once (parallel tool calls).
    pub fn tool_calls<N: Into<String>, A: Into<String>>(
        calls: impl IntoIterator<Item = (N, A)>,
    ) -> Self {
        Self::new(Kind::Answer {
            text: String::new(),
            calls: calls
                .into_iter()
                .map(|(n, a)| (n.into(), a.into()))
                .collect(),
        })
    }

    /// An HTTP error with the provider's error JSON carrying `message`.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Self::new(Kind::Error {
            status,
            message: message.into(),
            headers: Vec::new(),
        })
    }

    /// A 429 with `Retry-After` (whole seconds, rounded up) and
    /// `retry-after-ms` (exact), as OpenAI sends them.
    pub fn rate_limited(retry_after: Duration) -> Self {
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        Self::error(429, "Rate limit reached. Please try again later.")
            .with_header("retry-after", secs.to_string())
            .with_header("retry-after-ms", retry_after.as_millis().to_string())
    }

    /// For streaming requests: status 200, then an error event before any
    /// content (Anthropic's `overloaded_error`, Gemini's `UNAVAILABLE`, an
    /// OpenAI `server_error` chunk). Blocking requests get the HTTP error
    /// the provider would send instead (529, 503, 500).
    pub fn stream_error(message: impl Into<String>) -> Self {
        Self::new(Kind::StreamError {
            message: message.into(),
        })
    }

    /// A provider that accepts the request and never answers: no status
    /// line, no headers, blocking or streamed.
    pub fn hang() -> Self {
        Self::new(Kind::Hang)
    }

    /// A provider that never stops answering. Streamed: the format's
    /// opening events, then text deltas of `piece` without end. Blocking:
    /// a 200 whose JSON body's text is `piece` repeated without end.
    pub fn endless(piece: impl Into<String>) -> Self {
        Self::new(Kind::Endless {
            piece: piece.into(),
        })
    }

    /// A provider that starts answering and then goes silent with the
    /// connection open. Streamed: the format's opening events and one text
    /// delta of `text`, then nothing. Blocking: a 200 and the start of the
    /// JSON body up to `text`, then nothing.
    pub fn stall(text: impl Into<String>) -> Self {
        Self::new(Kind::Stall { text: text.into() })
    }

    /// Adds text to a tool-call answer (said before the calls).
    pub fn with_text(mut self, more: impl Into<String>) -> Self {
        if let Kind::Answer { text, .. } = &mut self.kind {
            *text = more.into();
        }
        self
    }

    /// Adds a response header (to errors).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let Kind::Error { headers, .. } = &mut self.kind {
            headers.push((name.into(), value.into()));
        }
        self
    }

    /// Waits this long before answering (before the response headers).
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// When streamed, splits the text and each tool call's arguments into
    /// `n` fragments (default 1).
    pub fn in_chunks(mut self, n: usize) -> Self {
        self.chunks = n.max(1);
        self
    }

    /// When streamed, waits this long between two content fragments (text
    /// pieces, argument pieces, Gemini chunks); the first fragment and the
    /// protocol events around them are sent without delay.
    pub fn with_chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }

    /// Reports these token counts (default: a deterministic estimate).
    pub fn with_usage(mut self, input_tokens: u64, output_tokens: u64) -> Self {
        self.usage = Some((input_tokens, output_tokens));
        self
    }

    /// Ends as if the token limit cut the answer.
    pub fn max_tokens(mut self) -> Self {
        self.max_tokens = true;
        self
    }

    /// When streamed, the body ends before the events that finish the
    /// answer (finish reason, usage, `[DONE]`/`message_stop`): a cut stream.
    pub fn truncated(mut self) -> Self {
        self.truncated = true;
        self
    }

    /// Gemini only: the first function call carries this `thoughtSignature`.
    pub fn with_thought_signature(mut self, signature: impl Into<String>) -> Self {
        self.thought_signature = Some(signature.into());
        self
    }
}
