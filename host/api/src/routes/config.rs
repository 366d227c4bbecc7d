//! Configuration endpoints.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::Json;
use crate::state::AppState;

/// Current configuration with secrets redacted.
#[utoipa::path(get, path = "/api/config", tag = "config",
    responses((status = 200, description = "Configuration, secrets redacted", body = Object)))]
pub async fn get_config(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.kernel.config().redacted())
}

/// JSON Schema of `config.toml`.
#[utoipa::path(get, path = "/api/config/schema", tag = "config",
    responses((status = 200, description = "JSON Schema of the configuration", body = Object)))]
pub async fn config_schema() -> Json<serde_json::Value> {
    Json(talon_kernel::config::Config::schema())
}

/// Body of `POST /api/config/set`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetConfig {
    /// Dotted key, for example `rate_limit.api_requests_per_minute`.
    pub path: String,
    /// New value, of the key's type; with `op` `add` or `remove`, an item
    /// or a list of items.
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
    /// `set` (the default) replaces the value; `add` and `remove` change
    /// the list the key holds (`tool_invoke.allowlist`, for example).
    #[serde(default)]
    pub op: ConfigOp,
}

/// How `POST /api/config/set` changes its key.
#[derive(Debug, Default, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConfigOp {
    /// Replace the value.
    #[default]
    Set,
    /// Add items to the list.
    Add,
    /// Remove items from the list.
    Remove,
}

/// Sets one key (or adds to or removes from the list it holds), writes
/// `config.toml` and applies the change.
#[utoipa::path(post, path = "/api/config/set", tag = "config", request_body = SetConfig,
    responses((status = 200, description = "Value persisted and applied", body = Object),
              (status = 400, description = "Unknown key, invalid value, or add/remove on a key that is not a list; nothing written")))]
pub async fn set_config(
    State(state): State<AppState>,
    Json(body): Json<SetConfig>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use talon_kernel::config::Change;
    let items = || match body.value.clone() {
        serde_json::Value::Array(items) => items,
        item => vec![item],
    };
    let change = match body.op {
        ConfigOp::Set => Change::Set(body.value.clone()),
        ConfigOp::Add => Change::Add(items()),
        ConfigOp::Remove => Change::Remove(items()),
    };
    let plan = state
        .kernel
        .change_config(body.path.clone(), change)
        .await?;
    let restart_required = talon_kernel::config::Config::requires_restart(&body.path);
    Ok(Json(serde_json::json!({
        "status": "applied",
        "path": body.path,
        "restart_required": restart_required,
        "changed": plan.changed,
    })))
}

/// Re-reads `config.toml` and applies what can change at runtime.
#[utoipa::path(post, path = "/api/config/reload", tag = "config",
    responses((status = 200, description = "Reload plan", body = Object),
              (status = 400, description = "The file is invalid; the old config stays")))]
pub async fn reload_config(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let plan = state.kernel.reload_config().await?;
    Ok(Json(serde_json::json!({
        "status": "reloaded",
        "changed": plan.changed,
        "applied": plan.applied,
        "restart_required": plan.restart_required,
    })))
}

/// Downloads `config.toml`.
#[utoipa::path(get, path = "/api/config/export", tag = "config",
    responses((status = 200, description = "config.toml as an attachment", content_type = "application/toml")))]
pub async fn export_config(State(state): State<AppState>) -> Result<Response, ApiError> {
    let path = state.kernel.config_path().to_path_buf();
    let text = match tokio::fs::read_to_string(&path).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            toml::to_string_pretty(&*state.kernel.config())
                .map_err(|e| ApiError::Internal(e.to_string()))?
        }
        Err(e) => return Err(ApiError::Internal(e.to_string())),
    };
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/toml"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"config.toml\""),
    );
    Ok(response)
}
