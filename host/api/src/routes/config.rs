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
    /// New value, of the key's type.
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
}

/// Sets one key, writes `config.toml` and applies the change.
#[utoipa::path(post, path = "/api/config/set", tag = "config", request_body = SetConfig,
    responses((status = 200, description = "Value persisted and applied", body = Object),
              (status = 400, description = "Unknown key or invalid value; nothing written")))]
pub async fn set_config(
    State(state): State<AppState>,
    Json(body): Json<SetConfig>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let plan = state
        .kernel
        .set_config(body.path.clone(), body.value)
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
