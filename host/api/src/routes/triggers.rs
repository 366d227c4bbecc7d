//! Event triggers.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use talon_kernel::automation::triggers::{Trigger, TriggerFire, TriggerInput, TriggerPatch};
use utoipa::IntoParams;
use utoipa::ToSchema;
use uuid::Uuid;

use super::outcome::Outcome;
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
    responses((status = 200, description = "The triggers", body = TriggerList)))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<TriggerList>, ApiError> {
    let triggers = state.kernel.automation().triggers(query.agent_id);
    let total = triggers.len();
    Ok(Json(TriggerList { triggers, total }))
}

/// The answer of listing triggers.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct TriggerList {
    /// The triggers.
    pub triggers: Vec<Trigger>,
    /// How many.
    pub total: usize,
}

/// The answer of creating a trigger.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct TriggerCreated {
    /// The new trigger's id.
    pub trigger_id: Uuid,
    /// Its agent.
    pub agent_id: Uuid,
}

/// The answer of removing a trigger.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct TriggerRemoved {
    /// Always `removed`.
    pub status: Outcome,
    /// The trigger removed.
    pub trigger_id: Uuid,
}

/// The answer of listing a trigger's fires.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct TriggerFires {
    /// Newest first.
    pub items: Vec<TriggerFire>,
}

/// Creates a trigger: `{agent_id, pattern, prompt_template, max_fires?, cooldown_secs?, session_mode?, target_agent_id?}`.
#[utoipa::path(post, path = "/api/triggers", tag = "triggers", request_body = TriggerInput,
    responses((status = 201, description = "The new trigger's id", body = TriggerCreated),
              (status = 400, description = "Malformed body or pattern"), (status = 404, description = "No such agent")))]
pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<TriggerInput>,
) -> Result<(StatusCode, Json<TriggerCreated>), ApiError> {
    let t = state.kernel.automation().trigger_create(body).await?;
    Ok((
        StatusCode::CREATED,
        Json(TriggerCreated {
            trigger_id: t.id,
            agent_id: t.agent_id,
        }),
    ))
}

/// One trigger.
#[utoipa::path(get, path = "/api/triggers/{id}", tag = "triggers", params(("id" = Uuid, Path, description = "Trigger id")),
    responses((status = 200, description = "The trigger", body = Trigger), (status = 404, description = "No such trigger")))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<Trigger>, ApiError> {
    Ok(Json(state.kernel.automation().trigger(id)?))
}

/// Changes the fields given; `null` clears `cooldown_secs`, `session_mode` or `target_agent_id`.
#[utoipa::path(patch, path = "/api/triggers/{id}", tag = "triggers", params(("id" = Uuid, Path, description = "Trigger id")),
    request_body = TriggerPatch,
    responses((status = 200, description = "The updated trigger", body = Trigger),
              (status = 400, description = "Malformed body"), (status = 404, description = "No such trigger")))]
pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<TriggerPatch>,
) -> Result<Json<Trigger>, ApiError> {
    Ok(Json(
        state.kernel.automation().trigger_patch(id, body).await?,
    ))
}

/// Removes a trigger.
#[utoipa::path(delete, path = "/api/triggers/{id}", tag = "triggers", params(("id" = Uuid, Path, description = "Trigger id")),
    responses((status = 200, description = "`{status: removed, trigger_id}`", body = TriggerRemoved),
              (status = 404, description = "No such trigger")))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<TriggerRemoved>, ApiError> {
    if !state.kernel.automation().trigger_delete(id).await? {
        return Err(ApiError::NotFound(format!("trigger {id} not found")));
    }
    Ok(Json(TriggerRemoved {
        status: Outcome::Removed,
        trigger_id: id,
    }))
}

/// What the trigger's fires did (prompts sent and responses), newest first.
#[utoipa::path(get, path = "/api/triggers/{id}/fires", tag = "triggers", params(("id" = Uuid, Path, description = "Trigger id"), FiresQuery),
    responses((status = 200, description = "The fires", body = TriggerFires), (status = 404, description = "No such trigger")))]
pub async fn fires(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<FiresQuery>,
) -> Result<Json<TriggerFires>, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let items = state.kernel.automation().trigger_fires(id, limit).await?;
    Ok(Json(TriggerFires { items }))
}
