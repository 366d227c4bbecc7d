//! Skill endpoints: skills are plugins of kind `skill`, whose instructions
//! are added to the system prompt of agents that have them.

use axum::extract::State;
use talon_runtime::Kind;

use crate::error::ApiError;
use crate::extract::package::PackageJson;
use crate::extract::{Json, Path};
use crate::routes::plugins::{InstallRequest, NameRequest, ScaffoldRequest, scaffold_project};
use crate::state::AppState;

fn skill_json(
    state: &AppState,
    view: &talon_kernel::plugins::PluginView,
    full: bool,
) -> serde_json::Value {
    let mut skill = serde_json::json!({
        "name": view.name, "version": view.version, "description": view.description, "author": view.author,
        "enabled": view.enabled, "status": view.status, "tools": view.tools,
    });
    if full {
        skill["instructions"] =
            serde_json::json!(state.kernel.plugins().skill_instructions(&view.name));
        skill["permissions"] = serde_json::to_value(&view.permissions).unwrap_or_default();
        skill["error"] = serde_json::json!(view.error);
    }
    skill
}

/// Lists installed skills.
#[utoipa::path(get, path = "/api/skills", tag = "skills",
    responses((status = 200, description = "`{skills: [{name, version, description, enabled, status, tools}], total}`", body = Object)))]
pub async fn list(State(state): State<AppState>) -> Json<serde_json::Value> {
    let skills: Vec<_> = state
        .kernel
        .plugins()
        .list()
        .iter()
        .filter(|p| p.kind == Kind::Skill)
        .map(|p| skill_json(&state, p, false))
        .collect();
    Json(serde_json::json!({ "total": skills.len(), "skills": skills }))
}

/// One skill, with its instructions.
#[utoipa::path(get, path = "/api/skills/{name}", tag = "skills",
    params(("name" = String, Path, description = "Skill name")),
    responses((status = 200, description = "The skill and its instructions", body = Object),
              (status = 404, description = "No such skill")))]
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let view = state
        .kernel
        .plugins()
        .plugin(&name)
        .ok()
        .filter(|p| p.kind == Kind::Skill);
    let view = view.ok_or_else(|| ApiError::NotFound(format!("no skill named {name}")))?;
    Ok(Json(skill_json(&state, &view, true)))
}

/// Installs a signed skill package (same body as `/api/plugins/install`).
#[utoipa::path(post, path = "/api/skills/install", tag = "skills", request_body = InstallRequest,
    responses((status = 200, description = "`{status: installed, name, skill}`", body = Object),
              (status = 400, description = "Invalid package, or not a skill"),
              (status = 403, description = "Unsigned or untrusted package"),
              (status = 409, description = "Already installed")))]
pub async fn install(
    State(state): State<AppState>,
    // Streamed, bounded, one of a few at once: the slot is held until the
    // install is done.
    PackageJson(body, _slot): PackageJson<InstallRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let view = state
        .kernel
        .plugins()
        .install_plugin(
            body.source()?,
            body.grant()?,
            body.settings.clone(),
            Some(Kind::Skill),
        )
        .await?;
    Ok(Json(
        serde_json::json!({ "status": "installed", "name": view.name, "skill": skill_json(&state, &view, true) }),
    ))
}

/// Uninstalls a skill.
#[utoipa::path(post, path = "/api/skills/uninstall", tag = "skills", request_body = NameRequest,
    responses((status = 200, description = "`{status: uninstalled, name}`", body = Object),
              (status = 404, description = "No such skill")))]
pub async fn uninstall(
    State(state): State<AppState>,
    Json(body): Json<NameRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state
        .kernel
        .plugins()
        .uninstall_plugin(&body.name, Some(Kind::Skill))
        .await?;
    Ok(Json(
        serde_json::json!({ "status": "uninstalled", "name": body.name }),
    ))
}

/// Creates a new skill project (Rust) to build, sign and install.
#[utoipa::path(post, path = "/api/skills/create", tag = "skills", request_body = ScaffoldRequest,
    responses((status = 200, description = "`{status: created, path, files}`", body = Object),
              (status = 400, description = "Bad name or language"),
              (status = 409, description = "The directory exists")))]
pub async fn create(
    State(state): State<AppState>,
    Json(mut body): Json<ScaffoldRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    body.kind = Some("skill".into());
    let (path, files) = scaffold_project(&state, body).await?;
    Ok(Json(
        serde_json::json!({ "status": "created", "path": path, "files": files }),
    ))
}

/// Reloads every installed skill from its package file.
#[utoipa::path(post, path = "/api/skills/reload", tag = "skills",
    responses((status = 200, description = "`{reloaded: [names], errors: [{name, error}]}`", body = Object)))]
pub async fn reload(State(state): State<AppState>) -> Json<serde_json::Value> {
    let (mut reloaded, mut errors) = (Vec::new(), Vec::new());
    for skill in state
        .kernel
        .plugins()
        .list()
        .into_iter()
        .filter(|p| p.kind == Kind::Skill && p.enabled)
    {
        match state
            .kernel
            .plugins()
            .reload_plugin(&skill.name, None, false)
            .await
        {
            Ok(_) => reloaded.push(skill.name),
            Err(e) => {
                errors.push(serde_json::json!({ "name": skill.name, "error": e.to_string() }))
            }
        }
    }
    Json(serde_json::json!({ "reloaded": reloaded, "errors": errors }))
}
