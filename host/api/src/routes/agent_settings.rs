//! An agent's settings: mode, model, tools, skills, identity and hot config.

use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::agents::{AgentPatch, detail, patch_with};
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::state::AppState;

/// Body of `PUT /api/agents/{id}/mode`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModeRequest {
    /// LibreFang's tool access (`observe`: no tools, `assist`: read-only
    /// tools, `full`: all its tools) or Talon's model pinning (`Normal`,
    /// `Stable`: the model pinned and the skills frozen); case-insensitive.
    pub mode: String,
}

/// Sets the agent's mode: which of its tools it may call (observe, assist,
/// full), or whether its model and skills are frozen (Normal, Stable).
#[utoipa::path(put, path = "/api/agents/{id}/mode", tag = "agents", request_body = ModeRequest,
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{status: updated, mode, agent_id}`", body = Object),
              (status = 400, description = "Unknown mode"), (status = 404, description = "No such agent")))]
pub async fn set_mode(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<ModeRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use talon_kernel::agents::{AgentMode, ToolAccess};
    let agents = state.kernel.agents();
    let mode = match body.mode.to_ascii_lowercase().as_str() {
        "normal" => agents
            .set_mode(id, AgentMode::Normal)
            .await
            .map(|_| "Normal"),
        "stable" => agents
            .set_mode(id, AgentMode::Stable)
            .await
            .map(|_| "Stable"),
        "observe" => agents
            .set_tool_access(id, ToolAccess::Observe)
            .await
            .map(|_| "observe"),
        "assist" => agents
            .set_tool_access(id, ToolAccess::Assist)
            .await
            .map(|_| "assist"),
        "full" => agents
            .set_tool_access(id, ToolAccess::Full)
            .await
            .map(|_| "full"),
        other => {
            return Err(ApiError::BadRequest(format!(
                "mode must be observe, assist or full (which tools it may call), \
                 or Normal or Stable (whether its model is pinned); not `{other}`"
            )));
        }
    }?;
    Ok(Json(
        serde_json::json!({ "status": "updated", "mode": mode, "agent_id": id }),
    ))
}

/// Body of `PUT /api/agents/{id}/model`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelRequest {
    /// Model id or alias (not blank).
    #[schema(pattern = "\\S")]
    pub model: String,
    /// Provider; when absent, the catalog's provider for the model (or the current one).
    pub provider: Option<String>,
}

/// Switches the agent's model (refused in Stable mode).
#[utoipa::path(put, path = "/api/agents/{id}/model", tag = "agents", request_body = ModelRequest,
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{status: updated, model, provider}`", body = Object),
              (status = 400, description = "Unknown provider"), (status = 404, description = "No such agent"),
              (status = 409, description = "Stable mode")))]
pub async fn set_model(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<ModelRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if body.model.trim().is_empty() {
        return Err(ApiError::BadRequest("model must not be empty".into()));
    }
    let current = state.kernel.agents().get(id).await?;
    let provider = match body.provider {
        Some(p) => {
            state
                .kernel
                .providers()
                .llm()
                .provider(&p)
                .map_err(ApiError::from)?
                .name
        }
        None => state
            .kernel
            .providers()
            .llm()
            .find_model(&body.model)
            .map(|m| m.provider)
            .unwrap_or(current.manifest.model.provider),
    };
    let record = state
        .kernel
        .agents()
        .edit_manifest(
            id,
            vec![
                ("model.model".into(), body.model.clone().into()),
                ("model.provider".into(), provider.clone().into()),
            ],
        )
        .await?;
    Ok(Json(serde_json::json!({
        "status": "updated", "model": record.manifest.model.model, "provider": provider,
    })))
}

/// Body of the skills replacement (and Talon's own form of the tools one).
#[derive(Debug, Deserialize, ToSchema)]
pub struct NamesRequest {
    /// Tool names (for `/tools`).
    pub tools: Option<Vec<String>>,
    /// Skill names (for `/skills`).
    pub skills: Option<Vec<String>>,
}

/// Body of `PUT /api/agents/{id}/tools`: LibreFang's `SetAgentToolsRequest`,
/// or Talon's `{tools}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolsRequest {
    /// The tools the agent may call (the grant surface); replaces them.
    pub capabilities_tools: Option<Vec<String>>,
    /// Talon's name for `capabilities_tools`.
    pub tools: Option<Vec<String>>,
    /// Narrows the tools to those matching one of these globs (`file_*`).
    /// Applied at once to the stored tools, which are what Talon keeps.
    pub tool_allowlist: Option<Vec<String>>,
    /// Removes the tools matching one of these globs, after the allowlist.
    pub tool_blocklist: Option<Vec<String>>,
}

/// The tools answer shared by GET and PUT, in LibreFang's keys.
fn tools_json(state: &AppState, tools: &[String]) -> serde_json::Value {
    let loaded: Vec<String> = state
        .kernel
        .plugins()
        .tools()
        .into_iter()
        .map(|t| t.name)
        .collect();
    let available: Vec<&String> = tools
        .iter()
        .filter(|t| loaded.contains(t) || talon_kernel::agents::BUILTIN_TOOLS.contains(&t.as_str()))
        .collect();
    // Allow- and blocklists are applied to the stored tools when set, so none remains to show.
    serde_json::json!({
        "capabilities_tools": tools, "tool_allowlist": [], "tool_blocklist": [],
        "disabled": false, "tools": tools, "available": available,
    })
}

/// The tools an agent may call.
#[utoipa::path(get, path = "/api/agents/{id}/tools", tag = "agents",
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{capabilities_tools, tool_allowlist, tool_blocklist, disabled, tools, available}`", body = Object),
              (status = 404, description = "No such agent")))]
pub async fn get_tools(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let agent = state.kernel.agents().get(id).await?;
    Ok(Json(tools_json(&state, &agent.manifest.capabilities.tools)))
}

/// Replaces the tools an agent may call, then narrows them by the allow-
/// and blocklists given.
#[utoipa::path(put, path = "/api/agents/{id}/tools", tag = "agents", request_body = ToolsRequest,
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{status: updated, capabilities_tools, tool_allowlist, tool_blocklist, disabled, tools, available}`", body = Object),
              (status = 400, description = "Both `tools` and `capabilities_tools`, or a tool not installed"),
              (status = 404, description = "No such agent")))]
pub async fn put_tools(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<ToolsRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use talon_kernel::automation::triggers::glob;
    let granted = match (body.capabilities_tools, body.tools) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give `capabilities_tools` or `tools`, not both".into(),
            ));
        }
        (Some(tools), None) | (None, Some(tools)) => Some(tools),
        (None, None) => None,
    };
    // Nothing to change answers the tools as they are, like an empty PATCH.
    if granted.is_none() && body.tool_allowlist.is_none() && body.tool_blocklist.is_none() {
        let agent = state.kernel.agents().get(id).await?;
        return Ok(Json(tools_json(&state, &agent.manifest.capabilities.tools)));
    }
    let mut tools = match granted {
        Some(tools) => tools,
        None => {
            state
                .kernel
                .agents()
                .get(id)
                .await?
                .manifest
                .capabilities
                .tools
        }
    };
    // An empty allowlist clears it (LibreFang's `Some([])`), which narrows nothing.
    if let Some(allow) = body.tool_allowlist.filter(|a| !a.is_empty()) {
        tools.retain(|t| allow.iter().any(|p| glob(p, t)));
    }
    if let Some(block) = body.tool_blocklist {
        tools.retain(|t| !block.iter().any(|p| glob(p, t)));
    }
    let record = patch_with(
        &state,
        id,
        vec![("capabilities.tools".into(), tools.into())],
    )
    .await?;
    let mut answer = tools_json(&state, &record.manifest.capabilities.tools);
    answer["status"] = "updated".into();
    Ok(Json(answer))
}

/// The skills an agent uses.
#[utoipa::path(get, path = "/api/agents/{id}/skills", tag = "agents",
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{skills}`", body = Object), (status = 404, description = "No such agent")))]
pub async fn get_skills(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let agent = state.kernel.agents().get(id).await?;
    Ok(Json(serde_json::json!({ "skills": agent.manifest.skills })))
}

/// Body of `PUT /api/agents/{id}/skills`: LibreFang's bare array of names,
/// or Talon's `{skills}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum SkillsRequest {
    /// `["web-search", ...]`.
    Names(Vec<String>),
    /// `{"skills": [...]}`.
    Object(NamesRequest),
}

/// Replaces the skills an agent uses (refused in Stable mode).
#[utoipa::path(put, path = "/api/agents/{id}/skills", tag = "agents", request_body = SkillsRequest,
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{status: updated, skills}`", body = Object),
              (status = 400, description = "Missing `skills`"), (status = 404, description = "No such agent"),
              (status = 409, description = "Stable mode")))]
pub async fn put_skills(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<SkillsRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let skills = match body {
        SkillsRequest::Names(names) => names,
        SkillsRequest::Object(NamesRequest {
            skills: Some(skills),
            ..
        }) => skills,
        SkillsRequest::Object(_) => {
            return Err(ApiError::BadRequest(
                "body must be [names] or {\"skills\": [...]}".into(),
            ));
        }
    };
    let record = patch_with(&state, id, vec![("skills".into(), skills.into())]).await?;
    Ok(Json(
        serde_json::json!({ "status": "updated", "skills": record.manifest.skills }),
    ))
}

/// Body of `PATCH /api/agents/{id}/identity`; omitted or `null` fields are kept.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityPatch {
    /// An emoji.
    pub emoji: Option<String>,
    /// Avatar image URL.
    pub avatar_url: Option<String>,
    /// Display colour.
    pub color: Option<String>,
    /// Persona archetype.
    pub archetype: Option<String>,
    /// Tone.
    pub vibe: Option<String>,
    /// Greeting style.
    pub greeting_style: Option<String>,
}

impl IdentityPatch {
    fn edits(self, out: &mut Vec<(String, serde_json::Value)>) {
        let fields = [
            ("emoji", self.emoji),
            ("avatar_url", self.avatar_url),
            ("color", self.color),
            ("archetype", self.archetype),
            ("vibe", self.vibe),
            ("greeting_style", self.greeting_style),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                out.push((format!("identity.{key}"), value.into()));
            }
        }
    }
}

/// Updates how the agent presents itself.
#[utoipa::path(patch, path = "/api/agents/{id}/identity", tag = "agents", request_body = IdentityPatch,
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{status: updated, agent_id, identity}`", body = Object),
              (status = 400, description = "Malformed body"), (status = 404, description = "No such agent")))]
pub async fn patch_identity(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<IdentityPatch>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut edits = Vec::new();
    body.edits(&mut edits);
    let record = patch_with(&state, id, edits).await?;
    Ok(Json(serde_json::json!({
        "status": "updated", "agent_id": id, "identity": record.manifest.identity,
    })))
}

/// Body of `PATCH /api/agents/{id}/config`; omitted or `null` fields are kept.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigPatch {
    /// New name (must be unused; not blank).
    #[schema(pattern = "\\S")]
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New system prompt.
    pub system_prompt: Option<String>,
    /// Model id (refused in Stable mode; not blank).
    #[schema(pattern = "\\S")]
    pub model: Option<String>,
    /// Provider (refused in Stable mode).
    pub provider: Option<String>,
    /// Environment variable of the API key.
    pub api_key_env: Option<String>,
    /// Provider base URL.
    pub base_url: Option<String>,
    /// Reply token limit.
    #[schema(format = Int64, maximum = 4294967295_u64)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature, 0 to 2.
    #[schema(minimum = 0.0, maximum = 2.0)]
    pub temperature: Option<f32>,
    /// An emoji.
    pub emoji: Option<String>,
    /// Avatar image URL.
    pub avatar_url: Option<String>,
    /// Display colour.
    pub color: Option<String>,
    /// Persona archetype.
    pub archetype: Option<String>,
    /// Tone.
    pub vibe: Option<String>,
    /// Greeting style.
    pub greeting_style: Option<String>,
    /// LibreFang's fallback models. Talon has no fallback chain (an agent
    /// uses its one model; retries and circuit breakers are per provider), so
    /// only an empty list, which asks for none, is accepted.
    #[schema(value_type = Option<Vec<Object>>, max_items = 0)]
    pub fallback_models: Option<Vec<serde_json::Value>>,
    /// LibreFang's web search augmentation. Talon has none, so only `off`.
    pub web_search_augmentation: Option<String>,
}

/// Hot-updates name, description, prompt, model settings and identity.
#[utoipa::path(patch, path = "/api/agents/{id}/config", tag = "agents", request_body = ConfigPatch,
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "The agent", body = Object),
              (status = 400, description = "A bad value"), (status = 404, description = "No such agent"),
              (status = 409, description = "Name taken, or model change in Stable mode")))]
pub async fn patch_config(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<ConfigPatch>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if body.fallback_models.as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(ApiError::BadRequest(
            "fallback_models: Talon agents have one model and no fallback chain; \
             only an empty list is accepted"
                .into(),
        ));
    }
    if body
        .web_search_augmentation
        .as_deref()
        .is_some_and(|m| m != "off")
    {
        return Err(ApiError::BadRequest(
            "web_search_augmentation: Talon has no web search augmentation; only \"off\" is accepted"
                .into(),
        ));
    }
    if body.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(ApiError::BadRequest(
            "temperature must be between 0 and 2".into(),
        ));
    }
    let mut edits = AgentPatch {
        name: body.name,
        description: body.description,
        system_prompt: body.system_prompt,
        tags: None,
    }
    .edits();
    let model_fields: [(&str, Option<serde_json::Value>); 5] = [
        ("model.model", body.model.map(Into::into)),
        ("model.provider", body.provider.map(Into::into)),
        ("model.api_key_env", body.api_key_env.map(Into::into)),
        ("model.base_url", body.base_url.map(Into::into)),
        ("model.max_tokens", body.max_tokens.map(Into::into)),
    ];
    for (key, value) in model_fields {
        if let Some(value) = value {
            edits.push((key.to_string(), value));
        }
    }
    if let Some(t) = body.temperature {
        edits.push(("model.temperature".into(), serde_json::json!(t)));
    }
    IdentityPatch {
        emoji: body.emoji,
        avatar_url: body.avatar_url,
        color: body.color,
        archetype: body.archetype,
        vibe: body.vibe,
        greeting_style: body.greeting_style,
    }
    .edits(&mut edits);
    Ok(Json(detail(&patch_with(&state, id, edits).await?)))
}
