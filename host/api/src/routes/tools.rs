//! Tool endpoints: the tools installed plugins offer, and direct invocation.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use talon_runtime::InvokeError;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

/// Lists every tool of every loaded plugin.
#[utoipa::path(get, path = "/api/tools", tag = "tools",
    responses((status = 200, description = "`{tools: [{name, description, input_schema, plugin, kind}], total}`", body = Object)))]
pub async fn list(State(state): State<AppState>) -> Json<serde_json::Value> {
    let tools = state.kernel.plugins().tools();
    Json(serde_json::json!({ "total": tools.len(), "tools": tools }))
}

/// One tool's definition.
#[utoipa::path(get, path = "/api/tools/{name}", tag = "tools",
    params(("name" = String, Path, description = "Tool name")),
    responses((status = 200, description = "`{name, description, input_schema, plugin, kind}`", body = Object),
              (status = 404, description = "No such tool")))]
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let tool = state.kernel.plugins().tool(&name)?;
    serde_json::to_value(tool)
        .map(Json)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// The query of an invocation.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InvokeQuery {
    /// Run as this agent: its workspace and memory, and only if its manifest
    /// lists the tool.
    pub agent_id: Option<Uuid>,
}

/// Calls a tool directly. Closed unless `[tool_invoke] enabled = true` and
/// the tool is in `allowlist`. The body is the tool's arguments.
#[utoipa::path(post, path = "/api/tools/{name}/invoke", tag = "tools",
    params(("name" = String, Path, description = "Tool name"), InvokeQuery),
    request_body = Object,
    responses((status = 200, description = "`{tool, plugin, result, cost: {fuel, wall_us, peak_memory}}`", body = Object),
              (status = 400, description = "Arguments not a JSON object, or refused by the tool's schema"),
              (status = 403, description = "Direct invocation is closed for this tool, or the agent may not call it"),
              (status = 404, description = "No such tool or agent"),
              (status = 422, description = "The tool failed (its own error, `not_found` included) or was stopped (fuel, deadline, memory, resources, result size, trap, exit): `{error, kind, cost}`"),
              (status = 503, description = "No free instance slot for the plugin: `{error, kind: busy}` with `Retry-After`")))]
pub async fn invoke(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<InvokeQuery>,
    Json(arguments): Json<serde_json::Value>,
) -> Result<Response, ApiError> {
    let config = state.kernel.config();
    if !config.tool_invoke.allows(&name) {
        // A misspelt name is a 404: "closed" would send the operator to the
        // allowlist for a tool that does not exist. Looked up only here, so
        // an allowed call does not look its tool up twice.
        state.kernel.plugins().tool(&name)?;
        return Err(ApiError::Forbidden(format!(
            "direct invocation of {name} is closed: set tool_invoke.enabled = true and add \"{name}\" (or \"*\") to \
             tool_invoke.allowlist"
        )));
    }
    if !arguments.is_object() {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object: the tool's arguments".into(),
        ));
    }
    let (plugin, invocation) = state
        .kernel
        .plugins()
        .invoke_tool(&name, &arguments.to_string(), query.agent_id)
        .await?;
    let cost = serde_json::to_value(invocation.cost).unwrap_or_default();
    match invocation.result {
        Ok(output) => {
            // Tools answer JSON text; anything else is passed on as a string.
            let result = serde_json::from_str::<serde_json::Value>(&output)
                .unwrap_or(serde_json::Value::String(output));
            Ok(Json(serde_json::json!({ "tool": name, "plugin": plugin, "result": result, "cost": cost })).into_response())
        }
        Err(error) => {
            // A tool's own `not-found` (a missing file) is the tool's answer,
            // not a missing route or tool: a 422 like its other failures.
            let status = match &error {
                InvokeError::InvalidArguments(_) => StatusCode::BAD_REQUEST,
                InvokeError::PermissionDenied(_) => StatusCode::FORBIDDEN,
                InvokeError::Guard(guard) if guard.retry_after().is_some() => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let retry_after = match &error {
                InvokeError::Guard(guard) => guard.retry_after(),
                _ => None,
            };
            let body = serde_json::json!({
                "error": error.to_string(), "kind": error.kind(), "tool": name, "plugin": plugin, "cost": cost,
            });
            let mut response = (status, Json(body)).into_response();
            if let Some(wait) = retry_after {
                let secs = wait.as_secs().max(1).to_string();
                if let Ok(value) = axum::http::HeaderValue::from_str(&secs) {
                    response
                        .headers_mut()
                        .insert(axum::http::header::RETRY_AFTER, value);
                }
            }
            Ok(response)
        }
    }
}
