//! Workflows: definitions, runs, run history.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use talon_kernel::automation::workflows::{Workflow, WorkflowInput, WorkflowRun};
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::state::AppState;

/// Body of `POST /api/workflows/{id}/run`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// The workflow's input (`{{input}}` of the first step).
    #[serde(default)]
    pub input: String,
}

fn summary(w: &Workflow) -> serde_json::Value {
    serde_json::json!({
        "id": w.id, "name": w.name, "description": w.description,
        "steps": w.steps.len(), "created_at": w.created_at, "updated_at": w.updated_at,
    })
}

fn run_summary(r: &WorkflowRun) -> serde_json::Value {
    serde_json::json!({
        "id": r.id, "workflow_id": r.workflow_id, "workflow_name": r.workflow_name,
        "state": r.state, "steps_completed": r.steps_completed,
        "started_at": r.started_at, "completed_at": r.completed_at,
    })
}

/// Lists workflows in LibreFang's paginated envelope (all of them: one page).
#[utoipa::path(get, path = "/api/workflows", tag = "workflows",
    responses((status = 200, description = "`{items: [{id, name, description, steps, created_at, updated_at}], total, offset, limit}`", body = Object)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let all = state.kernel.automation().workflows().await?;
    let items: Vec<_> = all.iter().map(summary).collect();
    let total = items.len();
    Ok(Json(serde_json::json!({
        "items": items, "total": total, "offset": 0, "limit": total,
    })))
}

/// Creates a workflow: `{name, description?, steps: [...]}`.
#[utoipa::path(post, path = "/api/workflows", tag = "workflows", request_body = Object,
    responses((status = 201, description = "`{workflow_id}`", body = Object),
              (status = 400, description = "Invalid definition; the message names the step and field")))]
pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<WorkflowInput>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let w = state.kernel.automation().workflow_create(body).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "workflow_id": w.id })),
    ))
}

/// One workflow, with its steps.
#[utoipa::path(get, path = "/api/workflows/{id}", tag = "workflows", params(("id" = Uuid, Path, description = "Workflow id")),
    responses((status = 200, description = "The workflow", body = Object), (status = 404, description = "No such workflow")))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        serde_json::to_value(state.kernel.automation().workflow(id).await?).unwrap_or_default(),
    ))
}

/// Replaces a workflow's definition.
#[utoipa::path(put, path = "/api/workflows/{id}", tag = "workflows", params(("id" = Uuid, Path, description = "Workflow id")),
    request_body = Object,
    responses((status = 200, description = "The workflow", body = Object),
              (status = 400, description = "Invalid definition"), (status = 404, description = "No such workflow")))]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<WorkflowInput>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        serde_json::to_value(state.kernel.automation().workflow_update(id, body).await?)
            .unwrap_or_default(),
    ))
}

/// Deletes a workflow (its runs stay readable).
#[utoipa::path(delete, path = "/api/workflows/{id}", tag = "workflows", params(("id" = Uuid, Path, description = "Workflow id")),
    responses((status = 200, description = "`{status: deleted, workflow_id}`", body = Object), (status = 404, description = "No such workflow")))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !state.kernel.automation().workflow_delete(id).await? {
        return Err(ApiError::NotFound(format!("workflow {id} not found")));
    }
    Ok(Json(
        serde_json::json!({ "status": "deleted", "workflow_id": id }),
    ))
}

/// Runs a workflow to its end: `{input}`.
#[utoipa::path(post, path = "/api/workflows/{id}/run", tag = "workflows", params(("id" = Uuid, Path, description = "Workflow id")),
    request_body = RunBody,
    responses((status = 200, description = "`{run_id, output, status, error?, steps}`", body = Object),
              (status = 404, description = "No such workflow")))]
pub async fn run(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<RunBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let r = state
        .kernel
        .automation()
        .workflow_run(id, body.input)
        .await?;
    let status = match r.state {
        talon_kernel::automation::workflows::RunState::Completed => "completed",
        talon_kernel::automation::workflows::RunState::Failed => "failed",
        talon_kernel::automation::workflows::RunState::Running => "running",
    };
    Ok(Json(serde_json::json!({
        "run_id": r.id, "output": r.output, "status": status, "error": r.error,
        "steps": r.step_results,
    })))
}

/// The workflow's runs, newest first.
#[utoipa::path(get, path = "/api/workflows/{id}/runs", tag = "workflows", params(("id" = Uuid, Path, description = "Workflow id")),
    responses((status = 200, description = "Array of `{id, workflow_name, state, steps_completed, started_at, completed_at}`", body = [Object]),
              (status = 404, description = "No such workflow")))]
pub async fn runs(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let all = state.kernel.automation().workflow_runs(id).await?;
    Ok(Json(all.iter().map(run_summary).collect()))
}

/// One run with every step's result.
#[utoipa::path(get, path = "/api/workflows/runs/{run_id}", tag = "workflows", params(("run_id" = Uuid, Path, description = "Run id")),
    responses((status = 200, description = "The run", body = Object), (status = 404, description = "No such run")))]
pub async fn get_run(
    State(state): State<AppState>,
    Path(run_id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        serde_json::to_value(state.kernel.automation().workflow_run_get(run_id).await?)
            .unwrap_or_default(),
    ))
}
