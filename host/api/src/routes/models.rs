//! The model catalog, the providers, and their circuit breakers.

use axum::extract::State;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::state::AppState;

/// Every catalogued model with its context window and prices.
#[utoipa::path(get, path = "/api/models", tag = "models",
    responses((status = 200, description = "`{models, total}`", body = Object)))]
pub async fn list(State(state): State<AppState>) -> Json<serde_json::Value> {
    let models = state.kernel.llm().models();
    let total = models.len();
    Json(json!({ "models": models, "total": total }))
}

/// One model by id, alias or `provider/model` (ids may contain slashes).
/// Served at `/api/models/{*id}`, outside the OpenAPI router, whose paths
/// cannot express a segment holding slashes.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state
        .kernel
        .llm()
        .find_model(&id)
        .map(|m| Json(json!(m)))
        .ok_or_else(|| ApiError::NotFound(format!("unknown model `{id}`")))
}

/// Every alias and the model it names.
#[utoipa::path(get, path = "/api/models/aliases", tag = "models",
    responses((status = 200, description = "`{aliases: {alias: model id}}`", body = Object)))]
pub async fn aliases(State(state): State<AppState>) -> Json<serde_json::Value> {
    let aliases: serde_json::Map<String, serde_json::Value> = state
        .kernel
        .llm()
        .models()
        .into_iter()
        .flat_map(|m| {
            let id = m.id.clone();
            m.aliases.into_iter().map(move |a| (a, json!(id)))
        })
        .collect();
    Json(json!({ "aliases": aliases }))
}

fn provider_json(state: &AppState, p: &talon_llm::ProviderInfo) -> serde_json::Value {
    let target = talon_llm::Target::new(p.name.clone());
    let auth_status = match state.kernel.llm().api_key(&target) {
        Ok(Some(_)) => "configured",
        Ok(None) => "not_required",
        Err(_) => "missing",
    };
    json!({
        "name": p.name,
        "id": p.name,
        "kind": p.kind,
        "base_url": p.base_url,
        "api_key_env": p.api_key_env,
        "key_required": p.key_required,
        "auth_status": auth_status,
        "model_count": state.kernel.llm().models().iter().filter(|m| m.provider == p.name).count(),
    })
}

/// Every provider with whether its key is configured (never the key itself).
#[utoipa::path(get, path = "/api/providers", tag = "models",
    responses((status = 200, description = "`{providers, total}`", body = Object)))]
pub async fn providers(State(state): State<AppState>) -> Json<serde_json::Value> {
    let providers: Vec<_> = state
        .kernel
        .llm()
        .providers()
        .iter()
        .map(|p| provider_json(&state, p))
        .collect();
    let total = providers.len();
    Json(json!({ "providers": providers, "total": total }))
}

/// One provider and its models.
#[utoipa::path(get, path = "/api/providers/{name}", tag = "models",
    params(("name" = String, Path, description = "Provider")),
    responses((status = 200, description = "The provider and `models`", body = Object), (status = 404, description = "Unknown provider")))]
pub async fn provider(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let info = state
        .kernel
        .llm()
        .provider(&name)
        .map_err(|e| ApiError::NotFound(e.to_string()))?;
    let mut value = provider_json(&state, &info);
    value["models"] = json!(
        state
            .kernel
            .llm()
            .models()
            .into_iter()
            .filter(|m| m.provider == info.name)
            .collect::<Vec<_>>()
    );
    Ok(Json(value))
}

/// Every provider's circuit breaker.
#[utoipa::path(get, path = "/api/breaker/status", tag = "models",
    responses((status = 200, description = "`{breakers: [{provider, state, ...}]}`", body = Object)))]
pub async fn breaker_status(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "breakers": state.kernel.llm().status() }))
}

/// Closes a provider's breaker and forgets its failures.
#[utoipa::path(post, path = "/api/breaker/reset/{provider}", tag = "models",
    params(("provider" = String, Path, description = "Provider")),
    responses((status = 200, description = "`{status: reset, provider}`", body = Object), (status = 404, description = "Unknown provider")))]
pub async fn breaker_reset(
    State(state): State<AppState>,
    Path(provider): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state
        .kernel
        .llm()
        .reset(&provider)
        .map_err(|e| ApiError::NotFound(e.to_string()))?;
    state
        .kernel
        .audit(talon_kernel::audit::AuditEvent::new(
            "breaker_reset",
            format!("circuit breaker of {provider} reset"),
        ))
        .await?;
    Ok(Json(json!({ "status": "reset", "provider": provider })))
}
