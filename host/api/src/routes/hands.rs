//! Hands: installed hand plugins, their activations (instances), settings,
//! dependency checks and figures. `install-deps`, `browser`, `secret`,
//! `manifest` and the marketplace are not served (see the README).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use talon_kernel::hands::{
    ActivateSpec, DepCheck, HandView, InstanceStats, InstanceView, SettingsView,
};
use utoipa::ToSchema;
use uuid::Uuid;

use super::plugins::InstallRequest;
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::state::AppState;

/// `GET /api/hands`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HandList {
    /// The installed hands.
    pub hands: Vec<HandView>,
    /// How many.
    pub total: usize,
}

/// `GET /api/hands/active`.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceList {
    /// The active instances.
    pub instances: Vec<InstanceView>,
    /// How many.
    pub total: usize,
}

/// What a removal, deactivation or reload did.
#[derive(Debug, Serialize, ToSchema)]
pub struct HandChange {
    /// `uninstalled`, `deactivated` or `reloaded`.
    pub status: String,
    /// The hand, for an uninstall.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hand_id: Option<String>,
    /// The instance, for a deactivation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<Uuid>,
    /// Instances running after a reload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<usize>,
}

/// Body of `POST /api/hands/{hand_id}/activate`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivateBody {
    /// The settings, checked against the hand's schema (LibreFang's name).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
    /// The settings (Talon's name; give `config` or `settings`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
    /// The provider of the model the hand's agent uses.
    #[schema(min_length = 1, max_length = 200)]
    pub provider: String,
    /// The model the hand's agent uses.
    #[schema(min_length = 1, max_length = 200)]
    pub model: String,
    /// Seconds between ticks: at least the hand's own interval (the default).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 604800)]
    pub tick_interval_secs: Option<u64>,
}

/// Body of `PUT /api/hands/{hand_id}/settings`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    /// The new settings (LibreFang's name).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
    /// The new settings (Talon's name; give `config` or `settings`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
    /// The instance to change; may be left out when the hand has one.
    #[serde(default)]
    pub instance_id: Option<Uuid>,
}

fn one_settings(
    config: Option<serde_json::Value>,
    settings: Option<serde_json::Value>,
) -> Result<serde_json::Value, ApiError> {
    match (config, settings) {
        (Some(_), Some(_)) => Err(ApiError::BadRequest(
            "give the settings once: as `config` or as `settings`".into(),
        )),
        (Some(v), None) | (None, Some(v)) => Ok(v),
        (None, None) => Ok(serde_json::json!({})),
    }
}

/// Lists the installed hands.
#[utoipa::path(get, path = "/api/hands", tag = "hands",
    responses((status = 200, description = "`{hands, total}`", body = HandList)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<HandList>, ApiError> {
    let hands = state.kernel.hands().list().await?;
    Ok(Json(HandList {
        total: hands.len(),
        hands,
    }))
}

/// Installs a signed hand package (like `/api/plugins/install`, for
/// `kind = "hand"` only).
#[utoipa::path(post, path = "/api/hands/install", tag = "hands", request_body = InstallRequest,
    responses((status = 200, description = "The installed hand", body = HandView),
              (status = 400, description = "Malformed, tampered or invalid package, not a hand, or a grant beyond the request"),
              (status = 403, description = "Unsigned or untrusted package while development mode is off"),
              (status = 409, description = "Already installed")))]
pub async fn install(
    State(state): State<AppState>,
    Json(body): Json<InstallRequest>,
) -> Result<Json<HandView>, ApiError> {
    let view = state
        .kernel
        .plugins()
        .install_plugin(
            body.source()?,
            body.grant()?,
            body.settings.clone(),
            Some(talon_runtime::Kind::Hand),
        )
        .await?;
    Ok(Json(state.kernel.hands().get(&view.name).await?))
}

/// Uninstalls a hand; refused while it has instances.
#[utoipa::path(delete, path = "/api/hands/{hand_id}", tag = "hands",
    params(("hand_id" = String, Path, description = "Hand id (its plugin's name)", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
    responses((status = 200, description = "Uninstalled", body = HandChange),
              (status = 404, description = "No such hand"),
              (status = 409, description = "It has instances; deactivate them first")))]
pub async fn uninstall(
    State(state): State<AppState>,
    Path(hand): Path<String>,
) -> Result<Json<HandChange>, ApiError> {
    state.kernel.hands().uninstall(&hand).await?;
    Ok(Json(HandChange {
        status: "uninstalled".into(),
        hand_id: Some(hand),
        instance_id: None,
        started: None,
    }))
}

/// Loads the hand plugins again from their packages and restarts their
/// active instances.
#[utoipa::path(post, path = "/api/hands/reload", tag = "hands",
    responses((status = 200, description = "Reloaded", body = HandChange)))]
pub async fn reload(State(state): State<AppState>) -> Result<Json<HandChange>, ApiError> {
    let started = state.kernel.hands().reload().await?;
    Ok(Json(HandChange {
        status: "reloaded".into(),
        hand_id: None,
        instance_id: None,
        started: Some(started),
    }))
}

/// Lists the active instances.
#[utoipa::path(get, path = "/api/hands/active", tag = "hands",
    responses((status = 200, description = "`{instances, total}`", body = InstanceList)))]
pub async fn active(State(state): State<AppState>) -> Result<Json<InstanceList>, ApiError> {
    let instances = state.kernel.hands().list_instances(true).await?;
    Ok(Json(InstanceList {
        total: instances.len(),
        instances,
    }))
}

/// One hand: what it describes (settings schema, agent role, interval),
/// its permissions and its instances.
#[utoipa::path(get, path = "/api/hands/{hand_id}", tag = "hands",
    params(("hand_id" = String, Path, description = "Hand id (its plugin's name)", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
    responses((status = 200, description = "The hand", body = HandView),
              (status = 404, description = "No such hand")))]
pub async fn get(
    State(state): State<AppState>,
    Path(hand): Path<String>,
) -> Result<Json<HandView>, ApiError> {
    Ok(Json(state.kernel.hands().get(&hand).await?))
}

/// Activates a hand: its settings checked against its schema, an agent
/// created for it, its ticks scheduled.
#[utoipa::path(post, path = "/api/hands/{hand_id}/activate", tag = "hands",
    params(("hand_id" = String, Path, description = "Hand id (its plugin's name)", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
    request_body = ActivateBody,
    responses((status = 200, description = "The new instance", body = InstanceView),
              (status = 400, description = "Settings that do not fit the schema (the field is named), a bad model or interval"),
              (status = 404, description = "No such hand"),
              (status = 409, description = "The hand's plugin is not loaded, or too many instances"),
              (status = 413, description = "Settings too large")))]
pub async fn activate(
    State(state): State<AppState>,
    Path(hand): Path<String>,
    Json(body): Json<ActivateBody>,
) -> Result<Json<InstanceView>, ApiError> {
    let spec = ActivateSpec {
        settings: one_settings(body.config, body.settings)?,
        provider: Some(body.provider),
        model: Some(body.model),
        tick_interval_secs: body.tick_interval_secs,
    };
    Ok(Json(state.kernel.hands().activate(&hand, spec).await?))
}

/// What the hand needs and which of it is missing.
#[utoipa::path(post, path = "/api/hands/{hand_id}/check-deps", tag = "hands",
    params(("hand_id" = String, Path, description = "Hand id (its plugin's name)", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
    responses((status = 200, description = "Each requirement and whether it is met", body = DepCheck),
              (status = 404, description = "No such hand")))]
pub async fn check_deps(
    State(state): State<AppState>,
    Path(hand): Path<String>,
) -> Result<Json<DepCheck>, ApiError> {
    Ok(Json(state.kernel.hands().check_deps(&hand)?))
}

/// The hand's settings schema and its instances' settings.
#[utoipa::path(get, path = "/api/hands/{hand_id}/settings", tag = "hands",
    params(("hand_id" = String, Path, description = "Hand id (its plugin's name)", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
    responses((status = 200, description = "Schema and settings", body = SettingsView),
              (status = 404, description = "No such hand")))]
pub async fn get_settings(
    State(state): State<AppState>,
    Path(hand): Path<String>,
) -> Result<Json<SettingsView>, ApiError> {
    Ok(Json(state.kernel.hands().settings(&hand).await?))
}

/// Replaces an instance's settings and activates it again with them.
#[utoipa::path(put, path = "/api/hands/{hand_id}/settings", tag = "hands",
    params(("hand_id" = String, Path, description = "Hand id (its plugin's name)", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")),
    request_body = SettingsBody,
    responses((status = 200, description = "The instance with its new settings", body = InstanceView),
              (status = 400, description = "Settings that do not fit the schema (the field is named), or several instances and none named"),
              (status = 404, description = "No such hand or instance"),
              (status = 409, description = "The hand has no instance, or its plugin is not loaded"),
              (status = 413, description = "Settings too large")))]
pub async fn put_settings(
    State(state): State<AppState>,
    Path(hand): Path<String>,
    Json(body): Json<SettingsBody>,
) -> Result<Json<InstanceView>, ApiError> {
    let settings = one_settings(body.config, body.settings)?;
    Ok(Json(
        state
            .kernel
            .hands()
            .set_settings(&hand, body.instance_id, settings)
            .await?,
    ))
}

/// Pauses an instance: no ticks, deactivated; its agent and state stay.
#[utoipa::path(post, path = "/api/hands/instances/{id}/pause", tag = "hands",
    params(("id" = Uuid, Path, description = "Instance id")),
    responses((status = 200, description = "The instance", body = InstanceView),
              (status = 404, description = "No such instance")))]
pub async fn pause(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<InstanceView>, ApiError> {
    Ok(Json(state.kernel.hands().pause(id).await?))
}

/// Resumes a paused instance.
#[utoipa::path(post, path = "/api/hands/instances/{id}/resume", tag = "hands",
    params(("id" = Uuid, Path, description = "Instance id")),
    responses((status = 200, description = "The instance", body = InstanceView),
              (status = 404, description = "No such instance"),
              (status = 409, description = "The hand's plugin is not loaded")))]
pub async fn resume(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<InstanceView>, ApiError> {
    Ok(Json(state.kernel.hands().resume(id).await?))
}

/// Deactivates an instance for good, removing its agent (and so its state).
#[utoipa::path(delete, path = "/api/hands/instances/{id}", tag = "hands",
    params(("id" = Uuid, Path, description = "Instance id")),
    responses((status = 200, description = "Deactivated", body = HandChange),
              (status = 404, description = "No such instance")))]
pub async fn deactivate(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<HandChange>, ApiError> {
    state.kernel.hands().deactivate(id).await?;
    Ok(Json(HandChange {
        status: "deactivated".into(),
        hand_id: None,
        instance_id: Some(id),
        started: None,
    }))
}

/// An instance's figures: the supervisor's and the hand's own metrics.
#[utoipa::path(get, path = "/api/hands/instances/{id}/stats", tag = "hands",
    params(("id" = Uuid, Path, description = "Instance id")),
    responses((status = 200, description = "The instance and its metrics", body = InstanceStats),
              (status = 404, description = "No such instance")))]
pub async fn stats(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<InstanceStats>, ApiError> {
    Ok(Json(state.kernel.hands().stats(id).await?))
}
