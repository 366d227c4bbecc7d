//! Goals (a tree of objectives) and the run queue's status.

use axum::extract::State;
use axum::http::StatusCode;
use talon_kernel::automation::goals::{Goal, GoalInput, TEMPLATES};
use uuid::Uuid;

use super::outcome::Outcome;
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::state::AppState;

/// Lists goals, oldest first.
#[utoipa::path(get, path = "/api/goals", tag = "goals",
    responses((status = 200, description = "Every goal", body = [Goal])))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Goal>>, ApiError> {
    Ok(Json(state.kernel.automation().goals().await?))
}

/// Creates a goal: `{title, description?, status?, progress?, agent_id?, parent_id?, due_at?}`.
#[utoipa::path(post, path = "/api/goals", tag = "goals", request_body = GoalInput,
    responses((status = 201, description = "The goal", body = Goal),
              (status = 400, description = "Invalid goal"), (status = 404, description = "No such parent or agent")))]
pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<GoalInput>,
) -> Result<(StatusCode, Json<Goal>), ApiError> {
    let goal = state.kernel.automation().goal_create(body).await?;
    Ok((StatusCode::CREATED, Json(goal)))
}

/// One goal.
#[utoipa::path(get, path = "/api/goals/{id}", tag = "goals", params(("id" = Uuid, Path, description = "Goal id")),
    responses((status = 200, description = "The goal", body = Goal), (status = 404, description = "No such goal")))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<Goal>, ApiError> {
    Ok(Json(state.kernel.automation().goal(id).await?))
}

/// Changes the fields given (`null` clears `agent_id`, `parent_id`, `due_at`).
#[utoipa::path(put, path = "/api/goals/{id}", tag = "goals", params(("id" = Uuid, Path, description = "Goal id")),
    request_body = GoalInput,
    responses((status = 200, description = "The goal", body = Goal),
              (status = 400, description = "Invalid change (a cycle, a bad progress)"), (status = 404, description = "No such goal")))]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<GoalInput>,
) -> Result<Json<Goal>, ApiError> {
    Ok(Json(state.kernel.automation().goal_update(id, body).await?))
}

/// Deletes a goal and all its sub-goals.
#[utoipa::path(delete, path = "/api/goals/{id}", tag = "goals", params(("id" = Uuid, Path, description = "Goal id")),
    responses((status = 200, description = "The goals deleted", body = GoalDeleted),
              (status = 404, description = "No such goal")))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<GoalDeleted>, ApiError> {
    let removed = state.kernel.automation().goal_delete(id).await?;
    if removed.is_empty() {
        return Err(ApiError::NotFound(format!("goal {id} not found")));
    }
    Ok(Json(GoalDeleted {
        status: Outcome::Deleted,
        goal_id: id,
        deleted: removed,
    }))
}

/// The answer of deleting a goal.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct GoalDeleted {
    /// Always `deleted`.
    pub status: Outcome,
    /// The goal asked for.
    pub goal_id: Uuid,
    /// It and every sub-goal under it.
    pub deleted: Vec<Uuid>,
}

/// The direct sub-goals of a goal.
#[utoipa::path(get, path = "/api/goals/{id}/children", tag = "goals", params(("id" = Uuid, Path, description = "Goal id")),
    responses((status = 200, description = "Its direct sub-goals", body = [Goal]), (status = 404, description = "No such goal")))]
pub async fn children(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<Goal>>, ApiError> {
    Ok(Json(state.kernel.automation().goal_children(id).await?))
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
