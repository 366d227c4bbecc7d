//! A2A (docs/A2A.md): the agent cards, A2A 1.0's JSON-RPC endpoint (0.3
//! method names accepted), LibreFang's `/a2a/*` task routes, and the client
//! routes under `/api/a2a/*` (discovered remote agents, tasks sent to them).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use talon_a2a::jsonrpc::{self, Method, RpcError};
use talon_a2a::{CardInput, RemoteTask, SkillInput, Version, wire};
use talon_kernel::KernelError;
use talon_kernel::a2a::{Peer, TaskRecord};
use talon_kernel::agents::AgentState;
use talon_kernel::kernel::A2aMessage;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

/// Where the JSON-RPC endpoint is served.
pub const RPC_PATH: &str = "/a2a";

/// The base URL the cards name: `[a2a] public_url`, else the request's
/// `Host` (when it is a plain host\[:port\]), else the listen address.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    let config = state.kernel.config();
    if !config.a2a.public_url.is_empty() {
        return config.a2a.public_url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        });
    format!("http://{}", host.unwrap_or(&config.api_listen))
}

async fn skills(state: &AppState) -> Result<Vec<SkillInput>, ApiError> {
    Ok(state
        .kernel
        .agents()
        .list()
        .await?
        .into_iter()
        .filter(|a| a.state == AgentState::Running)
        .map(|a| SkillInput {
            id: a.id.to_string(),
            name: a.name().to_string(),
            description: a.manifest.description.clone(),
            tags: a.manifest.tags.clone(),
        })
        .collect())
}

fn card(
    state: &AppState,
    endpoint: String,
    name: String,
    description: String,
    skills: Vec<SkillInput>,
) -> Value {
    CardInput {
        name,
        description,
        version: env!("CARGO_PKG_VERSION").to_string(),
        endpoint,
        needs_key: !state.kernel.config().api_key.is_empty(),
        skills,
    }
    .to_json()
}

/// One interface of a card (documentation of [`CardInput::to_json`]).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardInterface {
    /// The JSON-RPC endpoint.
    pub url: String,
    /// `JSONRPC`.
    pub protocol_binding: String,
    /// `1.0` or `0.3`.
    pub protocol_version: String,
}

/// One skill of a card: an agent.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardSkill {
    /// The agent's id.
    pub id: String,
    /// The agent's name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Its tags.
    pub tags: Vec<String>,
}

/// An agent card as Talon serves it (documentation of [`CardInput::to_json`]):
/// A2A 1.0's fields and 0.3's `url`, `protocolVersion`, `preferredTransport`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentCard {
    /// The card's name.
    pub name: String,
    /// What it offers.
    pub description: String,
    /// Talon's version.
    pub version: String,
    /// The JSON-RPC endpoint for 1.0 and for 0.3.
    pub supported_interfaces: Vec<CardInterface>,
    /// The endpoint (0.3).
    pub url: String,
    /// `0.3.0`.
    pub protocol_version: String,
    /// `JSONRPC`.
    pub preferred_transport: String,
    /// `{streaming: true, pushNotifications: false}`.
    #[schema(value_type = Object)]
    pub capabilities: Value,
    /// `text/plain`.
    pub default_input_modes: Vec<String>,
    /// `text/plain`.
    pub default_output_modes: Vec<String>,
    /// The running agents.
    pub skills: Vec<CardSkill>,
}

/// A JSON-RPC error object.
#[derive(Debug, Serialize, ToSchema)]
pub struct RpcErrorDoc {
    /// JSON-RPC's or A2A's code (-32700 ... -32001 ...).
    pub code: i64,
    /// What was wrong.
    pub message: String,
}

/// A JSON-RPC response: `result` or `error`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RpcResponse {
    /// `"2.0"`.
    pub jsonrpc: String,
    /// The request's id: a string or integer (null when it could not be read).
    #[schema(value_type = serde_json::Value)]
    pub id: Value,
    /// The method's result: a task (1.0: `{"task": ...}`) or a stream event.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// The error.
    pub error: Option<RpcErrorDoc>,
}

/// The daemon's agent card: every running agent is a skill; a message
/// names its agent in `metadata.agent` (or goes to the only one).
#[utoipa::path(get, path = "/.well-known/agent.json", tag = "a2a",
    responses((status = 200, description = "The agent card (A2A 1.0, with 0.3's fields)", body = AgentCard)))]
pub async fn agent_card(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let skills = skills(&state).await?;
    let endpoint = format!("{}{RPC_PATH}", base_url(&state, &headers));
    Ok(Json(card(
        &state,
        endpoint,
        "Talon".into(),
        "Talon agent operating system: each skill is one of its agents".into(),
        skills,
    )))
}

/// The same card at A2A 1.0's well-known path.
#[utoipa::path(get, path = "/.well-known/agent-card.json", tag = "a2a",
    responses((status = 200, description = "The agent card (A2A 1.0, with 0.3's fields)", body = AgentCard)))]
pub async fn agent_card_v1(
    state: State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    agent_card(state, headers).await
}

/// The agents' own cards.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentCards {
    /// One card per running agent; its endpoint sends to that agent.
    #[schema(value_type = Vec<Object>)]
    pub agents: Vec<Value>,
    /// How many.
    pub total: usize,
}

/// One card per running agent, each naming an endpoint that reaches that agent.
#[utoipa::path(get, path = "/a2a/agents", tag = "a2a",
    responses((status = 200, description = "A card per running agent", body = AgentCards)))]
pub async fn list_agents(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<AgentCards>, ApiError> {
    let base = base_url(&state, &headers);
    let agents: Vec<Value> = skills(&state)
        .await?
        .into_iter()
        .map(|skill| {
            let endpoint = format!("{base}{RPC_PATH}?agent={}", skill.id);
            let description = if skill.description.is_empty() {
                format!("The Talon agent {}", skill.name)
            } else {
                skill.description.clone()
            };
            card(
                &state,
                endpoint,
                skill.name.clone(),
                description,
                vec![skill],
            )
        })
        .collect();
    Ok(Json(AgentCards {
        total: agents.len(),
        agents,
    }))
}

/// Query of the JSON-RPC endpoint.
#[derive(Debug, Deserialize, IntoParams)]
pub struct RpcQuery {
    /// The agent messages go to (name or id), as named in `/a2a/agents`'s
    /// cards; `metadata.agent` of a message wins over it.
    pub agent: Option<String>,
}

/// A JSON-RPC 2.0 request (documentation: the body is read as bytes so a
/// malformed one gets JSON-RPC's error, not an HTTP 400).
#[derive(Debug, Deserialize, ToSchema)]
pub struct RpcBody {
    /// `"2.0"`.
    #[schema(pattern = "^2\\.0$")]
    pub jsonrpc: String,
    /// A string (at most 256 bytes) or integer, echoed back.
    #[schema(schema_with = rpc_id_schema)]
    pub id: Value,
    /// `SendMessage`, `SendStreamingMessage`, `GetTask`, `CancelTask`,
    /// `SubscribeToTask`, or their 0.3 names (`message/send`, ...).
    pub method: String,
    /// The method's parameters.
    #[schema(value_type = Object)]
    pub params: Value,
}

/// JSON-RPC's id: a string (at most 256 bytes here) or an integer.
fn rpc_id_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    Schema::OneOf(
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(256)),
            )
            .item(ObjectBuilder::new().schema_type(Type::Integer))
            .build(),
    )
}

fn rpc_json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A JSON-RPC error: HTTP 400 when the body was not a usable request
/// (not JSON, not one request, no params object),
/// else 200 as JSON-RPC over HTTP (and `a2a-sdk`) answer method errors.
fn rpc_error(error: RpcError) -> Response {
    let status = if error.malformed {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    rpc_json(status, error.to_json())
}

/// A kernel error as the JSON-RPC error answering `id`.
fn kernel_rpc_error(id: &Value, e: KernelError) -> RpcError {
    let code = match &e {
        KernelError::NotFound(_) => jsonrpc::INVALID_PARAMS,
        KernelError::Invalid(_) | KernelError::Conflict(_) | KernelError::TooLarge(_) => {
            jsonrpc::INVALID_PARAMS
        }
        _ => jsonrpc::INTERNAL_ERROR,
    };
    RpcError::new(id.clone(), code, e.to_string())
}

async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Vec<u8>, Response> {
    let too_large = || {
        rpc_json(
            StatusCode::PAYLOAD_TOO_LARGE,
            RpcError::new(
                Value::Null,
                jsonrpc::INVALID_REQUEST,
                format!("the request is over {limit} bytes (limits.max_body_bytes)"),
            )
            .to_json(),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(bytes.to_vec()),
        Err(_) => Err(too_large()),
    }
}

/// A2A's JSON-RPC endpoint: 1.0's methods and 0.3's names for them.
/// Streaming methods answer with an SSE stream of JSON-RPC responses.
#[utoipa::path(post, path = "/a2a", tag = "a2a", params(RpcQuery), request_body = RpcBody,
    responses((status = 200, description = "A JSON-RPC response (errors included), or for the streaming methods an SSE stream of them", body = RpcResponse),
              (status = 400, description = "The body is not JSON (-32700), not one JSON-RPC request (-32600) or has no params object (-32602)", body = RpcResponse),
              (status = 413, description = "The body is over limits.max_body_bytes (a JSON-RPC error)", body = RpcResponse)))]
pub async fn rpc(
    State(state): State<AppState>,
    Query(query): Query<RpcQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let limit = state.kernel.config().limits.max_body_bytes;
    let bytes = match read_body(body, &headers, limit).await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    let request = match jsonrpc::parse(&bytes) {
        Ok(request) => request,
        Err(error) => return rpc_error(error),
    };
    let id = request.id.clone();
    let bad = |(code, message): (i64, String)| rpc_error(RpcError::new(id.clone(), code, message));
    match request.method {
        Method::Send | Method::Stream => {
            let message = match wire::incoming_message(&request.params) {
                Ok(m) => m,
                Err(e) => return bad(e),
            };
            let named = message.agent.clone().or(query.agent);
            let task = match submit(&state, message, named.as_deref()).await {
                Ok(task) => task,
                Err(e) => return rpc_error(kernel_rpc_error(&id, e)),
            };
            if request.method == Method::Stream {
                return stream(&state, id, request.version, task).into_response();
            }
            let task = if wire::returns_immediately(&request.params) {
                task
            } else {
                finished(&state, task).await
            };
            rpc_json(
                StatusCode::OK,
                jsonrpc::result(&id, task.view().to_send_result(request.version)),
            )
        }
        Method::Get => match wire::task_id(&request.params) {
            Err(e) => bad(e),
            Ok(task_id) => match state.kernel.a2a().task(&task_id).await {
                Ok(task) => rpc_json(
                    StatusCode::OK,
                    jsonrpc::result(&id, task.view().to_task(request.version)),
                ),
                Err(KernelError::NotFound(m)) => {
                    rpc_error(RpcError::new(id, jsonrpc::TASK_NOT_FOUND, m))
                }
                Err(e) => rpc_error(kernel_rpc_error(&id, e)),
            },
        },
        Method::Cancel => match wire::task_id(&request.params) {
            Err(e) => bad(e),
            Ok(task_id) => match state.kernel.a2a_cancel(&task_id).await {
                Ok(task) => rpc_json(
                    StatusCode::OK,
                    jsonrpc::result(&id, task.view().to_task(request.version)),
                ),
                Err(KernelError::NotFound(m)) => {
                    rpc_error(RpcError::new(id, jsonrpc::TASK_NOT_FOUND, m))
                }
                Err(KernelError::Conflict(m)) => {
                    rpc_error(RpcError::new(id, jsonrpc::TASK_NOT_CANCELABLE, m))
                }
                Err(e) => rpc_error(kernel_rpc_error(&id, e)),
            },
        },
        Method::Subscribe => match wire::task_id(&request.params) {
            Err(e) => bad(e),
            Ok(task_id) => match state.kernel.a2a().task(&task_id).await {
                Ok(task) if task.state.is_terminal() => rpc_error(RpcError::new(
                    id,
                    jsonrpc::UNSUPPORTED_OPERATION,
                    format!(
                        "task {task_id} has ended ({}); read it with GetTask",
                        task.state.v03()
                    ),
                )),
                Ok(task) => stream(&state, id, request.version, task).into_response(),
                Err(KernelError::NotFound(m)) => {
                    rpc_error(RpcError::new(id, jsonrpc::TASK_NOT_FOUND, m))
                }
                Err(e) => rpc_error(kernel_rpc_error(&id, e)),
            },
        },
    }
}

async fn submit(
    state: &AppState,
    message: wire::IncomingMessage,
    agent: Option<&str>,
) -> Result<TaskRecord, KernelError> {
    let agent = state.kernel.a2a_agent(agent).await?;
    state
        .kernel
        .a2a_submit(A2aMessage {
            agent: agent.id,
            text: message.text,
            message_id: message.message_id,
            context_id: message.context_id,
        })
        .await
}

/// Waits for a task to end (the turn has its own limits); the task as it
/// ended, or as stored when following it failed.
async fn finished(state: &AppState, task: TaskRecord) -> TaskRecord {
    if let Some(mut rx) = state.kernel.a2a().watch(&task.id) {
        loop {
            if rx.borrow_and_update().state.is_terminal() {
                return rx.borrow().clone();
            }
            let stop = tokio::select! {
                changed = rx.changed() => changed.is_err(),
                () = state.shutdown.cancelled() => true,
            };
            if stop {
                break;
            }
        }
    }
    state.kernel.a2a().task(&task.id).await.unwrap_or(task)
}

/// The events that end a stream: the answer (if any) and the final status.
fn final_events(task: &TaskRecord, version: Version) -> Vec<Value> {
    let view = task.view();
    view.to_artifact_update(version)
        .into_iter()
        .chain(std::iter::once(view.to_status_update(version)))
        .collect()
}

/// A task's updates as an SSE stream of JSON-RPC responses: the task, then
/// each status change, ending with the answer and the final status. A
/// client that leaves does not stop the task.
fn stream(
    state: &AppState,
    id: Value,
    version: Version,
    task: TaskRecord,
) -> Sse<impl futures::Stream<Item = Result<SseEvent, Infallible>> + use<>> {
    let queue: VecDeque<Value> = VecDeque::from([task.view().to_stream_task(version)]);
    // A task that has ended already has no watcher: its end is read from
    // the store.
    let rx = state
        .kernel
        .a2a()
        .watch(&task.id)
        .filter(|_| !task.state.is_terminal());
    let read_end = rx.is_none();
    let a2a = state.kernel.a2a().clone();
    let shutdown = state.shutdown.clone();
    let task_id = task.id.clone();
    let events = futures::stream::unfold(
        (queue, rx, read_end),
        move |(mut queue, mut rx, mut read_end)| {
            let id = id.clone();
            let a2a = a2a.clone();
            let shutdown = shutdown.clone();
            let task_id = task_id.clone();
            async move {
                loop {
                    if let Some(result) = queue.pop_front() {
                        let frame =
                            SseEvent::default().data(jsonrpc::result(&id, result).to_string());
                        return Some((Ok(frame), (queue, rx, read_end)));
                    }
                    if read_end {
                        read_end = false;
                        if let Ok(task) = a2a.task(&task_id).await {
                            queue.extend(final_events(&task, version));
                        }
                        continue;
                    }
                    let receiver = rx.as_mut()?;
                    let changed = tokio::select! {
                        changed = receiver.changed() => changed,
                        () = shutdown.cancelled() => return None,
                    };
                    if changed.is_err() {
                        rx = None;
                        read_end = true;
                        continue;
                    }
                    let task = receiver.borrow_and_update().clone();
                    if task.state.is_terminal() {
                        queue.extend(final_events(&task, version));
                        rx = None;
                    } else {
                        queue.push_back(task.view().to_status_update(version));
                    }
                }
            }
        },
    );
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

// --- LibreFang's /a2a/tasks/* ---

/// Body of `POST /a2a/tasks/send`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SendTaskBody {
    /// The agent (id or name); without one, the only running agent.
    #[schema(pattern = "\\S")]
    pub agent_id: Option<String>,
    /// The message's text, or (also accepted) LibreFang's
    /// `{role, parts: [{text}]}`.
    #[schema(value_type = String, pattern = "\\S", max_length = 262144)]
    pub message: Value,
    /// The conversation to continue.
    #[schema(min_length = 1, max_length = 256)]
    pub context_id: Option<String>,
}

/// LibreFang's shape of a task: `{task_id, status, result}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct LibreFangTask(Value);

fn message_text(message: &Value) -> Result<String, ApiError> {
    let text = match message {
        Value::String(text) => text.clone(),
        Value::Object(_) => {
            let parts = message
                .get("parts")
                .and_then(Value::as_array)
                .ok_or_else(|| ApiError::BadRequest("`message.parts` must be an array".into()))?;
            let mut texts = Vec::new();
            for part in parts {
                match part.get("text") {
                    Some(Value::String(t)) => texts.push(t.as_str()),
                    _ => {
                        return Err(ApiError::BadRequest(
                            "only text parts (`{\"text\": ...}`) are supported".into(),
                        ));
                    }
                }
            }
            texts.join("\n\n")
        }
        _ => {
            return Err(ApiError::BadRequest(
                "`message` must be a string or `{role, parts}`".into(),
            ));
        }
    };
    if text.trim().is_empty() {
        return Err(ApiError::BadRequest("the message has no text".into()));
    }
    if text.len() > wire::MAX_MESSAGE_BYTES {
        return Err(ApiError::BadRequest(format!(
            "the message's text is over {} bytes",
            wire::MAX_MESSAGE_BYTES
        )));
    }
    Ok(text)
}

/// Runs a task on a local agent and answers when it has ended.
#[utoipa::path(post, path = "/a2a/tasks/send", tag = "a2a", request_body = SendTaskBody,
    responses((status = 200, description = "The task as it ended", body = LibreFangTask),
              (status = 400, description = "No text, a non-text part, no agent named while several run"),
              (status = 404, description = "No such agent"),
              (status = 409, description = "The agent is stopped")))]
pub async fn send_task(
    State(state): State<AppState>,
    Json(body): Json<SendTaskBody>,
) -> Result<Json<LibreFangTask>, ApiError> {
    let text = message_text(&body.message)?;
    if body
        .context_id
        .as_ref()
        .is_some_and(|c| c.len() > wire::MAX_ID_BYTES || c.is_empty())
    {
        return Err(ApiError::BadRequest(format!(
            "`context_id` must be 1-{} bytes",
            wire::MAX_ID_BYTES
        )));
    }
    let agent = state.kernel.a2a_agent(body.agent_id.as_deref()).await?;
    let task = state
        .kernel
        .a2a_submit(A2aMessage {
            agent: agent.id,
            text,
            message_id: uuid::Uuid::new_v4().to_string(),
            context_id: body.context_id,
        })
        .await?;
    let task = finished(&state, task).await;
    Ok(Json(LibreFangTask(task.view().to_librefang())))
}

fn check_task_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > wire::MAX_ID_BYTES {
        return Err(ApiError::BadRequest("not a task id".into()));
    }
    Ok(())
}

/// A task sent to a local agent.
#[utoipa::path(get, path = "/a2a/tasks/{id}", tag = "a2a",
    params(("id" = String, Path, description = "Task id")),
    responses((status = 200, description = "The task", body = LibreFangTask),
              (status = 404, description = "No such task")))]
pub async fn get_task(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<LibreFangTask>, ApiError> {
    check_task_id(&id)?;
    let task = state.kernel.a2a().task(&id).await?;
    Ok(Json(LibreFangTask(task.view().to_librefang())))
}

/// Cancels a running task.
#[utoipa::path(post, path = "/a2a/tasks/{id}/cancel", tag = "a2a",
    params(("id" = String, Path, description = "Task id")),
    responses((status = 200, description = "The task, canceled", body = LibreFangTask),
              (status = 404, description = "No such task"),
              (status = 409, description = "The task has ended")))]
pub async fn cancel_task(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<LibreFangTask>, ApiError> {
    check_task_id(&id)?;
    let task = state.kernel.a2a_cancel(&id).await?;
    Ok(Json(LibreFangTask(task.view().to_librefang())))
}

// --- Talon as client: /api/a2a/* ---

/// Discovered remote agents.
#[derive(Debug, Serialize, ToSchema)]
pub struct PeerList {
    /// Every agent discovered.
    pub agents: Vec<Peer>,
    /// How many.
    pub total: usize,
}

/// Every remote agent discovered.
#[utoipa::path(get, path = "/api/a2a/agents", tag = "a2a",
    responses((status = 200, description = "Discovered remote agents", body = PeerList)))]
pub async fn list_peers(State(state): State<AppState>) -> Result<Json<PeerList>, ApiError> {
    let agents = state.kernel.a2a().peers().await?;
    Ok(Json(PeerList {
        total: agents.len(),
        agents,
    }))
}

/// A discovered remote agent, by the URL it was discovered at or its name.
#[utoipa::path(get, path = "/api/a2a/agents/{id}", tag = "a2a",
    params(("id" = String, Path, description = "URL (percent-encoded) or name")),
    responses((status = 200, description = "The agent", body = Peer),
              (status = 404, description = "Not discovered")))]
pub async fn get_peer(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Peer>, ApiError> {
    if id.len() > 2048 {
        return Err(ApiError::BadRequest("the id is over 2048 bytes".into()));
    }
    Ok(Json(state.kernel.a2a().peer(&id).await?))
}

/// Body of `POST /api/a2a/discover`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverBody {
    /// The agent's base URL (its card is at `/.well-known/agent-card.json`
    /// or `/.well-known/agent.json`) or the card's own URL.
    #[schema(
        max_length = 2048,
        pattern = "^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$"
    )]
    pub url: String,
}

/// Fetches a remote agent's card, checks it and remembers the agent.
#[utoipa::path(post, path = "/api/a2a/discover", tag = "a2a", request_body = DiscoverBody,
    responses((status = 200, description = "The agent", body = Peer),
              (status = 400, description = "Not an http(s) URL, or the card is invalid (the problems are named)"),
              (status = 404, description = "No card there: the peer could not be reached or answered an HTTP error"),
              (status = 504, description = "The peer did not answer within [a2a] timeout_secs")))]
pub async fn discover(
    State(state): State<AppState>,
    Json(body): Json<DiscoverBody>,
) -> Result<Json<Peer>, ApiError> {
    if body.url.len() > 2048 {
        return Err(ApiError::BadRequest("`url` is over 2048 bytes".into()));
    }
    Ok(Json(state.kernel.a2a().discover(&body.url).await?))
}

/// Body of `POST /api/a2a/send`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeerSendBody {
    /// The discovered agent: the URL it was discovered at, or its name.
    #[serde(alias = "url")]
    #[schema(pattern = "\\S", max_length = 2048)]
    pub agent_id: String,
    /// What to send (at most 256 KiB).
    #[schema(pattern = "\\S", max_length = 262144)]
    pub message: String,
}

/// A task a remote agent ran.
#[derive(Debug, Serialize, ToSchema)]
pub struct PeerTask {
    /// The remote agent's name.
    pub agent: String,
    /// Its task id.
    pub task_id: String,
    /// Its context id.
    pub context_id: Option<String>,
    /// Its state (`completed`, `failed`, `working`, ...).
    pub status: String,
    /// Its answer's text.
    pub result: Option<String>,
}

fn peer_task(agent: String, task: RemoteTask) -> PeerTask {
    PeerTask {
        agent,
        task_id: task.id,
        context_id: task.context_id,
        status: task.state,
        result: task.text,
    }
}

/// Sends a task to a discovered remote agent and waits for it to end
/// (within `[a2a] timeout_secs`).
#[utoipa::path(post, path = "/api/a2a/send", tag = "a2a", request_body = PeerSendBody,
    responses((status = 200, description = "The remote task", body = PeerTask),
              (status = 400, description = "Empty or oversized message"),
              (status = 404, description = "The agent was not discovered"),
              (status = 502, description = "The peer failed or answered with something not A2A"),
              (status = 504, description = "The peer did not answer in time")))]
pub async fn send_to_peer(
    State(state): State<AppState>,
    Json(body): Json<PeerSendBody>,
) -> Result<Json<PeerTask>, ApiError> {
    if body.message.trim().is_empty() || body.message.len() > wire::MAX_MESSAGE_BYTES {
        return Err(ApiError::BadRequest(format!(
            "`message` must be non-empty and at most {} bytes",
            wire::MAX_MESSAGE_BYTES
        )));
    }
    let peer = state.kernel.a2a().peer(&body.agent_id).await?;
    let task = state
        .kernel
        .a2a()
        .send(&peer.url, &body.message, None)
        .await?;
    Ok(Json(peer_task(peer.name, task)))
}

/// Query of `GET /api/a2a/tasks/{id}/status`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
    /// The URL the agent was discovered at (or its name).
    pub url: String,
}

/// A task's state at a discovered remote agent.
#[utoipa::path(get, path = "/api/a2a/tasks/{id}/status", tag = "a2a",
    params(("id" = String, Path, description = "The remote task's id"), StatusQuery),
    responses((status = 200, description = "The remote task", body = PeerTask),
              (status = 404, description = "The agent was not discovered"),
              (status = 502, description = "The peer failed, or has no such task"),
              (status = 504, description = "The peer did not answer in time")))]
pub async fn peer_task_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<StatusQuery>,
) -> Result<Json<PeerTask>, ApiError> {
    check_task_id(&id)?;
    let peer = state.kernel.a2a().peer(&query.url).await?;
    let task = state.kernel.a2a().remote_task(&peer.url, &id).await?;
    Ok(Json(peer_task(peer.name, task)))
}
