//! Approvals: tool calls that wait for an operator.
//!
//! Owns `approvals.v1` and `approval_meta.v1` (the last TOTP step accepted)
//! and the approval TOTP secret in `secrets.toml` (through the providers
//! domain, which owns that file). Uses the agents (a request names its
//! agent) and the foundation. The conversation domain asks [`Approvals`]
//! which policy applies to a call and, for `ask`, waits here for the
//! decision.
//!
//! A request is stored (with its audit entry, and the state of the turn
//! that waits on it, opaque JSON the conversation domain writes) before it
//! is announced on the bus. Its waiter lives in memory. After a restart the
//! conversation domain resumes the turns stored with pending approvals
//! ([`Approvals::paused_turns`], [`Approvals::wait`]); an approval a turn
//! waited on without its state stored (a subagent's turn) is marked expired
//! at the next start, with the reason, and audited. Approvals created over
//! the API have no turn and stay pending until decided or past their time.
//! See docs/APPROVALS.md.

mod records;
mod totp;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use records::{Approval, ApprovalStatus};
use records::{Edit, Resolution};
pub use totp::{TotpEnrollment, TotpStatus};

use crate::KernelError;
use crate::agents::{AgentRecord, Agents};
use crate::config::{Policy, SecondFactor};
use crate::events::Event;
use crate::providers::Providers;
use crate::shared::{Shared, blocking_kernel};
use crate::store;

/// Longest description or action name accepted over the API, in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Longest reason or feedback accepted, in characters.
pub const MAX_REASON_CHARS: usize = 4096;
/// Largest payload accepted over the API, in bytes of JSON.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Who decided when the system did (an expiry).
pub const SYSTEM: &str = "system";
/// Why an approval expired when the daemon stopped while its call waited.
const STOPPED: &str = "the daemon stopped while the call waited";

/// A call that needs a decision, as the agent loop describes it.
#[derive(Debug, Clone)]
pub struct CallToApprove {
    /// The agent that makes it.
    pub agent: Uuid,
    /// Its name.
    pub agent_name: String,
    /// The session whose turn waits.
    pub session: Option<Uuid>,
    /// The tool.
    pub tool: String,
    /// The tool's declared risk class.
    pub risk: Option<String>,
    /// The arguments.
    pub arguments: serde_json::Value,
    /// The state of the waiting turn, stored with the approval so the turn
    /// can resume after a restart (none: it cannot, and expires then).
    pub turn: Option<serde_json::Value>,
}

/// A decision sent by an operator.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// Approve (else reject).
    pub approve: bool,
    /// Who decides: `local` or `api_key`.
    pub by: String,
    /// Why, if they said.
    pub reason: Option<String>,
    /// A TOTP code, required to approve a call of the guarded risk class
    /// when `approvals.second_factor = "totp"` and TOTP is confirmed.
    pub totp_code: Option<String>,
}

/// The approvals domain.
pub struct Approvals {
    shared: Arc<Shared>,
    agents: Arc<Agents>,
    providers: Arc<Providers>,
    /// The turns waiting, by approval id: each receives the decided record.
    waiters: Mutex<HashMap<Uuid, watch::Sender<Option<Approval>>>>,
    /// Cancelled when the daemon stops: waiting calls expire at once, so a
    /// clean stop is not held up by a decision that may never come.
    stopping: CancellationToken,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals").finish_non_exhaustive()
    }
}

impl Approvals {
    /// The domain; approvals a turn waited on when the daemon last stopped,
    /// without the turn's state stored to resume it, are marked expired now
    /// (their turns are gone).
    pub fn new(
        shared: Arc<Shared>,
        agents: Arc<Agents>,
        providers: Arc<Providers>,
    ) -> Result<Self, KernelError> {
        for approval in records::all(shared.store())? {
            if approval.from_turn
                && approval.status == ApprovalStatus::Pending
                && !records::has_paused_turn(shared.store(), approval.id)?
            {
                let (approval, entry) = records::resolve(
                    shared.store(),
                    approval.id,
                    Resolution {
                        status: ApprovalStatus::Expired,
                        by: SYSTEM.into(),
                        reason: Some(format!("{STOPPED}; its turn did not survive")),
                        totp_step: None,
                    },
                )?;
                shared.events().publish(Event::Audit(entry));
                tracing::info!(approval = %approval.id, "approval expired by restart");
            }
        }
        Ok(Self {
            shared,
            agents,
            providers,
            waiters: Mutex::new(HashMap::new()),
            stopping: CancellationToken::new(),
        })
    }

    /// Expires every call waiting for a decision (the daemon is stopping)
    /// and every one that asks from now on.
    pub fn stop(&self) {
        self.stopping.cancel();
    }

    /// The policy for `tool` (declared `risk`) called by `agent`: its
    /// manifest's `[approvals]` first, then the daemon's.
    pub fn policy(&self, agent: &AgentRecord, tool: &str, risk: Option<&str>) -> Policy {
        self.shared
            .config()
            .approvals
            .policy(&agent.manifest.approvals, tool, risk)
    }

    /// Stores a request for `call`, announces it, and waits for the decision:
    /// the decided record, or the expired one when the time runs out or
    /// `cancel` fires. `on_pending` runs once the request is stored.
    pub async fn ask(
        &self,
        call: CallToApprove,
        cancel: &CancellationToken,
        on_pending: impl FnOnce(&Approval),
    ) -> Result<Approval, KernelError> {
        let description = describe(&call.agent_name, &call.tool, &call.arguments);
        let approval = self
            .store_request(
                call.agent,
                call.agent_name,
                call.session,
                call.tool,
                description,
                call.arguments,
                call.risk,
                true,
                call.turn,
            )
            .await?;
        on_pending(&approval);
        self.wait(&approval, cancel, true).await
    }

    /// The pending approvals stored with the state of the turn that waits
    /// on each (to resume after a restart), oldest first.
    pub async fn paused_turns(&self) -> Result<Vec<(Approval, serde_json::Value)>, KernelError> {
        let store = self.shared.store().clone();
        let paused = store::blocking(move || records::paused(&store)).await?;
        Ok(paused
            .into_iter()
            .map(|(approval, turn)| {
                // Unreadable state is handed on as `null`: the conversation
                // domain expires the approval, saying why.
                let turn = serde_json::from_slice(&turn).unwrap_or(serde_json::Value::Null);
                (approval, turn)
            })
            .collect())
    }

    /// Marks a pending approval expired with `reason` (its turn cannot go
    /// on); the decision stands if one came first.
    pub async fn abandon(&self, id: Uuid, reason: String) -> Result<Approval, KernelError> {
        match self.expire(id, reason).await {
            Err(KernelError::Conflict(_)) => self.get(id).await,
            other => other,
        }
    }

    /// Waits for the decision on a stored request: the decided record, or
    /// the expired one when its time runs out (at once when it already
    /// has), `cancel` fires or, with `expire_on_stop`, the daemon stops
    /// (without it, a stop leaves the approval pending and this never ends).
    pub async fn wait(
        &self,
        approval: &Approval,
        cancel: &CancellationToken,
        expire_on_stop: bool,
    ) -> Result<Approval, KernelError> {
        let (tx, mut rx) = watch::channel(None);
        self.lock_waiters().insert(approval.id, tx);
        // A decision recorded before the waiter was registered (a resumed
        // turn's approval, decided as the daemon started) is not missed.
        let current = self.get(approval.id).await;
        if let Ok(current) = &current
            && current.status != ApprovalStatus::Pending
            && current.decided_at.is_some()
        {
            self.lock_waiters().remove(&approval.id);
            return Ok(current.clone());
        }
        let left = (approval.expires_at - self.shared.now())
            .to_std()
            .unwrap_or_default();
        let ended = tokio::select! {
            decided = rx.wait_for(Option::is_some) => decided.ok().and_then(|d| d.clone()),
            _ = tokio::time::sleep(left) => None,
            _ = cancel.cancelled() => None,
            _ = self.stopping.cancelled(), if expire_on_stop => None,
        };
        self.lock_waiters().remove(&approval.id);
        if let Some(decided) = ended {
            return Ok(decided);
        }
        let reason = if self.stopping.is_cancelled() {
            STOPPED.to_string()
        } else if cancel.is_cancelled() {
            "the turn was stopped while it waited".to_string()
        } else {
            format!(
                "no decision within {} s",
                self.shared.config().approvals.timeout_secs
            )
        };
        match self.expire(approval.id, reason).await {
            Ok(expired) => Ok(expired),
            // Decided in the same instant: the decision stands.
            Err(KernelError::Conflict(_)) => self.get(approval.id).await,
            Err(e) => Err(e),
        }
    }

    /// Creates an approval over the API (no turn waits on it).
    pub async fn create(
        &self,
        agent: Uuid,
        action: String,
        description: String,
        payload: serde_json::Value,
    ) -> Result<Approval, KernelError> {
        if action.trim().is_empty() || action.len() > MAX_TEXT_BYTES {
            return Err(KernelError::Invalid(format!(
                "`action` must be non-empty and at most {MAX_TEXT_BYTES} bytes"
            )));
        }
        if description.len() > MAX_TEXT_BYTES {
            return Err(KernelError::Invalid(format!(
                "`description` must be at most {MAX_TEXT_BYTES} bytes"
            )));
        }
        if payload.to_string().len() > MAX_PAYLOAD_BYTES {
            return Err(KernelError::TooLarge(format!(
                "`payload` must be at most {MAX_PAYLOAD_BYTES} bytes of JSON"
            )));
        }
        let record = self.agents.get(agent).await.map_err(|e| match e {
            KernelError::NotFound(_) => KernelError::NotFound(format!("no agent with id {agent}")),
            other => other,
        })?;
        self.store_request(
            agent,
            record.name().to_string(),
            None,
            action,
            description,
            payload,
            None,
            false,
            None,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn store_request(
        &self,
        agent: Uuid,
        agent_name: String,
        session: Option<Uuid>,
        tool: String,
        description: String,
        payload: serde_json::Value,
        risk: Option<String>,
        from_turn: bool,
        turn: Option<serde_json::Value>,
    ) -> Result<Approval, KernelError> {
        let turn = turn
            .map(|t| serde_json::to_vec(&t))
            .transpose()
            .map_err(|e| KernelError::Invalid(format!("the turn's state cannot be stored: {e}")))?;
        let config = self.shared.config();
        let now = self.shared.now();
        let second_factor = config.approvals.second_factor == SecondFactor::Totp
            && risk.as_deref() == Some(config.approvals.totp_risk.as_str());
        let approval = Approval {
            id: Uuid::now_v7(),
            agent_id: agent,
            agent_name,
            session_id: session,
            tool_name: tool,
            description,
            payload,
            risk,
            second_factor,
            from_turn,
            status: ApprovalStatus::Pending,
            requested_at: now,
            expires_at: now
                + chrono::Duration::seconds(
                    i64::try_from(config.approvals.timeout_secs).unwrap_or(i64::MAX / 1000),
                ),
            decided_at: None,
            decided_by: None,
            reason: None,
        };
        let store = self.shared.store().clone();
        let stored = approval.clone();
        let entry =
            store::blocking(move || records::insert(&store, &stored, turn.as_deref())).await?;
        self.shared.events().publish(Event::Audit(entry));
        self.shared.events().publish(Event::ApprovalRequested {
            approval_id: approval.id.to_string(),
            agent_id: approval.agent_id.to_string(),
            tool: approval.tool_name.clone(),
            expires_at: approval.expires_at,
            at: now,
        });
        Ok(approval)
    }

    /// Approvals, newest first, each with its status as of now; and how many there are.
    pub async fn list(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Approval>, usize), KernelError> {
        let all = self.matching(|_| true).await?;
        let total = all.len();
        Ok((all.into_iter().skip(offset).take(limit).collect(), total))
    }

    /// One approval, with its status as of now.
    pub async fn get(&self, id: Uuid) -> Result<Approval, KernelError> {
        let store = self.shared.store().clone();
        let mut approval = store::blocking(move || records::get(&store, id))
            .await?
            .ok_or_else(|| KernelError::NotFound(format!("approval {id} not found")))?;
        approval.status = approval.status_at(self.shared.now());
        Ok(approval)
    }

    /// How many approvals are pending now.
    pub async fn pending_count(&self) -> Result<usize, KernelError> {
        Ok(self
            .matching(|a| a.status == ApprovalStatus::Pending)
            .await?
            .len())
    }

    /// The approvals pending now for `session`'s turns, newest first.
    pub async fn pending_for_session(&self, session: Uuid) -> Result<Vec<Approval>, KernelError> {
        self.matching(move |a| a.status == ApprovalStatus::Pending && a.session_id == Some(session))
            .await
    }

    /// Decided and expired approvals (the decisions' history), newest
    /// first, that `keep` keeps; one page, and how many there are.
    pub async fn decided(
        &self,
        keep: impl Fn(&Approval) -> bool + Send + 'static,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Approval>, usize), KernelError> {
        let decided = self
            .matching(move |a| a.status != ApprovalStatus::Pending && keep(a))
            .await?;
        let total = decided.len();
        Ok((
            decided.into_iter().skip(offset).take(limit).collect(),
            total,
        ))
    }

    /// Approvals `keep` keeps, each with its status as of now, newest first.
    async fn matching(
        &self,
        keep: impl Fn(&Approval) -> bool + Send + 'static,
    ) -> Result<Vec<Approval>, KernelError> {
        let store = self.shared.store().clone();
        let now = self.shared.now();
        let all = store::blocking(move || records::all(&store)).await?;
        Ok(all
            .into_iter()
            .map(|mut a| {
                a.status = a.status_at(now);
                a
            })
            .filter(|a| keep(a))
            .collect())
    }

    /// Replaces a pending approval's arguments: a turn waiting on it runs
    /// the call with them if it is approved. They must be a JSON object of
    /// at most [`MAX_PAYLOAD_BYTES`]; an approval no longer pending is a
    /// conflict. Audited with the arguments before and after.
    pub async fn modify(
        &self,
        id: Uuid,
        arguments: serde_json::Value,
        by: String,
        feedback: Option<String>,
    ) -> Result<Approval, KernelError> {
        if !arguments.is_object() {
            return Err(KernelError::Invalid(
                "`arguments` must be a JSON object (the call's arguments)".into(),
            ));
        }
        if arguments.to_string().len() > MAX_PAYLOAD_BYTES {
            return Err(KernelError::TooLarge(format!(
                "`arguments` must be at most {MAX_PAYLOAD_BYTES} bytes of JSON"
            )));
        }
        if feedback
            .as_ref()
            .is_some_and(|f| f.chars().count() > MAX_REASON_CHARS)
        {
            return Err(KernelError::Invalid(format!(
                "`feedback` must be at most {MAX_REASON_CHARS} characters"
            )));
        }
        let current = self.get(id).await?;
        let description = if current.from_turn {
            describe(&current.agent_name, &current.tool_name, &arguments)
        } else {
            current.description
        };
        let store = self.shared.store().clone();
        let edit = Edit {
            arguments,
            description,
            by,
            feedback,
        };
        let (approval, entry) = blocking_kernel(move || records::modify(&store, id, edit)).await?;
        self.shared.events().publish(Event::Audit(entry));
        Ok(approval)
    }

    /// Approves or rejects a pending approval and wakes the turn waiting on
    /// it. Deciding twice, or after it expired, is a conflict; a missing
    /// TOTP code where one is needed is invalid, a wrong or reused one forbidden.
    pub async fn decide(&self, id: Uuid, decision: Decision) -> Result<Approval, KernelError> {
        let current = self.get(id).await?;
        if current.status != ApprovalStatus::Pending {
            return Err(KernelError::Conflict(format!(
                "approval {id} was already {}",
                current.status.as_str()
            )));
        }
        let totp_step = if decision.approve && current.second_factor {
            self.check_totp_for_approval(decision.totp_code.as_deref())
                .await?
        } else {
            None
        };
        let status = if decision.approve {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Rejected
        };
        self.record(
            id,
            Resolution {
                status,
                by: decision.by,
                reason: decision.reason,
                totp_step,
            },
        )
        .await
    }

    async fn expire(&self, id: Uuid, reason: String) -> Result<Approval, KernelError> {
        self.record(
            id,
            Resolution {
                status: ApprovalStatus::Expired,
                by: SYSTEM.into(),
                reason: Some(reason),
                totp_step: None,
            },
        )
        .await
    }

    /// Stores a resolution, announces it and hands it to the waiting turn.
    async fn record(&self, id: Uuid, resolution: Resolution) -> Result<Approval, KernelError> {
        let store = self.shared.store().clone();
        let (approval, entry) =
            blocking_kernel(move || records::resolve(&store, id, resolution)).await?;
        self.shared.events().publish(Event::Audit(entry));
        self.shared.events().publish(Event::ApprovalResolved {
            approval_id: approval.id.to_string(),
            agent_id: approval.agent_id.to_string(),
            tool: approval.tool_name.clone(),
            status: approval.status.as_str().to_string(),
            decided_by: approval.decided_by.clone().unwrap_or_default(),
            at: approval.decided_at.unwrap_or_else(|| self.shared.now()),
        });
        if let Some(waiter) = self.lock_waiters().get(&id) {
            let _ = waiter.send(Some(approval.clone()));
        }
        Ok(approval)
    }

    fn lock_waiters(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<Uuid, watch::Sender<Option<Approval>>>> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a turn's call would do, for the operator.
fn describe(agent_name: &str, tool: &str, arguments: &serde_json::Value) -> String {
    format!(
        "{agent_name} wants to call {tool} with {}",
        truncate(&arguments.to_string(), 512)
    )
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
