//! OpenAI Chat Completions, the format most providers speak (OpenAI, Groq,
//! OpenRouter, Together, DeepSeek, and local servers: Ollama, vLLM, LM Studio).

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::catalog::MaxTokensField;
use crate::driver::{DriverConfig, WireFormat};
use crate::error::LlmError;
use crate::sse::SseEvent;
use crate::stream::{Decoder, build_response, normalize_stop, synthesize_call_id};
use crate::transport::PreparedRequest;
use crate::types::{
    CompletionRequest, CompletionResponse, ContentPart, Message, ResponseFormat, Role, StopReason,
    StreamEvent, ToolChoice, Usage, joined_text,
};
use crate::wire::{arguments_text, f32_json, parse_chunk, parse_json, string, usage};

/// OpenAI-compatible Chat Completions (`POST {base_url}/chat/completions`).
#[derive(Debug)]
pub(crate) struct OpenAi {
    url: String,
    api_key: Option<String>,
    max_tokens_field: MaxTokensField,
}

impl OpenAi {
    /// The format at `config`'s endpoint. The key is optional: local servers need none.
    pub(crate) fn new(config: &DriverConfig) -> Self {
        OpenAi {
            url: format!("{}/chat/completions", config.trimmed_base_url()),
            api_key: config.api_key.clone().filter(|key| !key.is_empty()),
            max_tokens_field: config.max_tokens_field,
        }
    }
}

impl WireFormat for OpenAi {
    type Decoder = OpenAiDecoder;

    fn prepare(
        &self,
        request: &CompletionRequest,
        stream: bool,
    ) -> Result<PreparedRequest, LlmError> {
        let body = request_body(request, stream, self.max_tokens_field)?;
        let mut prepared = PreparedRequest::new(self.url.clone(), &body)?;
        if let Some(key) = &self.api_key {
            prepared.secret_header("authorization", &format!("Bearer {key}"))?;
        }
        if stream {
            prepared.header("accept", "text/event-stream");
        }
        Ok(prepared)
    }

    fn parse(
        &self,
        _provider: &str,
        body: &[u8],
        model: &str,
    ) -> Result<CompletionResponse, LlmError> {
        parse_response(body, model)
    }

    fn decoder(provider: String) -> OpenAiDecoder {
        OpenAiDecoder::new(provider)
    }
}

/// The JSON body of a Chat Completions request. Messages and tools are
/// written straight from the request (borrowed, not copied into a
/// `serde_json::Value` tree first): a turn sends its whole window each
/// call, and building that tree was most of the cost of a long window.
#[derive(Serialize)]
struct RequestBody<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    stream: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    /// The optional fields, as few and small as they are.
    #[serde(flatten)]
    options: Map<String, Value>,
}

/// One message as Chat Completions takes it.
#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: WireContent<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

/// A message's content: text (the form every compatible server accepts),
/// parts (only needed for images), or nothing (an assistant message that
/// only calls tools).
#[derive(Serialize)]
#[serde(untagged)]
enum WireContent<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<Value>),
    Null,
}

#[derive(Serialize)]
struct WireCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionCall<'a>,
}

#[derive(Serialize)]
struct WireFunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

fn request_body(
    request: &CompletionRequest,
    stream: bool,
    max_tokens_field: MaxTokensField,
) -> Result<RequestBody<'_>, LlmError> {
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = request.system.as_deref().filter(|s| !s.is_empty()) {
        messages.push(WireMessage {
            role: "system",
            content: WireContent::Text(Cow::Borrowed(system)),
            tool_calls: Vec::new(),
            tool_call_id: None,
        });
    }
    for message in &request.messages {
        messages.push(encode_message(message)?);
    }
    let mut options = Map::new();
    let field = match max_tokens_field {
        MaxTokensField::MaxTokens => "max_tokens",
        MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
    };
    options.insert(field.into(), json!(request.max_tokens));
    if let Some(temperature) = request.temperature {
        options.insert("temperature".into(), f32_json(temperature));
    }
    let tools: Vec<WireTool<'_>> = request
        .tools
        .iter()
        .map(|tool| WireTool {
            kind: "function",
            function: WireFunction {
                name: &tool.name,
                description: &tool.description,
                parameters: &tool.parameters,
            },
        })
        .collect();
    if !tools.is_empty() {
        options.insert(
            "tool_choice".into(),
            tool_choice(request.tool_choice.as_ref()),
        );
    }
    if let Some(format) = &request.response_format {
        options.insert("response_format".into(), response_format(format));
    }
    if !request.stop.is_empty() {
        options.insert("stop".into(), json!(request.stop));
    }
    if let Some(seed) = request.seed {
        options.insert("seed".into(), json!(seed));
    }
    if let Some(user) = &request.user {
        options.insert("user".into(), json!(user));
    }
    if stream {
        // Without this, streamed answers carry no token counts at all.
        options.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(RequestBody {
        model: &request.model,
        messages,
        stream,
        tools,
        options,
    })
}

/// `tool_choice`; without one, `auto` (what the API assumes anyway, said
/// explicitly because some compatible servers default to `none`).
fn tool_choice(choice: Option<&ToolChoice>) -> Value {
    match choice {
        None | Some(ToolChoice::Auto) => json!("auto"),
        Some(ToolChoice::None) => json!("none"),
        Some(ToolChoice::Required) => json!("required"),
        Some(ToolChoice::Tool(name)) => json!({"type": "function", "function": {"name": name}}),
    }
}

fn response_format(format: &ResponseFormat) -> Value {
    match format {
        ResponseFormat::Text => json!({"type": "text"}),
        ResponseFormat::JsonObject => json!({"type": "json_object"}),
        ResponseFormat::JsonSchema {
            name,
            description,
            schema,
            strict,
        } => {
            let mut inner = json!({"name": name, "schema": schema});
            if let Some(description) = description {
                inner["description"] = json!(description);
            }
            if let Some(strict) = strict {
                inner["strict"] = json!(strict);
            }
            json!({"type": "json_schema", "json_schema": inner})
        }
    }
}

/// The text of `parts`, borrowed when it is one part (the usual case).
fn text_of(parts: &[ContentPart]) -> Cow<'_, str> {
    match parts {
        [ContentPart::Text { text }] => Cow::Borrowed(text),
        _ => Cow::Owned(joined_text(parts)),
    }
}

fn encode_message(message: &Message) -> Result<WireMessage<'_>, LlmError> {
    let text = text_of(&message.content);
    let mut wire = WireMessage {
        role: "user",
        content: WireContent::Null,
        tool_calls: Vec::new(),
        tool_call_id: None,
    };
    match message.role {
        Role::System => {
            wire.role = "system";
            wire.content = WireContent::Text(text);
        }
        Role::User => {
            let has_images = message
                .content
                .iter()
                .any(|p| matches!(p, ContentPart::Image { .. }));
            wire.content = if has_images {
                WireContent::Parts(
                    message
                        .content
                        .iter()
                        .map(|part| match part {
                            ContentPart::Text { text } => json!({"type": "text", "text": text}),
                            ContentPart::Image { media_type, data } => json!({
                                "type": "image_url",
                                "image_url": {"url": format!("data:{media_type};base64,{data}")}
                            }),
                        })
                        .collect(),
                )
            } else {
                // A plain string is what every compatible server accepts;
                // the array form is only needed for images.
                WireContent::Text(text)
            };
        }
        Role::Assistant => {
            wire.role = "assistant";
            // Only a message that calls tools may have no content.
            if !text.is_empty() || message.tool_calls.is_empty() {
                wire.content = WireContent::Text(text);
            }
            wire.tool_calls = message
                .tool_calls
                .iter()
                .map(|call| WireCall {
                    id: &call.id,
                    kind: "function",
                    function: WireFunctionCall {
                        name: &call.name,
                        arguments: &call.arguments,
                    },
                })
                .collect();
        }
        Role::Tool => {
            let id = message
                .tool_call_id
                .as_deref()
                .ok_or_else(|| LlmError::invalid("a tool result message has no tool_call_id"))?;
            wire.role = "tool";
            wire.tool_call_id = Some(id);
            // The format has no error flag: say it in the content so the
            // model does not mistake an error message for a result.
            wire.content = WireContent::Text(if message.is_error {
                Cow::Owned(format!("Error: {text}"))
            } else {
                text
            });
        }
    }
    Ok(wire)
}

fn stop_reason(finish_reason: Option<&str>) -> StopReason {
    match finish_reason {
        None | Some("stop") => StopReason::EndTurn,
        Some("tool_calls") | Some("function_call") => StopReason::ToolUse,
        Some("length") => StopReason::MaxTokens,
        Some(other) => StopReason::Other(other.to_string()),
    }
}

fn parse_usage(value: &Value) -> Usage {
    usage(value, &["/prompt_tokens"], &["/completion_tokens"])
}

/// The choice of index 0 (the only one we ask for).
fn first_choice(chunk: &Value) -> Option<&Value> {
    let choices = chunk.get("choices")?.as_array()?;
    choices
        .iter()
        .find(|choice| choice.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
}

fn text_content(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        // Some servers answer with the array-of-parts form.
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// Turns a blocking response into events, then assembles them.
fn parse_response(body: &[u8], requested_model: &str) -> Result<CompletionResponse, LlmError> {
    let json = parse_json(body)?;
    let choice =
        first_choice(&json).ok_or_else(|| LlmError::decode("the response has no choices"))?;
    let message = choice.get("message").unwrap_or(&Value::Null);
    let mut events = Vec::new();
    let text = text_content(message.get("content"));
    if !text.is_empty() {
        events.push(StreamEvent::TextDelta(text));
    }
    let calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (index, call) in calls.iter().enumerate() {
        let id = string(call, "/id")
            .filter(|id| !id.is_empty())
            .map_or_else(synthesize_call_id, str::to_string);
        events.push(StreamEvent::ToolCallStart {
            index,
            id,
            name: string(call, "/function/name")
                .unwrap_or_default()
                .to_string(),
        });
        events.push(StreamEvent::ToolCallDelta {
            index,
            arguments_fragment: arguments_text(
                call.pointer("/function/arguments").unwrap_or(&Value::Null),
            ),
        });
    }
    if let Some(usage) = json.get("usage").filter(|u| u.is_object()) {
        events.push(StreamEvent::Usage(parse_usage(usage)));
    }
    events.push(StreamEvent::Done {
        stop_reason: normalize_stop(
            stop_reason(string(choice, "/finish_reason")),
            !calls.is_empty(),
        ),
    });
    build_response(events, string(&json, "/model").unwrap_or(requested_model))
}

/// An error object in a stream chunk, typed like the HTTP status it stands
/// for so that one arriving before any content is retried.
fn chunk_error(provider: &str, error: &Value) -> LlmError {
    let message = string(error, "/message")
        .map(str::to_string)
        .unwrap_or_else(|| error.to_string());
    let kind = string(error, "/type").or_else(|| string(error, "/code"));
    match kind {
        Some("server_error") | Some("internal_error") => LlmError::Http {
            provider: provider.to_string(),
            status: 500,
            message,
        },
        Some("rate_limit_exceeded") | Some("rate_limit_error") => LlmError::RateLimited {
            provider: provider.to_string(),
            retry_after: None,
            message,
        },
        _ => LlmError::stream(format!("the provider reported an error: {message}")),
    }
}

/// Decodes `data: {chunk}` lines, `data: [DONE]` last.
#[derive(Debug)]
pub(crate) struct OpenAiDecoder {
    provider: String,
    /// Ids of the calls started so far; the position is our index.
    calls: Vec<String>,
    /// Provider index → our index. Kept separate because some servers
    /// reuse index 0 for every parallel call and tell them apart by id.
    by_provider_index: HashMap<u64, usize>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

impl OpenAiDecoder {
    fn new(provider: String) -> Self {
        OpenAiDecoder {
            provider,
            calls: Vec::new(),
            by_provider_index: HashMap::new(),
            finish_reason: None,
            usage: None,
        }
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(usage) = self.usage.take() {
            out.push(StreamEvent::Usage(usage));
        }
        out.push(StreamEvent::Done {
            stop_reason: normalize_stop(
                stop_reason(self.finish_reason.as_deref()),
                !self.calls.is_empty(),
            ),
        });
    }

    fn tool_call(&mut self, call: &Value, out: &mut Vec<StreamEvent>) {
        let provider_index = call.get("index").and_then(Value::as_u64);
        let id = string(call, "/id").filter(|id| !id.is_empty());
        let known = match provider_index {
            Some(index) => self.by_provider_index.get(&index).copied(),
            None => self.calls.len().checked_sub(1),
        };
        let index = match known {
            Some(index)
                if id.is_none_or(|id| self.calls.get(index).is_some_and(|known| known == id)) =>
            {
                index
            }
            _ => {
                let index = self.calls.len();
                let id = id.map_or_else(synthesize_call_id, str::to_string);
                self.calls.push(id.clone());
                if let Some(provider_index) = provider_index {
                    self.by_provider_index.insert(provider_index, index);
                }
                out.push(StreamEvent::ToolCallStart {
                    index,
                    id,
                    name: string(call, "/function/name")
                        .unwrap_or_default()
                        .to_string(),
                });
                index
            }
        };
        let fragment = arguments_text(call.pointer("/function/arguments").unwrap_or(&Value::Null));
        if !fragment.is_empty() {
            out.push(StreamEvent::ToolCallDelta {
                index,
                arguments_fragment: fragment,
            });
        }
    }
}

impl Decoder for OpenAiDecoder {
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        if data == "[DONE]" {
            self.finish(out);
            return Ok(());
        }
        let chunk = parse_chunk(data)?;
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            return Err(chunk_error(&self.provider, error));
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(parse_usage(usage));
        }
        let Some(choice) = first_choice(&chunk) else {
            return Ok(());
        };
        if let Some(delta) = choice.get("delta") {
            if let Some(text) = delta.get("content").and_then(Value::as_str)
                && !text.is_empty()
            {
                out.push(StreamEvent::TextDelta(text.to_string()));
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for call in calls {
                    self.tool_call(call, out);
                }
            }
        }
        if let Some(reason) = string(choice, "/finish_reason") {
            self.finish_reason = Some(reason.to_string());
        }
        Ok(())
    }

    fn on_eof(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        // Some servers end the body after the finish_reason without [DONE];
        // the answer is complete, so accept it. Without a finish_reason the
        // stream was cut.
        if self.finish_reason.is_some() {
            self.finish(out);
            return Ok(());
        }
        Err(LlmError::stream(
            "the stream ended before the model finished (no finish_reason, no [DONE])",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ToolCall;

    #[test]
    fn an_assistant_message_that_only_calls_tools_has_null_content() {
        let message =
            Message::assistant_tool_calls("", vec![ToolCall::new("c1", "count", r#"{"n":1}"#)]);
        let json = serde_json::to_value(encode_message(&message).unwrap()).unwrap();
        assert_eq!(
            json,
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "count", "arguments": "{\"n\":1}"}}
            ]})
        );
    }
}
