//! Comms (LibreFang's `/api/comms/*`): the agents and who talked to whom,
//! inter-agent messages and task hand-offs (listed and streamed), and
//! sending either. Derived from the turns and the task queue (see
//! `talon_kernel::kernel::comms`); nothing of its own is stored.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde::{Deserialize, Serialize};
use talon_kernel::events::Event;
use talon_kernel::kernel::comms::{CommsEvent, Topology};
use tokio::sync::broadcast::error::RecvError;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::messages::MAX_MESSAGE_BYTES;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::state::AppState;

/// Most events one page holds.
const MAX_LIMIT: usize = 500;

/// The agents as nodes, and an edge per pair that exchanged a message.
#[utoipa::path(get, path = "/api/comms/topology", tag = "network",
    responses((status = 200, description = "`{nodes, edges}`", body = Topology)))]
pub async fn topology(State(state): State<AppState>) -> Result<Json<Topology>, ApiError> {
    Ok(Json(state.kernel.comms_topology().await?))
}

/// Query of the event list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Most items (default 100, at most 500).
    #[param(maximum = 500)]
    pub limit: Option<usize>,
    /// Items to skip.
    pub offset: Option<usize>,
}

/// A page of comms events.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommsEventPage {
    /// The page, newest first.
    pub items: Vec<CommsEvent>,
    /// Events in all.
    pub total: usize,
    /// Items skipped.
    pub offset: usize,
    /// Most items asked for.
    pub limit: usize,
}

/// Inter-agent messages and task hand-offs, newest first.
#[utoipa::path(get, path = "/api/comms/events", tag = "network", params(EventsQuery),
    responses((status = 200, description = "`{items, total, offset, limit}`", body = CommsEventPage),
              (status = 400, description = "A limit above 500 or an unknown parameter")))]
pub async fn events(
    State(state): State<AppState>,
    Query(query): Query<EventsQuery>,
) -> Result<Json<CommsEventPage>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "limit must be at most {MAX_LIMIT}"
        )));
    }
    let offset = query.offset.unwrap_or(0);
    let (items, total) = state.kernel.comms_events(offset, limit).await?;
    Ok(Json(CommsEventPage {
        items,
        total,
        offset,
        limit,
    }))
}

/// Whether `event` may have added comms events.
fn may_add(event: &Event) -> bool {
    matches!(
        event,
        Event::TurnCompleted { .. } | Event::TaskPosted { .. } | Event::TaskFinished { .. }
    )
}

fn frame(event: &CommsEvent) -> Option<SseEvent> {
    serde_json::to_string(event)
        .ok()
        .map(|json| SseEvent::default().data(json))
}

/// Each new comms event, oldest first, as one `data:` frame of JSON (the
/// shape of `/api/comms/events`' items). Events that happened before the
/// request are not sent (list them with `/api/comms/events`). The stream
/// ends when the daemon shuts down.
#[utoipa::path(get, path = "/api/comms/events/stream", tag = "network",
    responses((status = 200, description = "SSE stream of comms events", content_type = "text/event-stream")))]
pub async fn stream(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    // Subscribe before reading what exists, so nothing in between is lost.
    let receiver = state.kernel.events().subscribe();
    let (existing, _) = state.kernel.comms_events(0, usize::MAX).await?;
    let seen: HashSet<String> = existing.into_iter().map(|e| e.id).collect();
    let shutdown = state.shutdown.clone();
    let kernel = state.kernel.clone();
    let stream = futures::stream::unfold(
        (VecDeque::<CommsEvent>::new(), receiver, seen),
        move |(mut queued, mut rx, mut seen)| {
            let (shutdown, kernel) = (shutdown.clone(), kernel.clone());
            async move {
                loop {
                    while let Some(event) = queued.pop_front() {
                        if let Some(frame) = frame(&event) {
                            return Some((Ok(frame), (queued, rx, seen)));
                        }
                    }
                    let next = tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        next = rx.recv() => next,
                    };
                    match next {
                        Ok(event) if may_add(&event) => {
                            let Ok((newest_first, _)) = kernel.comms_events(0, usize::MAX).await
                            else {
                                continue;
                            };
                            queued.extend(
                                newest_first
                                    .into_iter()
                                    .rev()
                                    .filter(|e| seen.insert(e.id.clone())),
                            );
                        }
                        Ok(_) => continue,
                        Err(RecvError::Lagged(missed)) => {
                            let frame = SseEvent::default()
                                .event("lagged")
                                .data(format!("{{\"missed\":{missed}}}"));
                            return Some((Ok(frame), (queued, rx, seen)));
                        }
                        Err(RecvError::Closed) => return None,
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Body of `POST /api/comms/send` (LibreFang's `CommsSendRequest`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommsSendRequest {
    /// The agent that sends.
    pub from_agent_id: Uuid,
    /// The agent that receives and answers.
    pub to_agent_id: Uuid,
    /// The message (not blank; at most 256 KiB).
    #[schema(pattern = "\\S")]
    pub message: String,
    /// Echoed back, for the caller's threading.
    pub thread_id: Option<String>,
}

/// The answer of `POST /api/comms/send`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommsSendResponse {
    /// Always true (a failure is an error status).
    pub ok: bool,
    /// The receiving agent's answer.
    pub response: String,
    /// Prompt tokens of the receiver's turn.
    pub input_tokens: u64,
    /// Generated tokens of the receiver's turn.
    pub output_tokens: u64,
    /// The caller's `thread_id`, if it sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
}

/// One agent sends another a message and waits for its answer: a turn of
/// the receiver in its session for messages from the sender, as
/// `agent_send` makes. An agent may send to itself (as in LibreFang).
#[utoipa::path(post, path = "/api/comms/send", tag = "network", request_body = CommsSendRequest,
    responses((status = 200, description = "The receiver's answer", body = CommsSendResponse),
              (status = 400, description = "Blank message, a malformed id or an unknown field"),
              (status = 404, description = "No such sender or receiver"),
              (status = 409, description = "The receiver is stopped"),
              (status = 413, description = "Message too large")))]
pub async fn send(
    State(state): State<AppState>,
    Json(body): Json<CommsSendRequest>,
) -> Result<Json<CommsSendResponse>, ApiError> {
    if body.message.len() > MAX_MESSAGE_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "message is {} bytes; the limit is {MAX_MESSAGE_BYTES}",
            body.message.len()
        )));
    }
    if body.message.trim().is_empty() {
        return Err(ApiError::BadRequest("`message` must not be blank".into()));
    }
    let reply = state
        .kernel
        .comms_send(body.from_agent_id, body.to_agent_id, &body.message)
        .await?;
    Ok(Json(CommsSendResponse {
        ok: true,
        response: reply.response,
        input_tokens: reply.input_tokens,
        output_tokens: reply.output_tokens,
        thread_id: body.thread_id,
    }))
}

/// Body of `POST /api/comms/task` (LibreFang's `CommsTaskRequest`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommsTaskRequest {
    /// A short name (not blank; at most 256 bytes).
    #[schema(pattern = "\\S")]
    pub title: String,
    /// What to do (at most 64 KiB); the title when absent or blank.
    pub description: Option<String>,
    /// The agent that does it; without one the task waits.
    pub assigned_to: Option<Uuid>,
}

/// The answer of `POST /api/comms/task`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommsTaskResponse {
    /// Always true (a failure is an error status).
    pub ok: bool,
    /// The task's id (see `/api/tasks/list`).
    pub task_id: Uuid,
}

/// Hands a task to an agent through the task queue (`POST /api/tasks`).
#[utoipa::path(post, path = "/api/comms/task", tag = "network", request_body = CommsTaskRequest,
    responses((status = 201, description = "The task was queued", body = CommsTaskResponse),
              (status = 400, description = "Blank or oversized title, oversized description, unknown field"),
              (status = 404, description = "No such agent")))]
pub async fn task(
    State(state): State<AppState>,
    Json(body): Json<CommsTaskRequest>,
) -> Result<(StatusCode, Json<CommsTaskResponse>), ApiError> {
    let description = match body.description {
        Some(d) if !d.trim().is_empty() => d,
        _ => body.title.clone(),
    };
    let task = state
        .kernel
        .automation()
        .post_task(body.title, description, body.assigned_to, None)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CommsTaskResponse {
            ok: true,
            task_id: task.id,
        }),
    ))
}
