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
//! For catalog models the request is read by [`talon_llm::chat_api`]:
//! tools, `tool_choice`, `response_format`, `n`, `stop`, `seed`, `user`,
//! assistant `tool_calls` and `role: "tool"` results all reach the model,
//! whatever wire format its provider speaks, and tool calls come back as
//! `tool_calls` with `finish_reason: "tool_calls"`, whole or streamed.
//!
//! Errors use OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`,
//! so the official clients fill in their exceptions' `code`, `type` and
//! `param`; the auth middleware answers `/v1` with it too ([`OpenAiError`]).

use std::convert::Infallible;

use std::collections::VecDeque;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{BoxStream, SelectAll};
use futures::{Stream, StreamExt};
use serde_json::json;
use talon_kernel::conversation::{MessageInput, TurnEvent};
use talon_llm::chat_api::{self, ChatError, ChatRequest, ChunkEncoder};
use talon_llm::{ContentPart, LlmError, Role, StreamEvent, Target, Usage};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// Prefix of agent model names in `/v1/models`.
pub const AGENT_PREFIX: &str = "talon";

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug)]
pub struct OpenAiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    code: Option<&'static str>,
    param: Option<String>,
}

impl OpenAiError {
    fn invalid(message: impl Into<String>, code: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            code: Some(code),
            param: None,
        }
    }

    fn with_param(mut self, param: &str) -> Self {
        self.param = Some(param.to_string());
        self
    }

    /// A refusal by the auth middleware (401 or 403) for a `/v1` route,
    /// with OpenAI's `code` for it (`invalid_api_key`, ...).
    pub fn auth(status: StatusCode, message: impl Into<String>, code: &'static str) -> Self {
        Self {
            status,
            message: message.into(),
            kind: "invalid_request_error",
            code: Some(code),
            param: None,
        }
    }
}

impl From<ChatError> for OpenAiError {
    fn from(e: ChatError) -> Self {
        let param = e.param().map(str::to_string);
        Self {
            param,
            ..Self::invalid(e.to_string(), e.code())
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
            param: None,
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

/// The body of an error on `/v1`, in OpenAI's shape, so that OpenAI's
/// clients set their error's `code` and `type`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OpenAiErrorBody {
    /// What went wrong.
    pub error: OpenAiErrorDetail,
}

/// The `error` of an [`OpenAiErrorBody`].
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OpenAiErrorDetail {
    /// What went wrong, for a person.
    pub message: String,
    /// OpenAI's error type (`invalid_request_error`, `authentication_error`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// The request parameter at fault, if one is.
    pub param: Option<String>,
    /// A machine-readable code (`model_not_found`, `invalid_api_key`, ...).
    pub code: Option<String>,
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let body = OpenAiErrorBody {
            error: OpenAiErrorDetail {
                message: self.message,
                kind: self.kind.to_string(),
                param: self.param,
                code: self.code.map(str::to_string),
            },
        };
        (self.status, axum::Json(body)).into_response()
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
        param: Some("model".into()),
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
              (status = 400, description = "Malformed request (bad tools, a tool message answering no call, unknown tool_choice...), in OpenAI's error shape with `param` and `code`"),
              (status = 404, description = "`model_not_found`")))]
pub async fn chat_completions(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let request = chat_api::parse_request(&body)?;
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
    // An agent keeps one session: several answers would be several turns.
    if request.n > 1 {
        return Err(OpenAiError::invalid(
            "agents give one answer per request; `n` must be 1",
            "invalid_value",
        )
        .with_param("n"));
    }
    let latest = request
        .completion
        .messages
        .into_iter()
        .rev()
        .find(|m| m.role == Role::User)
        .ok_or_else(|| OpenAiError::invalid("no user message to send", "missing_message"))?;
    let mut content = std::sync::Arc::unwrap_or_clone(latest).content;
    let text_index = content
        .iter()
        .position(|p| matches!(p, ContentPart::Text { .. }));
    let text = match text_index.map(|i| content.remove(i)) {
        Some(ContentPart::Text { text }) => text,
        _ => String::new(),
    };
    let input = MessageInput {
        text,
        parts: content,
        ..MessageInput::default()
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

/// A mid-stream failure as the data frame OpenAI sends for one.
fn stream_error(message: String) -> serde_json::Value {
    json!({ "error": { "message": message, "type": "server_error", "param": null, "code": null } })
}

async fn model_completion(
    state: AppState,
    request: ChatRequest,
    resolved: talon_llm::ResolvedModel,
) -> Result<Response, OpenAiError> {
    let mut llm_request = request.completion;
    llm_request.model = resolved.model.clone();
    let target = Target::new(resolved.provider.clone());
    let model = resolved.model.clone();
    let llm = state.kernel.providers().llm();
    // `n` answers are `n` requests: only OpenAI's format can ask for
    // several at once, and one path for every format is simpler than two.
    let copies = (0..request.n).map(|_| llm_request.clone());
    if !request.stream {
        let answers =
            futures::future::try_join_all(copies.map(|copy| llm.complete(&target, copy))).await?;
        let body = chat_api::completion(&completion_id(), &model, now_secs(), &answers);
        return Ok(axum::Json(body).into_response());
    }
    let streams =
        futures::future::try_join_all(copies.map(|copy| llm.stream(&target, copy))).await?;
    let id = completion_id();
    let created = now_secs();
    let encoders: Vec<ChunkEncoder> = (0..streams.len())
        .map(|choice| ChunkEncoder::new(id.clone(), model.clone(), created, choice))
        .collect();
    // One role chunk per choice; the first opens the response.
    let mut queue: VecDeque<serde_json::Value> = encoders.iter().map(ChunkEncoder::role).collect();
    let first = queue
        .pop_front()
        .ok_or_else(|| OpenAiError::from(ApiError::Internal("no choice to stream".into())))?;
    let merged = futures::stream::select_all(
        streams
            .into_iter()
            .enumerate()
            .map(|(choice, events)| events.map(move |event| (choice, event)).boxed()),
    );
    let choices = Choices {
        open: encoders.len(),
        encoders,
        merged,
        queue,
        ended: false,
    };
    let rest = futures::stream::unfold(choices, |mut choices| async move {
        let frame = choices.next_frame().await?;
        Some((data(frame), choices))
    });
    Ok(chunk_stream(data(first), rest))
}

/// The streams of the `n` choices of one streamed completion, merged into
/// one sequence of chunks.
struct Choices {
    encoders: Vec<ChunkEncoder>,
    merged: SelectAll<BoxStream<'static, (usize, Result<StreamEvent, LlmError>)>>,
    /// Chunks made but not yet sent.
    queue: VecDeque<serde_json::Value>,
    /// Choices whose answer has not finished.
    open: usize,
    /// Whether the last chunk (or an error) has been queued.
    ended: bool,
}

impl Choices {
    /// The next chunk to send; `None` once everything was sent.
    async fn next_frame(&mut self) -> Option<serde_json::Value> {
        loop {
            if let Some(frame) = self.queue.pop_front() {
                return Some(frame);
            }
            if self.ended {
                return None;
            }
            match self.merged.next().await {
                Some((choice, Ok(event))) => {
                    let done = matches!(event, StreamEvent::Done { .. });
                    let Some(encoder) = self.encoders.get_mut(choice) else {
                        continue;
                    };
                    let mut chunks = encoder.push(event);
                    if done {
                        self.open = self.open.saturating_sub(1);
                        if self.open == 0 {
                            // The usage of every choice, on the very last
                            // chunk, as the agent path and OpenAI do.
                            let usage = self.encoders.iter().fold(Usage::default(), |sum, e| {
                                let u = e.usage();
                                Usage::new(
                                    sum.input_tokens + u.input_tokens,
                                    sum.output_tokens + u.output_tokens,
                                )
                            });
                            if let Some(last) = chunks.last_mut() {
                                last["usage"] = chat_api::usage_object(usage);
                            }
                            self.ended = true;
                        }
                    }
                    self.queue.extend(chunks);
                }
                Some((_, Err(e))) => {
                    self.queue.push_back(stream_error(e.to_string()));
                    self.ended = true;
                }
                None => {
                    // Drivers end every stream with Done or an error; a
                    // stream that just stops is reported, not passed off
                    // as a finished answer.
                    self.queue.push_back(stream_error(
                        "the model's answer ended before it finished".into(),
                    ));
                    self.ended = true;
                }
            }
        }
    }
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
