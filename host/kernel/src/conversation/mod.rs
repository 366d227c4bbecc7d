//! Conversations: an agent's sessions, the agent loop that runs each turn,
//! the turns in flight and those watching them, the agent's log and what
//! its turns cost.
//!
//! Owns the `sessions.v1`, `messages.v1` and `turns.v1` tables (and the
//! turn journal's record format, see [`sessions::commit_turn`]). Uses the
//! agents (who is talking, with which manifest), the plugins (the tools a
//! turn calls) and the providers (the model), never their tables; the
//! automation domain above starts turns through [`Conversations`].

pub mod budget;
mod compaction;
pub mod live;
pub mod logs;
mod prompt;
pub mod records;
pub mod redact;
pub mod repair;
mod resume;
pub mod retention;
pub(crate) mod sessions;
pub mod turn;
mod window;

use std::sync::Arc;

use serde::Serialize;
use uuid::Uuid;

use crate::KernelError;
use crate::a2a::A2a;
use crate::agents::Agents;
use crate::approvals::Approvals;
use crate::mcp::McpClients;
use crate::plugins::Plugins;
use crate::providers::Providers;
use crate::shared::{Shared, blocking_kernel};
use crate::store;

pub use crate::store::totals::UsageTotals;
pub use budget::{Spending, Usage, UsageSpan};
pub use live::{LiveSessions, TurnEvent, TurnReply};
pub use records::{
    Sender, SessionRecord, StoredMessage, ToolCallTrace, Totals, TurnRecord, TurnStatus,
};
pub(crate) use sessions::remove_agent_in;
pub use turn::{MessageInput, StartedTurn};

/// The conversations domain.
pub struct Conversations {
    shared: Arc<Shared>,
    agents: Arc<Agents>,
    plugins: Arc<Plugins>,
    providers: Arc<Providers>,
    approvals: Arc<Approvals>,
    a2a: Arc<A2a>,

    mcp: Arc<McpClients>,
    live: LiveSessions,
    windows: Arc<window::Windows>,
}

impl std::fmt::Debug for Conversations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversations").finish_non_exhaustive()
    }
}

impl Conversations {
    /// The domain over `shared`, talking to agents through the given domains.
    pub(crate) fn new(
        shared: Arc<Shared>,
        agents: Arc<Agents>,
        plugins: Arc<Plugins>,
        providers: Arc<Providers>,
        approvals: Arc<Approvals>,
        a2a: Arc<A2a>,

        mcp: Arc<McpClients>,
    ) -> Self {
        Self {
            shared,
            agents,
            plugins,
            providers,
            approvals,
            a2a,

            mcp,
            live: LiveSessions::default(),
            windows: Arc::default(),
        }
    }

    /// Starts the retention sweep of turn records (`[retention]`).
    pub fn start_retention(&self) {
        retention::start(Arc::downgrade(&self.shared));
    }

    /// Turns in flight and their watchers.
    pub fn live(&self) -> &LiveSessions {
        &self.live
    }

    /// Ends and forgets the running turns of an agent that was removed.
    pub(crate) fn forget_agent(&self, agent: Uuid) {
        self.live.forget_agent(agent);
        self.windows.forget_agent(agent);
    }
}

/// A session with its messages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionView {
    /// The session.
    #[serde(flatten)]
    pub session: SessionRecord,
    /// Its messages, in order.
    pub messages: Vec<StoredMessage>,
    /// Estimated tokens the messages take in a prompt.
    pub context_window_tokens: u64,
}

impl Conversations {
    /// A session and its messages; the agent's current one when `session` is `None`.
    pub async fn session_view(
        &self,
        agent: Option<uuid::Uuid>,
        session: Option<Uuid>,
    ) -> Result<SessionView, KernelError> {
        let store = self.shared.store().clone();
        blocking_kernel(move || {
            let record = match (agent, session) {
                (Some(agent), None) => sessions::current(&store, agent)?,
                (agent, Some(id)) => sessions::get(&store, id)?
                    .filter(|s| agent.is_none_or(|a| a == s.agent_id))
                    .ok_or_else(|| KernelError::NotFound(format!("session {id} not found")))?,
                (None, None) => return Err(KernelError::Invalid("no session named".into())),
            };
            let messages = sessions::messages(&store, record.id)?;
            let chars: usize = messages.iter().map(|m| m.message.text().len()).sum();
            Ok(SessionView {
                session: record,
                context_window_tokens: (chars / 4) as u64,
                messages,
            })
        })
        .await
    }

    /// Sessions of one agent, or of all.
    pub async fn sessions(&self, agent: Option<Uuid>) -> Result<Vec<SessionRecord>, KernelError> {
        if let Some(agent) = agent {
            self.agents.get(agent).await?;
        }
        let store = self.shared.store().clone();
        Ok(store::blocking(move || sessions::list(&store, agent)).await?)
    }

    /// A new session of `agent`; with `make_current` the agent switches to it.
    pub async fn create_session(
        &self,
        agent: Uuid,
        label: Option<String>,
        make_current: bool,
    ) -> Result<SessionRecord, KernelError> {
        let store = self.shared.store().clone();
        blocking_kernel(move || sessions::create(&store, agent, label, make_current)).await
    }

    /// Makes `session` the agent's current one.
    pub async fn switch_session(&self, agent: Uuid, session: Uuid) -> Result<(), KernelError> {
        let store = self.shared.store().clone();
        blocking_kernel(move || sessions::switch(&store, agent, session)).await
    }

    /// Removes every message of the agent's current session.
    pub async fn clear_history(&self, agent: Uuid) -> Result<SessionRecord, KernelError> {
        let store = self.shared.store().clone();
        let session = blocking_kernel({
            let store = store.clone();
            move || sessions::current(&store, agent)
        })
        .await?;
        let live = self.live().get(session.id, agent);
        let _turn = live.turn_lock.lock().await;
        blocking_kernel(move || sessions::clear(&store, session.id)).await
    }

    /// Starts the agent on a fresh session (the old one is kept) and clears
    /// pending interrupts; the new session.
    pub async fn reset_session(&self, agent: Uuid) -> Result<SessionRecord, KernelError> {
        let store = self.shared.store().clone();
        if let Some(old) = self.agents.get(agent).await?.session_id
            && let Some(live) = self.live().find(old)
        {
            live.clear_interrupt();
        }
        blocking_kernel(move || sessions::create(&store, agent, None, true)).await
    }

    /// Deletes a session and its messages.
    pub async fn delete_session(&self, session: Uuid) -> Result<(), KernelError> {
        self.live().forget(session);
        self.windows.forget(session);
        let store = self.shared.store().clone();
        if blocking_kernel(move || sessions::delete(&store, session)).await? {
            Ok(())
        } else {
            Err(KernelError::NotFound(format!(
                "session {session} not found"
            )))
        }
    }

    /// Sets or clears a session's label.
    pub async fn label_session(
        &self,
        session: Uuid,
        label: Option<String>,
    ) -> Result<SessionRecord, KernelError> {
        let store = self.shared.store().clone();
        blocking_kernel(move || sessions::set_label(&store, session, label)).await
    }

    /// The agent's session with this label.
    pub async fn session_by_label(
        &self,
        agent: Uuid,
        label: String,
    ) -> Result<SessionRecord, KernelError> {
        self.sessions(Some(agent))
            .await?
            .into_iter()
            .find(|s| s.label.as_deref() == Some(label.as_str()))
            .ok_or_else(|| KernelError::NotFound(format!("no session labelled `{label}`")))
    }

    /// The turns one agent asked of another (`agent_send`,
    /// `POST /api/comms/send`): those whose sender came on the `agent`
    /// channel, in no particular order.
    pub async fn agent_message_turns(&self) -> Result<Vec<TurnRecord>, KernelError> {
        let store = self.shared.store().clone();
        Ok(crate::store::blocking(move || {
            sessions::turns_where(&store, |t| {
                t.sender.as_ref().and_then(|s| s.channel_type.as_deref())
                    == Some(turn::AGENT_CHANNEL)
            })
        })
        .await?)
    }

    /// The session of `agent` that holds what `sender` tells it through
    /// `agent_send`, labelled `agent:<sender>`: created on first use, and
    /// apart from the conversations people have with it.
    pub(crate) async fn delegation_session(
        &self,
        agent: Uuid,
        sender: &str,
    ) -> Result<Uuid, KernelError> {
        self.labelled_session(agent, format!("agent:{sender}"))
            .await
    }

    /// The session of `agent` labelled `label`, created (not current) on
    /// first use: the one place a conversation with a given peer is kept
    /// (`agent:<sender>` for `agent_send`, `a2a:<context>` for A2A).
    pub(crate) async fn labelled_session(
        &self,
        agent: Uuid,
        label: String,
    ) -> Result<Uuid, KernelError> {
        let store = self.shared.store().clone();
        blocking_kernel(move || {
            let find = || -> Result<Option<Uuid>, KernelError> {
                Ok(sessions::list(&store, Some(agent))?
                    .into_iter()
                    .find(|s| s.label.as_deref() == Some(label.as_str()))
                    .map(|s| s.id))
            };
            if let Some(id) = find()? {
                return Ok(id);
            }
            match sessions::create(&store, agent, Some(label.clone()), false) {
                Ok(session) => Ok(session.id),
                // Created meanwhile by another turn of the same sender.
                Err(KernelError::Conflict(_)) => find()?.ok_or_else(|| {
                    KernelError::Conflict(format!("session `{label}` vanished while created"))
                }),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Asks a session's running turn to stop at its next tool-call boundary.
    pub async fn interrupt_session(&self, agent: Uuid, session: Uuid) -> Result<(), KernelError> {
        let record = self.session_view(Some(agent), Some(session)).await?.session;
        self.live().get(record.id, agent).interrupt();
        Ok(())
    }

    /// Cancels every running turn of an agent; how many there were.
    pub async fn stop_agent(&self, agent: Uuid) -> Result<usize, KernelError> {
        self.agents.get(agent).await?;
        Ok(self.live().cancel_agent(agent))
    }

    /// The newest turns of an agent, newest first.
    pub async fn turns(&self, agent: Uuid, limit: usize) -> Result<Vec<TurnRecord>, KernelError> {
        self.agents.get(agent).await?;
        let store = self.shared.store().clone();
        Ok(store::blocking(move || sessions::turns_of(&store, agent, limit)).await?)
    }
}
