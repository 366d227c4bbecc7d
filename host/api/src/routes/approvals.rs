//! Approvals: tool calls waiting for an operator, and the TOTP second factor.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use talon_kernel::KernelError;
use talon_kernel::approvals::{
    Approval, ApprovalStatus, Decision, MAX_REASON_CHARS, TotpEnrollment, TotpStatus,
};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::outcome::Outcome;
use crate::error::ApiError;
use crate::extract::{Json, OptionalJson, Path, Query};
use crate::state::AppState;

/// Most approvals one page lists.
const MAX_LIMIT: usize = 500;
/// Most ids one batch decides (LibreFang's limit).
const MAX_BATCH: usize = 100;

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

/// An approval id from the path: one that is no UUID names no approval (404).
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

/// The offset and limit of a page (limit 50 by default, at most 500).
fn page_bounds(offset: Option<usize>, limit: Option<usize>) -> Result<(usize, usize), ApiError> {
    let limit = limit.unwrap_or(50);
    if limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "limit must be at most {MAX_LIMIT}"
        )));
    }
    Ok((offset.unwrap_or(0), limit))
}

/// Refuses a reason over [`MAX_REASON_CHARS`].
fn check_reason(reason: Option<&str>) -> Result<(), ApiError> {
    if reason.is_some_and(|r| r.chars().count() > MAX_REASON_CHARS) {
        return Err(ApiError::BadRequest(format!(
            "reason must be at most {MAX_REASON_CHARS} characters"
        )));
    }
    Ok(())
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
    let (offset, limit) = page_bounds(query.offset, query.limit)?;
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
    /// Why, for the audit trail and the model (at most 4096 characters).
    #[schema(max_length = 4096)]
    pub reason: Option<String>,
}

async fn decide(
    state: AppState,
    id: Uuid,
    approve: bool,
    body: DecideBody,
) -> Result<Json<ApprovalView>, ApiError> {
    check_reason(body.reason.as_deref())?;
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

/// How many approvals wait for a decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingCount {
    /// Pending approvals (past their time excluded).
    pub pending: usize,
}

/// Pending approvals, for notification badges.
#[utoipa::path(get, path = "/api/approvals/count", tag = "approvals",
    responses((status = 200, description = "The pending count", body = PendingCount)))]
pub async fn count(State(state): State<AppState>) -> Result<Json<PendingCount>, ApiError> {
    Ok(Json(PendingCount {
        pending: state.kernel.approvals().pending_count().await?,
    }))
}

/// What a batch does to each of its approvals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchDecision {
    /// Approve them.
    Approve,
    /// Reject them.
    Reject,
}

/// Body of `POST /api/approvals/batch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    /// The approvals (1 to 100 ids; an id twice is decided once, its second
    /// item reports the conflict).
    #[schema(min_items = 1, max_items = 100)]
    pub ids: Vec<String>,
    /// `approve` or `reject`.
    pub decision: BatchDecision,
    /// Why, for the audit trail and the model (at most 4096 characters).
    #[schema(max_length = 4096)]
    pub reason: Option<String>,
}

/// Whether one item of a batch was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Decided now.
    Ok,
    /// Not decided: see `message` and `code`.
    Error,
}

/// The outcome for one id of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItem {
    /// The id as sent.
    pub id: String,
    /// Decided now, or not.
    pub status: ItemStatus,
    /// `approved` or `rejected`, when decided now.
    pub decision: Option<String>,
    /// When, when decided now.
    pub decided_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why not, when not: unknown id, already decided or expired.
    pub message: Option<String>,
    /// The HTTP status deciding it alone would have had (404, 409), when not.
    pub code: Option<u16>,
}

/// The outcomes of a batch, in the order of its ids.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    /// One per id.
    pub results: Vec<BatchItem>,
}

/// Approves or rejects many approvals; each id is decided on its own, and
/// one that cannot be (unknown, already decided, expired) is reported
/// without stopping the others. Approving a batch that holds an approval
/// needing a TOTP code is refused whole (approve those one by one).
#[utoipa::path(post, path = "/api/approvals/batch", tag = "approvals", request_body = BatchBody,
    responses((status = 200, description = "Every id decided", body = BatchResult),
              (status = 207, description = "Some ids not decided (see each item)", body = BatchResult),
              (status = 400, description = "No ids, over 100, a bad decision, or an approval needing a TOTP code")))]
pub async fn batch(
    State(state): State<AppState>,
    Json(body): Json<BatchBody>,
) -> Result<(StatusCode, Json<BatchResult>), ApiError> {
    if body.ids.is_empty() || body.ids.len() > MAX_BATCH {
        return Err(ApiError::BadRequest(format!(
            "`ids` must hold 1 to {MAX_BATCH} approval ids"
        )));
    }
    check_reason(body.reason.as_deref())?;
    let approve = body.decision == BatchDecision::Approve;
    let approvals = state.kernel.approvals();
    if approve {
        for id in body.ids.iter().filter_map(|id| Uuid::parse_str(id).ok()) {
            match approvals.get(id).await {
                Ok(a) if a.second_factor && a.status == ApprovalStatus::Pending => {
                    return Err(ApiError::BadRequest(format!(
                        "approval {id} needs a TOTP code; approve it alone with POST /api/approvals/{id}/approve"
                    )));
                }
                Ok(_) | Err(KernelError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let mut results = Vec::with_capacity(body.ids.len());
    for id in body.ids {
        let decided = match approval_id(&id) {
            Ok(uuid) => approvals
                .decide(
                    uuid,
                    Decision {
                        approve,
                        by: decider(&state),
                        reason: body.reason.clone(),
                        totp_code: None,
                    },
                )
                .await
                .map_err(ApiError::from),
            Err(e) => Err(e),
        };
        results.push(match decided {
            Ok(a) => BatchItem {
                id,
                status: ItemStatus::Ok,
                decision: Some(a.status.as_str().to_string()),
                decided_at: a.decided_at,
                message: None,
                code: None,
            },
            Err(e) if e.status().is_client_error() => BatchItem {
                id,
                status: ItemStatus::Error,
                decision: None,
                decided_at: None,
                code: Some(e.status().as_u16()),
                message: Some(e.to_string()),
            },
            Err(e) => return Err(e),
        });
    }
    let status = if results.iter().all(|r| r.status == ItemStatus::Ok) {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    Ok((status, Json(BatchResult { results })))
}

/// A session id from the path: Talon's sessions are UUIDs.
fn session_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id)
        .map_err(|_| ApiError::BadRequest(format!("session id {id:?} is not a UUID")))
}

/// A session's pending approvals.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionPending {
    /// The session.
    pub session_id: Uuid,
    /// Its pending approvals, newest first.
    pub pending: Vec<ApprovalView>,
    /// How many.
    pub count: usize,
    /// Whether a turn of the session waits on one.
    pub has_pending: bool,
}

/// The approvals a session's turns wait on.
#[utoipa::path(get, path = "/api/approvals/session/{session_id}", tag = "approvals",
    params(("session_id" = Uuid, Path, description = "Session id")),
    responses((status = 200, description = "Its pending approvals (none for a session without any)", body = SessionPending),
              (status = 400, description = "A session id that is no UUID")))]
pub async fn session(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SessionPending>, ApiError> {
    let session = session_id(&id)?;
    let pending = state
        .kernel
        .approvals()
        .pending_for_session(session)
        .await?;
    Ok(Json(SessionPending {
        session_id: session,
        count: pending.len(),
        has_pending: !pending.is_empty(),
        pending: pending.into_iter().map(ApprovalView::from).collect(),
    }))
}

/// Body of `approve_all`: what the operator saw, so an approval that
/// arrived since is not approved unseen.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveAllBody {
    /// How many approvals the caller expects pending (409 otherwise).
    pub expected_count: Option<usize>,
    /// Which (409 when the pending set differs).
    pub expected_ids: Option<Vec<Uuid>>,
}

/// What a session-wide decision did.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDecided {
    /// The session.
    pub session_id: Uuid,
    /// How many approvals it decided (one decided meanwhile by someone else is skipped).
    pub resolved: usize,
    /// `approved` or `rejected`.
    pub decision: String,
    /// The ids it decided.
    pub ids: Vec<Uuid>,
}

/// Decides every pending approval of a session; one decided meanwhile
/// (409) or gone is skipped, any other failure stops it.
async fn decide_session(
    state: &AppState,
    session: Uuid,
    pending: Vec<Approval>,
    approve: bool,
) -> Result<SessionDecided, ApiError> {
    let mut ids = Vec::with_capacity(pending.len());
    for approval in pending {
        let decided = state
            .kernel
            .approvals()
            .decide(
                approval.id,
                Decision {
                    approve,
                    by: decider(state),
                    reason: None,
                    totp_code: None,
                },
            )
            .await;
        match decided {
            Ok(a) => ids.push(a.id),
            Err(KernelError::Conflict(_) | KernelError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(SessionDecided {
        session_id: session,
        resolved: ids.len(),
        decision: if approve { "approved" } else { "rejected" }.into(),
        ids,
    })
}

/// Approves every pending approval of a session. Refused whole (400) when
/// one needs a TOTP code, and (409) when the pending set is not the one the
/// body expects.
#[utoipa::path(post, path = "/api/approvals/session/{session_id}/approve_all", tag = "approvals",
    params(("session_id" = Uuid, Path, description = "Session id")),
    request_body(content = Option<ApproveAllBody>, description = "Optional", content_type = "application/json"),
    responses((status = 200, description = "What it approved", body = SessionDecided),
              (status = 400, description = "A session id that is no UUID, a malformed body, or an approval needing a TOTP code"),
              (status = 409, description = "The pending set changed since the caller looked")))]
pub async fn approve_all(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<ApproveAllBody>,
) -> Result<Json<SessionDecided>, ApiError> {
    let session = session_id(&id)?;
    let pending = state
        .kernel
        .approvals()
        .pending_for_session(session)
        .await?;
    if let Some(expected) = body.expected_count
        && expected != pending.len()
    {
        return Err(ApiError::Conflict(format!(
            "{} approvals are pending in this session, not {expected}; refresh and try again",
            pending.len()
        )));
    }
    if let Some(expected) = &body.expected_ids {
        let expected: std::collections::HashSet<_> = expected.iter().collect();
        let actual: std::collections::HashSet<_> = pending.iter().map(|a| &a.id).collect();
        if expected != actual {
            return Err(ApiError::Conflict(
                "the pending approvals of this session are not the ones expected; refresh and try again".into(),
            ));
        }
    }
    if let Some(guarded) = pending.iter().find(|a| a.second_factor) {
        return Err(ApiError::BadRequest(format!(
            "approval {} needs a TOTP code; approve it alone with POST /api/approvals/{}/approve",
            guarded.id, guarded.id
        )));
    }
    Ok(Json(decide_session(&state, session, pending, true).await?))
}

/// Rejects every pending approval of a session.
#[utoipa::path(post, path = "/api/approvals/session/{session_id}/reject_all", tag = "approvals",
    params(("session_id" = Uuid, Path, description = "Session id")),
    responses((status = 200, description = "What it rejected", body = SessionDecided),
              (status = 400, description = "A session id that is no UUID")))]
pub async fn reject_all(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SessionDecided>, ApiError> {
    let session = session_id(&id)?;
    let pending = state
        .kernel
        .approvals()
        .pending_for_session(session)
        .await?;
    Ok(Json(decide_session(&state, session, pending, false).await?))
}

/// Query of the decisions' history.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Most items (default 50, at most 500).
    pub limit: Option<usize>,
    /// Items to skip.
    pub offset: Option<usize>,
    /// Only this agent's (its id or name).
    pub agent_id: Option<String>,
    /// Only this tool's (or API action's).
    pub tool_name: Option<String>,
}

/// A page of decided approvals.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Decided and expired approvals, newest first, each with who decided,
    /// when and why.
    pub items: Vec<ApprovalView>,
    /// Matching decisions in all.
    pub total: usize,
    /// Items skipped.
    pub offset: usize,
    /// Most items asked for.
    pub limit: usize,
}

/// The decisions' history: approvals approved, rejected or expired, from
/// the approvals table (each decision is on the audit chain too, with its
/// edits).
#[utoipa::path(get, path = "/api/approvals/audit", tag = "approvals", params(AuditQuery),
    responses((status = 200, description = "A page of decisions", body = AuditPage),
              (status = 400, description = "A limit above 500, or an unknown parameter")))]
pub async fn audit(
    State(state): State<AppState>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let (offset, limit) = page_bounds(query.offset, query.limit)?;
    let (agent, tool) = (query.agent_id, query.tool_name);
    let keep = move |a: &Approval| {
        agent
            .as_deref()
            .is_none_or(|x| a.agent_id.to_string() == x || a.agent_name == x)
            && tool.as_deref().is_none_or(|t| a.tool_name == t)
    };
    let (items, total) = state
        .kernel
        .approvals()
        .decided(keep, offset, limit)
        .await?;
    Ok(Json(AuditPage {
        items: items.into_iter().map(ApprovalView::from).collect(),
        total,
        offset,
        limit,
    }))
}

/// Body of `POST /api/approvals/{id}/modify`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModifyBody {
    /// The call's new arguments: a JSON object (at most 64 KiB).
    #[schema(value_type = Object)]
    pub arguments: serde_json::Value,
    /// Why, for the audit trail (at most 4096 characters).
    #[schema(max_length = 4096)]
    pub feedback: Option<String>,
}

/// Edits a pending call's arguments; it still waits for a decision, and
/// runs with them if approved. Audited with the arguments before and after.
#[utoipa::path(post, path = "/api/approvals/{id}/modify", tag = "approvals",
    params(("id" = String, Path, description = "Approval id (a UUID)")), request_body = ModifyBody,
    responses((status = 200, description = "The approval, still pending, with its new arguments", body = ApprovalView),
              (status = 400, description = "Arguments that are no JSON object, or a malformed body"),
              (status = 404, description = "No such approval"),
              (status = 409, description = "Already decided or expired"),
              (status = 413, description = "Arguments over 64 KiB")))]
pub async fn modify(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<ModifyBody>,
) -> Result<Json<ApprovalView>, ApiError> {
    let id = approval_id(&id)?;
    let modified = state
        .kernel
        .approvals()
        .modify(id, body.arguments, decider(&state), body.feedback)
        .await?;
    Ok(Json(modified.into()))
}
