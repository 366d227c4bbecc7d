//! Provider-neutral conversation types.
//!
//! These are what the kernel builds, persists (hence serde) and hands to a
//! [`Driver`](crate::Driver); each driver translates them to and from its
//! provider's wire format. Nothing here knows about HTTP or about a provider.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions to the model. Drivers merge these into the provider's
    /// system slot when the provider has one (Anthropic, Gemini).
    System,
    /// The human (or the system acting for them).
    User,
    /// The model.
    Assistant,
    /// The result of a tool call, answering [`Message::tool_call_id`].
    Tool,
}

/// One piece of a message's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// An inline image.
    Image {
        /// MIME type, e.g. `image/png`.
        media_type: String,
        /// The image bytes, base64-encoded (standard alphabet, with padding).
        data: String,
    },
}

impl ContentPart {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        ContentPart::Text { text: text.into() }
    }

    /// An image part from base64 data.
    pub fn image(media_type: impl Into<String>, base64_data: impl Into<String>) -> Self {
        ContentPart::Image {
            media_type: media_type.into(),
            data: base64_data.into(),
        }
    }
}

/// A tool call made by the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Identifier the tool result must quote in [`Message::tool_call_id`].
    /// Synthesized by the driver for providers that have none (Gemini).
    pub id: String,
    /// Name of the tool.
    pub name: String,
    /// The arguments as the raw JSON text the model produced. It may be
    /// malformed (models do that, and streams cut by `max_tokens` truncate
    /// it): parse it with [`ToolCall::parse_arguments`] and report a failure
    /// back to the model rather than trusting it.
    pub arguments: String,
    /// Opaque provider data that must be sent back with this call in later
    /// requests (Gemini's thought signature, which Gemini 3 requires for
    /// function calling). `None` for most providers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl ToolCall {
    /// A tool call without provider signature.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
            signature: None,
        }
    }

    /// Parses [`ToolCall::arguments`]. Empty text counts as `{}` because
    /// providers stream a call without parameters as no argument text at all.
    pub fn parse_arguments(&self) -> Result<serde_json::Value, serde_json::Error> {
        if self.arguments.trim().is_empty() {
            return Ok(serde_json::Value::Object(serde_json::Map::new()));
        }
        serde_json::from_str(&self.arguments)
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Text and images. For a tool result, the result itself.
    #[serde(default)]
    pub content: Vec<ContentPart>,
    /// Tool calls the assistant made in this message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For [`Role::Tool`]: the [`ToolCall::id`] this message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For [`Role::Tool`]: whether the tool failed (the content then says why).
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_error: bool,
}

impl Message {
    fn with_text(role: Role, text: impl Into<String>) -> Self {
        let text = text.into();
        Message {
            role,
            content: if text.is_empty() {
                Vec::new()
            } else {
                vec![ContentPart::Text { text }]
            },
            tool_calls: Vec::new(),
            tool_call_id: None,
            is_error: false,
        }
    }

    /// A system message.
    pub fn system(text: impl Into<String>) -> Self {
        Self::with_text(Role::System, text)
    }

    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Self::with_text(Role::User, text)
    }

    /// An assistant message with text only.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self::with_text(Role::Assistant, text)
    }

    /// An assistant message with (possibly empty) text and tool calls.
    pub fn assistant_tool_calls(text: impl Into<String>, tool_calls: Vec<ToolCall>) -> Self {
        let mut message = Self::with_text(Role::Assistant, text);
        message.tool_calls = tool_calls;
        message
    }

    /// A successful tool result answering the call `tool_call_id`.
    pub fn tool_result(tool_call_id: impl Into<String>, text: impl Into<String>) -> Self {
        let mut message = Self::with_text(Role::Tool, text);
        message.tool_call_id = Some(tool_call_id.into());
        message
    }

    /// A failed tool result answering the call `tool_call_id`; `text` says why.
    pub fn tool_error(tool_call_id: impl Into<String>, text: impl Into<String>) -> Self {
        let mut message = Self::tool_result(tool_call_id, text);
        message.is_error = true;
        message
    }

    /// Adds an image (base64 data) to the message.
    pub fn with_image(
        mut self,
        media_type: impl Into<String>,
        base64_data: impl Into<String>,
    ) -> Self {
        self.content
            .push(ContentPart::image(media_type, base64_data));
        self
    }

    /// The text parts joined with newlines (images are skipped).
    pub fn text(&self) -> String {
        joined_text(&self.content)
    }
}

/// The text parts of `parts` joined with newlines (separate parts are
/// separate paragraphs: an attachment header and a prompt must not run
/// together into one word).
pub(crate) fn joined_text(parts: &[ContentPart]) -> String {
    let mut out = String::new();
    for part in parts {
        if let ContentPart::Text { text } = part {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(text);
        }
    }
    out
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Name the model uses to call it.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: serde_json::Value,
}

impl ToolSpec {
    /// A tool description.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: serde_json::Value,
    ) -> Self {
        ToolSpec {
            name: name.into(),
            description: description.into(),
            parameters,
        }
    }
}

/// Whether and which tools the model must call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides (the providers' default when tools are given).
    Auto,
    /// The model must not call tools, although they are described.
    None,
    /// The model must call at least one tool.
    Required,
    /// The model must call this tool.
    Tool(String),
}

/// The shape the answer's text must have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text (the default).
    Text,
    /// Any single JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// The schema's name, as OpenAI requires one.
        name: String,
        /// What the schema is for, for the model.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// The JSON Schema.
        schema: serde_json::Value,
        /// Whether the provider must follow the schema exactly (OpenAI's `strict`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
    },
}

fn default_max_tokens() -> u32 {
    CompletionRequest::DEFAULT_MAX_TOKENS
}

/// What to ask a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    /// Model id as the provider knows it (aliases are resolved by
    /// [`LlmClient`](crate::LlmClient), not by drivers).
    pub model: String,
    /// System prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The conversation so far. Shared, not owned: an agent's turn sends
    /// the same few hundred messages of its window on every call, and
    /// copying each one per call was most of a long session's extra cost.
    #[serde(default)]
    pub messages: Vec<Arc<Message>>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// Upper bound on generated tokens (Anthropic requires one, so it is not optional).
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Sampling temperature; `None` leaves the provider's default (some
    /// models reject any explicit value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Whether and which tools must be called; `None` leaves the
    /// provider's default (the model decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// The shape of the answer's text; `None` is free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Texts that end the answer when the model produces them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Seed for reproducible sampling, where the provider has one (OpenAI,
    /// Gemini; Anthropic has none, so it is not sent there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// An id of the end user, for the provider's abuse monitoring (OpenAI's
    /// `user`, Anthropic's `metadata.user_id`; Gemini has no such field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl CompletionRequest {
    /// Used when a request does not say.
    pub const DEFAULT_MAX_TOKENS: u32 = 4096;

    /// A request for `model` with no messages yet.
    pub fn new(model: impl Into<String>) -> Self {
        CompletionRequest {
            model: model.into(),
            system: None,
            messages: Vec::new(),
            tools: Vec::new(),
            max_tokens: Self::DEFAULT_MAX_TOKENS,
            temperature: None,
            tool_choice: None,
            response_format: None,
            stop: Vec::new(),
            seed: None,
            user: None,
        }
    }

    /// Sets the system prompt.
    pub fn with_system(mut self, system: impl Into<String>) -> Self {
        self.system = Some(system.into());
        self
    }

    /// Appends a message.
    pub fn with_message(mut self, message: impl Into<Arc<Message>>) -> Self {
        self.messages.push(message.into());
        self
    }

    /// Appends messages, owned or shared.
    pub fn with_messages<M: Into<Arc<Message>>>(
        mut self,
        messages: impl IntoIterator<Item = M>,
    ) -> Self {
        self.messages.extend(messages.into_iter().map(Into::into));
        self
    }

    /// Appends a tool.
    pub fn with_tool(mut self, tool: ToolSpec) -> Self {
        self.tools.push(tool);
        self
    }

    /// Sets the token limit.
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    /// Sets the temperature.
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Sets which tools must be called.
    pub fn with_tool_choice(mut self, choice: ToolChoice) -> Self {
        self.tool_choice = Some(choice);
        self
    }

    /// Sets the shape of the answer.
    pub fn with_response_format(mut self, format: ResponseFormat) -> Self {
        self.response_format = Some(format);
        self
    }

    /// Adds a stop sequence.
    pub fn with_stop(mut self, stop: impl Into<String>) -> Self {
        self.stop.push(stop.into());
        self
    }

    /// Sets the sampling seed.
    pub fn with_seed(mut self, seed: i64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Sets the end-user id.
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }
}

/// Tokens used by one completion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens, including any cached prompt tokens the provider reports.
    pub input_tokens: u64,
    /// Generated tokens, including hidden reasoning tokens where reported.
    pub output_tokens: u64,
}

impl Usage {
    /// A usage record.
    pub fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Usage {
            input_tokens,
            output_tokens,
        }
    }

    /// Input plus output.
    pub fn total(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// Why the model stopped.
///
/// Serialized as a plain string: `end_turn`, `tool_use`, `max_tokens`, or the
/// provider's own reason for anything else.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StopReason {
    /// The model finished its answer.
    EndTurn,
    /// The model wants tool results before it continues.
    ToolUse,
    /// The token limit cut the answer.
    MaxTokens,
    /// Any other provider reason (content filter, stop sequence, safety...).
    Other(String),
}

impl StopReason {
    /// The string form (see the type's documentation).
    pub fn as_str(&self) -> &str {
        match self {
            StopReason::EndTurn => "end_turn",
            StopReason::ToolUse => "tool_use",
            StopReason::MaxTokens => "max_tokens",
            StopReason::Other(other) => other,
        }
    }

    /// Parses the string form; unknown strings become [`StopReason::Other`].
    pub fn parse(value: &str) -> Self {
        match value {
            "end_turn" => StopReason::EndTurn,
            "tool_use" => StopReason::ToolUse,
            "max_tokens" => StopReason::MaxTokens,
            other => StopReason::Other(other.to_string()),
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for StopReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for StopReason {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Ok(StopReason::parse(&value))
    }
}

/// A model's complete answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionResponse {
    /// The text the model wrote (may be empty when it only called tools).
    pub text: String,
    /// Tool calls, in the order the model made them.
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
    /// Tokens used.
    #[serde(default)]
    pub usage: Usage,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// The model that answered, as the provider reported it (falls back to
    /// the requested model).
    pub model: String,
}

impl CompletionResponse {
    /// The answer as an assistant [`Message`] to append to the conversation.
    pub fn to_message(&self) -> Message {
        Message::assistant_tool_calls(self.text.clone(), self.tool_calls.clone())
    }
}

/// One increment of a streamed answer.
///
/// A well-formed stream is: any number of text and tool-call events, then at
/// most one [`StreamEvent::Usage`], then exactly one [`StreamEvent::Done`],
/// after which the stream ends. Tool-call `index`es count the calls of this
/// answer from 0 in the order they started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// More answer text.
    TextDelta(String),
    /// A tool call begins.
    ToolCallStart {
        /// Position of the call in this answer.
        index: usize,
        /// The call id.
        id: String,
        /// The tool name.
        name: String,
    },
    /// More argument text for a started tool call (concatenate the fragments).
    ToolCallDelta {
        /// Position of the call in this answer.
        index: usize,
        /// The next piece of the raw JSON arguments.
        arguments_fragment: String,
    },
    /// Provider signature of a started tool call (see [`ToolCall::signature`]).
    /// Drivers send it right after the call's [`StreamEvent::ToolCallStart`],
    /// before any argument fragment.
    ToolCallSignature {
        /// Position of the call in this answer.
        index: usize,
        /// The opaque signature.
        signature: String,
    },
    /// Token totals for the whole answer.
    Usage(Usage),
    /// The answer is complete.
    Done {
        /// Why the model stopped.
        stop_reason: StopReason,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reason_round_trips_as_a_string() {
        for reason in [
            StopReason::EndTurn,
            StopReason::ToolUse,
            StopReason::MaxTokens,
            StopReason::Other("content_filter".into()),
        ] {
            let json = serde_json::to_string(&reason).expect("serialize");
            assert_eq!(json, format!("\"{}\"", reason.as_str()));
            let back: StopReason = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, reason);
        }
    }

    #[test]
    fn messages_round_trip_and_omit_defaults() {
        let message = Message::assistant_tool_calls("", vec![ToolCall::new("c1", "f", "{\"a\":")]);
        let json = serde_json::to_value(&message).expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({
                "role": "assistant",
                "content": [],
                "tool_calls": [{"id": "c1", "name": "f", "arguments": "{\"a\":"}]
            })
        );
        let back: Message = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, message);

        let error = Message::tool_error("c1", "boom").with_image("image/png", "AAAA");
        let json = serde_json::to_value(&error).expect("serialize");
        assert_eq!(json["is_error"], true);
        assert_eq!(json["tool_call_id"], "c1");
        assert_eq!(json["content"][1]["type"], "image");
        let back: Message = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, error);
    }

    #[test]
    fn arguments_parse_leniently_but_never_panic() {
        assert_eq!(
            ToolCall::new("i", "n", "")
                .parse_arguments()
                .expect("empty is {}"),
            serde_json::json!({})
        );
        assert!(
            ToolCall::new("i", "n", "{\"a\": ")
                .parse_arguments()
                .is_err()
        );
    }

    #[test]
    fn request_defaults_apply_when_deserializing() {
        let request: CompletionRequest =
            serde_json::from_value(serde_json::json!({"model": "m"})).expect("deserialize");
        assert_eq!(request.max_tokens, CompletionRequest::DEFAULT_MAX_TOKENS);
        assert!(request.messages.is_empty() && request.tools.is_empty());
    }
}
