//! Cron jobs and schedules: two doors to the same jobs.
//!
//! `/api/cron/jobs` speaks LibreFang's cron API (`schedule`, `prompt`),
//! `/api/schedules` its schedule API (`cron`, `prompt`); both accept either
//! spelling, and every job is shown with both.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use talon_kernel::automation::schedules::{CronJobInput, CronJobView};
use utoipa::IntoParams;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

/// Query of the job lists.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    /// Only jobs driving this agent.
    pub agent_id: Option<Uuid>,
}

/// Query of `GET /api/cron/runs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    /// Only runs of this job.
    pub job_id: Option<Uuid>,
    /// At most this many (default 50, at most 500).
    pub limit: Option<usize>,
    /// Skip this many, newest first.
    pub offset: Option<usize>,
}

/// Body of `PUT /api/cron/jobs/{id}/enable`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnableBody {
    /// The new state.
    pub enabled: bool,
}

fn job_json(view: CronJobView) -> serde_json::Value {
    let schedule = view.job.schedule.clone();
    let id = view.job.id;
    let mut value = serde_json::to_value(view).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.insert("cron".into(), schedule.into());
        object.insert("job_id".into(), id.to_string().into());
    }
    value
}

/// Lists cron jobs, oldest first, as LibreFang does: `{jobs, total}`.
#[utoipa::path(get, path = "/api/cron/jobs", tag = "scheduler", params(JobsQuery),
    responses((status = 200, description = "`{jobs, total}`; each job with `job_id`, `next_run` and `last_run`", body = Object)))]
pub async fn list_jobs(
    State(state): State<AppState>,
    Query(query): Query<JobsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let jobs: Vec<_> = state
        .kernel
        .automation()
        .cron_jobs(query.agent_id)
        .await?
        .into_iter()
        .map(job_json)
        .collect();
    let total = jobs.len();
    Ok(Json(serde_json::json!({ "jobs": jobs, "total": total })))
}

/// Creates a cron job: `{name?, agent_id, schedule, tz?, prompt | action, enabled?, missed_policy?, lane?}`.
#[utoipa::path(post, path = "/api/cron/jobs", tag = "scheduler", request_body = CronJobInput,
    responses((status = 201, description = "The job, with `job_id`, `status: created` and `next_run`", body = Object),
              (status = 400, description = "Malformed body, schedule, time zone or lane"),
              (status = 404, description = "No such agent")))]
pub async fn create_job(
    State(state): State<AppState>,
    Json(body): Json<CronJobInput>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let mut job = job_json(state.kernel.automation().cron_create(body).await?);
    // LibreFang answers `{job_id, status: "created"}`; the whole job is kept beside it.
    if let Some(object) = job.as_object_mut() {
        object.insert("status".into(), "created".into());
    }
    Ok((StatusCode::CREATED, Json(job)))
}

/// One cron job.
#[utoipa::path(get, path = "/api/cron/jobs/{id}", tag = "scheduler", params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, description = "The job", body = Object), (status = 404, description = "No such job")))]
pub async fn get_job(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(job_json(
        state.kernel.automation().cron_job(id).await?,
    )))
}

/// Changes the fields given; a new schedule counts from now.
#[utoipa::path(put, path = "/api/cron/jobs/{id}", tag = "scheduler", params(("id" = Uuid, Path, description = "Job id")),
    request_body = CronJobInput,
    responses((status = 200, description = "The updated job", body = Object),
              (status = 400, description = "Invalid change"), (status = 404, description = "No such job")))]
pub async fn update_job(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<CronJobInput>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(job_json(
        state.kernel.automation().cron_update(id, body).await?,
    )))
}

/// Deletes a job; idempotent. Its past runs stay in the run log.
#[utoipa::path(delete, path = "/api/cron/jobs/{id}", tag = "scheduler", params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, description = "`{status: deleted|already-deleted, job_id}`", body = Object)))]
pub async fn delete_job(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let existed = state.kernel.automation().cron_delete(id).await?;
    let status = if existed {
        "deleted"
    } else {
        "already-deleted"
    };
    Ok(Json(serde_json::json!({ "status": status, "job_id": id })))
}

/// Enables or disables a job: `{"enabled": bool}`.
#[utoipa::path(put, path = "/api/cron/jobs/{id}/enable", tag = "scheduler", params(("id" = Uuid, Path, description = "Job id")),
    request_body = EnableBody,
    responses((status = 200, description = "The job", body = Object), (status = 404, description = "No such job")))]
pub async fn enable_job(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<EnableBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(job_json(
        state
            .kernel
            .automation()
            .cron_set_enabled(id, body.enabled)
            .await?,
    )))
}

/// The job with its last run's result and its next run.
#[utoipa::path(get, path = "/api/cron/jobs/{id}/status", tag = "scheduler", params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, description = "The job, with `last_run`, `next_run` and `fire_count`", body = Object),
              (status = 404, description = "No such job")))]
pub async fn job_status(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    get_job(State(state), Path(id)).await
}

/// The run log, newest first.
#[utoipa::path(get, path = "/api/cron/runs", tag = "scheduler", params(RunsQuery),
    responses((status = 200, description = "`{items, total, offset, limit}`", body = Object)))]
pub async fn list_runs(
    State(state): State<AppState>,
    Query(query): Query<RunsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let offset = query.offset.unwrap_or(0);
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let (items, total) = state
        .kernel
        .automation()
        .cron_runs(query.job_id, offset, limit)
        .await?;
    Ok(Json(serde_json::json!({
        "items": items, "total": total, "offset": offset, "limit": limit,
    })))
}

/// Lists schedules (the same jobs as `/api/cron/jobs`).
#[utoipa::path(get, path = "/api/schedules", tag = "scheduler", params(JobsQuery),
    responses((status = 200, description = "`{items, total, offset: 0, limit: null}`", body = Object)))]
pub async fn list_schedules(
    State(state): State<AppState>,
    Query(query): Query<JobsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let jobs: Vec<_> = state
        .kernel
        .automation()
        .cron_jobs(query.agent_id)
        .await?
        .into_iter()
        .map(job_json)
        .collect();
    let total = jobs.len();
    Ok(Json(serde_json::json!({
        "items": jobs, "total": total, "offset": 0, "limit": null,
    })))
}

/// Creates a schedule: `{agent_id, cron, prompt, enabled?, name?, tz?, missed_policy?, lane?}`.
#[utoipa::path(post, path = "/api/schedules", tag = "scheduler", request_body = CronJobInput,
    responses((status = 201, description = "The schedule", body = Object),
              (status = 400, description = "Invalid schedule definition"), (status = 404, description = "No such agent")))]
pub async fn create_schedule(
    state: State<AppState>,
    body: Json<CronJobInput>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    create_job(state, body).await
}

/// One schedule.
#[utoipa::path(get, path = "/api/schedules/{id}", tag = "scheduler", params(("id" = Uuid, Path, description = "Schedule id")),
    responses((status = 200, description = "The schedule", body = Object), (status = 404, description = "No such schedule")))]
pub async fn get_schedule(
    state: State<AppState>,
    id: Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    get_job(state, id).await
}

/// Changes a schedule (fields given only; `enabled` toggles it).
#[utoipa::path(put, path = "/api/schedules/{id}", tag = "scheduler", params(("id" = Uuid, Path, description = "Schedule id")),
    request_body = CronJobInput,
    responses((status = 200, description = "The schedule", body = Object),
              (status = 400, description = "Invalid change"), (status = 404, description = "No such schedule")))]
pub async fn update_schedule(
    state: State<AppState>,
    id: Path<Uuid>,
    body: Json<CronJobInput>,
) -> Result<Json<serde_json::Value>, ApiError> {
    update_job(state, id, body).await
}

/// Deletes a schedule; idempotent.
#[utoipa::path(delete, path = "/api/schedules/{id}", tag = "scheduler", params(("id" = Uuid, Path, description = "Schedule id")),
    responses((status = 200, description = "`{status: deleted|already-deleted, job_id}`", body = Object)))]
pub async fn delete_schedule(
    state: State<AppState>,
    id: Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    delete_job(state, id).await
}

/// Runs a schedule once now, whatever its cron expression; the run goes on
/// in the background and shows in `/api/cron/runs`.
#[utoipa::path(post, path = "/api/schedules/{id}/run", tag = "scheduler", params(("id" = Uuid, Path, description = "Schedule id")),
    responses((status = 200, description = "`{status: triggered, job_id, run_id}`", body = Object),
              (status = 404, description = "No such schedule")))]
pub async fn run_schedule(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let run = state.kernel.automation().cron_run_now(id).await?;
    Ok(Json(serde_json::json!({
        "status": "triggered", "job_id": id, "run_id": run.id, "started_at": run.started_at,
    })))
}
