//! The model catalog, the providers, and their circuit breakers.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::state::AppState;

/// Every catalogued model with its context window and prices.
#[utoipa::path(get, path = "/api/models", tag = "models",
    responses((status = 200, description = "`{models, total}`", body = Object)))]
pub async fn list(State(state): State<AppState>) -> Json<serde_json::Value> {
    let models = state.kernel.providers().llm().models();
    let total = models.len();
    Json(json!({ "models": models, "total": total }))
}

/// One model by id, alias or `provider/model` (ids may contain slashes).
/// Served at `/api/models/{*id}`, outside the OpenAPI router, whose paths
/// cannot express a segment holding slashes; documented through `ApiDoc`.
#[utoipa::path(get, path = "/api/models/{id}", tag = "models",
    params(("id" = String, Path, description = "Model id, alias or `provider/model`; may contain slashes")),
    responses((status = 200, description = "The model: `{id, provider, aliases, context_window, max_output_tokens, prices, supports_*}`", body = Object),
              (status = 404, description = "Unknown model")))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state
        .kernel
        .providers()
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
        .providers()
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
    let llm = state.kernel.providers().llm();
    let auth_status = match llm.api_key(&target) {
        Ok(Some(_)) => "configured",
        Ok(None) => "not_required",
        Err(_) => "missing",
    };
    // Where the key comes from, never the key: one set over the API, or
    // the provider's environment variable.
    let key_source = if llm.has_api_key_override(&p.name) {
        Some("api")
    } else if auth_status == "configured" {
        Some("env")
    } else {
        None
    };
    let url_override = llm.base_url_override(&p.name);
    json!({
        "name": p.name,
        "id": p.name,
        "kind": p.kind,
        "base_url": url_override.as_deref().unwrap_or(&p.base_url),
        "default_base_url": p.base_url,
        "base_url_overridden": url_override.is_some(),
        "api_key_env": p.api_key_env,
        "key_required": p.key_required,
        "auth_status": auth_status,
        "key_source": key_source,
        "model_count": state.kernel.providers().llm().models().iter().filter(|m| m.provider == p.name).count(),
    })
}

/// Every provider with whether its key is configured (never the key itself).
#[utoipa::path(get, path = "/api/providers", tag = "models",
    responses((status = 200, description = "`{providers, total}`", body = Object)))]
pub async fn providers(State(state): State<AppState>) -> Json<serde_json::Value> {
    let providers: Vec<_> = state
        .kernel
        .providers()
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
        .providers()
        .llm()
        .provider(&name)
        .map_err(|e| ApiError::NotFound(e.to_string()))?;
    let mut value = provider_json(&state, &info);
    value["models"] = json!(
        state
            .kernel
            .providers()
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
    responses((status = 200, description = "`{breakers: [{provider, endpoint, state, ...}]}`: one per provider endpoint called, one closed entry without endpoint per provider never called", body = Object)))]
pub async fn breaker_status(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "breakers": state.kernel.providers().llm().status() }))
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
        .providers()
        .llm()
        .reset(&provider)
        .map_err(|e| ApiError::NotFound(e.to_string()))?;
    state
        .kernel
        .audit(talon_kernel::store::audit::AuditEvent::new(
            "breaker_reset",
            format!("circuit breaker of {provider} reset"),
        ))
        .await?;
    Ok(Json(json!({ "status": "reset", "provider": provider })))
}

fn known_provider(state: &AppState, name: &str) -> Result<talon_llm::ProviderInfo, ApiError> {
    state
        .kernel
        .providers()
        .llm()
        .provider(name)
        .map_err(|e| ApiError::NotFound(e.to_string()))
}

fn default_provider() -> String {
    "openrouter".to_string()
}

fn default_context_window() -> u32 {
    128_000
}

fn yes() -> bool {
    true
}

/// A model to add to the catalog. Prices are USD per million tokens; the
/// LibreFang names `input_cost_per_m` and `output_cost_per_m` are accepted.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomModelBody {
    /// The id the provider expects (may contain slashes). Must not be the
    /// id or alias of a built-in model. At most 256 characters, without
    /// spaces or control characters.
    #[schema(pattern = "^[^\\s\\x00-\\x1f\\x7f-\\x9f]{1,256}$")]
    pub id: String,
    /// The provider serving it (default `openrouter`, as in LibreFang).
    #[serde(default = "default_provider")]
    pub provider: String,
    /// Other names accepted for it.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Context window in tokens (default 128000).
    #[serde(default = "default_context_window")]
    #[schema(minimum = 1, maximum = 4294967295_u64, format = Int64)]
    pub context_window: u32,
    /// Largest output in tokens (default: 8192, or the context window if smaller).
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    /// USD per million input tokens (default 0).
    #[serde(default, alias = "input_cost_per_m")]
    pub input_price_per_mtok: f64,
    /// USD per million output tokens (default 0).
    #[serde(default, alias = "output_cost_per_m")]
    pub output_price_per_mtok: f64,
    /// Whether it can call tools (default true).
    #[serde(default = "yes")]
    pub supports_tools: bool,
    /// Whether it accepts images (default false).
    #[serde(default)]
    pub supports_vision: bool,
    /// Accepted so LibreFang clients are not refused; Talon's catalog has no
    /// display names and streams with every model, so these are not kept.
    #[serde(default)]
    pub display_name: Option<String>,
    /// See `display_name`.
    #[serde(default)]
    pub supports_streaming: Option<bool>,
}

/// Adds a custom model to the catalog, durably. It is listed by
/// `GET /api/models`, found by `GET /api/models/{id}`, usable by agents,
/// and its prices price their usage.
#[utoipa::path(post, path = "/api/models/custom", tag = "models",
    request_body = CustomModelBody,
    responses(
        (status = 201, description = "`{status: added, id, provider, model}`", body = Object),
        (status = 400, description = "Malformed model, unknown provider, or a built-in model's id or alias"),
        (status = 409, description = "Another custom model has this id or alias")))]
pub async fn add_custom(
    State(state): State<AppState>,
    Json(body): Json<CustomModelBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let info = talon_llm::ModelInfo {
        id: body.id,
        provider: body.provider,
        aliases: body.aliases,
        context_window: body.context_window,
        max_output_tokens: body
            .max_output_tokens
            .unwrap_or(body.context_window.min(8_192)),
        input_price_per_mtok: body.input_price_per_mtok,
        output_price_per_mtok: body.output_price_per_mtok,
        supports_tools: body.supports_tools,
        supports_vision: body.supports_vision,
    };
    let info = state.kernel.providers().add_custom_model(info).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "status": "added",
            "id": info.id,
            "provider": info.provider,
            "model": info,
        })),
    ))
}

/// Removes a custom model (built-in ones cannot be removed). Served at
/// `/api/models/custom/{*id}`, outside the OpenAPI router, because ids may
/// contain slashes; documented through `ApiDoc`.
#[utoipa::path(delete, path = "/api/models/custom/{id}", tag = "models",
    params(("id" = String, Path, description = "Custom model id; may contain slashes")),
    responses((status = 200, description = "`{status: removed, id, provider}`", body = Object),
              (status = 400, description = "A built-in model"), (status = 404, description = "No such custom model")))]
pub async fn remove_custom(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let removed = state.kernel.providers().remove_custom_model(&id).await?;
    Ok(Json(json!({
        "status": "removed",
        "id": removed.id,
        "provider": removed.provider,
    })))
}

/// The body of `POST /api/providers/{name}/key`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderKeyBody {
    /// The API key (`api_key` is accepted too).
    #[serde(alias = "api_key")]
    pub key: String,
}

/// Sets a provider's API key, kept in the data directory's private
/// secrets file. It wins over the provider's environment variable; no
/// endpoint ever returns it.
#[utoipa::path(post, path = "/api/providers/{name}/key", tag = "models",
    params(("name" = String, Path, description = "Provider")),
    request_body = ProviderKeyBody,
    responses(
        (status = 200, description = "`{status: saved, provider, auth_status}`", body = Object),
        (status = 400, description = "Missing or empty key"),
        (status = 404, description = "Unknown provider")))]
pub async fn set_key(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<ProviderKeyBody>, ApiError>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // The provider is checked before the body so an unknown one is a 404
    // whatever was sent.
    let info = known_provider(&state, &name)?;
    let Json(body) = body?;
    state
        .kernel
        .providers()
        .set_provider_key(&info.name, &body.key)
        .await?;
    let provider = provider_json(&state, &info);
    Ok(Json(json!({
        "status": "saved",
        "provider": info.name,
        "auth_status": provider["auth_status"],
        "key_source": provider["key_source"],
    })))
}

/// Removes the key set with `POST /api/providers/{name}/key`; the
/// provider's environment variable applies again.
#[utoipa::path(delete, path = "/api/providers/{name}/key", tag = "models",
    params(("name" = String, Path, description = "Provider")),
    responses(
        (status = 200, description = "`{status: removed, provider, removed: whether there was one, auth_status}`", body = Object),
        (status = 404, description = "Unknown provider")))]
pub async fn delete_key(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let info = known_provider(&state, &name)?;
    let removed = state
        .kernel
        .providers()
        .delete_provider_key(&info.name)
        .await?;
    let provider = provider_json(&state, &info);
    Ok(Json(json!({
        "status": "removed",
        "provider": info.name,
        "removed": removed,
        "auth_status": provider["auth_status"],
        "key_source": provider["key_source"],
    })))
}

/// Tests a provider with the key and base URL its agents would use, by
/// listing its models (free, and cheap for the provider). A failure is
/// reported in the body, not as the status: the test itself worked.
#[utoipa::path(post, path = "/api/providers/{name}/test", tag = "models",
    params(("name" = String, Path, description = "Provider")),
    responses(
        (status = 200, description = "`{status: ok, provider, base_url, latency_ms, model_count}` or `{status: error, provider, base_url, latency_ms, error}`", body = Object),
        (status = 404, description = "Unknown provider")))]
pub async fn test(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let info = known_provider(&state, &name)?;
    let base_url = state
        .kernel
        .providers()
        .llm()
        .base_url(&talon_llm::Target::new(info.name.clone()))?;
    let started = std::time::Instant::now();
    let result = state.kernel.providers().test_provider(&info.name).await?;
    Ok(Json(match result {
        Ok(report) => json!({
            "status": "ok",
            "provider": info.name,
            "base_url": base_url,
            "latency_ms": report.latency.as_millis() as u64,
            "model_count": report.model_count,
        }),
        Err(error) => json!({
            "status": "error",
            "provider": info.name,
            "base_url": base_url,
            "latency_ms": started.elapsed().as_millis() as u64,
            // Providers quote (masked) keys in their errors; redact anyway.
            "error": talon_kernel::conversation::redact::redact(&error.to_string()),
        }),
    }))
}

/// Overrides a provider's base URL for every agent whose manifest does not
/// set its own; `{"base_url": null}` goes back to the default.
#[utoipa::path(put, path = "/api/providers/{name}/url", tag = "models",
    params(("name" = String, Path, description = "Provider")),
    request_body(content = Object, description = "`{base_url: \"http(s)://...\" | null}`"),
    responses(
        (status = 200, description = "`{status: saved, provider, base_url}` (the URL now in force)", body = Object),
        (status = 400, description = "Missing or malformed URL"),
        (status = 404, description = "Unknown provider")))]
pub async fn set_url(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<serde_json::Value>, ApiError>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let info = known_provider(&state, &name)?;
    let Json(body) = body?;
    let Some(object) = body.as_object() else {
        return Err(ApiError::BadRequest(
            "expected a JSON object `{\"base_url\": \"http(s)://...\"}`".into(),
        ));
    };
    if let Some(other) = object.keys().find(|k| *k != "base_url" && *k != "url") {
        return Err(ApiError::BadRequest(format!(
            "unknown field `{other}`; expected `base_url`"
        )));
    }
    let url = match object.get("base_url").or_else(|| object.get("url")) {
        None => {
            return Err(ApiError::BadRequest(
                "missing `base_url` (a URL, or null to go back to the default)".into(),
            ));
        }
        Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(url)) => Some(url.as_str()),
        Some(_) => {
            return Err(ApiError::BadRequest(
                "`base_url` must be a string or null".into(),
            ));
        }
    };
    let in_force = state
        .kernel
        .providers()
        .set_provider_url(&info.name, url)
        .await?;
    Ok(Json(json!({
        "status": "saved",
        "provider": info.name,
        "base_url": in_force,
        "overridden": url.is_some(),
    })))
}
