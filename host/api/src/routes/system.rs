//! System endpoints: health, status, version, metrics, shutdown.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::Json;
use crate::metrics::resident_memory_bytes;
use crate::state::AppState;
use talon_kernel::store::WriteState;

/// The daemon's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The API version this build serves.
pub const API_VERSION: &str = "v1";

/// One component's health.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthCheck {
    /// Component name.
    pub name: String,
    /// `ok` or `error`.
    pub status: String,
}

/// The public health answer: deliberately little, since it needs no auth.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` when every check passes, else `degraded`.
    pub status: String,
    /// Daemon version.
    pub version: String,
    /// Per-component checks.
    pub checks: Vec<HealthCheck>,
}

fn database_ok(state: &AppState) -> bool {
    state.kernel.store().check().is_ok()
}

/// Whether the store takes writes (false while the disk is full). Looking
/// also resumes writes once the disk has room again.
async fn writes_ok(state: &AppState) -> WriteState {
    let store = state.kernel.store().clone();
    tokio::task::spawn_blocking(move || store.write_state())
        .await
        .unwrap_or(WriteState::Writable)
}

/// Liveness probe (public).
#[utoipa::path(get, path = "/api/health", tag = "system",
    responses((status = 200, description = "Daemon is alive", body = Health)))]
pub async fn health(State(state): State<AppState>) -> Json<Health> {
    let writes = writes_ok(&state).await == WriteState::Writable;
    let db = database_ok(&state);
    let check = |name: &str, ok: bool| HealthCheck {
        name: name.into(),
        status: if ok { "ok" } else { "error" }.into(),
    };
    Json(Health {
        status: if db && writes { "ok" } else { "degraded" }.into(),
        version: VERSION.into(),
        checks: vec![check("database", db), check("disk", writes)],
    })
}

/// The readiness answer: no version or detail, since it needs no auth.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ready`, or `not_ready` when a check fails.
    pub status: String,
    /// Per-component checks.
    pub checks: Vec<HealthCheck>,
}

/// Readiness probe (public): 200 when the daemon can accept work, 503 when
/// a dependency it needs (the database) is unavailable. Unlike `/api/health`
/// (liveness), a failure here takes the daemon out of a load balancer
/// without restarting it. The body carries check names and statuses only.
#[utoipa::path(get, path = "/api/ready", tag = "system",
    responses((status = 200, description = "Ready", body = Ready),
              (status = 503, description = "A required dependency is unavailable", body = Ready)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    let db = database_ok(&state);
    let status = if db {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Ready {
            status: if db { "ready" } else { "not_ready" }.into(),
            checks: vec![HealthCheck {
                name: "database".into(),
                status: if db { "ok" } else { "error" }.into(),
            }],
        }),
    )
}

/// Full health diagnostics (authenticated).
#[utoipa::path(get, path = "/api/health/detail", tag = "system",
    responses((status = 200, description = "Detailed diagnostics", body = Object)))]
pub async fn health_detail(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let writes = writes_ok(&state).await;
    let store = state.kernel.store();
    let schema = store.schema_version();
    let disk = match &writes {
        WriteState::Writable => serde_json::json!({ "status": "ok" }),
        WriteState::DiskFull { reason, since } => serde_json::json!({
            "status": "full",
            "writes": "refused",
            "reason": reason,
            "since": since,
        }),
    };
    let db_size = std::fs::metadata(store.path()).map(|m| m.len()).ok();
    let agents = state.kernel.agents().count().await?;
    Ok(Json(serde_json::json!({
        "status": if schema.is_ok() && writes == WriteState::Writable { "ok" } else { "degraded" },
        "version": VERSION,
        "uptime_seconds": state.kernel.uptime_secs(),
        "panic_count": state.metrics.panics.get(),
        "agent_count": agents,
        "memory_rss_bytes": resident_memory_bytes(),
        "database": {
            "status": if schema.is_ok() { "ok" } else { "error" },
            "path": store.path(),
            "size_bytes": db_size,
            "cache_limit_bytes": state.kernel.config().storage.cache_mib << 20,
            "schema_version": schema.ok(),
            "data_dir": store.data_dir(),
            "disk": disk,
        },
        "config_warnings": config_warnings(&state),
    })))
}

fn config_warnings(state: &AppState) -> Vec<String> {
    let config = state.kernel.config();
    let mut warnings = Vec::new();
    if config.allow_remote_without_key && config.api_key.is_empty() {
        warnings.push("allow_remote_without_key is on and no api_key is set: anyone who can reach the port controls the daemon".to_string());
    }
    warnings
}

/// Kernel status.
#[utoipa::path(get, path = "/api/status", tag = "system",
    responses((status = 200, description = "Daemon status", body = Object)))]
pub async fn status(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let config = state.kernel.config();
    let agents = state.kernel.agents().list().await?;
    let running = agents
        .iter()
        .filter(|a| a.state == talon_kernel::agents::AgentState::Running)
        .count();
    let summaries: Vec<_> = agents
        .iter()
        .map(|a| serde_json::json!({ "id": a.id, "name": a.name(), "state": a.state }))
        .collect();
    Ok(Json(serde_json::json!({
        "status": "running",
        "version": VERSION,
        "agent_count": agents.len(),
        "active_agent_count": running,
        "memory_used_mb": resident_memory_bytes().map(|b| b / (1024 * 1024)),
        "uptime_seconds": state.kernel.uptime_secs(),
        "api_listen": config.api_listen,
        "home_dir": state.kernel.home().root(),
        "log_level": config.log_level,
        "config_exists": state.kernel.config_path().exists(),
        "auth_enabled": !config.api_key.is_empty(),
        "agents": summaries,
    })))
}

/// Build and version information.
#[utoipa::path(get, path = "/api/version", tag = "system",
    responses((status = 200, description = "Version information", body = Object)))]
pub async fn version() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "name": "talon",
        "version": VERSION,
        "platform": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "api": { "current": API_VERSION, "supported": [API_VERSION], "deprecated": [] },
    }))
}

/// Supported API versions.
#[utoipa::path(get, path = "/api/versions", tag = "system",
    responses((status = 200, description = "API versions", body = Object)))]
pub async fn versions() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "current": API_VERSION,
        "supported": [API_VERSION],
        "deprecated": [],
        "prefixes": { API_VERSION: "/api/v1" },
        "note": "every /api/... route is also served under /api/v1/...",
    }))
}

/// Prometheus metrics in text format.
#[utoipa::path(get, path = "/api/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let m = &state.metrics;
    m.uptime.set(state.kernel.uptime_secs() as i64);
    m.agents.set(state.kernel.agents().count().await? as i64);
    if let Some(rss) = resident_memory_bytes() {
        m.rss.set(rss as i64);
    }
    if let Ok(meta) = std::fs::metadata(state.kernel.store().path()) {
        m.database_size
            .set(i64::try_from(meta.len()).unwrap_or(i64::MAX));
    }
    for plugin in state.kernel.plugins().list() {
        let labels = crate::metrics::PluginLabels {
            plugin: plugin.name,
        };
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        m.plugins
            .calls
            .get_or_create(&labels)
            .set(clamp(plugin.stats.calls));
        m.plugins
            .errors
            .get_or_create(&labels)
            .set(clamp(plugin.stats.errors));
        m.plugins
            .fuel
            .get_or_create(&labels)
            .set(clamp(plugin.stats.fuel_total));
        m.plugins
            .wall_us
            .get_or_create(&labels)
            .set(clamp(plugin.stats.wall_us_total));
        m.plugins
            .peak_memory
            .get_or_create(&labels)
            .set(clamp(plugin.stats.peak_memory_max));
    }
    let text = m.encode().map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// Graceful shutdown: in-flight requests finish, then the store is closed.
#[utoipa::path(post, path = "/api/shutdown", tag = "system",
    responses((status = 200, description = "Shutdown started", body = Object)))]
pub async fn shutdown(State(state): State<AppState>) -> Json<serde_json::Value> {
    tracing::info!("shutdown requested over the API");
    state.shutdown.cancel();
    Json(serde_json::json!({ "status": "shutting_down" }))
}
