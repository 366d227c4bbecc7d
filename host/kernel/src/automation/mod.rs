//! Automation: what makes agents act without a person asking — cron jobs
//! and schedules, event triggers, workflows, goals and the task queue.
//!
//! Owns the `cron_jobs.v1`, `cron_runs.v1`, `triggers.v1`,
//! `trigger_fires.v1`, `workflows.v1`, `workflow_runs.v1`, `goals.v1` and
//! `tasks.v1` tables. Every action is an agent turn through
//! [`Automation::agent_turn`], which goes to the conversations domain; it
//! looks agents up through the agents domain, and delivers answers with a
//! delivery target through the channels domain. Nothing below depends on it.

pub mod cron;
pub mod delivery;
pub mod goals;
pub mod schedules;
pub mod tasks;
pub mod triggers;
pub mod workflows;

use std::sync::{Arc, OnceLock, RwLock};

use tokio::sync::{Mutex, Notify};
use uuid::Uuid;

use crate::agents::Agents;
use crate::channels::Channels;
use crate::conversation::{Conversations, MessageInput, TurnStatus};
use crate::shared::Shared;

/// The automation domain.
pub struct Automation {
    shared: Arc<Shared>,
    agents: Arc<Agents>,
    conversations: Arc<Conversations>,
    /// Where answers with a delivery target go.
    channels: Arc<Channels>,
    /// The cron engine, once [`Automation::start_scheduler`] ran.
    scheduler: OnceLock<talon_scheduler::Engine>,
    /// Serializes cron edits so the engine sees them in commit order.
    cron_edit: Mutex<()>,
    /// Event triggers, written through to the store.
    triggers: RwLock<Vec<triggers::Trigger>>,
    /// Wakes the task worker when a task is posted or retried.
    task_wake: Arc<Notify>,
}

impl std::fmt::Debug for Automation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Automation").finish_non_exhaustive()
    }
}

impl Automation {
    /// The domain over `shared`, acting through `conversations`.
    pub(crate) fn new(
        shared: Arc<Shared>,
        agents: Arc<Agents>,
        conversations: Arc<Conversations>,
        channels: Arc<Channels>,
    ) -> Self {
        Self {
            shared,
            agents,
            conversations,
            channels,
            scheduler: OnceLock::new(),
            cron_edit: Mutex::new(()),
            triggers: RwLock::new(Vec::new()),
            task_wake: Arc::new(Notify::new()),
        }
    }

    /// Sends `prompt` to an agent as a user message and returns its answer:
    /// the one place cron jobs, schedules, triggers and workflows act through.
    /// `new_session` runs the turn in a fresh session
    /// instead of the agent's current one. A turn that does not complete
    /// (failed, stopped, over budget...) is an error carrying its status.
    pub(crate) async fn agent_turn(
        &self,
        agent: Uuid,
        prompt: String,
        new_session: bool,
    ) -> Result<String, String> {
        let session_id = if new_session {
            let session = self
                .conversations
                .create_session(agent, None, false)
                .await
                .map_err(|e| e.to_string())?;
            Some(session.id)
        } else {
            None
        };
        let input = MessageInput {
            text: prompt,
            session_id,
            ..MessageInput::default()
        };
        let reply = self
            .conversations
            .send_message(agent, input)
            .await
            .map_err(|e| e.to_string())?;
        match reply.status {
            TurnStatus::Completed => Ok(reply.response),
            other => Err(format!(
                "the turn ended {}: {}",
                serde_json::to_value(other)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("{other:?}")),
                reply.response
            )),
        }
    }
}
