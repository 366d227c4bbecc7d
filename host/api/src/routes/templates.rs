//! Agent templates and tool profiles.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::state::AppState;

fn summary(t: &talon_kernel::agents::templates::Template) -> serde_json::Value {
    json!({
        "name": t.name,
        "description": t.manifest.description,
        "source": t.source,
        "model": { "provider": t.manifest.model.provider, "model": t.manifest.model.model },
        "tools": t.manifest.capabilities.tools,
    })
}

/// Every template (built-in and `<home>/templates/*.toml`).
#[utoipa::path(get, path = "/api/templates", tag = "agents",
    responses((status = 200, description = "`{templates, total}`", body = Object)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let templates: Vec<_> = state
        .kernel
        .agents()
        .templates()
        .await?
        .iter()
        .map(summary)
        .collect();
    let total = templates.len();
    Ok(Json(json!({ "templates": templates, "total": total })))
}

/// One template with its parsed manifest.
#[utoipa::path(get, path = "/api/templates/{name}", tag = "agents",
    params(("name" = String, Path, description = "Template")),
    responses((status = 200, description = "The template", body = Object), (status = 404, description = "No such template")))]
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let template = state.kernel.agents().template(&name).await?;
    let mut value = summary(&template);
    value["manifest"] = json!(template.manifest);
    Ok(Json(value))
}

/// A template's TOML, ready for `POST /api/agents`.
#[utoipa::path(get, path = "/api/templates/{name}/toml", tag = "agents",
    params(("name" = String, Path, description = "Template")),
    responses((status = 200, description = "The manifest text", content_type = "application/toml"), (status = 404, description = "No such template")))]
pub async fn toml(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let template = state.kernel.agents().template(&name).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/toml")],
        template.toml,
    )
        .into_response())
}

/// The tool profiles.
#[utoipa::path(get, path = "/api/profiles", tag = "agents",
    responses((status = 200, description = "`[{name, description, tools}]`", body = [Object])))]
pub async fn profiles(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!(state.kernel.profiles()))
}

/// One tool profile.
#[utoipa::path(get, path = "/api/profiles/{name}", tag = "agents",
    params(("name" = String, Path, description = "Profile")),
    responses((status = 200, description = "`{name, description, tools}`", body = Object), (status = 404, description = "No such profile")))]
pub async fn profile(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state
        .kernel
        .profiles()
        .into_iter()
        .find(|p| p.name == name)
        .map(|p| Json(json!(p)))
        .ok_or_else(|| ApiError::NotFound(format!("no profile named `{name}`")))
}
