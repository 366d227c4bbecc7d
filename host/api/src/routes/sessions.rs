//! Sessions: an agent's conversations (`/api/agents/{id}/session*`) and the
//! cross-agent view (`/api/sessions`).

use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use talon_kernel::conversation::{SessionRecord, SessionView, StoredMessage};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{Json, OptionalJson, Path, Query};
use crate::state::AppState;

fn summary(s: &SessionRecord) -> serde_json::Value {
    json!({
        "session_id": s.id,
        "id": s.id,
        "agent_id": s.agent_id,
        "label": s.label,
        "message_count": s.message_count,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "input_tokens": s.totals.input_tokens,
        "output_tokens": s.totals.output_tokens,
        "cost_usd": s.totals.cost_usd,
        "turns": s.totals.turns,
        "compactions": s.compactions,
    })
}

/// A message as clients of the reference read it: `role` capitalized and
/// `content` as text, with tool calls and results alongside.
pub fn message_json(m: &StoredMessage) -> serde_json::Value {
    let role = match m.message.role {
        talon_llm::Role::System => "System",
        talon_llm::Role::User => "User",
        talon_llm::Role::Assistant => "Assistant",
        talon_llm::Role::Tool => "Tool",
    };
    let mut value =
        json!({ "role": role, "content": m.message.text(), "seq": m.seq, "timestamp": m.at });
    if !m.message.tool_calls.is_empty() {
        value["tool_calls"] = json!(
            m.message
                .tool_calls
                .iter()
                .map(|c| json!({ "id": c.id, "name": c.name, "arguments": c.arguments }))
                .collect::<Vec<_>>()
        );
    }
    if let Some(id) = &m.message.tool_call_id {
        value["tool_call_id"] = json!(id);
        value["is_error"] = json!(m.message.is_error);
    }
    let images = m
        .message
        .content
        .iter()
        .filter(|p| matches!(p, talon_llm::ContentPart::Image { .. }))
        .count();
    if images > 0 {
        value["images"] = json!(images);
    }
    value
}

fn view_json(view: &SessionView) -> serde_json::Value {
    let mut value = summary(&view.session);
    value["context_window_tokens"] = json!(view.context_window_tokens);
    value["messages"] = json!(view.messages.iter().map(message_json).collect::<Vec<_>>());
    value
}

/// The agent's current conversation.
#[utoipa::path(get, path = "/api/agents/{id}/session", tag = "sessions",
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{session_id, agent_id, message_count, context_window_tokens, messages}`", body = Object),
              (status = 404, description = "No such agent")))]
pub async fn current(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(view_json(
        &state
            .kernel
            .conversations()
            .session_view(Some(id), None)
            .await?,
    )))
}

/// An agent's sessions.
#[utoipa::path(get, path = "/api/agents/{id}/sessions", tag = "sessions",
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{items, total, offset, limit, current_session_id}`", body = Object),
              (status = 404, description = "No such agent")))]
pub async fn list_for_agent(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let agent = state.kernel.agents().get(id).await?;
    let items: Vec<_> = state
        .kernel
        .conversations()
        .sessions(Some(id))
        .await?
        .iter()
        .map(summary)
        .collect();
    let total = items.len();
    Ok(Json(json!({
        "items": items, "total": total, "offset": 0, "limit": total,
        "current_session_id": agent.session_id,
    })))
}

/// Body of `POST /api/agents/{id}/sessions`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// A label, unique among the agent's sessions: printable, not blank,
    /// at most 128 bytes.
    #[schema(
        max_length = 128,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub label: Option<String>,
    /// Make it the agent's current session (default false).
    #[serde(default)]
    pub switch: bool,
}

/// Creates a session of an agent.
#[utoipa::path(post, path = "/api/agents/{id}/sessions", tag = "sessions",
    request_body(content = Option<CreateSession>, description = "Optional", content_type = "application/json"),
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "The session (LibreFang answers 200 here, not 201)", body = Object),
              (status = 404, description = "No such agent"), (status = 409, description = "Label taken")))]
pub async fn create(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    // The body is optional: clients create unlabelled sessions with none.
    OptionalJson(body): OptionalJson<CreateSession>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let session = state
        .kernel
        .conversations()
        .create_session(id, body.label, body.switch)
        .await?;
    Ok(Json(summary(&session)))
}

/// Makes a session the agent's current one.
#[utoipa::path(post, path = "/api/agents/{id}/sessions/{session_id}/switch", tag = "sessions",
    params(("id" = Uuid, Path, description = "Agent id"), ("session_id" = Uuid, Path, description = "Session id")),
    responses((status = 200, description = "`{status: switched, agent_id, session_id}`", body = Object),
              (status = 404, description = "No such agent or session")))]
pub async fn switch(
    State(state): State<AppState>,
    Path((id, session)): Path<(Uuid, Uuid)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state
        .kernel
        .conversations()
        .switch_session(id, session)
        .await?;
    Ok(Json(
        json!({ "status": "switched", "agent_id": id, "session_id": session }),
    ))
}

/// The agent's session with a label.
#[utoipa::path(get, path = "/api/agents/{id}/sessions/by-label/{label}", tag = "sessions",
    params(("id" = Uuid, Path, description = "Agent id"), ("label" = String, Path, description = "Label")),
    responses((status = 200, description = "The session", body = Object),
              (status = 404, description = "No such agent or label")))]
pub async fn by_label(
    State(state): State<AppState>,
    Path((id, label)): Path<(Uuid, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(summary(
        &state
            .kernel
            .conversations()
            .session_by_label(id, label)
            .await?,
    )))
}

/// Clears the current session's messages; the session stays.
#[utoipa::path(delete, path = "/api/agents/{id}/history", tag = "sessions",
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{status: cleared, agent_id, session_id}`", body = Object),
              (status = 404, description = "No such agent")))]
pub async fn clear_history(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let session = state.kernel.conversations().clear_history(id).await?;
    Ok(Json(
        json!({ "status": "cleared", "agent_id": id, "session_id": session.id }),
    ))
}

/// Starts the agent on a fresh session; the old one is kept.
#[utoipa::path(post, path = "/api/agents/{id}/session/reset", tag = "sessions",
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{status: reset, agent_id, new_session_id}`", body = Object),
              (status = 404, description = "No such agent")))]
pub async fn reset(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let session = state.kernel.conversations().reset_session(id).await?;
    Ok(Json(
        json!({ "status": "reset", "agent_id": id, "new_session_id": session.id }),
    ))
}

/// Summarizes the current session's older messages with the agent's model.
#[utoipa::path(post, path = "/api/agents/{id}/session/compact", tag = "sessions",
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{status: compacted|unchanged, message, summarized, kept}`", body = Object),
              (status = 404, description = "No such agent"), (status = 502, description = "The provider failed")))]
pub async fn compact(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (summarized, kept) = state
        .kernel
        .conversations()
        .compact_session(id, None)
        .await?;
    let (status, message) = if summarized == 0 {
        (
            "unchanged",
            format!("Session has {kept} messages; nothing to compact"),
        )
    } else {
        (
            "compacted",
            format!("Session compacted: {summarized} messages summarized, {kept} kept"),
        )
    };
    Ok(Json(
        json!({ "status": status, "message": message, "summarized": summarized, "kept": kept }),
    ))
}

/// Query of `GET /api/sessions`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only this agent's sessions.
    pub agent_id: Option<Uuid>,
    /// At most this many (default 100, at most 500).
    pub limit: Option<usize>,
    /// Skip this many.
    pub offset: Option<usize>,
}

/// Every session, newest activity first.
#[utoipa::path(get, path = "/api/sessions", tag = "sessions", params(ListQuery),
    responses((status = 200, description = "`{items, total, offset, limit}`", body = Object),
              (status = 404, description = "No such agent (`agent_id`)")))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut sessions = state
        .kernel
        .conversations()
        .sessions(query.agent_id)
        .await?;
    sessions.sort_by_key(|s| std::cmp::Reverse(s.updated_at));
    let total = sessions.len();
    let offset = query.offset.unwrap_or(0);
    let limit = query.limit.unwrap_or(100).min(500);
    let items: Vec<_> = sessions
        .iter()
        .skip(offset)
        .take(limit)
        .map(summary)
        .collect();
    Ok(Json(
        json!({ "items": items, "total": total, "offset": offset, "limit": limit }),
    ))
}

/// Query of `GET /api/sessions/search`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct SearchQuery {
    /// Text to find (case-insensitive).
    #[param(min_length = 1)]
    pub q: String,
    /// Only this agent's sessions.
    pub agent_id: Option<Uuid>,
    /// At most this many hits (default 50, at most 500).
    pub limit: Option<usize>,
}

/// Finds messages containing a text.
#[utoipa::path(get, path = "/api/sessions/search", tag = "sessions", params(SearchQuery),
    responses((status = 200, description = "`{results: [{session_id, agent_id, seq, role, snippet}], total}`", body = Object),
              (status = 400, description = "Missing or empty `q`"),
              (status = 404, description = "No such agent (`agent_id`)")))]
pub async fn search(
    State(state): State<AppState>,
    Query(query): Query<SearchQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let needle = query.q.trim().to_lowercase();
    if needle.is_empty() {
        return Err(ApiError::BadRequest("`q` must not be empty".into()));
    }
    let limit = query.limit.unwrap_or(50).min(500);
    let mut results = Vec::new();
    'sessions: for session in state
        .kernel
        .conversations()
        .sessions(query.agent_id)
        .await?
    {
        let view = state
            .kernel
            .conversations()
            .session_view(Some(session.agent_id), Some(session.id))
            .await?;
        for m in &view.messages {
            let text = m.message.text();
            if let Some(pos) = text.to_lowercase().find(&needle) {
                let mut start = pos.saturating_sub(60);
                while !text.is_char_boundary(start) {
                    start -= 1;
                }
                let mut end = (pos + needle.len() + 60).min(text.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                let mut hit = message_json(m);
                hit["session_id"] = json!(session.id);
                hit["agent_id"] = json!(session.agent_id);
                hit["snippet"] = json!(&text[start..end]);
                results.push(hit);
                if results.len() >= limit {
                    break 'sessions;
                }
            }
        }
    }
    let total = results.len();
    Ok(Json(json!({ "results": results, "total": total })))
}

/// One session with its messages.
#[utoipa::path(get, path = "/api/sessions/{id}", tag = "sessions",
    params(("id" = Uuid, Path, description = "Session id")),
    responses((status = 200, description = "The session and its messages", body = Object),
              (status = 404, description = "No such session")))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(view_json(
        &state
            .kernel
            .conversations()
            .session_view(None, Some(id))
            .await?,
    )))
}

/// Deletes a session and its messages.
#[utoipa::path(delete, path = "/api/sessions/{id}", tag = "sessions",
    params(("id" = Uuid, Path, description = "Session id")),
    responses((status = 200, description = "`{status: deleted, session_id}`", body = Object),
              (status = 404, description = "No such session")))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.kernel.conversations().delete_session(id).await?;
    Ok(Json(json!({ "status": "deleted", "session_id": id })))
}

/// Body of `PUT /api/sessions/{id}/label`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelRequest {
    /// The label (printable, not blank, at most 128 bytes); `null` removes it.
    #[schema(
        max_length = 128,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub label: Option<String>,
}

/// Sets or clears a session's label.
#[utoipa::path(put, path = "/api/sessions/{id}/label", tag = "sessions", request_body = LabelRequest,
    params(("id" = Uuid, Path, description = "Session id")),
    responses((status = 200, description = "The session", body = Object),
              (status = 400, description = "Bad label"), (status = 404, description = "No such session"),
              (status = 409, description = "Label taken")))]
pub async fn label(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<LabelRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(summary(
        &state
            .kernel
            .conversations()
            .label_session(id, body.label)
            .await?,
    )))
}

/// Body of `POST /api/sessions/cleanup`; optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CleanupRequest {
    /// Delete sessions without activity for this many days (at least 1).
    #[schema(minimum = 1, maximum = 4294967295_u64, format = Int64)]
    /// Without it, only orphaned sessions go (LibreFang's bodyless call);
    /// Talon removes an agent's sessions with the agent, so there are none.
    pub older_than_days: Option<u32>,
    /// Keep every agent's current session (default true).
    pub keep_current: Option<bool>,
}

/// Deletes sessions idle for longer than a number of days.
#[utoipa::path(post, path = "/api/sessions/cleanup", tag = "sessions",
    request_body(content = Option<CleanupRequest>, description = "Optional", content_type = "application/json"),
    responses((status = 200, description = "`{deleted}`", body = Object),
              (status = 400, description = "Bad age")))]
pub async fn cleanup(
    State(state): State<AppState>,
    OptionalJson(body): OptionalJson<CleanupRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(days) = body.older_than_days else {
        return Ok(Json(json!({ "deleted": 0 })));
    };
    if days == 0 {
        return Err(ApiError::BadRequest(
            "older_than_days must be at least 1".into(),
        ));
    }
    // Checked: an age beyond the calendar means "everything idle", not a panic.
    let cutoff = chrono::Duration::try_days(i64::from(days))
        .and_then(|age| state.kernel.store().now().checked_sub_signed(age))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    let keep_current = body.keep_current.unwrap_or(true);
    let current: std::collections::HashSet<Uuid> = state
        .kernel
        .agents()
        .list()
        .await?
        .iter()
        .filter_map(|a| a.session_id)
        .collect();
    let mut deleted = 0;
    for session in state.kernel.conversations().sessions(None).await? {
        if session.updated_at < cutoff && !(keep_current && current.contains(&session.id)) {
            state
                .kernel
                .conversations()
                .delete_session(session.id)
                .await?;
            deleted += 1;
        }
    }
    Ok(Json(json!({ "deleted": deleted })))
}

/// Query of the trajectory export.
#[derive(Debug, Deserialize, IntoParams)]
pub struct TrajectoryQuery {
    /// `json` (default) or `jsonl`.
    pub format: Option<String>,
}

/// Exports a session with secrets redacted, as one JSON object or as JSON lines.
#[utoipa::path(get, path = "/api/agents/{id}/sessions/{session_id}/trajectory", tag = "sessions",
    params(("id" = Uuid, Path, description = "Agent id"), ("session_id" = Uuid, Path, description = "Session id"), TrajectoryQuery),
    responses((status = 200, description = "The trajectory"), (status = 400, description = "Bad format"),
              (status = 404, description = "No such agent or session")))]
pub async fn trajectory(
    State(state): State<AppState>,
    Path((id, session)): Path<(Uuid, Uuid)>,
    Query(query): Query<TrajectoryQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let agent = state.kernel.agents().get(id).await?;
    let view = state
        .kernel
        .conversations()
        .session_view(Some(id), Some(session))
        .await?;
    let meta = json!({
        "agent_id": id,
        "agent_name": agent.name(),
        "session_id": session,
        "model": { "provider": agent.manifest.model.provider, "model": agent.manifest.model.model },
        "system_prompt_sha256": talon_kernel::conversation::redact::fingerprint(&agent.manifest.system_prompt.clone().unwrap_or_default()),
        "talon_version": env!("CARGO_PKG_VERSION"),
        "message_count": view.messages.len(),
    });
    let messages: Vec<serde_json::Value> = view
        .messages
        .iter()
        .map(|m| talon_kernel::conversation::redact::redact_json(message_json(m)))
        .collect();
    match query.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(json!({ "metadata": meta, "messages": messages })).into_response()),
        "jsonl" => {
            let mut body = meta.to_string();
            for m in &messages {
                body.push('\n');
                body.push_str(&m.to_string());
            }
            body.push('\n');
            Ok((
                [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
                body,
            )
                .into_response())
        }
        other => Err(ApiError::BadRequest(format!(
            "format must be json or jsonl, not `{other}`"
        ))),
    }
}
