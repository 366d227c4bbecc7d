//! Approvals: tool calls waiting for an operator, and the TOTP second factor.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use talon_kernel::approvals::{Approval, Decision, TotpEnrollment, TotpStatus};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::outcome::Outcome;
use crate::error::ApiError;
use crate::extract::{Json, OptionalJson, Path, Query};
use crate::state::AppState;

/// Most approvals one page lists.
const MAX_LIMIT: usize = 500;

/// An approval as LibreFang's clients read it: its own fields plus the
/// names its dashboard uses (`action`, `created_at`, `risk_level`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalView {
    /// The stored approval.
    #[serde(flatten)]
    pub approval: Approval,
    /// `tool_name`, under LibreFang's name.
    pub action: String,
    /// `requested_at`, under LibreFang's name.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// `risk`, under LibreFang's name.
    pub risk_level: Option<String>,
}

impl From<Approval> for ApprovalView {
    fn from(approval: Approval) -> Self {
        Self {
            action: approval.tool_name.clone(),
            created_at: approval.requested_at,
            risk_level: approval.risk.clone(),
            approval,
        }
    }
}

/// A page of approvals.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalPage {
    /// The page, newest first.
    pub approvals: Vec<ApprovalView>,
    /// Approvals in all.
    pub total: usize,
    /// Items skipped.
    pub offset: usize,
    /// Most items asked for.
    pub limit: usize,
}

/// The answer of revoking TOTP enrollment.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpRevoked {
    /// Always `revoked`.
    pub status: Outcome,
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
    responses((status = 200, description = "A page of approvals", body = ApprovalPage),
              (status = 400, description = "A limit above 500")))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<ApprovalPage>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "limit must be at most {MAX_LIMIT}"
        )));
    }
    let offset = query.offset.unwrap_or(0);
    let (page, total) = state.kernel.approvals().list(offset, limit).await?;
    Ok(Json(ApprovalPage {
        approvals: page.into_iter().map(ApprovalView::from).collect(),
        total,
        offset,
        limit,
    }))
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
    responses((status = 201, description = "The approval", body = ApprovalView),
              (status = 400, description = "Blank action, or malformed body"),
              (status = 404, description = "No such agent"),
              (status = 413, description = "Oversized payload")))]
pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<CreateApproval>,
) -> Result<(StatusCode, Json<ApprovalView>), ApiError> {
    let approval = state
        .kernel
        .approvals()
        .create(body.agent_id, body.action, body.description, body.payload)
        .await?;
    Ok((StatusCode::CREATED, Json(approval.into())))
}

/// One approval.
#[utoipa::path(get, path = "/api/approvals/{id}", tag = "approvals",
    params(("id" = String, Path, description = "Approval id (a UUID)")),
    responses((status = 200, description = "The approval", body = ApprovalView),
              (status = 404, description = "No such approval")))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ApprovalView>, ApiError> {
    Ok(Json(
        state
            .kernel
            .approvals()
            .get(approval_id(&id)?)
            .await?
            .into(),
    ))
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
) -> Result<Json<ApprovalView>, ApiError> {
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
    Ok(Json(decided.into()))
}

/// Approves a pending request; the waiting call runs.
#[utoipa::path(post, path = "/api/approvals/{id}/approve", tag = "approvals",
    params(("id" = String, Path, description = "Approval id (a UUID)")), request_body = DecideBody,
    responses((status = 200, description = "The approval, approved", body = ApprovalView),
              (status = 400, description = "A TOTP code is needed and missing"),
              (status = 403, description = "Wrong or reused TOTP code"),
              (status = 404, description = "No such approval"),
              (status = 409, description = "Already decided or expired")))]
pub async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<DecideBody>,
) -> Result<Json<ApprovalView>, ApiError> {
    decide(state, approval_id(&id)?, true, body).await
}

/// Rejects a pending request; the model reads that it was rejected.
#[utoipa::path(post, path = "/api/approvals/{id}/reject", tag = "approvals",
    params(("id" = String, Path, description = "Approval id (a UUID)")), request_body = DecideBody,
    responses((status = 200, description = "The approval, rejected", body = ApprovalView),
              (status = 404, description = "No such approval"),
              (status = 409, description = "Already decided or expired")))]
pub async fn reject(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<DecideBody>,
) -> Result<Json<ApprovalView>, ApiError> {
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
    responses((status = 200, description = "The secret, shown once", body = TotpEnrollment),
              (status = 409, description = "Already enrolled and confirmed")))]
pub async fn totp_setup(State(state): State<AppState>) -> Result<Json<TotpEnrollment>, ApiError> {
    Ok(Json(state.kernel.approvals().totp_setup().await?))
}

/// Confirms TOTP enrollment with a current code.
#[utoipa::path(post, path = "/api/approvals/totp/confirm", tag = "approvals", request_body = CodeBody,
    responses((status = 200, description = "The status", body = TotpStatus),
              (status = 400, description = "Malformed body"),
              (status = 409, description = "TOTP is not enrolled"),
              (status = 403, description = "Wrong or reused code")))]
pub async fn totp_confirm(
    State(state): State<AppState>,
    Json(body): Json<CodeBody>,
) -> Result<Json<TotpStatus>, ApiError> {
    Ok(Json(
        state.kernel.approvals().totp_confirm(&body.code).await?,
    ))
}

/// Where TOTP enrollment stands.
#[utoipa::path(get, path = "/api/approvals/totp/status", tag = "approvals",
    responses((status = 200, description = "The status", body = TotpStatus)))]
pub async fn totp_status(State(state): State<AppState>) -> Result<Json<TotpStatus>, ApiError> {
    Ok(Json(state.kernel.approvals().totp_status().await?))
}

/// Revokes TOTP enrollment; needs a current code.
#[utoipa::path(delete, path = "/api/approvals/totp", tag = "approvals", request_body = CodeBody,
    responses((status = 200, description = "`{status: \"revoked\"}`", body = TotpRevoked),
              (status = 400, description = "Malformed body"),
              (status = 409, description = "TOTP is not enrolled"),
              (status = 403, description = "Wrong or reused code")))]
pub async fn totp_revoke(
    State(state): State<AppState>,
    Json(body): Json<CodeBody>,
) -> Result<Json<TotpRevoked>, ApiError> {
    state.kernel.approvals().totp_revoke(&body.code).await?;
    Ok(Json(TotpRevoked {
        status: Outcome::Revoked,
    }))
}
