//! Approval records and their store functions.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::KernelError;
use crate::store::audit::{self, AuditEntry, AuditEvent};
use crate::store::tables::{APPROVAL_META, APPROVALS, PAUSED_TURNS};
use crate::store::{self, Store, StoreError};

const TABLE: &str = "approvals.v1";
const TOTP_LAST_STEP: &str = "totp_last_step";

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for a decision.
    Pending,
    /// Approved: the call ran (or, for one created over the API, may run).
    Approved,
    /// Rejected: the call was not run; the model read why.
    Rejected,
    /// No decision in time, the turn was stopped, or the daemon restarted
    /// while the turn waited (see `reason`).
    Expired,
}

impl ApprovalStatus {
    /// The name used in the API and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
        }
    }
}

/// A request for an operator's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Approval {
    /// Time-ordered id (UUIDv7).
    pub id: Uuid,
    /// The agent that asks.
    pub agent_id: Uuid,
    /// Its name when it asked.
    pub agent_name: String,
    /// The session whose turn waits (none for one created over the API).
    pub session_id: Option<Uuid>,
    /// The tool (or, over the API, the action) to approve.
    pub tool_name: String,
    /// What the call would do, for the operator.
    pub description: String,
    /// The call's arguments (or the API caller's payload).
    pub payload: serde_json::Value,
    /// The tool's declared risk class, if any.
    pub risk: Option<String>,
    /// Whether approving needs a TOTP code.
    pub second_factor: bool,
    /// Whether a turn waits on it (false: created over the API).
    pub from_turn: bool,
    /// Where it stands.
    pub status: ApprovalStatus,
    /// When it was asked.
    pub requested_at: DateTime<Utc>,
    /// When it expires unless decided.
    pub expires_at: DateTime<Utc>,
    /// When it was decided or expired.
    pub decided_at: Option<DateTime<Utc>>,
    /// Who decided: `local` (no API key set), `api_key`, or `system`.
    pub decided_by: Option<String>,
    /// The decider's reason, or why it expired.
    pub reason: Option<String>,
}

impl Approval {
    /// Its status as of `now`: a pending approval past its time reads as
    /// expired even before anything records it.
    pub fn status_at(&self, now: DateTime<Utc>) -> ApprovalStatus {
        if self.status == ApprovalStatus::Pending && now >= self.expires_at {
            ApprovalStatus::Expired
        } else {
            self.status
        }
    }
}

fn put(tx: &WriteTransaction, approval: &Approval) -> Result<(), StoreError> {
    let bytes = store::encode(TABLE, approval)?;
    tx.open_table(APPROVALS)?
        .insert(approval.id.to_string().as_str(), bytes.as_slice())?;
    Ok(())
}

/// Stores a new approval with its audit entry, and the state of the turn
/// that waits on it (to resume it after a restart), if any.
pub(super) fn insert(
    store: &Store,
    approval: &Approval,
    turn: Option<&[u8]>,
) -> Result<AuditEntry, StoreError> {
    let tx = store.db()?.begin_write()?;
    put(&tx, approval)?;
    if let Some(turn) = turn {
        tx.open_table(PAUSED_TURNS)?
            .insert(approval.id.to_string().as_str(), turn)?;
    }
    let entry = audit::append_in(
        &tx,
        store.now(),
        AuditEvent::new(
            "approval_requested",
            format!(
                "approval {} for {}: {}",
                approval.id, approval.tool_name, approval.description
            ),
        )
        .agent(approval.agent_id),
    )?;
    tx.commit()?;
    Ok(entry)
}

/// One approval.
pub(super) fn get(store: &Store, id: Uuid) -> Result<Option<Approval>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(APPROVALS)?;
    table
        .get(id.to_string().as_str())?
        .map(|v| store::decode(TABLE, v.value()))
        .transpose()
}

/// Every approval, newest first.
pub(super) fn all(store: &Store) -> Result<Vec<Approval>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(APPROVALS)?;
    let mut out = Vec::new();
    for entry in table.iter()?.rev() {
        let (_, value) = entry?;
        out.push(store::decode(TABLE, value.value())?);
    }
    Ok(out)
}

/// The pending approvals with the state of the turn waiting on each, oldest
/// first (the order their turns paused in).
pub(super) fn paused(store: &Store) -> Result<Vec<(Approval, Vec<u8>)>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let approvals = tx.open_table(APPROVALS)?;
    let turns = tx.open_table(PAUSED_TURNS)?;
    let mut out = Vec::new();
    for entry in turns.iter()? {
        let (id, turn) = entry?;
        let Some(value) = approvals.get(id.value())? else {
            continue;
        };
        let approval: Approval = store::decode(TABLE, value.value())?;
        if approval.status == ApprovalStatus::Pending {
            out.push((approval, turn.value().to_vec()));
        }
    }
    Ok(out)
}

/// Whether a turn's state is stored with approval `id`.
pub(super) fn has_paused_turn(store: &Store, id: Uuid) -> Result<bool, StoreError> {
    let tx = store.db()?.begin_read()?;
    let turns = tx.open_table(PAUSED_TURNS)?;
    Ok(turns.get(id.to_string().as_str())?.is_some())
}

/// The outcome recorded by [`resolve`].
pub(super) struct Resolution {
    pub status: ApprovalStatus,
    pub by: String,
    pub reason: Option<String>,
    /// A TOTP step to accept once: refused when not above the last accepted one.
    pub totp_step: Option<u64>,
}

/// Records a decision (or expiry) on a pending approval, with its audit
/// entry, in one transaction; an approval already decided (or past its time,
/// for a decision) is a conflict. The state of a turn waiting on it is
/// removed in the same transaction: the turn that takes the decision holds
/// it in memory, and a daemon that dies before the turn commits loses the
/// turn like any other unfinished one (never runs the call twice).
pub(super) fn resolve(
    store: &Store,
    id: Uuid,
    resolution: Resolution,
) -> Result<(Approval, AuditEntry), KernelError> {
    let tx = store.db()?.begin_write().map_err(StoreError::from)?;
    let now = store.now();
    let mut approval = pending_in(&tx, store, id, resolution.status == ApprovalStatus::Expired)?;
    if let Some(step) = resolution.totp_step {
        accept_step_in(&tx, step)?;
    }
    approval.status = resolution.status;
    approval.decided_at = Some(now);
    approval.decided_by = Some(resolution.by.clone());
    approval.reason = resolution.reason.clone();
    put(&tx, &approval)?;
    tx.open_table(PAUSED_TURNS)
        .map_err(StoreError::from)?
        .remove(id.to_string().as_str())
        .map_err(StoreError::from)?;
    let mut event = AuditEvent::new(
        &format!("approval_{}", resolution.status.as_str()),
        format!(
            "approval {} for {} {} by {}{}{}",
            approval.id,
            approval.tool_name,
            resolution.status.as_str(),
            resolution.by,
            if resolution.totp_step.is_some() {
                " with a TOTP code"
            } else {
                ""
            },
            resolution
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
    )
    .agent(approval.agent_id);
    if resolution.status != ApprovalStatus::Approved {
        event.outcome = "denied".into();
    }
    let entry = audit::append_in(&tx, now, event)?;
    tx.commit().map_err(StoreError::from)?;
    Ok((approval, entry))
}

/// An operator's edit of a pending call's arguments, recorded by [`modify`].
pub(super) struct Edit {
    pub arguments: serde_json::Value,
    pub description: String,
    pub by: String,
    pub feedback: Option<String>,
}

/// Replaces a pending approval's arguments, with an `approval_modified`
/// audit entry holding the arguments before and after, in one transaction;
/// an approval no longer pending (or past its time) is a conflict.
pub(super) fn modify(
    store: &Store,
    id: Uuid,
    edit: Edit,
) -> Result<(Approval, AuditEntry), KernelError> {
    let tx = store.db()?.begin_write().map_err(StoreError::from)?;
    let mut approval = pending_in(&tx, store, id, false)?;
    let before = std::mem::replace(&mut approval.payload, edit.arguments);
    approval.description = edit.description;
    put(&tx, &approval)?;
    let entry = audit::append_in(
        &tx,
        store.now(),
        AuditEvent::new(
            "approval_modified",
            format!(
                "approval {} for {} modified by {}{}: arguments before {before}, after {}",
                approval.id,
                approval.tool_name,
                edit.by,
                edit.feedback
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                approval.payload
            ),
        )
        .agent(approval.agent_id),
    )?;
    tx.commit().map_err(StoreError::from)?;
    Ok((approval, entry))
}

/// The approval `id` read in `tx`, if it is still pending and in time
/// (`late`: past its time too, for recording its expiry).
fn pending_in(
    tx: &WriteTransaction,
    store: &Store,
    id: Uuid,
    late: bool,
) -> Result<Approval, KernelError> {
    let approval: Approval = {
        let table = tx.open_table(APPROVALS).map_err(StoreError::from)?;
        let value = table
            .get(id.to_string().as_str())
            .map_err(StoreError::from)?
            .ok_or_else(|| KernelError::NotFound(format!("approval {id} not found")))?;
        store::decode(TABLE, value.value())?
    };
    if approval.status != ApprovalStatus::Pending {
        return Err(KernelError::Conflict(format!(
            "approval {id} was already {}",
            approval.status.as_str()
        )));
    }
    if !late && approval.status_at(store.now()) == ApprovalStatus::Expired {
        return Err(KernelError::Conflict(format!(
            "approval {id} expired at {}",
            approval.expires_at.to_rfc3339()
        )));
    }
    Ok(approval)
}

/// Accepts a TOTP step once outside any approval (confirming enrollment,
/// revoking it).
pub(super) fn use_totp_step(store: &Store, step: u64) -> Result<(), KernelError> {
    let tx = store.db()?.begin_write()?;
    accept_step_in(&tx, step)?;
    tx.commit().map_err(StoreError::from)?;
    Ok(())
}

/// Records `step` as the last TOTP step accepted; refused when it is not
/// above the last one, so a code (or an older one) never works twice.
fn accept_step_in(tx: &WriteTransaction, step: u64) -> Result<(), KernelError> {
    let mut meta = tx.open_table(APPROVAL_META).map_err(StoreError::from)?;
    let last = meta
        .get(TOTP_LAST_STEP)
        .map_err(StoreError::from)?
        .map(|v| v.value());
    if last.is_some_and(|last| step <= last) {
        return Err(KernelError::Forbidden(
            "this TOTP code was already used; wait for the next code".into(),
        ));
    }
    meta.insert(TOTP_LAST_STEP, step)
        .map_err(StoreError::from)?;
    Ok(())
}
