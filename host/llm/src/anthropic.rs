//! Anthropic Messages (`POST {base_url}/v1/messages`).

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::driver::{DriverConfig, WireFormat};
use crate::error::LlmError;
use crate::sse::SseEvent;
use crate::stream::{Decoder, build_response, normalize_stop};
use crate::transport::PreparedRequest;
use crate::types::{
    CompletionRequest, CompletionResponse, ContentPart, ResponseFormat, Role, StopReason,
    StreamEvent, ToolChoice, Usage, joined_text,
};
use crate::wire::{
    arguments_object, arguments_text, count, f32_json, parse_chunk, parse_json, string,
};

/// The API version this driver speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The Anthropic Messages API.
#[derive(Debug)]
pub(crate) struct Anthropic {
    url: String,
    api_key: Option<String>,
}

impl Anthropic {
    /// The format at `config`'s endpoint.
    pub(crate) fn new(config: &DriverConfig) -> Self {
        Anthropic {
            url: format!("{}/v1/messages", config.trimmed_base_url()),
            api_key: config.api_key.clone().filter(|key| !key.is_empty()),
        }
    }
}

impl WireFormat for Anthropic {
    type Decoder = AnthropicDecoder;

    fn prepare(
        &self,
        request: &CompletionRequest,
        stream: bool,
    ) -> Result<PreparedRequest, LlmError> {
        let body = request_body(request, stream)?;
        let mut prepared = PreparedRequest::new(self.url.clone(), &body)?;
        if let Some(key) = &self.api_key {
            prepared.secret_header("x-api-key", key)?;
        }
        prepared.header("anthropic-version", ANTHROPIC_VERSION);
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

    fn decoder(provider: String) -> AnthropicDecoder {
        AnthropicDecoder::new(provider)
    }
}

fn content_blocks(parts: &[ContentPart], images: bool) -> Vec<Value> {
    parts
        .iter()
        .filter_map(|part| match part {
            // The API rejects empty text blocks.
            ContentPart::Text { text } if text.is_empty() => None,
            ContentPart::Text { text } => Some(json!({"type": "text", "text": text})),
            ContentPart::Image { media_type, data } if images => Some(json!({
                "type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": data},
            })),
            ContentPart::Image { .. } => None,
        })
        .collect()
}

/// The JSON body of a Messages request.
fn request_body(request: &CompletionRequest, stream: bool) -> Result<Value, LlmError> {
    // Anthropic has one system prompt, outside the conversation: system
    // messages found in the conversation are appended to it.
    let mut system: Vec<String> = request
        .system
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect();
    let mut messages: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for message in &request.messages {
        let (role, blocks) = match message.role {
            Role::System => {
                let text = joined_text(&message.content);
                if !text.is_empty() {
                    system.push(text);
                }
                continue;
            }
            Role::User => ("user", content_blocks(&message.content, true)),
            Role::Assistant => {
                // Images are not allowed in assistant turns.
                let mut blocks = content_blocks(&message.content, false);
                blocks.extend(message.tool_calls.iter().map(|call| {
                    json!({
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.name,
                        "input": arguments_object(&call.arguments),
                    })
                }));
                ("assistant", blocks)
            }
            Role::Tool => {
                let id = message.tool_call_id.as_deref().ok_or_else(|| {
                    LlmError::invalid("a tool result message has no tool_call_id")
                })?;
                let mut block = json!({"type": "tool_result", "tool_use_id": id});
                let has_images = message
                    .content
                    .iter()
                    .any(|p| matches!(p, ContentPart::Image { .. }));
                if has_images {
                    block["content"] = Value::Array(content_blocks(&message.content, true));
                } else {
                    let text = joined_text(&message.content);
                    if !text.is_empty() {
                        block["content"] = Value::String(text);
                    }
                }
                if message.is_error {
                    block["is_error"] = Value::Bool(true);
                }
                ("user", vec![block])
            }
        };
        if blocks.is_empty() {
            // An empty message is rejected by the API and means nothing.
            continue;
        }
        // Results of parallel tool calls must arrive in one user message,
        // and the API wants roles to alternate: merge neighbours.
        match messages.last_mut() {
            Some((last_role, last_blocks)) if *last_role == role => last_blocks.extend(blocks),
            _ => messages.push((role, blocks)),
        }
    }
    let messages: Vec<Value> = messages
        .into_iter()
        .map(|(role, mut blocks)| {
            // tool_result blocks must come first in a user message.
            blocks.sort_by_key(|block| {
                block.get("type").and_then(Value::as_str) != Some("tool_result")
            });
            json!({"role": role, "content": blocks})
        })
        .collect();

    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": messages,
    });
    if let Some(instruction) = request.response_format.as_ref().and_then(json_instruction) {
        system.push(instruction);
    }
    if !system.is_empty() {
        body["system"] = Value::String(system.join("\n\n"));
    }
    if !request.stop.is_empty() {
        body["stop_sequences"] = json!(request.stop);
    }
    if let Some(user) = &request.user {
        body["metadata"] = json!({"user_id": user});
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = f32_json(temperature);
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "name": tool.name,
                    "description": tool.description,
                    "input_schema": tool.parameters,
                })
            })
            .collect();
        body["tools"] = Value::Array(tools);
        if let Some(choice) = &request.tool_choice {
            body["tool_choice"] = match choice {
                ToolChoice::Auto => json!({"type": "auto"}),
                ToolChoice::None => json!({"type": "none"}),
                ToolChoice::Required => json!({"type": "any"}),
                ToolChoice::Tool(name) => json!({"type": "tool", "name": name}),
            };
        }
    }
    if stream {
        body["stream"] = Value::Bool(true);
    }
    Ok(body)
}

/// The Messages API has no JSON mode: a requested JSON answer becomes an
/// instruction in the system prompt, with the schema when there is one.
fn json_instruction(format: &ResponseFormat) -> Option<String> {
    const ONLY_JSON: &str =
        "Answer with a single JSON object and nothing else: no prose, no code fences.";
    match format {
        ResponseFormat::Text => None,
        ResponseFormat::JsonObject => Some(ONLY_JSON.to_string()),
        ResponseFormat::JsonSchema { schema, .. } => Some(format!(
            "{ONLY_JSON} The object must match this JSON Schema: {schema}"
        )),
    }
}

fn stop_reason(reason: Option<&str>) -> StopReason {
    match reason {
        None | Some("end_turn") => StopReason::EndTurn,
        Some("tool_use") => StopReason::ToolUse,
        Some("max_tokens") => StopReason::MaxTokens,
        Some(other) => StopReason::Other(other.to_string()),
    }
}

/// Prompt tokens: cache writes and reads are prompt tokens too.
fn input_tokens(usage: &Value) -> u64 {
    count(usage, "/input_tokens")
        + count(usage, "/cache_creation_input_tokens")
        + count(usage, "/cache_read_input_tokens")
}

fn parse_response(body: &[u8], requested_model: &str) -> Result<CompletionResponse, LlmError> {
    let json = parse_json(body)?;
    if string(&json, "/type") == Some("error") {
        return Err(LlmError::decode(format!(
            "error in a successful response: {}",
            string(&json, "/error/message").unwrap_or("no message")
        )));
    }
    let blocks = json
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| LlmError::decode("the response has no content array"))?;
    let mut events = Vec::new();
    let mut calls = 0;
    for block in blocks {
        match string(block, "/type") {
            Some("text") => {
                let text = string(block, "/text").unwrap_or_default();
                if !text.is_empty() {
                    events.push(StreamEvent::TextDelta(text.to_string()));
                }
            }
            Some("tool_use") => {
                events.push(StreamEvent::ToolCallStart {
                    index: calls,
                    id: string(block, "/id").unwrap_or_default().to_string(),
                    name: string(block, "/name").unwrap_or_default().to_string(),
                });
                events.push(StreamEvent::ToolCallDelta {
                    index: calls,
                    arguments_fragment: arguments_text(block.get("input").unwrap_or(&Value::Null)),
                });
                calls += 1;
            }
            // Thinking blocks and server-side tool blocks are not part of the answer.
            _ => {}
        }
    }
    let usage = json.get("usage").unwrap_or(&Value::Null);
    events.push(StreamEvent::Usage(Usage::new(
        input_tokens(usage),
        count(usage, "/output_tokens"),
    )));
    events.push(StreamEvent::Done {
        stop_reason: normalize_stop(stop_reason(string(&json, "/stop_reason")), calls > 0),
    });
    build_response(events, string(&json, "/model").unwrap_or(requested_model))
}

/// An `error` event's payload as a typed error, so that an "overloaded" or
/// rate-limit error arriving before any content is retried like the
/// equivalent HTTP status would be.
fn stream_error(provider: &str, payload: &Value) -> LlmError {
    let message = string(payload, "/error/message")
        .unwrap_or("no message")
        .to_string();
    match string(payload, "/error/type") {
        Some("overloaded_error") => LlmError::Http {
            provider: provider.to_string(),
            status: 529,
            message,
        },
        Some("api_error") => LlmError::Http {
            provider: provider.to_string(),
            status: 500,
            message,
        },
        Some("rate_limit_error") => LlmError::RateLimited {
            provider: provider.to_string(),
            retry_after: None,
            message,
        },
        Some(kind) => LlmError::stream(format!("{kind}: {message}")),
        None => LlmError::stream(message),
    }
}

/// Decodes the `message_start … message_stop` event sequence.
#[derive(Debug)]
pub(crate) struct AnthropicDecoder {
    provider: String,
    /// Content block index → (our tool-call index, whether arguments arrived).
    tool_blocks: HashMap<u64, (usize, bool)>,
    calls: usize,
    input_tokens: u64,
    output_tokens: u64,
    stop_reason: Option<String>,
}

impl AnthropicDecoder {
    fn new(provider: String) -> Self {
        AnthropicDecoder {
            provider,
            tool_blocks: HashMap::new(),
            calls: 0,
            input_tokens: 0,
            output_tokens: 0,
            stop_reason: None,
        }
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        out.push(StreamEvent::Usage(Usage::new(
            self.input_tokens,
            self.output_tokens,
        )));
        out.push(StreamEvent::Done {
            stop_reason: normalize_stop(stop_reason(self.stop_reason.as_deref()), self.calls > 0),
        });
    }
}

impl Decoder for AnthropicDecoder {
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        if event.data.trim().is_empty() {
            return Ok(());
        }
        let data = parse_chunk(&event.data)?;
        // The type is in both the `event:` line and the payload; the payload
        // is what the API documents as authoritative.
        let kind = string(&data, "/type")
            .or(event.event.as_deref())
            .unwrap_or_default();
        match kind {
            "message_start" => {
                let usage = data.pointer("/message/usage").unwrap_or(&Value::Null);
                self.input_tokens = input_tokens(usage);
                self.output_tokens = count(usage, "/output_tokens");
            }
            "content_block_start" => {
                let block_index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = data.get("content_block").unwrap_or(&Value::Null);
                match string(block, "/type") {
                    Some("text") => {
                        if let Some(text) = string(block, "/text").filter(|t| !t.is_empty()) {
                            out.push(StreamEvent::TextDelta(text.to_string()));
                        }
                    }
                    Some("tool_use") => {
                        let index = self.calls;
                        self.calls += 1;
                        self.tool_blocks.insert(block_index, (index, false));
                        out.push(StreamEvent::ToolCallStart {
                            index,
                            id: string(block, "/id").unwrap_or_default().to_string(),
                            name: string(block, "/name").unwrap_or_default().to_string(),
                        });
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let block_index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let delta = data.get("delta").unwrap_or(&Value::Null);
                match string(delta, "/type") {
                    Some("text_delta") => {
                        if let Some(text) = string(delta, "/text").filter(|t| !t.is_empty()) {
                            out.push(StreamEvent::TextDelta(text.to_string()));
                        }
                    }
                    Some("input_json_delta") => {
                        let Some((index, has_arguments)) = self.tool_blocks.get_mut(&block_index)
                        else {
                            return Err(LlmError::stream(format!(
                                "arguments for content block {block_index}, which is not a tool call"
                            )));
                        };
                        let fragment = string(delta, "/partial_json").unwrap_or_default();
                        if !fragment.is_empty() {
                            *has_arguments = true;
                            out.push(StreamEvent::ToolCallDelta {
                                index: *index,
                                arguments_fragment: fragment.to_string(),
                            });
                        }
                    }
                    // thinking, signatures, citations: not part of the answer
                    _ => {}
                }
            }
            "content_block_stop" => {
                let block_index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                if let Some((index, false)) = self.tool_blocks.get(&block_index).copied() {
                    // A call without parameters streams no argument text;
                    // give consumers the valid JSON it stands for.
                    out.push(StreamEvent::ToolCallDelta {
                        index,
                        arguments_fragment: "{}".to_string(),
                    });
                    self.tool_blocks.insert(block_index, (index, true));
                }
            }
            "message_delta" => {
                if let Some(reason) = string(&data, "/delta/stop_reason") {
                    self.stop_reason = Some(reason.to_string());
                }
                if let Some(usage) = data.get("usage") {
                    if let Some(output) = usage.get("output_tokens").and_then(Value::as_u64) {
                        self.output_tokens = output;
                    }
                    if usage.get("input_tokens").and_then(Value::as_u64).is_some() {
                        self.input_tokens = input_tokens(usage);
                    }
                }
            }
            "message_stop" => self.finish(out),
            "error" => return Err(stream_error(&self.provider, &data)),
            // ping, and event types added after this was written
            _ => {}
        }
        Ok(())
    }

    fn on_eof(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        if self.stop_reason.is_some() {
            self.finish(out);
            return Ok(());
        }
        Err(LlmError::stream(
            "the stream ended before the model finished (no message_stop)",
        ))
    }
}
