//! Agent key-value memory endpoints.

use axum::extract::State;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::state::AppState;

/// Lists an agent's key-value pairs.
#[utoipa::path(get, path = "/api/memory/agents/{id}/kv", tag = "memory",
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{kv_pairs: [{key, value}]}`", body = Object),
              (status = 404, description = "No such agent")))]
pub async fn list_kv(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let pairs: Vec<_> = state
        .kernel
        .agents()
        .memory_list(id)
        .await?
        .into_iter()
        .map(|(key, value)| serde_json::json!({ "key": key, "value": value }))
        .collect();
    Ok(Json(serde_json::json!({ "kv_pairs": pairs })))
}

/// Reads one value.
#[utoipa::path(get, path = "/api/memory/agents/{id}/kv/{key}", tag = "memory",
    params(("id" = Uuid, Path, description = "Agent id"), ("key" = String, Path, description = "Key")),
    responses((status = 200, description = "`{key, value}`", body = Object),
              (status = 404, description = "No such agent or key")))]
pub async fn get_kv(
    State(state): State<AppState>,
    Path((id, key)): Path<(Uuid, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let value = state.kernel.agents().memory_get(id, key.clone()).await?;
    Ok(Json(serde_json::json!({ "key": key, "value": value })))
}

/// Writes one value; the answer means it is on disk.
///
/// The body is `{"value": ...}`; any other JSON body is stored whole.
#[utoipa::path(put, path = "/api/memory/agents/{id}/kv/{key}", tag = "memory",
    params(("id" = Uuid, Path, description = "Agent id"), ("key" = String, Path, description = "Key")),
    request_body = serde_json::Value,
    responses((status = 200, description = "`{status: stored, key}`", body = Object),
              (status = 400, description = "Malformed JSON, key or oversized value"),
              (status = 404, description = "No such agent")))]
pub async fn set_kv(
    State(state): State<AppState>,
    Path((id, key)): Path<(Uuid, String)>,
    Json(body): Json<serde_json::Value>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let value = match body {
        serde_json::Value::Object(mut map) if map.len() == 1 && map.contains_key("value") => {
            map.remove("value").unwrap_or_default()
        }
        other => other,
    };
    state
        .kernel
        .agents()
        .memory_set(id, key.clone(), value)
        .await?;
    Ok(Json(serde_json::json!({ "status": "stored", "key": key })))
}

/// Deletes one value.
#[utoipa::path(delete, path = "/api/memory/agents/{id}/kv/{key}", tag = "memory",
    params(("id" = Uuid, Path, description = "Agent id"), ("key" = String, Path, description = "Key")),
    responses((status = 200, description = "`{status: deleted, key}`", body = Object),
              (status = 404, description = "No such agent or key")))]
pub async fn delete_kv(
    State(state): State<AppState>,
    Path((id, key)): Path<(Uuid, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.kernel.agents().memory_delete(id, key.clone()).await?;
    Ok(Json(serde_json::json!({ "status": "deleted", "key": key })))
}

/// Exports an agent's key-value memory.
#[utoipa::path(get, path = "/api/agents/{id}/memory/export", tag = "memory",
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{agent_id, kv: {key: value}}`", body = Object),
              (status = 404, description = "No such agent")))]
pub async fn export(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let kv: serde_json::Map<String, serde_json::Value> = state
        .kernel
        .agents()
        .memory_list(id)
        .await?
        .into_iter()
        .collect();
    Ok(Json(serde_json::json!({ "agent_id": id, "kv": kv })))
}

/// Body of `POST /api/agents/{id}/memory/import`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// Keys and their JSON values.
    #[schema(value_type = Object)]
    pub kv: serde_json::Map<String, serde_json::Value>,
    /// Delete every existing key first.
    #[serde(default)]
    pub clear_existing: bool,
}

/// Imports key-value memory in one transaction: all keys land, or none.
#[utoipa::path(post, path = "/api/agents/{id}/memory/import", tag = "memory",
    params(("id" = Uuid, Path, description = "Agent id")), request_body = ImportRequest,
    responses((status = 200, description = "`{status: imported, keys_imported}`", body = Object),
              (status = 400, description = "A bad key or oversized value; nothing written"),
              (status = 404, description = "No such agent")))]
pub async fn import(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<ImportRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let values: Vec<_> = body.kv.into_iter().collect();
    let count = state
        .kernel
        .agents()
        .memory_import(id, values, body.clear_existing)
        .await?;
    Ok(Json(
        serde_json::json!({ "status": "imported", "keys_imported": count }),
    ))
}
