//! `GET /api/agents/{id}/ws`: chat over a WebSocket, in LibreFang's protocol
//! (see `docs/STREAMING.md`).
//!
//! One connection runs one turn at a time. While a turn runs the socket is
//! still read, so `stop` works mid-turn; a second message meanwhile is
//! refused with an error frame rather than queued invisibly.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use talon_kernel::conversation::{MessageInput, TurnEvent};
use tokio::sync::mpsc::UnboundedReceiver;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::Path;
use crate::state::AppState;

/// Largest accepted client frame.
const MAX_FRAME_BYTES: usize = 64 * 1024;
/// How often the agent list is checked for changes.
const AGENTS_EVERY: Duration = Duration::from_secs(5);

/// A client frame.
#[derive(Debug, Deserialize)]
struct ClientFrame {
    #[serde(rename = "type", default = "default_type")]
    kind: String,
    #[serde(default)]
    content: String,
    message_id: Option<String>,
    command: Option<String>,
    #[serde(default)]
    args: String,
}

fn default_type() -> String {
    "message".into()
}

/// Upgrades to the chat WebSocket of an agent.
#[utoipa::path(get, path = "/api/agents/{id}/ws", tag = "agents",
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 101, description = "WebSocket: see docs/STREAMING.md"),
              (status = 400, description = "Malformed id or upgrade headers"), (status = 404, description = "No such agent"),
              (status = 426, description = "Called without a WebSocket upgrade")))]
pub async fn chat(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    state.kernel.agents().get(id).await?;
    // axum answers a missing upgrade in plain text; this API answers JSON.
    let upgrade = upgrade.map_err(|rejection| {
        let message = rejection.body_text();
        match rejection.status() {
            StatusCode::UPGRADE_REQUIRED => ApiError::UpgradeRequired(message),
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed(message),
            _ => ApiError::BadRequest(message),
        }
    })?;
    Ok(upgrade
        .max_message_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| run(state, id, socket)))
}

async fn send(socket: &mut WebSocket, value: Value) -> bool {
    socket
        .send(WsMessage::Text(value.to_string().into()))
        .await
        .is_ok()
}

async fn agents_frame(state: &AppState) -> Value {
    let agents: Vec<Value> = state
        .kernel
        .agents()
        .list()
        .await
        .unwrap_or_default()
        .iter()
        .map(|a| {
            json!({
                "id": a.id, "name": a.name(), "state": format!("{:?}", a.state),
                "model_provider": a.manifest.model.provider, "model_name": a.manifest.model.model,
            })
        })
        .collect();
    json!({ "type": "agents_updated", "agents": agents })
}

/// A turn in flight on this connection.
struct Running {
    events: UnboundedReceiver<TurnEvent>,
    message_id: Option<String>,
}

async fn run(state: AppState, agent: Uuid, mut socket: WebSocket) {
    if !send(
        &mut socket,
        json!({ "type": "connected", "agent_id": agent }),
    )
    .await
    {
        return;
    }
    let mut last_agents = agents_frame(&state).await;
    if !send(&mut socket, last_agents.clone()).await {
        return;
    }
    let mut tick = tokio::time::interval(AGENTS_EVERY);
    tick.tick().await;
    let mut running: Option<Running> = None;
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => break,
            _ = tick.tick() => {
                let now = agents_frame(&state).await;
                if now != last_agents {
                    last_agents = now.clone();
                    if !send(&mut socket, now).await { break; }
                }
            }
            event = next_event(&mut running) => {
                let Some((event, message_id)) = event else { running = None; continue };
                let last = matches!(event, TurnEvent::Done(_) | TurnEvent::Failed { .. });
                for frame in event_frames(&event, message_id.as_deref()) {
                    if !send(&mut socket, frame).await { return; }
                }
                if last { running = None; }
            }
            incoming = socket.recv() => {
                let text = match incoming {
                    Some(Ok(WsMessage::Text(text))) => text.to_string(),
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let frame = serde_json::from_str::<ClientFrame>(&text).unwrap_or(ClientFrame {
                    kind: "message".into(), content: text.clone(), message_id: None, command: None, args: String::new(),
                });
                let reply = handle(&state, agent, frame, &mut running).await;
                for frame in reply {
                    if !send(&mut socket, frame).await { return; }
                }
            }
        }
    }
}

async fn next_event(running: &mut Option<Running>) -> Option<(TurnEvent, Option<String>)> {
    match running {
        Some(turn) => {
            let event = turn.events.recv().await?;
            Some((event, turn.message_id.clone()))
        }
        None => std::future::pending().await,
    }
}

fn event_frames(event: &TurnEvent, message_id: Option<&str>) -> Vec<Value> {
    match event {
        TurnEvent::TextDelta { content } => {
            vec![json!({ "type": "text_delta", "content": content })]
        }
        TurnEvent::ToolUse { id, tool } => vec![
            json!({ "type": "typing", "state": "tool", "tool": tool }),
            json!({ "type": "tool_start", "id": id, "tool": tool }),
        ],
        TurnEvent::ToolResult {
            id,
            tool,
            input,
            result,
            is_error,
        } => vec![
            json!({ "type": "tool_end", "id": id, "tool": tool, "input": input.to_string() }),
            json!({ "type": "tool_result", "id": id, "tool": tool, "result": result, "is_error": is_error }),
        ],
        TurnEvent::Phase { phase, detail } => {
            vec![json!({ "type": "phase", "phase": phase, "detail": detail })]
        }
        TurnEvent::OwnerNotice { text } => vec![json!({ "type": "owner_notice", "text": text })],
        TurnEvent::Done(reply) => vec![
            json!({
                "type": "response", "content": reply.response,
                "input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens,
                "iterations": reply.iterations, "cost_usd": reply.cost_usd,
                "session_id": reply.session_id, "status": reply.status, "message_id": message_id,
            }),
            json!({ "type": "typing", "state": "stop" }),
        ],
        TurnEvent::Failed { error } => vec![
            json!({ "type": "error", "content": error, "message_id": message_id }),
            json!({ "type": "typing", "state": "stop" }),
        ],
    }
}

fn error(content: impl Into<String>, message_id: Option<&str>) -> Vec<Value> {
    vec![json!({ "type": "error", "content": content.into(), "message_id": message_id })]
}

async fn handle(
    state: &AppState,
    agent: Uuid,
    frame: ClientFrame,
    running: &mut Option<Running>,
) -> Vec<Value> {
    match frame.kind.as_str() {
        "ping" => vec![json!({ "type": "pong" })],
        "command" => {
            let command = frame.command.unwrap_or_default();
            command_frames(state, agent, &command, &frame.args).await
        }
        "message" => {
            if let Some(rest) = frame.content.strip_prefix('/') {
                let (command, args) = rest.split_once(' ').unwrap_or((rest, ""));
                return command_frames(state, agent, command, args).await;
            }
            let message_id = frame.message_id.as_deref();
            if running.is_some() {
                return error(
                    "a turn is already running on this connection; wait for its response or send /stop",
                    message_id,
                );
            }
            let input = MessageInput {
                text: frame.content.clone(),
                ..MessageInput::default()
            };
            match state
                .kernel
                .conversations()
                .start_turn(agent, input, true)
                .await
            {
                Ok(started) => match started.events {
                    Some(events) => {
                        *running = Some(Running {
                            events,
                            message_id: frame.message_id.clone(),
                        });
                        vec![json!({ "type": "typing", "state": "start" })]
                    }
                    None => error("the turn started without events", message_id),
                },
                Err(e) => error(ApiError::from(e).to_string(), message_id),
            }
        }
        other => error(
            format!("unknown frame type `{other}`"),
            frame.message_id.as_deref(),
        ),
    }
}

async fn command_frames(state: &AppState, agent: Uuid, command: &str, args: &str) -> Vec<Value> {
    let result = |message: String| {
        vec![json!({ "type": "command_result", "command": command, "message": message })]
    };
    let kernel = &state.kernel;
    let outcome: Result<Vec<Value>, ApiError> = async {
        Ok(match command {
            "new" | "reset" => {
                let session = kernel.conversations().reset_session(agent).await?;
                vec![json!({ "type": "command_result", "command": command,
                    "message": "Started a new session", "session_id": session.id })]
            }
            "compact" => {
                let (summarized, kept) = kernel.conversations().compact_session(agent, None).await?;
                result(format!("{summarized} messages summarized, {kept} kept"))
            }
            "stop" => {
                let cancelled = kernel.conversations().stop_agent(agent).await?;
                result(format!("{cancelled} run(s) cancelled"))
            }
            "model" if !args.trim().is_empty() => {
                let record = kernel
                    .agents().edit_manifest(agent, vec![("model.model".into(), args.trim().into())])
                    .await?;
                result(format!("Model set to {}", record.manifest.model.model))
            }
            "model" => {
                let record = kernel.agents().get(agent).await?;
                let m = &record.manifest.model;
                result(format!("{}/{}", m.provider, m.model))
            }
            "usage" => {
                let view = kernel.conversations().session_view(Some(agent), None).await?;
                let t = view.session.totals;
                result(format!(
                    "{} input tokens, {} output tokens, ${:.4} over {} turns",
                    t.input_tokens, t.output_tokens, t.cost_usd, t.turns
                ))
            }
            "models" => {
                let ids: Vec<String> = kernel.providers().llm().models().into_iter().map(|m| m.id).collect();
                result(ids.join(", "))
            }
            "providers" => {
                let names: Vec<String> =
                    kernel.providers().llm().providers().into_iter().map(|p| p.name).collect();
                result(names.join(", "))
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown command `/{other}` (new, reset, compact, stop, model, usage, models, providers)"
                )));
            }
        })
    }
    .await;
    outcome.unwrap_or_else(|e| error(e.to_string(), None))
}
