//! Goals (a tree of objectives) and the run queue's status.

use axum::extract::State;
use axum::http::StatusCode;
use talon_kernel::automation::goals::{GoalInput, TEMPLATES};
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::state::AppState;

/// Lists goals, oldest first.
#[utoipa::path(get, path = "/api/goals", tag = "goals",
    responses((status = 200, description = "Array of goals", body = [Object])))]
pub async fn list(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        serde_json::to_value(state.kernel.automation().goals().await?).unwrap_or_default(),
    ))
}

/// Creates a goal: `{title, description?, status?, progress?, agent_id?, parent_id?, due_at?}`.
#[utoipa::path(post, path = "/api/goals", tag = "goals", request_body = Object,
    responses((status = 201, description = "The goal", body = Object),
              (status = 400, description = "Invalid goal"), (status = 404, description = "No such parent or agent")))]
pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<GoalInput>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let goal = state.kernel.automation().goal_create(body).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(goal).unwrap_or_default()),
    ))
}

/// One goal.
#[utoipa::path(get, path = "/api/goals/{id}", tag = "goals", params(("id" = Uuid, Path, description = "Goal id")),
    responses((status = 200, description = "The goal", body = Object), (status = 404, description = "No such goal")))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        serde_json::to_value(state.kernel.automation().goal(id).await?).unwrap_or_default(),
    ))
}

/// Changes the fields given (`null` clears `agent_id`, `parent_id`, `due_at`).
#[utoipa::path(put, path = "/api/goals/{id}", tag = "goals", params(("id" = Uuid, Path, description = "Goal id")),
    request_body = Object,
    responses((status = 200, description = "The goal", body = Object),
              (status = 400, description = "Invalid change (a cycle, a bad progress)"), (status = 404, description = "No such goal")))]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<GoalInput>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        serde_json::to_value(state.kernel.automation().goal_update(id, body).await?)
            .unwrap_or_default(),
    ))
}

/// Deletes a goal and all its sub-goals.
#[utoipa::path(delete, path = "/api/goals/{id}", tag = "goals", params(("id" = Uuid, Path, description = "Goal id")),
    responses((status = 200, description = "`{status: deleted, goal_id, deleted: [ids]}`", body = Object),
              (status = 404, description = "No such goal")))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let removed = state.kernel.automation().goal_delete(id).await?;
    if removed.is_empty() {
        return Err(ApiError::NotFound(format!("goal {id} not found")));
    }
    Ok(Json(
        serde_json::json!({ "status": "deleted", "goal_id": id, "deleted": removed }),
    ))
}

/// The direct sub-goals of a goal.
#[utoipa::path(get, path = "/api/goals/{id}/children", tag = "goals", params(("id" = Uuid, Path, description = "Goal id")),
    responses((status = 200, description = "Array of goals", body = [Object]), (status = 404, description = "No such goal")))]
pub async fn children(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        serde_json::to_value(state.kernel.automation().goal_children(id).await?)
            .unwrap_or_default(),
    ))
}

/// Built-in goal templates.
#[utoipa::path(get, path = "/api/goals/templates", tag = "goals",
    responses((status = 200, description = "`{templates: [{id, name, description, subgoals}]}`", body = Object)))]
pub async fn templates() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "templates": TEMPLATES, "total": TEMPLATES.len() }))
}

/// The scheduler's run queue: each lane's limit, running and queued runs.
#[utoipa::path(get, path = "/api/queue/status", tag = "scheduler",
    responses((status = 200, description = "`{lanes: [{name, limit, running, queued, completed}], running, queued}`", body = Object)))]
pub async fn queue_status(State(state): State<AppState>) -> Json<serde_json::Value> {
    let lanes = state.kernel.automation().scheduler_lanes();
    let running: usize = lanes.iter().map(|l| l.running).sum();
    let queued: u64 = lanes.iter().map(|l| l.queued).sum();
    Json(serde_json::json!({ "lanes": lanes, "running": running, "queued": queued }))
}
