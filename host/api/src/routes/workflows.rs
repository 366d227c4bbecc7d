//! Workflows: definitions, runs, run history.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use talon_kernel::automation::workflows::{
    RunState, StepResult, Workflow, WorkflowInput, WorkflowRun,
};
use utoipa::ToSchema;
use uuid::Uuid;

use super::outcome::Outcome;
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

/// A workflow in a list: its steps counted, not shown.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct WorkflowSummary {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// How many steps it has.
    pub steps: usize,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<&Workflow> for WorkflowSummary {
    fn from(w: &Workflow) -> Self {
        WorkflowSummary {
            id: w.id,
            name: w.name.clone(),
            description: w.description.clone(),
            steps: w.steps.len(),
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// LibreFang's paginated envelope, holding every workflow in one page.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct WorkflowList {
    /// The workflows.
    pub items: Vec<WorkflowSummary>,
    /// How many.
    pub total: usize,
    /// Always 0.
    pub offset: usize,
    /// The same as `total`.
    pub limit: usize,
}

/// A run in a list, without its steps' results.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct RunSummary {
    /// The run's id.
    pub id: Uuid,
    /// The workflow it ran.
    pub workflow_id: Uuid,
    /// The workflow's name then.
    pub workflow_name: String,
    /// Where it stands.
    pub state: RunState,
    /// Steps done.
    pub steps_completed: usize,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub completed_at: Option<DateTime<Utc>>,
}

impl From<&WorkflowRun> for RunSummary {
    fn from(r: &WorkflowRun) -> Self {
        RunSummary {
            id: r.id,
            workflow_id: r.workflow_id,
            workflow_name: r.workflow_name.clone(),
            state: r.state,
            steps_completed: r.steps_completed,
            started_at: r.started_at,
            completed_at: r.completed_at,
        }
    }
}

/// The answer of creating a workflow.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct WorkflowCreated {
    /// The new workflow's id.
    pub workflow_id: Uuid,
}

/// The answer of deleting a workflow.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct WorkflowDeleted {
    /// Always `deleted`.
    pub status: Outcome,
    /// The workflow deleted.
    pub workflow_id: Uuid,
}

/// The answer of running a workflow to its end.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct RunAnswer {
    /// The run's id (`GET /api/workflows/runs/{run_id}`).
    pub run_id: Uuid,
    /// The last step's answer.
    pub output: Option<String>,
    /// How it ended.
    pub status: RunStatus,
    /// What went wrong.
    pub error: Option<String>,
    /// Every step's result.
    pub steps: Vec<StepResult>,
}

/// How a run ended, in LibreFang's lowercase.
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Going (not seen by a run that answers at its end).
    Running,
    /// Every step done or skipped.
    Completed,
    /// A step failed.
    Failed,
}

/// Lists workflows in LibreFang's paginated envelope (all of them: one page).
#[utoipa::path(get, path = "/api/workflows", tag = "workflows",
    responses((status = 200, description = "Every workflow", body = WorkflowList)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<WorkflowList>, ApiError> {
    let all = state.kernel.automation().workflows().await?;
    let items: Vec<WorkflowSummary> = all.iter().map(Into::into).collect();
    let total = items.len();
    Ok(Json(WorkflowList {
        items,
        total,
        offset: 0,
        limit: total,
    }))
}

/// Creates a workflow: `{name, description?, steps: [...]}`.
#[utoipa::path(post, path = "/api/workflows", tag = "workflows", request_body = WorkflowInput,
    responses((status = 201, description = "The new workflow's id", body = WorkflowCreated),
              (status = 400, description = "Invalid definition; the message names the step and field")))]
pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<WorkflowInput>,
) -> Result<(StatusCode, Json<WorkflowCreated>), ApiError> {
    let w = state.kernel.automation().workflow_create(body).await?;
    Ok((
        StatusCode::CREATED,
        Json(WorkflowCreated { workflow_id: w.id }),
    ))
}

/// One workflow, with its steps.
#[utoipa::path(get, path = "/api/workflows/{id}", tag = "workflows", params(("id" = Uuid, Path, description = "Workflow id")),
    responses((status = 200, description = "The workflow", body = Workflow), (status = 404, description = "No such workflow")))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<Workflow>, ApiError> {
    Ok(Json(state.kernel.automation().workflow(id).await?))
}

/// Replaces a workflow's definition.
#[utoipa::path(put, path = "/api/workflows/{id}", tag = "workflows", params(("id" = Uuid, Path, description = "Workflow id")),
    request_body = WorkflowInput,
    responses((status = 200, description = "The workflow", body = Workflow),
              (status = 400, description = "Invalid definition"), (status = 404, description = "No such workflow")))]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<WorkflowInput>,
) -> Result<Json<Workflow>, ApiError> {
    Ok(Json(
        state.kernel.automation().workflow_update(id, body).await?,
    ))
}

/// Deletes a workflow (its runs stay readable).
#[utoipa::path(delete, path = "/api/workflows/{id}", tag = "workflows", params(("id" = Uuid, Path, description = "Workflow id")),
    responses((status = 200, description = "`{status: deleted, workflow_id}`", body = WorkflowDeleted), (status = 404, description = "No such workflow")))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<WorkflowDeleted>, ApiError> {
    if !state.kernel.automation().workflow_delete(id).await? {
        return Err(ApiError::NotFound(format!("workflow {id} not found")));
    }
    Ok(Json(WorkflowDeleted {
        status: Outcome::Deleted,
        workflow_id: id,
    }))
}

/// Runs a workflow to its end: `{input}`.
#[utoipa::path(post, path = "/api/workflows/{id}/run", tag = "workflows", params(("id" = Uuid, Path, description = "Workflow id")),
    request_body = RunBody,
    responses((status = 200, description = "The run's outcome", body = RunAnswer),
              (status = 404, description = "No such workflow")))]
pub async fn run(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<RunBody>,
) -> Result<Json<RunAnswer>, ApiError> {
    let r = state
        .kernel
        .automation()
        .workflow_run(id, body.input)
        .await?;
    let status = match r.state {
        RunState::Completed => RunStatus::Completed,
        RunState::Failed => RunStatus::Failed,
        RunState::Running => RunStatus::Running,
    };
    Ok(Json(RunAnswer {
        run_id: r.id,
        output: r.output,
        status,
        error: r.error,
        steps: r.step_results,
    }))
}

/// The workflow's runs, newest first.
#[utoipa::path(get, path = "/api/workflows/{id}/runs", tag = "workflows", params(("id" = Uuid, Path, description = "Workflow id")),
    responses((status = 200, description = "Its runs", body = [RunSummary]),
              (status = 404, description = "No such workflow")))]
pub async fn runs(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<RunSummary>>, ApiError> {
    let all = state.kernel.automation().workflow_runs(id).await?;
    Ok(Json(all.iter().map(Into::into).collect()))
}

/// One run with every step's result.
#[utoipa::path(get, path = "/api/workflows/runs/{run_id}", tag = "workflows", params(("run_id" = Uuid, Path, description = "Run id")),
    responses((status = 200, description = "The run", body = WorkflowRun), (status = 404, description = "No such run")))]
pub async fn get_run(
    State(state): State<AppState>,
    Path(run_id): Path<Uuid>,
) -> Result<Json<WorkflowRun>, ApiError> {
    Ok(Json(
        state.kernel.automation().workflow_run_get(run_id).await?,
    ))
}
