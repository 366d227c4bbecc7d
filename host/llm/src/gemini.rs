//! Google Gemini (`POST {base_url}/v1beta/models/{model}:generateContent`,
//! `:streamGenerateContent?alt=sse` for streaming).
//!
//! A blocking answer and a streamed chunk have the same shape, so both go
//! through the same decoder.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::driver::{DriverConfig, WireFormat};
use crate::error::LlmError;
use crate::sse::SseEvent;
use crate::stream::{Decoder, build_response, normalize_stop, synthesize_call_id};
use crate::transport::PreparedRequest;
use crate::types::{
    CompletionRequest, CompletionResponse, ContentPart, ResponseFormat, Role, StopReason,
    StreamEvent, ToolChoice, Usage, joined_text,
};
use crate::wire::{
    arguments_object, arguments_text, count, f32_json, parse_chunk, parse_json, string,
};

/// The Gemini API.
#[derive(Debug)]
pub(crate) struct Gemini {
    base_url: String,
    api_key: Option<String>,
}

impl Gemini {
    /// The format at `config`'s endpoint.
    pub(crate) fn new(config: &DriverConfig) -> Self {
        Gemini {
            base_url: config.trimmed_base_url(),
            api_key: config.api_key.clone().filter(|key| !key.is_empty()),
        }
    }
}

impl WireFormat for Gemini {
    type Decoder = GeminiDecoder;

    fn prepare(
        &self,
        request: &CompletionRequest,
        stream: bool,
    ) -> Result<PreparedRequest, LlmError> {
        let model = request
            .model
            .strip_prefix("models/")
            .unwrap_or(&request.model);
        // The model is part of the URL path: refuse anything that would
        // change the URL's meaning rather than escaping it into a model
        // name no one has.
        if model.is_empty()
            || !model
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(LlmError::invalid(format!(
                "{model:?} is not a valid Gemini model name"
            )));
        }
        let url = if stream {
            format!(
                "{}/v1beta/models/{model}:streamGenerateContent?alt=sse",
                self.base_url
            )
        } else {
            format!("{}/v1beta/models/{model}:generateContent", self.base_url)
        };
        let body = request_body(request)?;
        let mut prepared = PreparedRequest::new(url, &body)?;
        if let Some(key) = &self.api_key {
            // A header rather than the `?key=` query parameter, which would
            // end up in access logs and error messages.
            prepared.secret_header("x-goog-api-key", key)?;
        }
        Ok(prepared)
    }

    fn parse(
        &self,
        provider: &str,
        body: &[u8],
        model: &str,
    ) -> Result<CompletionResponse, LlmError> {
        parse_response(provider, body, model)
    }

    fn decoder(provider: String) -> GeminiDecoder {
        GeminiDecoder::new(provider)
    }
}

fn parts(content: &[ContentPart]) -> Vec<Value> {
    content
        .iter()
        .filter_map(|part| match part {
            ContentPart::Text { text } if text.is_empty() => None,
            ContentPart::Text { text } => Some(json!({"text": text})),
            ContentPart::Image { media_type, data } => Some(json!({
                "inlineData": {"mimeType": media_type, "data": data}
            })),
        })
        .collect()
}

/// The JSON body of a generateContent request.
fn request_body(request: &CompletionRequest) -> Result<Value, LlmError> {
    let mut system: Vec<String> = request
        .system
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect();
    // Gemini matches function responses to calls by name, and has no ids;
    // ours are remembered from the assistant turns to find the name.
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for message in &request.messages {
        let (role, message_parts) = match message.role {
            Role::System => {
                let text = joined_text(&message.content);
                if !text.is_empty() {
                    system.push(text);
                }
                continue;
            }
            Role::User => ("user", parts(&message.content)),
            Role::Assistant => {
                let mut model_parts: Vec<Value> = message
                    .content
                    .iter()
                    .filter_map(|part| match part {
                        ContentPart::Text { text } if !text.is_empty() => {
                            Some(json!({"text": text}))
                        }
                        _ => None,
                    })
                    .collect();
                for call in &message.tool_calls {
                    call_names.insert(&call.id, &call.name);
                    let mut part = json!({
                        "functionCall": {"name": call.name, "args": arguments_object(&call.arguments)}
                    });
                    if let Some(signature) = &call.signature {
                        part["thoughtSignature"] = Value::String(signature.clone());
                    }
                    model_parts.push(part);
                }
                ("model", model_parts)
            }
            Role::Tool => {
                let id = message.tool_call_id.as_deref().ok_or_else(|| {
                    LlmError::invalid("a tool result message has no tool_call_id")
                })?;
                let name = call_names.get(id).ok_or_else(|| {
                    LlmError::invalid(format!(
                        "tool result for call {id:?}, which no earlier assistant message made (Gemini needs the tool name)"
                    ))
                })?;
                // "output" and "error" are the keys Gemini documents for a
                // function's result and its failure.
                let key = if message.is_error { "error" } else { "output" };
                let part = json!({
                    "functionResponse": {"name": name, "response": {key: joined_text(&message.content)}}
                });
                ("user", vec![part])
            }
        };
        if message_parts.is_empty() {
            continue;
        }
        // Responses to parallel calls belong in one turn; neighbouring turns
        // of the same role are merged.
        match contents.last_mut() {
            Some((last_role, last_parts)) if *last_role == role => last_parts.extend(message_parts),
            _ => contents.push((role, message_parts)),
        }
    }
    let contents: Vec<Value> = contents
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();

    let mut generation = json!({"maxOutputTokens": request.max_tokens});
    if let Some(temperature) = request.temperature {
        generation["temperature"] = f32_json(temperature);
    }
    if !request.stop.is_empty() {
        generation["stopSequences"] = json!(request.stop);
    }
    if let Some(seed) = request.seed {
        generation["seed"] = json!(seed);
    }
    match &request.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            generation["responseMimeType"] = json!("application/json");
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            generation["responseMimeType"] = json!("application/json");
            // Like `parametersJsonSchema`: plain JSON Schema, not the
            // OpenAPI subset `responseSchema` takes.
            generation["responseJsonSchema"] = schema.clone();
        }
    }
    let mut body = json!({"contents": contents, "generationConfig": generation});
    if !system.is_empty() {
        body["systemInstruction"] = json!({"parts": [{"text": system.join("\n\n")}]});
    }
    if !request.tools.is_empty() {
        let declarations: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                // `parametersJsonSchema` takes JSON Schema as tools write it;
                // `parameters` only takes an OpenAPI subset and rejects
                // common keywords such as `additionalProperties`.
                json!({
                    "name": tool.name,
                    "description": tool.description,
                    "parametersJsonSchema": tool.parameters,
                })
            })
            .collect();
        body["tools"] = json!([{"functionDeclarations": declarations}]);
        if let Some(choice) = &request.tool_choice {
            let config = match choice {
                ToolChoice::Auto => json!({"mode": "AUTO"}),
                ToolChoice::None => json!({"mode": "NONE"}),
                ToolChoice::Required => json!({"mode": "ANY"}),
                ToolChoice::Tool(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
            };
            body["toolConfig"] = json!({"functionCallingConfig": config});
        }
    }
    Ok(body)
}

fn parse_response(
    provider: &str,
    body: &[u8],
    requested_model: &str,
) -> Result<CompletionResponse, LlmError> {
    let json = parse_json(body)?;
    let mut decoder = GeminiDecoder::new(provider.to_string());
    let mut events = Vec::new();
    decoder.chunk(&json, &mut events)?;
    decoder.on_eof(&mut events)?;
    build_response(
        events,
        string(&json, "/modelVersion").unwrap_or(requested_model),
    )
}

fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "STOP" => StopReason::EndTurn,
        "MAX_TOKENS" => StopReason::MaxTokens,
        other => StopReason::Other(other.to_string()),
    }
}

/// An error object in a stream chunk, typed like the HTTP status it stands for.
fn chunk_error(provider: &str, error: &Value) -> LlmError {
    let message = string(error, "/message")
        .unwrap_or("no message")
        .to_string();
    match string(error, "/status") {
        Some("RESOURCE_EXHAUSTED") => LlmError::RateLimited {
            provider: provider.to_string(),
            retry_after: None,
            message,
        },
        Some("UNAVAILABLE") | Some("INTERNAL") => LlmError::Http {
            provider: provider.to_string(),
            status: error
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(503),
            message,
        },
        _ => LlmError::stream(format!("the provider reported an error: {message}")),
    }
}

/// Decodes `GenerateContentResponse` chunks (one per SSE event; the body
/// simply ends after the chunk carrying `finishReason`).
#[derive(Debug)]
pub(crate) struct GeminiDecoder {
    provider: String,
    calls: usize,
    usage: Option<Usage>,
    finish_reason: Option<StopReason>,
}

impl GeminiDecoder {
    fn new(provider: String) -> Self {
        GeminiDecoder {
            provider,
            calls: 0,
            usage: None,
            finish_reason: None,
        }
    }

    fn chunk(&mut self, chunk: &Value, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        if let Some(error) = chunk.get("error") {
            return Err(chunk_error(&self.provider, error));
        }
        if let Some(usage) = chunk.get("usageMetadata") {
            // Counts are cumulative: the last chunk's are the totals.
            // Thinking tokens are billed as output.
            self.usage = Some(Usage::new(
                count(usage, "/promptTokenCount"),
                count(usage, "/candidatesTokenCount") + count(usage, "/thoughtsTokenCount"),
            ));
        }
        if let Some(reason) = string(chunk, "/promptFeedback/blockReason") {
            // The prompt itself was refused: there are no candidates.
            self.finish_reason = Some(StopReason::Other(format!("blocked: {reason}")));
        }
        let Some(candidate) = chunk.pointer("/candidates/0") else {
            return Ok(());
        };
        let candidate_parts = candidate
            .pointer("/content/parts")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for part in candidate_parts {
            if let Some(call) = part.get("functionCall") {
                let index = self.calls;
                self.calls += 1;
                let id = string(call, "/id")
                    .filter(|id| !id.is_empty())
                    .map_or_else(synthesize_call_id, str::to_string);
                out.push(StreamEvent::ToolCallStart {
                    index,
                    id,
                    name: string(call, "/name").unwrap_or_default().to_string(),
                });
                // The signature right after the start, before the
                // arguments: a consumer that must show the call's identity
                // with its first fragment (the OpenAI-compatible API puts
                // the signature in the id) then has it in time.
                if let Some(signature) = string(part, "/thoughtSignature") {
                    out.push(StreamEvent::ToolCallSignature {
                        index,
                        signature: signature.to_string(),
                    });
                }
                let arguments = match call.get("args") {
                    None | Some(Value::Null) => "{}".to_string(),
                    Some(args) => arguments_text(args),
                };
                out.push(StreamEvent::ToolCallDelta {
                    index,
                    arguments_fragment: arguments,
                });
            } else if let Some(text) = string(part, "/text") {
                // Thought summaries are not part of the answer.
                let thought = part
                    .get("thought")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if !thought && !text.is_empty() {
                    out.push(StreamEvent::TextDelta(text.to_string()));
                }
            }
        }
        if let Some(reason) = string(candidate, "/finishReason") {
            self.finish_reason = Some(stop_reason(reason));
        }
        Ok(())
    }
}

impl Decoder for GeminiDecoder {
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        if event.data.trim().is_empty() {
            return Ok(());
        }
        let chunk = parse_chunk(&event.data)?;
        self.chunk(&chunk, out)
    }

    fn on_eof(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        let Some(reason) = self.finish_reason.take() else {
            return Err(LlmError::stream(
                "the stream ended before the model finished (no finishReason)",
            ));
        };
        if let Some(usage) = self.usage.take() {
            out.push(StreamEvent::Usage(usage));
        }
        out.push(StreamEvent::Done {
            stop_reason: normalize_stop(reason, self.calls > 0),
        });
        Ok(())
    }
}
