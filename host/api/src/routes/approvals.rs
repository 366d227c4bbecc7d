//! Approvals: tool calls waiting for an operator, and the TOTP second factor.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use talon_kernel::approvals::{Approval, Decision};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{Json, OptionalJson, Path, Query};
use crate::state::AppState;

/// Most approvals one page lists.
const MAX_LIMIT: usize = 500;

/// An approval as LibreFang's clients read it: its own fields plus the
/// names its dashboard uses (`action`, `created_at`, `risk_level`).
fn view(approval: &Approval) -> serde_json::Value {
    let mut value = json!(approval);
    if let Some(map) = value.as_object_mut() {
        map.insert("action".into(), json!(approval.tool_name));
        map.insert("created_at".into(), json!(approval.requested_at));
        map.insert("risk_level".into(), json!(approval.risk));
    }
    value
}

/// An approval id from the path: one that is no UUID names no approval
/// (404), as LibreFang's other approval paths under it (`count`, `audit`)
/// are not served.
fn approval_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::NotFound(format!("approval {id} not found")))
}

/// Who decides: the API key's holder, or the local user when no key is set.
fn decider(state: &AppState) -> String {
    if state.kernel.config().api_key.is_empty() {
        "local".into()
    } else {
        "api_key".into()
    }
}

/// Query of the approval list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Most items (default 50, at most 500).
    pub limit: Option<usize>,
    /// Items to skip.
    pub offset: Option<usize>,
}

/// Approvals, newest first: pending and decided.
#[utoipa::path(get, path = "/api/approvals", tag = "approvals", params(ListQuery),
    responses((status = 200, description = "`{approvals, total, offset, limit}`", body = Object),
              (status = 400, description = "A limit above 500")))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "limit must be at most {MAX_LIMIT}"
        )));
    }
    let offset = query.offset.unwrap_or(0);
    let (page, total) = state.kernel.approvals().list(offset, limit).await?;
    let approvals: Vec<_> = page.iter().map(view).collect();
    Ok(Json(json!({
        "approvals": approvals, "total": total, "offset": offset, "limit": limit
    })))
}

/// Body of `POST /api/approvals`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApproval {
    /// The agent asking.
    pub agent_id: Uuid,
    /// What it wants to do (not blank; at most 4 KiB).
    pub action: String,
    /// For the operator (at most 4 KiB).
    #[serde(default)]
    pub description: String,
    /// Any JSON (at most 64 KiB).
    #[serde(default)]
    pub payload: serde_json::Value,
}

/// Registers an approval request that no turn waits on (an external tool's).
#[utoipa::path(post, path = "/api/approvals", tag = "approvals", request_body = CreateApproval,
    responses((status = 201, description = "The approval", body = Object),
              (status = 400, description = "No such agent, blank action, or malformed body"),
              (status = 413, description = "Oversized payload")))]
pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<CreateApproval>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let approval = state
        .kernel
        .approvals()
        .create(body.agent_id, body.action, body.description, body.payload)
        .await?;
    Ok((StatusCode::CREATED, Json(view(&approval))))
}

/// One approval.
#[utoipa::path(get, path = "/api/approvals/{id}", tag = "approvals",
    params(("id" = String, Path, description = "Approval id (a UUID)")),
    responses((status = 200, description = "The approval", body = Object),
              (status = 404, description = "No such approval")))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(view(
        &state.kernel.approvals().get(approval_id(&id)?).await?,
    )))
}

/// Body of approve and reject.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideBody {
    /// A current TOTP code, when the approval needs one.
    pub totp_code: Option<String>,
    /// Why, for the audit trail and the model (at most 4 KiB).
    pub reason: Option<String>,
}

async fn decide(
    state: AppState,
    id: Uuid,
    approve: bool,
    body: DecideBody,
) -> Result<Json<serde_json::Value>, ApiError> {
    if body.reason.as_ref().is_some_and(|r| r.len() > 4096) {
        return Err(ApiError::BadRequest(
            "reason must be at most 4096 bytes".into(),
        ));
    }
    let decided = state
        .kernel
        .approvals()
        .decide(
            id,
            Decision {
                approve,
                by: decider(&state),
                reason: body.reason,
                totp_code: body.totp_code,
            },
        )
        .await?;
    Ok(Json(view(&decided)))
}

/// Approves a pending request; the waiting call runs.
#[utoipa::path(post, path = "/api/approvals/{id}/approve", tag = "approvals",
    params(("id" = String, Path, description = "Approval id (a UUID)")), request_body = DecideBody,
    responses((status = 200, description = "The approval, approved", body = Object),
              (status = 400, description = "A TOTP code is needed and missing"),
              (status = 403, description = "Wrong or reused TOTP code"),
              (status = 404, description = "No such approval"),
              (status = 409, description = "Already decided or expired")))]
pub async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<DecideBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide(state, approval_id(&id)?, true, body).await
}

/// Rejects a pending request; the model reads that it was rejected.
#[utoipa::path(post, path = "/api/approvals/{id}/reject", tag = "approvals",
    params(("id" = String, Path, description = "Approval id (a UUID)")), request_body = DecideBody,
    responses((status = 200, description = "The approval, rejected", body = Object),
              (status = 404, description = "No such approval"),
              (status = 409, description = "Already decided or expired")))]
pub async fn reject(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<DecideBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide(state, approval_id(&id)?, false, body).await
}

/// Body of TOTP confirm and revoke.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    /// The 6-digit code the authenticator shows now.
    pub code: String,
}

/// Generates a TOTP secret (not in force until confirmed).
#[utoipa::path(post, path = "/api/approvals/totp/setup", tag = "approvals",
    responses((status = 200, description = "`{secret, otpauth_uri}`", body = Object),
              (status = 409, description = "Already enrolled and confirmed")))]
pub async fn totp_setup(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json!(state.kernel.approvals().totp_setup().await?)))
}

/// Confirms TOTP enrollment with a current code.
#[utoipa::path(post, path = "/api/approvals/totp/confirm", tag = "approvals", request_body = CodeBody,
    responses((status = 200, description = "The status", body = Object),
              (status = 400, description = "Not enrolled, or malformed body"),
              (status = 403, description = "Wrong or reused code")))]
pub async fn totp_confirm(
    State(state): State<AppState>,
    Json(body): Json<CodeBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json!(
        state.kernel.approvals().totp_confirm(&body.code).await?
    )))
}

/// Where TOTP enrollment stands.
#[utoipa::path(get, path = "/api/approvals/totp/status", tag = "approvals",
    responses((status = 200, description = "`{enrolled, confirmed, enforced, remaining_recovery_codes}`", body = Object)))]
pub async fn totp_status(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json!(state.kernel.approvals().totp_status().await?)))
}

/// Revokes TOTP enrollment; needs a current code.
#[utoipa::path(delete, path = "/api/approvals/totp", tag = "approvals", request_body = CodeBody,
    responses((status = 200, description = "`{status: \"revoked\"}`", body = Object),
              (status = 400, description = "Not enrolled, or malformed body"),
              (status = 403, description = "Wrong or reused code")))]
pub async fn totp_revoke(
    State(state): State<AppState>,
    Json(body): Json<CodeBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.kernel.approvals().totp_revoke(&body.code).await?;
    Ok(Json(json!({"status": "revoked"})))
}
