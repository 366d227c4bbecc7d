//! Talking to agents: `message` (blocking), `message/stream` and `attach`
//! (SSE), and the stop and interrupt controls.
//!
//! SSE frames follow LibreFang's (see `docs/STREAMING.md`): `chunk`,
//! `tool_use`, `tool_result`, `phase`, `owner_notice`, then `done`. Failures
//! are a `phase` event with `"phase": "error"`, and every payload can be told
//! apart by its keys alone, for clients that read only the `data:` lines.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Deserialize;
use serde_json::json;
use talon_kernel::conversation::{MessageInput, Sender, TurnEvent, TurnReply};
use tokio::sync::broadcast::error::RecvError;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::state::AppState;

/// Largest message text, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Most attachments one message may reference.
const MAX_ATTACHMENTS: usize = 16;

/// An uploaded file referenced by a message.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AttachmentRef {
    /// The upload id from `POST /api/agents/{id}/upload`.
    pub file_id: Uuid,
    /// Ignored: the upload's own name is used.
    pub filename: Option<String>,
    /// Ignored: the upload's own type is used.
    pub content_type: Option<String>,
}

/// Body of `message` and `message/stream`: every field LibreFang's
/// `MessageRequest` declares (and nothing else).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    /// The text.
    pub message: String,
    /// Send to this session of the agent instead of its current one.
    pub session_id: Option<Uuid>,
    /// Uploaded files to include.
    #[serde(default)]
    pub attachments: Vec<AttachmentRef>,
    /// A side question: answered with the agent's system prompt but without
    /// the session's history, and not stored in the session.
    #[serde(default)]
    pub ephemeral: bool,
    /// Answered with the session's history, but the turn's messages are not stored.
    #[serde(default)]
    pub incognito: bool,
    /// The sender's platform id: recorded with the turn (see `/traces`) and
    /// passed to the provider as the end user's id.
    pub sender_id: Option<String>,
    /// The sender's display name, recorded with the turn.
    pub sender_name: Option<String>,
    /// The channel the message came through, recorded with the turn.
    pub channel_type: Option<String>,
    /// Deep thinking on or off for this call. Accepted for LibreFang's
    /// clients; Talon's model drivers send no reasoning options, so thinking
    /// stays the model's default (see docs/COMPATIBILITY.md).
    pub thinking: Option<bool>,
    /// Whether to include the thinking trace. Accepted; Talon's drivers
    /// return no thinking traces, so there is none to include.
    pub show_thinking: Option<bool>,
    /// From a group chat. Accepted; Talon has no channel gateways yet.
    #[serde(default)]
    pub is_group: bool,
    /// The bot was @mentioned in a group. Accepted; no channel gateways yet.
    #[serde(default)]
    pub was_mentioned: bool,
    /// A group's participants (LibreFang's addressee guard). Accepted; no
    /// channel gateways yet.
    #[schema(value_type = Option<Vec<Object>>)]
    pub group_participants: Option<Vec<serde_json::Value>>,
}

async fn input(
    state: &AppState,
    agent: Uuid,
    body: MessageRequest,
) -> Result<MessageInput, ApiError> {
    if body.message.len() > MAX_MESSAGE_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "message is {} bytes; the limit is {MAX_MESSAGE_BYTES}",
            body.message.len()
        )));
    }
    if body.attachments.len() > MAX_ATTACHMENTS {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_ATTACHMENTS} attachments per message"
        )));
    }
    let ids = body.attachments.iter().map(|a| a.file_id).collect();
    let parts = state.kernel.agents().attachment_parts(agent, ids).await?;
    let sender = Sender {
        id: body.sender_id,
        name: body.sender_name,
        channel_type: body.channel_type,
    };
    let sender = (sender != Sender::default()).then_some(sender);
    Ok(MessageInput {
        text: body.message,
        session_id: body.session_id,
        parts,
        ephemeral: body.ephemeral,
        incognito: body.incognito,
        sender,
    })
}

/// The JSON answer of a finished turn.
pub fn reply_json(reply: &TurnReply) -> serde_json::Value {
    let mut body = json!({
        "response": reply.response,
        "input_tokens": reply.input_tokens,
        "output_tokens": reply.output_tokens,
        "iterations": reply.iterations,
        "cost_usd": reply.cost_usd,
        "session_id": reply.session_id,
        "status": reply.status,
    });
    if let Some(notice) = &reply.owner_notice {
        body["owner_notice"] = json!(notice);
    }
    body
}

/// Sends a message and waits for the reply.
#[utoipa::path(post, path = "/api/agents/{id}/message", tag = "agents", request_body = MessageRequest,
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{response, input_tokens, output_tokens, iterations, cost_usd, session_id, status, owner_notice?}`", body = Object),
              (status = 400, description = "Malformed body or ids"), (status = 404, description = "No such agent or session"),
              (status = 409, description = "The agent is stopped"), (status = 412, description = "The provider has no API key"),
              (status = 413, description = "Message too large"), (status = 429, description = "Budget exceeded or provider rate limit"),
              (status = 502, description = "The provider failed"), (status = 503, description = "Circuit breaker open")))]
pub async fn message(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<MessageRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let input = input(&state, id, body).await?;
    let reply = state.kernel.conversations().send_message(id, input).await?;
    Ok(Json(reply_json(&reply)))
}

/// One turn event as an SSE frame; `None` for events SSE does not carry.
pub fn sse_frame(event: &TurnEvent) -> Option<SseEvent> {
    let (name, data) = match event {
        TurnEvent::TextDelta { content } => ("chunk", json!({ "content": content, "done": false })),
        TurnEvent::ToolUse { id, tool } => ("tool_use", json!({ "tool": tool, "id": id })),
        TurnEvent::ToolResult {
            id,
            tool,
            input,
            result,
            is_error,
        } => (
            "tool_result",
            json!({ "tool": tool, "id": id, "input": input, "result": result, "is_error": is_error }),
        ),
        TurnEvent::Phase { phase, detail } => {
            ("phase", json!({ "phase": phase, "detail": detail }))
        }
        TurnEvent::OwnerNotice { text } => ("owner_notice", json!({ "text": text })),
        TurnEvent::Done(reply) => {
            let mut data = reply_json(reply);
            data["done"] = json!(true);
            data["usage"] = json!({
                "input_tokens": reply.input_tokens,
                "output_tokens": reply.output_tokens,
            });
            ("done", data)
        }
        TurnEvent::Failed { error } => ("phase", json!({ "phase": "error", "detail": error })),
    };
    Some(SseEvent::default().event(name).data(data.to_string()))
}

fn is_last(event: &TurnEvent) -> bool {
    matches!(event, TurnEvent::Done(_) | TurnEvent::Failed { .. })
}

/// An SSE response with LibreFang's `: keep-alive` comment every 15 s.
pub fn sse<S>(stream: S) -> Response
where
    S: Stream<Item = Result<SseEvent, Infallible>> + Send + 'static,
{
    Sse::new(stream)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(15))
                .text("keep-alive"),
        )
        .into_response()
}

/// Sends a message and streams the turn as server-sent events.
#[utoipa::path(post, path = "/api/agents/{id}/message/stream", tag = "agents", request_body = MessageRequest,
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "SSE: chunk, tool_use, tool_result, phase, owner_notice, done", content_type = "text/event-stream"),
              (status = 400, description = "Malformed body or ids"), (status = 404, description = "No such agent or session"),
              (status = 412, description = "The provider has no API key"), (status = 429, description = "Budget exceeded")))]
pub async fn message_stream(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<MessageRequest>,
) -> Result<Response, ApiError> {
    let input = input(&state, id, body).await?;
    let started = state
        .kernel
        .conversations()
        .start_turn(id, input, true)
        .await?;
    let events = started
        .events
        .ok_or_else(|| ApiError::Internal("turn started without events".into()))?;
    // The turn runs in its own task and finishes (and is recorded) even if
    // the client goes away; the stream ends after `done` or an error.
    let stream = futures::stream::unfold(Some(events), |rx| async move {
        let mut rx = rx?;
        loop {
            let event = rx.recv().await?;
            if let Some(frame) = sse_frame(&event) {
                let next = (!is_last(&event)).then_some(rx);
                return Some((Ok(frame), next));
            }
        }
    });
    Ok(sse(stream))
}

async fn watch(state: AppState, agent: Uuid, session: Option<Uuid>) -> Result<Response, ApiError> {
    let view = state
        .kernel
        .conversations()
        .session_view(Some(agent), session)
        .await?;
    let receiver = state
        .kernel
        .conversations()
        .live()
        .get(view.session.id, agent)
        .watch();
    let shutdown = state.shutdown.clone();
    // Watchers see the running turn (or wait for the next one) until it ends.
    let stream = futures::stream::unfold(Some((receiver, shutdown)), |watch| async move {
        let (mut rx, shutdown) = watch?;
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return None,
                next = rx.recv() => next,
            };
            match next {
                Ok(event) => {
                    if let Some(frame) = sse_frame(&event) {
                        let next = (!is_last(&event)).then_some((rx, shutdown));
                        return Some((Ok(frame), next));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    let frame = SseEvent::default().event("phase").data(
                        json!({ "phase": "lagged", "detail": format!("{missed} events missed") })
                            .to_string(),
                    );
                    return Some((Ok(frame), Some((rx, shutdown))));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok(sse(stream))
}

/// Watches the agent's current session read-only: the running turn, or the next one.
#[utoipa::path(get, path = "/api/agents/{id}/attach", tag = "agents",
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "SSE, the same events as message/stream", content_type = "text/event-stream"),
              (status = 404, description = "No such agent")))]
pub async fn attach(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    watch(state, id, None).await
}

/// Watches one session of an agent read-only.
#[utoipa::path(get, path = "/api/agents/{id}/sessions/{session_id}/stream", tag = "sessions",
    params(("id" = Uuid, Path, description = "Agent id"), ("session_id" = Uuid, Path, description = "Session id")),
    responses((status = 200, description = "SSE, the same events as message/stream", content_type = "text/event-stream"),
              (status = 404, description = "No such agent or session")))]
pub async fn attach_session(
    State(state): State<AppState>,
    Path((id, session)): Path<(Uuid, Uuid)>,
) -> Result<Response, ApiError> {
    watch(state, id, Some(session)).await
}

/// Cancels the agent's running turns.
#[utoipa::path(post, path = "/api/agents/{id}/stop", tag = "agents",
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{status: stopped, message}`", body = Object),
              (status = 404, description = "No such agent")))]
pub async fn stop(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let cancelled = state.kernel.conversations().stop_agent(id).await?;
    let message = if cancelled > 0 {
        "Agent run cancelled"
    } else {
        "No run in progress"
    };
    Ok(Json(
        json!({ "status": "stopped", "message": message, "cancelled": cancelled }),
    ))
}

/// Asks a session's running turn to stop at its next tool-call boundary.
#[utoipa::path(post, path = "/api/agents/{id}/sessions/{session_id}/interrupt", tag = "sessions",
    params(("id" = Uuid, Path, description = "Agent id"), ("session_id" = Uuid, Path, description = "Session id")),
    responses((status = 204, description = "Interrupt accepted"),
              (status = 404, description = "No such agent or session")))]
pub async fn interrupt(
    State(state): State<AppState>,
    Path((id, session)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    state
        .kernel
        .conversations()
        .interrupt_session(id, session)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
