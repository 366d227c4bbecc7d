//! The OpenAI-compatible API: `POST /v1/chat/completions` and `GET /v1/models`,
//! so the official `openai` clients can talk to agents unchanged.
//!
//! The `model` field picks what answers:
//! - an agent: `talon:<name>` (any `prefix:` works, LibreFang's `librefang:`
//!   too), its id, or its plain name. Only the latest user message is sent;
//!   the agent keeps its own session, tools and system prompt.
//! - else a catalog model (`gpt-4o-mini`, `anthropic/claude-...`): the
//!   request's messages go to that model as they are, statelessly.
//! - else 404 `model_not_found`.
//!
//! Errors use OpenAI's shape, `{"error": {"message", "type", "code"}}`.

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use talon_kernel::conversation::{MessageInput, TurnEvent};
use talon_llm::{CompletionRequest, ContentPart, Message, Role, StreamEvent, Target};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// Prefix of agent model names in `/v1/models`.
pub const AGENT_PREFIX: &str = "talon";

/// An error in OpenAI's shape.
#[derive(Debug)]
pub struct OpenAiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    code: Option<&'static str>,
}

impl OpenAiError {
    fn invalid(message: impl Into<String>, code: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            code: Some(code),
        }
    }
}

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        let status = e.status();
        let kind = match status.as_u16() {
            400..=499 => "invalid_request_error",
            _ => "server_error",
        };
        let code = match status.as_u16() {
            404 => Some("not_found"),
            412 => Some("provider_auth_missing"),
            429 => Some("rate_limit_exceeded"),
            _ => None,
        };
        Self {
            status,
            message: e.to_string(),
            kind,
            code,
        }
    }
}

impl From<talon_kernel::KernelError> for OpenAiError {
    fn from(e: talon_kernel::KernelError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<talon_llm::LlmError> for OpenAiError {
    fn from(e: talon_llm::LlmError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let body =
            json!({ "error": { "message": self.message, "type": self.kind, "code": self.code } });
        (self.status, axum::Json(body)).into_response()
    }
}

/// One message of a chat request.
#[derive(Debug, Deserialize)]
struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Option<ChatContent>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ChatContent {
    Text(String),
    Parts(Vec<ChatPart>),
}

#[derive(Debug, Deserialize)]
struct ChatPart {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
    image_url: Option<ImageUrl>,
}

#[derive(Debug, Deserialize)]
struct ImageUrl {
    url: String,
}

/// `POST /v1/chat/completions`; fields not read here are accepted and ignored,
/// as OpenAI's own clients send many.
#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<ChatMessage>,
    #[serde(default)]
    stream: bool,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f32>,
}

fn parts(content: Option<&ChatContent>) -> Result<Vec<ContentPart>, OpenAiError> {
    match content {
        None => Ok(Vec::new()),
        Some(ChatContent::Text(text)) => Ok(vec![ContentPart::text(text.clone())]),
        Some(ChatContent::Parts(parts)) => parts
            .iter()
            .map(|p| match (p.kind.as_str(), &p.text, &p.image_url) {
                ("text", Some(text), _) => Ok(ContentPart::text(text.clone())),
                ("image_url", _, Some(image)) => {
                    let (meta, data) = image
                        .url
                        .strip_prefix("data:")
                        .and_then(|rest| rest.split_once(','))
                        .ok_or_else(|| {
                            OpenAiError::invalid(
                                "image_url must be a data: URL (data:<type>;base64,...)",
                                "invalid_image_url",
                            )
                        })?;
                    let media_type = meta.strip_suffix(";base64").ok_or_else(|| {
                        OpenAiError::invalid("image data must be base64", "invalid_image_url")
                    })?;
                    Ok(ContentPart::image(media_type, data))
                }
                (kind, _, _) => Err(OpenAiError::invalid(
                    format!("unsupported content part `{kind}`"),
                    "invalid_content",
                )),
            })
            .collect(),
    }
}

/// What a `model` name selects.
enum Answerer {
    Agent { id: Uuid, name: String },
    Model(talon_llm::ResolvedModel),
}

async fn resolve(state: &AppState, model: &str) -> Result<Answerer, OpenAiError> {
    let name = model.split_once(':').map_or(model, |(_, name)| name);
    let agent = if let Ok(id) = model.parse::<Uuid>() {
        state.kernel.agents().get(id).await.ok()
    } else {
        match state.kernel.agents().id_by_name(name.to_string()).await? {
            Some(id) => state.kernel.agents().get(id).await.ok(),
            None => None,
        }
    };
    if let Some(agent) = agent {
        return Ok(Answerer::Agent {
            id: agent.id,
            name: agent.manifest.name,
        });
    }
    if !model.contains(':')
        && let Ok(resolved) = state.kernel.providers().llm().resolve_model(None, model)
    {
        return Ok(Answerer::Model(resolved));
    }
    Err(OpenAiError {
        status: StatusCode::NOT_FOUND,
        message: format!("No agent or model found for model '{model}'"),
        kind: "invalid_request_error",
        code: Some("model_not_found"),
    })
}

fn completion_id() -> String {
    format!("chatcmpl-{}", Uuid::new_v4().simple())
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

fn completion(id: &str, model: &str, text: &str, input: u64, output: u64) -> serde_json::Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": now_secs(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": text },
            "finish_reason": "stop",
        }],
        "usage": { "prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output },
    })
}

fn chunk(
    id: &str,
    model: &str,
    delta: serde_json::Value,
    finish: Option<&str>,
) -> serde_json::Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": now_secs(),
        "model": model,
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    })
}

fn data(value: serde_json::Value) -> Result<SseEvent, Infallible> {
    Ok(SseEvent::default().data(value.to_string()))
}

/// The role chunk, the content chunks, then `data: [DONE]`, as one SSE response.
fn chunk_stream<S>(first: Result<SseEvent, Infallible>, rest: S) -> Response
where
    S: Stream<Item = Result<SseEvent, Infallible>> + Send + 'static,
{
    let done = futures::stream::once(async { Ok(SseEvent::default().data("[DONE]")) });
    Sse::new(
        futures::stream::once(async { first })
            .chain(rest)
            .chain(done),
    )
    .into_response()
}

/// Answers a chat completion with an agent or a catalog model.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai",
    request_body(content = Object, description = "OpenAI chat completion request", content_type = "application/json"),
    responses((status = 200, description = "`chat.completion`, or `chat.completion.chunk` events when `stream` is true", body = Object),
              (status = 400, description = "Malformed request or no user message"),
              (status = 404, description = "`model_not_found`")))]
pub async fn chat_completions(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let request: ChatRequest = serde_json::from_slice(&body)
        .map_err(|e| OpenAiError::invalid(format!("invalid request body: {e}"), "invalid_body"))?;
    if request.messages.is_empty() {
        return Err(OpenAiError::invalid(
            "messages must not be empty",
            "missing_message",
        ));
    }
    match resolve(&state, &request.model).await? {
        Answerer::Agent { id, name } => agent_completion(state, request, id, name).await,
        Answerer::Model(resolved) => model_completion(state, request, resolved).await,
    }
}

async fn agent_completion(
    state: AppState,
    request: ChatRequest,
    agent: Uuid,
    name: String,
) -> Result<Response, OpenAiError> {
    let latest = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .ok_or_else(|| OpenAiError::invalid("no user message to send", "missing_message"))?;
    let mut content = parts(latest.content.as_ref())?;
    let text_index = content
        .iter()
        .position(|p| matches!(p, ContentPart::Text { .. }));
    let text = match text_index.map(|i| content.remove(i)) {
        Some(ContentPart::Text { text }) => text,
        _ => String::new(),
    };
    let input = MessageInput {
        text,
        session_id: None,
        parts: content,
    };
    let model = format!("{AGENT_PREFIX}:{name}");
    if !request.stream {
        let reply = state
            .kernel
            .conversations()
            .send_message(agent, input)
            .await?;
        let body = completion(
            &completion_id(),
            &model,
            &reply.response,
            reply.input_tokens,
            reply.output_tokens,
        );
        return Ok(axum::Json(body).into_response());
    }
    let started = state
        .kernel
        .conversations()
        .start_turn(agent, input, true)
        .await?;
    let events = started.events.ok_or_else(|| {
        OpenAiError::from(ApiError::Internal("turn started without events".into()))
    })?;
    let id = completion_id();
    let first = data(chunk(
        &id,
        &model,
        json!({ "role": "assistant", "content": "" }),
        None,
    ));
    let rest = futures::stream::unfold(Some(events), move |rx| {
        let (id, model) = (id.clone(), model.clone());
        async move {
            let mut rx = rx?;
            loop {
                let frame = match rx.recv().await? {
                    TurnEvent::TextDelta { content } => {
                        chunk(&id, &model, json!({ "content": content }), None)
                    }
                    TurnEvent::Done(reply) => {
                        let mut last = chunk(&id, &model, json!({}), Some("stop"));
                        last["usage"] = json!({
                            "prompt_tokens": reply.input_tokens,
                            "completion_tokens": reply.output_tokens,
                            "total_tokens": reply.input_tokens + reply.output_tokens,
                        });
                        return Some((data(last), None));
                    }
                    TurnEvent::Failed { error } => {
                        let frame =
                            json!({ "error": { "message": error, "type": "server_error" } });
                        return Some((data(frame), None));
                    }
                    _ => continue,
                };
                return Some((data(frame), Some(rx)));
            }
        }
    });
    Ok(chunk_stream(first, rest))
}

async fn model_completion(
    state: AppState,
    request: ChatRequest,
    resolved: talon_llm::ResolvedModel,
) -> Result<Response, OpenAiError> {
    let mut llm_request = CompletionRequest::new(resolved.model.clone());
    let mut system = Vec::new();
    for message in &request.messages {
        let content = parts(message.content.as_ref())?;
        let role = match message.role.as_str() {
            "system" | "developer" => {
                system.push(
                    Message {
                        role: Role::User,
                        content,
                        ..Message::user("")
                    }
                    .text(),
                );
                continue;
            }
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(OpenAiError::invalid(
                    format!("role `{other}` is not supported for catalog models"),
                    "invalid_role",
                ));
            }
        };
        llm_request.messages.push(Message {
            role,
            content,
            ..Message::user("")
        });
    }
    if !system.is_empty() {
        llm_request.system = Some(system.join("\n\n"));
    }
    if let Some(max) = request.max_completion_tokens.or(request.max_tokens) {
        llm_request.max_tokens = max;
    }
    llm_request.temperature = request.temperature;
    let target = Target::new(resolved.provider.clone());
    let model = resolved.model.clone();
    if !request.stream {
        let response = state
            .kernel
            .providers()
            .llm()
            .complete(&target, llm_request)
            .await?;
        let body = completion(
            &completion_id(),
            &model,
            &response.text,
            response.usage.input_tokens,
            response.usage.output_tokens,
        );
        return Ok(axum::Json(body).into_response());
    }
    let events = state
        .kernel
        .providers()
        .llm()
        .stream(&target, llm_request)
        .await?;
    let id = completion_id();
    let first = data(chunk(
        &id,
        &model,
        json!({ "role": "assistant", "content": "" }),
        None,
    ));
    let rest = futures::stream::unfold(Some((events, talon_llm::Usage::default())), move |state| {
        let (id, model) = (id.clone(), model.clone());
        async move {
            let (mut events, mut usage) = state?;
            loop {
                let frame = match events.next().await {
                    Some(Ok(StreamEvent::TextDelta(text))) => {
                        chunk(&id, &model, json!({ "content": text }), None)
                    }
                    Some(Ok(StreamEvent::Usage(u))) => {
                        usage = u;
                        continue;
                    }
                    Some(Ok(StreamEvent::Done { .. })) | None => {
                        let mut last = chunk(&id, &model, json!({}), Some("stop"));
                        last["usage"] = json!({
                            "prompt_tokens": usage.input_tokens,
                            "completion_tokens": usage.output_tokens,
                            "total_tokens": usage.total(),
                        });
                        return Some((data(last), None));
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        let frame = json!({ "error": { "message": e.to_string(), "type": "server_error" } });
                        return Some((data(frame), None));
                    }
                };
                return Some((data(frame), Some((events, usage))));
            }
        }
    });
    Ok(chunk_stream(first, rest))
}

/// Agents (as `talon:<name>`) and catalog models, in OpenAI's list shape.
#[utoipa::path(get, path = "/v1/models", tag = "openai",
    responses((status = 200, description = "`{object: list, data: [{id, object: model, created, owned_by}]}`", body = Object)))]
pub async fn models(State(state): State<AppState>) -> Result<Response, OpenAiError> {
    let mut data: Vec<serde_json::Value> = state
        .kernel
        .agents()
        .list()
        .await?
        .iter()
        .map(|a| {
            json!({
                "id": format!("{AGENT_PREFIX}:{}", a.manifest.name),
                "object": "model",
                "created": a.created_at.timestamp(),
                "owned_by": "talon",
            })
        })
        .collect();
    data.extend(
        state.kernel.providers().llm().models().iter().map(
            |m| json!({ "id": m.id, "object": "model", "created": 0, "owned_by": m.provider }),
        ),
    );
    Ok(axum::Json(json!({ "object": "list", "data": data })).into_response())
}
