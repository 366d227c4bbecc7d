//! Audit trail and security overview.

use axum::extract::State;
use serde::Deserialize;
use talon_kernel::store::audit_checkpoint::Pruned;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::state::AppState;

/// Query of `GET /api/audit/recent`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct RecentQuery {
    /// Number of entries (default 50, at most 500).
    pub limit: Option<usize>,
}

/// The newest audit entries, newest first.
#[utoipa::path(get, path = "/api/audit/recent", tag = "audit", params(RecentQuery),
    responses((status = 200, description = "`{items, entries, total, offset, limit, tip_hash}` (`items` is LibreFang's name, `entries` Talon's)", body = Object)))]
pub async fn recent(
    State(state): State<AppState>,
    Query(query): Query<RecentQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let (entries, total) = state.kernel.audit_recent(limit).await?;
    let tip = entries.first().map(|e| e.hash.clone());
    Ok(Json(serde_json::json!({
        "items": entries,
        "entries": entries,
        "total": total,
        "offset": 0,
        "limit": limit,
        "tip_hash": tip,
    })))
}

/// Walks the hash chain (from the newest checkpoint, if any) and reports
/// the first broken link.
#[utoipa::path(get, path = "/api/audit/verify", tag = "audit",
    responses((status = 200, description = "`{status: valid|broken, chain_length, first_entry, last_entry, first_broken, first_id, checkpoint, before_checkpoint}`: with a checkpoint, the walk starts at its entry (`first_id`)", body = Object)))]
pub async fn verify(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let v = state.kernel.audit_verify().await?;
    Ok(Json(serde_json::json!({
        "status": if v.is_valid() { "valid" } else { "broken" },
        "valid": v.is_valid(),
        "chain_length": v.chain_length,
        "first_entry": v.first_entry,
        "last_entry": v.last_entry,
        "tip_hash": v.tip_hash,
        "first_broken": v.first_broken,
        "first_id": v.first_id,
        "checkpoint": v.checkpoint,
        "before_checkpoint": v.before_checkpoint,
    })))
}

/// Checkpoints the audit chain at its head (an `audit_checkpoint` entry and
/// a hashed record of the head's sequence number and hash) and removes the
/// entries before the cut; verification then starts from the checkpoint.
#[utoipa::path(post, path = "/api/audit/checkpoint", tag = "audit",
    responses((status = 200, description = "The checkpoint made and how many entries were removed before it", body = Pruned),
              (status = 409, description = "The chain does not verify: nothing is cut, so the broken entry stays"),
              (status = 507, description = "The disk is full: nothing was changed")))]
pub async fn checkpoint(State(state): State<AppState>) -> Result<Json<Pruned>, ApiError> {
    Ok(Json(state.kernel.audit_checkpoint().await?))
}

/// The protections that are active in this daemon, and only those.
#[utoipa::path(get, path = "/api/security", tag = "audit",
    responses((status = 200, description = "`{security_systems: {name: active|inactive}}`", body = Object)))]
pub async fn security(State(state): State<AppState>) -> Json<serde_json::Value> {
    let config = state.kernel.config();
    let auth = if config.api_key.is_empty() {
        "inactive (no api_key: loopback clients only)"
    } else {
        "active"
    };
    Json(serde_json::json!({
        "security_systems": {
            "merkle_audit_trail": "active",
            "security_headers": "active",
            "health_redaction": "active",
            "gcra_rate_limiter": if config.rate_limit.exempt_loopback { "active (loopback exempt)" } else { "active" },
            "api_key_auth": auth,
            "constant_time_key_comparison": "active",
            "request_body_limits": "active",
            "cors_localhost_only_without_key": "active",
            "loopback_only_without_key": if config.allow_remote_without_key { "inactive (allow_remote_without_key)" } else { "active" },
            "plugin_signature_verification": if config.plugins.dev_mode { "inactive (plugins.dev_mode)" } else { "active" },
            "plugin_sandbox_limits": "active",
        }
    }))
}
