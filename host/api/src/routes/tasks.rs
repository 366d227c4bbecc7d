//! The task queue: work posted for agents.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use talon_kernel::automation::tasks::TaskStatus;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{Json, OptionalJson, Path, Query};
use crate::state::AppState;

/// Body of `POST /api/tasks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostTask {
    /// A short name (not blank; at most 256 bytes).
    #[schema(pattern = "\\S")]
    pub title: String,
    /// What to do: the message the assignee receives (not blank; at most 64 KiB).
    #[schema(pattern = "\\S")]
    pub description: String,
    /// The agent that does it; without one the task waits.
    pub assignee: Option<Uuid>,
}

/// Posts a task; the queue's worker sends it to the assignee.
#[utoipa::path(post, path = "/api/tasks", tag = "scheduler", request_body = PostTask,
    responses((status = 201, description = "The task", body = Object),
              (status = 400, description = "Empty or oversized title or description"),
              (status = 404, description = "No such assignee")))]
pub async fn post(
    State(state): State<AppState>,
    Json(body): Json<PostTask>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let task = state
        .kernel
        .automation()
        .post_task(body.title, body.description, body.assignee, None)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(task))))
}

/// Counts of tasks by status.
#[utoipa::path(get, path = "/api/tasks/status", tag = "scheduler",
    responses((status = 200, description = "`{pending, running, completed, failed, cancelled, total}`", body = Object)))]
pub async fn status(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json!(state.kernel.automation().task_counts().await?)))
}

/// Query of the task list.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only tasks in this status (`pending`, `running`, `completed`, `failed`, `cancelled`).
    #[param(pattern = "^(pending|running|completed|failed|cancelled)$")]
    pub status: Option<String>,
}

/// Tasks, oldest first.
#[utoipa::path(get, path = "/api/tasks/list", tag = "scheduler", params(ListQuery),
    responses((status = 200, description = "`{tasks, total}`", body = Object),
              (status = 400, description = "Unknown status")))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let status = match query.status.as_deref() {
        None => None,
        Some(s) => Some(
            serde_json::from_value::<TaskStatus>(json!(s))
                .map_err(|_| ApiError::BadRequest(format!("unknown task status `{s}`")))?,
        ),
    };
    let tasks = state.kernel.automation().tasks(status).await?;
    let total = tasks.len();
    Ok(Json(json!({ "tasks": tasks, "total": total })))
}

/// Cancels a pending or failed task.
#[utoipa::path(delete, path = "/api/tasks/{id}", tag = "scheduler",
    params(("id" = Uuid, Path, description = "Task id")),
    responses((status = 200, description = "The cancelled task", body = Object),
              (status = 404, description = "No such task"), (status = 409, description = "Running or finished")))]
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json!(
        state.kernel.automation().cancel_task(id).await?
    )))
}

/// Body of a retry: optionally another assignee.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryTask {
    /// Give the task to this agent instead.
    pub assignee: Option<Uuid>,
}

/// Queues a failed or cancelled task again.
#[utoipa::path(post, path = "/api/tasks/{id}/retry", tag = "scheduler",
    params(("id" = Uuid, Path, description = "Task id")),
    request_body(content = Option<RetryTask>, description = "Optional", content_type = "application/json"),
    responses((status = 200, description = "The task, pending again", body = Object),
              (status = 404, description = "No such task or assignee"), (status = 409, description = "Not failed or cancelled")))]
pub async fn retry(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    OptionalJson(body): OptionalJson<RetryTask>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json!(
        state
            .kernel
            .automation()
            .retry_task(id, body.assignee)
            .await?
    )))
}
