//! Reading a Chat Completions request into a [`CompletionRequest`].
//!
//! The body is walked by hand rather than deserialized into structs so that
//! every refusal names the parameter at fault the way OpenAI does
//! (`tools[0].function.name`, `messages[3].tool_call_id`): clients show that
//! `param` to their users. Fields this API does not use are ignored, as
//! OpenAI's own clients send many.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::split_call_id;
use crate::types::{
    CompletionRequest, ContentPart, Message, ResponseFormat, ToolCall, ToolChoice, ToolSpec,
};

/// Why a request was refused; the route answers it as a 400 in OpenAI's
/// error shape with [`ChatError::param`] and [`ChatError::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// The body is not a JSON object.
    #[error("invalid request body: {0}")]
    Body(String),
    /// A required parameter is absent.
    #[error("Missing required parameter: '{param}'.")]
    Missing {
        /// Path of the parameter.
        param: String,
    },
    /// A parameter has the wrong JSON type.
    #[error("Invalid type for '{param}': expected {expected}.")]
    Type {
        /// Path of the parameter.
        param: String,
        /// What was expected, in words.
        expected: &'static str,
    },
    /// A parameter has a value this API does not accept.
    #[error("Invalid value for '{param}': {reason}")]
    Value {
        /// Path of the parameter.
        param: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `role: "tool"` message answers no call of the assistant message
    /// before it (or one already answered).
    #[error(
        "Invalid parameter: messages with role 'tool' must be a response to a preceding message with 'tool_calls'; '{param}' is '{id}', which no preceding tool call has (or which was already answered)."
    )]
    UnknownToolCall {
        /// Path of the `tool_call_id`.
        param: String,
        /// The id it names.
        id: String,
    },
    /// An assistant message with `tool_calls` is not followed by a tool
    /// message for each call.
    #[error(
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
        ids.join(", ")
    )]
    UnansweredToolCalls {
        /// Path of the assistant message.
        param: String,
        /// The ids without results.
        ids: Vec<String>,
    },
}

impl ChatError {
    /// The parameter at fault, as OpenAI names it.
    pub fn param(&self) -> Option<&str> {
        match self {
            ChatError::Body(_) => None,
            ChatError::Missing { param }
            | ChatError::Type { param, .. }
            | ChatError::Value { param, .. }
            | ChatError::UnknownToolCall { param, .. }
            | ChatError::UnansweredToolCalls { param, .. } => Some(param),
        }
    }

    /// OpenAI's machine-readable error code.
    pub fn code(&self) -> &'static str {
        match self {
            ChatError::Body(_) => "invalid_body",
            ChatError::Missing { .. } => "missing_required_parameter",
            ChatError::Type { .. } => "invalid_type",
            ChatError::Value { .. } => "invalid_value",
            ChatError::UnknownToolCall { .. } => "invalid_tool_call_id",
            ChatError::UnansweredToolCalls { .. } => "missing_tool_results",
        }
    }

    fn value(param: impl Into<String>, reason: impl Into<String>) -> Self {
        ChatError::Value {
            param: param.into(),
            reason: reason.into(),
        }
    }

    fn expected(param: impl Into<String>, expected: &'static str) -> Self {
        ChatError::Type {
            param: param.into(),
            expected,
        }
    }
}

/// A Chat Completions request, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The `model` field as sent: an agent or a catalog model, for the
    /// caller to resolve.
    pub model: String,
    /// Whether chunks were asked for.
    pub stream: bool,
    /// How many answers (`choices`) were asked for; at least 1.
    pub n: u32,
    /// Everything else, ready for a driver. Its `model` is the `model`
    /// field as sent, to be replaced by the resolved provider model.
    pub completion: CompletionRequest,
}

/// Reads and checks a request body.
pub fn parse_request(body: &[u8]) -> Result<ChatRequest, ChatError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ChatError::Body(e.to_string()))?;
    let Value::Object(body) = value else {
        return Err(ChatError::Body("expected a JSON object".into()));
    };
    let model = match body.get("model") {
        None | Some(Value::Null) => {
            return Err(ChatError::Missing {
                param: "model".into(),
            });
        }
        Some(Value::String(model)) => model.clone(),
        Some(_) => return Err(ChatError::expected("model", "a string")),
    };
    let mut completion = CompletionRequest::new(model.clone());
    let tools = tools(&body)?;
    completion.tool_choice = tool_choice(&body, &tools)?;
    completion.tools = tools;
    let (system, messages) = messages(&body)?;
    if !system.is_empty() {
        completion.system = Some(system.join("\n\n"));
    }
    completion.messages = messages.into_iter().map(Arc::new).collect();
    if let Some(max) =
        optional_u32(&body, "max_completion_tokens")?.or(optional_u32(&body, "max_tokens")?)
    {
        if max == 0 {
            return Err(ChatError::value("max_tokens", "must be at least 1"));
        }
        completion.max_tokens = max;
    }
    completion.temperature = match body.get("temperature") {
        None | Some(Value::Null) => None,
        Some(Value::Number(number)) => number.as_f64().map(|t| t as f32),
        Some(_) => return Err(ChatError::expected("temperature", "a number")),
    };
    completion.response_format = response_format(&body)?;
    completion.stop = stop(&body)?;
    completion.seed = match body.get("seed") {
        None | Some(Value::Null) => None,
        Some(seed) => Some(
            seed.as_i64()
                .ok_or_else(|| ChatError::expected("seed", "an integer"))?,
        ),
    };
    completion.user = match body.get("user") {
        None | Some(Value::Null) => None,
        Some(Value::String(user)) => Some(user.clone()),
        Some(_) => return Err(ChatError::expected("user", "a string")),
    };
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(stream)) => *stream,
        Some(_) => return Err(ChatError::expected("stream", "a boolean")),
    };
    let n = optional_u32(&body, "n")?.unwrap_or(1);
    if !(1..=MAX_CHOICES).contains(&n) {
        return Err(ChatError::value(
            "n",
            format!("must be between 1 and {MAX_CHOICES}"),
        ));
    }
    Ok(ChatRequest {
        model,
        stream,
        n,
        completion,
    })
}

/// The most answers one request may ask for (OpenAI's limit).
const MAX_CHOICES: u32 = 128;

fn optional_u32(body: &Map<String, Value>, key: &str) -> Result<Option<u32>, ChatError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .map(Some)
            .ok_or_else(|| ChatError::expected(key, "a non-negative integer")),
    }
}

fn string_field<'a>(
    object: &'a Value,
    key: &str,
    param: &str,
) -> Result<Option<&'a str>, ChatError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ChatError::expected(format!("{param}.{key}"), "a string")),
    }
}

/// OpenAI's rule for function and schema names; Anthropic's and Gemini's
/// are no looser, so a name passing here passes there.
fn check_name(name: &str, param: &str) -> Result<(), ChatError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(ChatError::value(
            param,
            format!("'{name}' does not match '^[a-zA-Z0-9_-]{{1,64}}$'."),
        ))
    }
}

fn tools(body: &Map<String, Value>) -> Result<Vec<ToolSpec>, ChatError> {
    let list = match body.get("tools") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(ChatError::expected("tools", "an array")),
    };
    let mut seen = BTreeSet::new();
    let mut specs = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        let at = format!("tools[{i}]");
        if !tool.is_object() {
            return Err(ChatError::expected(at, "an object"));
        }
        match string_field(tool, "type", &at)? {
            Some("function") => {}
            Some(other) => {
                return Err(ChatError::value(
                    format!("{at}.type"),
                    format!("'{other}' is not supported; the only tool type is 'function'."),
                ));
            }
            None => {
                return Err(ChatError::Missing {
                    param: format!("{at}.type"),
                });
            }
        }
        let function = match tool.get("function") {
            Some(function @ Value::Object(_)) => function,
            None | Some(Value::Null) => {
                return Err(ChatError::Missing {
                    param: format!("{at}.function"),
                });
            }
            Some(_) => return Err(ChatError::expected(format!("{at}.function"), "an object")),
        };
        let at = format!("{at}.function");
        let name = string_field(function, "name", &at)?.ok_or_else(|| ChatError::Missing {
            param: format!("{at}.name"),
        })?;
        check_name(name, &format!("{at}.name"))?;
        if !seen.insert(name.to_string()) {
            return Err(ChatError::value(
                format!("{at}.name"),
                format!("the function name '{name}' is used twice."),
            ));
        }
        let description = string_field(function, "description", &at)?.unwrap_or_default();
        let parameters = match function.get("parameters") {
            // A function without parameters takes an empty object;
            // Anthropic requires the schema to be said.
            None | Some(Value::Null) => serde_json::json!({"type": "object", "properties": {}}),
            Some(schema @ Value::Object(_)) => schema.clone(),
            Some(_) => {
                return Err(ChatError::expected(
                    format!("{at}.parameters"),
                    "a JSON Schema object",
                ));
            }
        };
        specs.push(ToolSpec::new(name, description, parameters));
    }
    Ok(specs)
}

fn tool_choice(
    body: &Map<String, Value>,
    tools: &[ToolSpec],
) -> Result<Option<ToolChoice>, ChatError> {
    let choice = match body.get("tool_choice") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(mode)) => match mode.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                return Err(ChatError::value(
                    "tool_choice",
                    format!("'{other}'. Supported values are: 'none', 'auto', and 'required'."),
                ));
            }
        },
        Some(object @ Value::Object(_)) => {
            if string_field(object, "type", "tool_choice")? != Some("function") {
                return Err(ChatError::value(
                    "tool_choice.type",
                    "must be 'function' when tool_choice is an object.",
                ));
            }
            let name = object
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| ChatError::Missing {
                    param: "tool_choice.function.name".into(),
                })?;
            if !tools.iter().any(|tool| tool.name == name) {
                return Err(ChatError::value(
                    "tool_choice.function.name",
                    format!("no function named '{name}' was specified in 'tools'."),
                ));
            }
            ToolChoice::Tool(name.to_string())
        }
        Some(_) => {
            return Err(ChatError::expected(
                "tool_choice",
                "'none', 'auto', 'required' or an object naming a function",
            ));
        }
    };
    if tools.is_empty() {
        // Without tools, "auto" and "none" mean what no tool_choice means;
        // a demand for a call cannot be met.
        return match choice {
            ToolChoice::Auto | ToolChoice::None => Ok(None),
            _ => Err(ChatError::value(
                "tool_choice",
                "'tool_choice' requires 'tools' to be specified.",
            )),
        };
    }
    Ok(Some(choice))
}

fn response_format(body: &Map<String, Value>) -> Result<Option<ResponseFormat>, ChatError> {
    let format = match body.get("response_format") {
        None | Some(Value::Null) => return Ok(None),
        Some(format @ Value::Object(_)) => format,
        Some(_) => return Err(ChatError::expected("response_format", "an object")),
    };
    Ok(Some(
        match string_field(format, "type", "response_format")? {
            Some("text") => ResponseFormat::Text,
            Some("json_object") => ResponseFormat::JsonObject,
            Some("json_schema") => {
                let at = "response_format.json_schema";
                let spec = match format.get("json_schema") {
                    Some(spec @ Value::Object(_)) => spec,
                    None | Some(Value::Null) => {
                        return Err(ChatError::Missing { param: at.into() });
                    }
                    Some(_) => return Err(ChatError::expected(at, "an object")),
                };
                let name = string_field(spec, "name", at)?.ok_or_else(|| ChatError::Missing {
                    param: format!("{at}.name"),
                })?;
                check_name(name, &format!("{at}.name"))?;
                let schema = match spec.get("schema") {
                    None | Some(Value::Null) => serde_json::json!({"type": "object"}),
                    Some(schema @ Value::Object(_)) => schema.clone(),
                    Some(_) => {
                        return Err(ChatError::expected(
                            format!("{at}.schema"),
                            "a JSON Schema object",
                        ));
                    }
                };
                let strict = match spec.get("strict") {
                    None | Some(Value::Null) => None,
                    Some(Value::Bool(strict)) => Some(*strict),
                    Some(_) => {
                        return Err(ChatError::expected(format!("{at}.strict"), "a boolean"));
                    }
                };
                ResponseFormat::JsonSchema {
                    name: name.to_string(),
                    description: string_field(spec, "description", at)?.map(str::to_string),
                    schema,
                    strict,
                }
            }
            Some(other) => {
                return Err(ChatError::value(
                    "response_format.type",
                    format!(
                        "'{other}'. Supported values are: 'text', 'json_object' and 'json_schema'."
                    ),
                ));
            }
            None => {
                return Err(ChatError::Missing {
                    param: "response_format.type".into(),
                });
            }
        },
    ))
}

/// The most stop sequences OpenAI takes.
const MAX_STOP: usize = 4;

fn stop(body: &Map<String, Value>) -> Result<Vec<String>, ChatError> {
    let stops = match body.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(stop)) => vec![stop.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ChatError::expected("stop", "a string or an array of strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ChatError::expected(
                "stop",
                "a string or an array of strings",
            ));
        }
    };
    if stops.len() > MAX_STOP {
        return Err(ChatError::value(
            "stop",
            format!("at most {MAX_STOP} stop sequences are allowed."),
        ));
    }
    if stops.iter().any(String::is_empty) {
        return Err(ChatError::value(
            "stop",
            "stop sequences must not be empty.",
        ));
    }
    Ok(stops)
}

/// Content as parts; images only where `images` allows them.
fn content(
    value: Option<&Value>,
    param: &str,
    images: bool,
) -> Result<Vec<ContentPart>, ChatError> {
    let parts = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(text)) if text.is_empty() => return Ok(Vec::new()),
        Some(Value::String(text)) => return Ok(vec![ContentPart::text(text.clone())]),
        Some(Value::Array(parts)) => parts,
        Some(_) => {
            return Err(ChatError::expected(
                param,
                "a string or an array of content parts",
            ));
        }
    };
    let mut out = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let at = format!("{param}[{i}]");
        match string_field(part, "type", &at)? {
            Some("text") => {
                let text = string_field(part, "text", &at)?.ok_or_else(|| ChatError::Missing {
                    param: format!("{at}.text"),
                })?;
                out.push(ContentPart::text(text));
            }
            Some("image_url") if images => out.push(image(part, &at)?),
            Some(kind) => {
                return Err(ChatError::value(
                    format!("{at}.type"),
                    format!("content parts of type '{kind}' are not supported here."),
                ));
            }
            None => {
                return Err(ChatError::Missing {
                    param: format!("{at}.type"),
                });
            }
        }
    }
    Ok(out)
}

fn image(part: &Value, at: &str) -> Result<ContentPart, ChatError> {
    let url = part
        .pointer("/image_url/url")
        .and_then(Value::as_str)
        .ok_or_else(|| ChatError::Missing {
            param: format!("{at}.image_url.url"),
        })?;
    let (meta, data) = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(','))
        .ok_or_else(|| {
            ChatError::value(
                format!("{at}.image_url.url"),
                "must be a data: URL (data:<type>;base64,...).",
            )
        })?;
    let media_type = meta.strip_suffix(";base64").ok_or_else(|| {
        ChatError::value(format!("{at}.image_url.url"), "image data must be base64.")
    })?;
    Ok(ContentPart::image(media_type, data))
}

fn tool_calls(message: &Value, at: &str) -> Result<Vec<ToolCall>, ChatError> {
    let list = match message.get("tool_calls") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(ChatError::expected(format!("{at}.tool_calls"), "an array")),
    };
    let mut calls = Vec::with_capacity(list.len());
    for (j, call) in list.iter().enumerate() {
        let at = format!("{at}.tool_calls[{j}]");
        let id = string_field(call, "id", &at)?
            .filter(|id| !id.is_empty())
            .ok_or_else(|| ChatError::Missing {
                param: format!("{at}.id"),
            })?;
        if string_field(call, "type", &at)?.is_some_and(|kind| kind != "function") {
            return Err(ChatError::value(
                format!("{at}.type"),
                "the only tool call type is 'function'.",
            ));
        }
        let function = call.get("function").ok_or_else(|| ChatError::Missing {
            param: format!("{at}.function"),
        })?;
        let at = format!("{at}.function");
        let name = string_field(function, "name", &at)?.ok_or_else(|| ChatError::Missing {
            param: format!("{at}.name"),
        })?;
        let arguments = string_field(function, "arguments", &at)?.unwrap_or_default();
        let (id, signature) = split_call_id(id);
        let mut call = ToolCall::new(id, name, arguments);
        call.signature = signature.map(str::to_string);
        calls.push(call);
    }
    Ok(calls)
}

/// The system texts and the conversation, with every tool message checked
/// against the calls of the assistant message before it.
fn messages(body: &Map<String, Value>) -> Result<(Vec<String>, Vec<Message>), ChatError> {
    let list = match body.get("messages") {
        None | Some(Value::Null) => {
            return Err(ChatError::Missing {
                param: "messages".into(),
            });
        }
        Some(Value::Array(list)) if list.is_empty() => {
            return Err(ChatError::value("messages", "must not be empty."));
        }
        Some(Value::Array(list)) => list,
        Some(_) => return Err(ChatError::expected("messages", "an array")),
    };
    let mut system = Vec::new();
    let mut out: Vec<Message> = Vec::with_capacity(list.len());
    // Calls of the latest assistant message still waiting for their result,
    // and where that message is.
    let mut open: Vec<String> = Vec::new();
    let mut open_at = String::new();
    for (i, message) in list.iter().enumerate() {
        let at = format!("messages[{i}]");
        if !message.is_object() {
            return Err(ChatError::expected(at, "an object"));
        }
        let role = string_field(message, "role", &at)?.ok_or_else(|| ChatError::Missing {
            param: format!("{at}.role"),
        })?;
        if role != "tool" && !open.is_empty() {
            return Err(ChatError::UnansweredToolCalls {
                param: open_at,
                ids: open,
            });
        }
        let content_at = format!("{at}.content");
        match role {
            "system" | "developer" => {
                let text = crate::types::joined_text(&content(
                    message.get("content"),
                    &content_at,
                    false,
                )?);
                if !text.is_empty() {
                    system.push(text);
                }
            }
            "user" => out.push(Message {
                content: content(message.get("content"), &content_at, true)?,
                ..Message::user("")
            }),
            "assistant" => {
                let calls = tool_calls(message, &at)?;
                open = calls.iter().map(|call| call.id.clone()).collect();
                open_at.clone_from(&at);
                out.push(Message {
                    content: content(message.get("content"), &content_at, false)?,
                    ..Message::assistant_tool_calls("", calls)
                });
            }
            "tool" => {
                let id_at = format!("{at}.tool_call_id");
                let external = string_field(message, "tool_call_id", &at)?.ok_or_else(|| {
                    ChatError::Missing {
                        param: id_at.clone(),
                    }
                })?;
                let (id, _) = split_call_id(external);
                let Some(position) = open.iter().position(|open| open == id) else {
                    return Err(ChatError::UnknownToolCall {
                        param: id_at,
                        id: external.to_string(),
                    });
                };
                open.remove(position);
                out.push(Message {
                    content: content(message.get("content"), &content_at, false)?,
                    ..Message::tool_result(id, "")
                });
            }
            other => {
                return Err(ChatError::value(
                    format!("{at}.role"),
                    format!(
                        "'{other}'. Supported values are: 'system', 'developer', 'user', 'assistant' and 'tool'."
                    ),
                ));
            }
        }
    }
    if !open.is_empty() {
        return Err(ChatError::UnansweredToolCalls {
            param: open_at,
            ids: open,
        });
    }
    Ok((system, out))
}

#[cfg(test)]
mod tests;
