//! Agent registry endpoints (spawn, list, get, kill).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use talon_kernel::agents::AgentRecord;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

/// Body of `POST /api/agents`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpawnRequest {
    /// The agent manifest, as TOML text.
    pub manifest_toml: Option<String>,
    /// Or the name of a template (`GET /api/templates`).
    pub template: Option<String>,
    /// With a template: the new agent's name (default: the template's).
    pub name: Option<String>,
}

impl SpawnRequest {
    /// The manifest text to spawn: the given one, or a template's with its name replaced.
    async fn manifest(self, state: &AppState) -> Result<String, ApiError> {
        match (self.manifest_toml, self.template) {
            (Some(text), None) => Ok(text),
            (None, Some(template)) => {
                let text = state.kernel.agents().template(&template).await?.toml;
                match self.name {
                    None => Ok(text),
                    Some(name) => {
                        let mut doc: toml_edit::DocumentMut = text
                            .parse()
                            .map_err(|e| ApiError::Internal(format!("template {template}: {e}")))?;
                        doc["name"] = toml_edit::value(name);
                        Ok(doc.to_string())
                    }
                }
            }
            _ => Err(ApiError::BadRequest(
                "give either `manifest_toml` or `template` (with an optional `name`)".into(),
            )),
        }
    }
}

/// Answer to a spawn.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpawnResponse {
    /// The new agent's id.
    pub agent_id: Uuid,
    /// Its name.
    pub name: String,
}

/// Query of `GET /api/agents`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Case-insensitive text searched in name and description.
    pub q: Option<String>,
    /// Only agents in this state (`running`, `stopped`).
    pub status: Option<String>,
    /// At most this many items (default all, at most 500).
    pub limit: Option<usize>,
    /// Skip this many items.
    pub offset: Option<usize>,
}

fn summary(a: &AgentRecord) -> serde_json::Value {
    serde_json::json!({
        "id": a.id,
        "name": a.name(),
        "state": a.state,
        "mode": a.mode,
        "tool_access": a.tool_access,
        "session_id": a.session_id,
        "created_at": a.created_at,
        "last_active": a.last_active,
        "model_provider": a.manifest.model.provider,
        "model_name": a.manifest.model.model,
        "description": a.manifest.description,
        "tags": a.manifest.tags,
    })
}

/// The list row plus everything the manifest says.
pub(super) fn detail(a: &AgentRecord) -> serde_json::Value {
    let m = &a.manifest;
    let mut value = summary(a);
    let extra = serde_json::json!({
        "version": m.version,
        "author": m.author,
        "module": m.module,
        "model": { "provider": m.model.provider, "model": m.model.model },
        "system_prompt": m.system_prompt.clone().or_else(|| m.model.system_prompt.clone()),
        "capabilities": { "tools": m.capabilities.tools, "network": m.capabilities.network,
                          "memory_read": m.capabilities.memory_read, "memory_write": m.capabilities.memory_write },
        "tools": m.capabilities.tools,
        "skills": m.skills,
        "mcp_servers": m.mcp_servers,
        "identity": m.identity,
        "max_tokens": m.model.max_tokens,
        "temperature": m.model.temperature,
        "budget": a.budget,
    });
    if let (Some(row), serde_json::Value::Object(extra)) = (value.as_object_mut(), extra) {
        row.extend(extra);
    }
    value
}

/// Lists agents, paginated.
#[utoipa::path(get, path = "/api/agents", tag = "agents", params(ListQuery),
    responses((status = 200, description = "`{items, total, offset, limit}`", body = Object)))]
pub async fn list_agents(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let needle = query.q.as_deref().map(str::to_lowercase);
    let wanted_state = query.status.as_deref().map(str::to_lowercase);
    let matching: Vec<_> = state
        .kernel
        .agents()
        .list()
        .await?
        .into_iter()
        .filter(|a| {
            needle.as_ref().is_none_or(|n| {
                a.name().to_lowercase().contains(n)
                    || a.manifest.description.to_lowercase().contains(n)
            })
        })
        .filter(|a| {
            wanted_state
                .as_ref()
                .is_none_or(|s| format!("{:?}", a.state).to_lowercase() == *s)
        })
        .collect();
    let total = matching.len();
    let offset = query.offset.unwrap_or(0);
    let limit = query.limit.unwrap_or(500).min(500);
    let items: Vec<_> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(summary)
        .collect();
    Ok(Json(
        serde_json::json!({ "items": items, "total": total, "offset": offset, "limit": limit }),
    ))
}

/// Spawns an agent from a TOML manifest.
#[utoipa::path(post, path = "/api/agents", tag = "agents", request_body = SpawnRequest,
    responses((status = 201, description = "Spawned", body = SpawnResponse),
              (status = 400, description = "Malformed manifest; the message names line and key"),
              (status = 404, description = "No such template"),
              (status = 409, description = "An agent with that name exists")))]
pub async fn spawn_agent(
    State(state): State<AppState>,
    Json(body): Json<SpawnRequest>,
) -> Result<(StatusCode, Json<SpawnResponse>), ApiError> {
    let manifest = body.manifest(&state).await?;
    let record = state.kernel.agents().spawn(manifest).await?;
    Ok((
        StatusCode::CREATED,
        Json(SpawnResponse {
            agent_id: record.id,
            name: record.name().to_string(),
        }),
    ))
}

/// One agent in detail.
#[utoipa::path(get, path = "/api/agents/{id}", tag = "agents", params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "Agent details", body = Object),
              (status = 400, description = "Malformed id"), (status = 404, description = "No such agent")))]
pub async fn get_agent(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(detail(&state.kernel.agents().get(id).await?)))
}

/// Kills an agent; idempotent.
#[utoipa::path(delete, path = "/api/agents/{id}", tag = "agents", params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{status: killed|already-deleted, agent_id}`", body = Object),
              (status = 400, description = "Malformed id")))]
pub async fn kill_agent(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let existed = state.kernel.kill_agent(id).await?;
    let status = if existed { "killed" } else { "already-deleted" };
    Ok(Json(
        serde_json::json!({ "status": status, "agent_id": id }),
    ))
}

/// Body of `POST /api/agents/bulk`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkCreate {
    /// One spawn request per agent.
    pub agents: Vec<SpawnRequest>,
}

/// Body of the bulk delete, start and stop operations.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkIds {
    /// The agents concerned.
    pub agent_ids: Vec<String>,
}

/// Most agents one bulk request may name.
const MAX_BULK: usize = 100;

fn check_bulk(len: usize) -> Result<(), ApiError> {
    if len > MAX_BULK {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_BULK} agents per bulk request, got {len}"
        )));
    }
    Ok(())
}

/// Spawns several agents; each succeeds or fails on its own.
#[utoipa::path(post, path = "/api/agents/bulk", tag = "agents", request_body = BulkCreate,
    responses((status = 200, description = "`{results: [{index, agent_id?, name?, error?}], created, failed}`", body = Object)))]
pub async fn bulk_create(
    State(state): State<AppState>,
    Json(body): Json<BulkCreate>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_bulk(body.agents.len())?;
    let mut results = Vec::new();
    let mut created = 0;
    for (index, request) in body.agents.into_iter().enumerate() {
        let manifest = match request.manifest(&state).await {
            Ok(text) => text,
            Err(e) => {
                results.push(serde_json::json!({ "index": index, "error": e.to_string() }));
                continue;
            }
        };
        match state.kernel.agents().spawn(manifest).await {
            Ok(record) => {
                created += 1;
                results.push(serde_json::json!({ "index": index, "agent_id": record.id, "name": record.name() }));
            }
            Err(e) => results.push(
                serde_json::json!({ "index": index, "error": ApiError::from(e).to_string() }),
            ),
        }
    }
    let failed = results.len() - created;
    Ok(Json(
        serde_json::json!({ "results": results, "created": created, "failed": failed }),
    ))
}

/// What a bulk operation does to one agent.
#[derive(Clone, Copy)]
enum BulkOp {
    Delete,
    Start,
    Stop,
}

async fn bulk(
    state: &AppState,
    body: BulkIds,
    op: BulkOp,
) -> Result<Json<serde_json::Value>, ApiError> {
    use talon_kernel::agents::AgentState;
    check_bulk(body.agent_ids.len())?;
    let mut results = Vec::new();
    for raw in body.agent_ids {
        let Ok(id) = raw.parse::<Uuid>() else {
            results.push(serde_json::json!({ "agent_id": raw, "error": "not a UUID" }));
            continue;
        };
        let outcome = match op {
            BulkOp::Delete => state
                .kernel
                .kill_agent(id)
                .await
                .map(|existed| if existed { "killed" } else { "already-deleted" }),
            BulkOp::Start => state
                .kernel
                .agents()
                .set_state(id, AgentState::Running)
                .await
                .map(|_| "running"),
            BulkOp::Stop => state
                .kernel
                .agents()
                .set_state(id, AgentState::Stopped)
                .await
                .map(|_| "stopped"),
        };
        results.push(match outcome {
            Ok(status) => serde_json::json!({ "agent_id": id, "status": status }),
            Err(e) => serde_json::json!({ "agent_id": id, "error": ApiError::from(e).to_string() }),
        });
    }
    Ok(Json(serde_json::json!({ "results": results })))
}

/// Kills several agents.
#[utoipa::path(delete, path = "/api/agents/bulk", tag = "agents", request_body = BulkIds,
    responses((status = 200, description = "`{results: [{agent_id, status | error}]}`", body = Object)))]
pub async fn bulk_delete(
    State(state): State<AppState>,
    Json(body): Json<BulkIds>,
) -> Result<Json<serde_json::Value>, ApiError> {
    bulk(&state, body, BulkOp::Delete).await
}

/// Starts several stopped agents.
#[utoipa::path(post, path = "/api/agents/bulk/start", tag = "agents", request_body = BulkIds,
    responses((status = 200, description = "`{results: [{agent_id, status | error}]}`", body = Object)))]
pub async fn bulk_start(
    State(state): State<AppState>,
    Json(body): Json<BulkIds>,
) -> Result<Json<serde_json::Value>, ApiError> {
    bulk(&state, body, BulkOp::Start).await
}

/// Stops several running agents.
#[utoipa::path(post, path = "/api/agents/bulk/stop", tag = "agents", request_body = BulkIds,
    responses((status = 200, description = "`{results: [{agent_id, status | error}]}`", body = Object)))]
pub async fn bulk_stop(
    State(state): State<AppState>,
    Json(body): Json<BulkIds>,
) -> Result<Json<serde_json::Value>, ApiError> {
    bulk(&state, body, BulkOp::Stop).await
}

/// Body of `POST /api/agents/{id}/clone`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneRequest {
    /// Name of the copy (not blank).
    #[schema(pattern = "\\S")]
    pub new_name: String,
    /// Copy the skills (default true).
    pub include_skills: Option<bool>,
    /// Copy the tools (default true).
    pub include_tools: Option<bool>,
}

/// Clones an agent with its workspace files.
#[utoipa::path(post, path = "/api/agents/{id}/clone", tag = "agents", request_body = CloneRequest,
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 201, description = "`{agent_id, name}`", body = SpawnResponse),
              (status = 404, description = "No such agent"), (status = 409, description = "Name taken")))]
pub async fn clone_agent(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<CloneRequest>,
) -> Result<(StatusCode, Json<SpawnResponse>), ApiError> {
    let record = state
        .kernel
        .agents()
        .clone_agent(
            id,
            body.new_name,
            body.include_skills.unwrap_or(true),
            body.include_tools.unwrap_or(true),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(SpawnResponse {
            agent_id: record.id,
            name: record.name().to_string(),
        }),
    ))
}

/// Body of `PATCH /api/agents/{id}` and `PUT /api/agents/{id}/update`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentPatch {
    /// New name (must be unused; not blank).
    #[schema(pattern = "\\S")]
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New system prompt.
    pub system_prompt: Option<String>,
    /// New tags.
    pub tags: Option<Vec<String>>,
}

impl AgentPatch {
    pub(super) fn edits(self) -> Vec<(String, serde_json::Value)> {
        let mut edits = Vec::new();
        if let Some(v) = self.name {
            edits.push(("name".to_string(), v.into()));
        }
        if let Some(v) = self.description {
            edits.push(("description".to_string(), v.into()));
        }
        if let Some(v) = self.system_prompt {
            edits.push(("system_prompt".to_string(), v.into()));
        }
        if let Some(v) = self.tags {
            edits.push(("tags".to_string(), v.into()));
        }
        edits
    }
}

pub(super) async fn patch_with(
    state: &AppState,
    id: Uuid,
    edits: Vec<(String, serde_json::Value)>,
) -> Result<AgentRecord, ApiError> {
    // An empty patch is a patch that changes nothing (RFC 7396): the agent
    // as it is, not an error.
    if edits.is_empty() {
        return Ok(state.kernel.agents().get(id).await?);
    }
    Ok(state.kernel.agents().edit_manifest(id, edits).await?)
}

/// Changes an agent's name, description, system prompt or tags.
#[utoipa::path(patch, path = "/api/agents/{id}", tag = "agents", request_body = AgentPatch,
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "The agent", body = Object),
              (status = 400, description = "An invalid value"),
              (status = 404, description = "No such agent"), (status = 409, description = "Name taken")))]
pub async fn patch_agent(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<AgentPatch>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(detail(&patch_with(&state, id, body.edits()).await?)))
}

/// The same change as `PATCH /api/agents/{id}`, answered as the reference does.
#[utoipa::path(put, path = "/api/agents/{id}/update", tag = "agents", request_body = AgentPatch,
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{status: updated, agent_id}`", body = Object),
              (status = 404, description = "No such agent"), (status = 409, description = "Name taken")))]
pub async fn update_agent(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<AgentPatch>,
) -> Result<Json<serde_json::Value>, ApiError> {
    patch_with(&state, id, body.edits()).await?;
    Ok(Json(
        serde_json::json!({ "status": "updated", "agent_id": id }),
    ))
}

/// Query of traces.
#[derive(Debug, Deserialize, IntoParams)]
pub struct TracesQuery {
    /// At most this many turns (default 20, at most 500).
    pub limit: Option<usize>,
}

/// The agent's latest turns: model calls, tool calls, tokens, cost, timings.
#[utoipa::path(get, path = "/api/agents/{id}/traces", tag = "agents", params(("id" = Uuid, Path, description = "Agent id"), TracesQuery),
    responses((status = 200, description = "`{traces: [turn]}` newest first", body = Object), (status = 404, description = "No such agent")))]
pub async fn traces(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<TracesQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = query.limit.unwrap_or(20).clamp(1, 500);
    let turns = state.kernel.conversations().turns(id, limit).await?;
    Ok(Json(serde_json::json!({ "traces": turns })))
}

/// Totals over every recorded turn of the agent.
#[utoipa::path(get, path = "/api/agents/{id}/metrics", tag = "agents", params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "Token, cost, latency and error figures", body = Object), (status = 404, description = "No such agent")))]
pub async fn metrics(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use talon_kernel::conversation::TurnStatus;
    let turns = state.kernel.conversations().turns(id, usize::MAX).await?;
    let count = turns.len();
    let failed = turns
        .iter()
        .filter(|t| t.status == TurnStatus::Failed)
        .count();
    let tool_calls: usize = turns.iter().map(|t| t.tool_calls.len()).sum();
    let tool_errors: usize = turns
        .iter()
        .flat_map(|t| &t.tool_calls)
        .filter(|c| c.is_error)
        .count();
    let mut durations: Vec<u64> = turns.iter().map(|t| t.duration_ms).collect();
    durations.sort_unstable();
    let percentile = |p: f64| -> u64 {
        if durations.is_empty() {
            0
        } else {
            durations[((durations.len() - 1) as f64 * p).round() as usize]
        }
    };
    Ok(Json(serde_json::json!({
        "agent_id": id,
        "turns": count,
        "failed_turns": failed,
        "error_rate": if count == 0 { 0.0 } else { failed as f64 / count as f64 },
        "input_tokens": turns.iter().map(|t| t.input_tokens).sum::<u64>(),
        "output_tokens": turns.iter().map(|t| t.output_tokens).sum::<u64>(),
        "cost_usd": turns.iter().map(|t| t.cost_usd).sum::<f64>(),
        "iterations": turns.iter().map(|t| u64::from(t.iterations)).sum::<u64>(),
        "tool_calls": tool_calls,
        "tool_errors": tool_errors,
        "latency_ms": { "p50": percentile(0.5), "p99": percentile(0.99) },
    })))
}

/// Query of `GET /api/agents/{id}/logs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// At most this many lines (default 100, at most 1000). `limit` is accepted too.
    #[serde(alias = "limit")]
    pub n: Option<usize>,
    /// Only lines of this level (`info`, `warn`, `error`), or `ok` for lines whose outcome is ok.
    #[param(pattern = "^(info|warn|warning|error|ok)$")]
    pub level: Option<String>,
    /// Skip this many matching lines, newest first (default 0).
    pub offset: Option<usize>,
}

/// The agent's log: turns started, completed and failed (model, tokens, cost,
/// duration), its tool calls, and its audit entries (spawned, started,
/// stopped, changed...), newest first. Derived from the turn records and the
/// audit chain, so it survives restarts.
#[utoipa::path(get, path = "/api/agents/{id}/logs", tag = "agents", params(("id" = Uuid, Path, description = "Agent id"), LogsQuery),
    responses((status = 200, description = "`{agent_id, count, total, offset, limit, logs: [{timestamp, level, action, detail, outcome, source, seq?, turn_id?, session_id?}]}` newest first", body = Object),
              (status = 400, description = "Bad id, level or number"), (status = 404, description = "No such agent")))]
pub async fn logs(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<LogsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use talon_kernel::conversation::logs::{DEFAULT_LOG_LINES, LevelFilter, MAX_LOG_LINES};
    let level = query
        .level
        .as_deref()
        .map(str::parse::<LevelFilter>)
        .transpose()?;
    let limit = query.n.unwrap_or(DEFAULT_LOG_LINES).min(MAX_LOG_LINES);
    let offset = query.offset.unwrap_or(0);
    let page = state
        .kernel
        .conversations()
        .agent_logs(id, level, offset, limit)
        .await?;
    Ok(Json(serde_json::json!({
        "agent_id": id,
        "count": page.lines.len(),
        "total": page.total,
        "offset": offset,
        "limit": limit,
        "logs": page.lines,
    })))
}
