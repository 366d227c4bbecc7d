//! Event triggers.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use talon_kernel::automation::triggers::{TriggerInput, TriggerPatch};
use utoipa::IntoParams;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

/// Query of `GET /api/triggers`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only triggers owned by this agent.
    pub agent_id: Option<Uuid>,
}

/// Query of `GET /api/triggers/{id}/fires`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FiresQuery {
    /// At most this many (default 50, at most 500).
    pub limit: Option<usize>,
}

/// Lists triggers, as LibreFang does: `{triggers, total}`.
#[utoipa::path(get, path = "/api/triggers", tag = "triggers", params(ListQuery),
    responses((status = 200, description = "`{triggers, total}`", body = Object)))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let triggers = state.kernel.automation().triggers(query.agent_id);
    let total = triggers.len();
    Ok(Json(
        serde_json::json!({ "triggers": triggers, "total": total }),
    ))
}

/// Creates a trigger: `{agent_id, pattern, prompt_template, max_fires?, cooldown_secs?, session_mode?, target_agent_id?}`.
#[utoipa::path(post, path = "/api/triggers", tag = "triggers", request_body = Object,
    responses((status = 201, description = "`{trigger_id, agent_id}`", body = Object),
              (status = 400, description = "Malformed body or pattern"), (status = 404, description = "No such agent")))]
pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<TriggerInput>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let t = state.kernel.automation().trigger_create(body).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "trigger_id": t.id, "agent_id": t.agent_id })),
    ))
}

/// One trigger.
#[utoipa::path(get, path = "/api/triggers/{id}", tag = "triggers", params(("id" = Uuid, Path, description = "Trigger id")),
    responses((status = 200, description = "The trigger", body = Object), (status = 404, description = "No such trigger")))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        serde_json::to_value(state.kernel.automation().trigger(id)?).unwrap_or_default(),
    ))
}

/// Changes the fields given; `null` clears `cooldown_secs`, `session_mode` or `target_agent_id`.
#[utoipa::path(patch, path = "/api/triggers/{id}", tag = "triggers", params(("id" = Uuid, Path, description = "Trigger id")),
    request_body = Object,
    responses((status = 200, description = "The updated trigger", body = Object),
              (status = 400, description = "Malformed body"), (status = 404, description = "No such trigger")))]
pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<TriggerPatch>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let t = state.kernel.automation().trigger_patch(id, body).await?;
    Ok(Json(serde_json::to_value(t).unwrap_or_default()))
}

/// Removes a trigger.
#[utoipa::path(delete, path = "/api/triggers/{id}", tag = "triggers", params(("id" = Uuid, Path, description = "Trigger id")),
    responses((status = 200, description = "`{status: removed, trigger_id}`", body = Object),
              (status = 404, description = "No such trigger")))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !state.kernel.automation().trigger_delete(id).await? {
        return Err(ApiError::NotFound(format!("trigger {id} not found")));
    }
    Ok(Json(
        serde_json::json!({ "status": "removed", "trigger_id": id }),
    ))
}

/// What the trigger's fires did (prompts sent and responses), newest first.
#[utoipa::path(get, path = "/api/triggers/{id}/fires", tag = "triggers", params(("id" = Uuid, Path, description = "Trigger id"), FiresQuery),
    responses((status = 200, description = "`{items}`", body = Object), (status = 404, description = "No such trigger")))]
pub async fn fires(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<FiresQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let items = state.kernel.automation().trigger_fires(id, limit).await?;
    Ok(Json(serde_json::json!({ "items": items })))
}
