//! The event bus: one broadcast channel for everything that happens.
//!
//! Publishers never wait: a subscriber that falls behind loses the oldest
//! events (and is told how many) instead of slowing the kernel down. Audit
//! entries are written to the store inside the transaction of the change they
//! record and published here after the commit, so a subscriber never sees an
//! event that did not persist.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::store::audit::AuditEntry;

/// How many events a slow subscriber may lag behind before it loses some.
const CAPACITY: usize = 1024;

/// Something that happened in the kernel.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// An entry was appended to the audit chain.
    Audit(AuditEntry),
    /// An agent was spawned.
    AgentSpawned {
        /// The new agent.
        agent_id: String,
        /// Its name.
        name: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// An agent was killed.
    AgentTerminated {
        /// The agent.
        agent_id: String,
        /// When.
        at: DateTime<Utc>,
    },

    // --- Scheduler, triggers, workflows (issue 5) ---
    /// A cron job or schedule fired; its run is recorded before this is published.
    ScheduleFired {
        /// The job.
        job_id: String,
        /// The run it started.
        run_id: String,
        /// The agent it drives.
        agent_id: String,
        /// The occurrence being run.
        scheduled_at: DateTime<Utc>,
        /// When it started.
        at: DateTime<Utc>,
    },
    /// A trigger fired on an event; its fire is recorded before this is published.
    TriggerFired {
        /// The trigger.
        trigger_id: String,
        /// The agent that receives the prompt.
        agent_id: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A task was posted to the queue.
    TaskPosted {
        /// The task.
        task_id: String,
        /// Its title.
        title: String,
        /// The agent that is to do it.
        assignee: Option<String>,
        /// The agent that posted it, if an agent did.
        posted_by: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A plugin's tool was called (by an agent's turn or over the API).
    ToolCalled {
        /// The tool.
        tool: String,
        /// The plugin that provides it.
        plugin: String,
        /// The calling agent, if any.
        agent_id: Option<String>,
        /// Whether the call succeeded.
        ok: bool,
        /// When it ended.
        at: DateTime<Utc>,
    },
    /// A plugin was installed (or replaced).
    PluginInstalled {
        /// Its name.
        name: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A plugin was uninstalled.
    PluginUninstalled {
        /// Its name.
        name: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A cron run finished.
    ScheduleRunFinished {
        /// The job.
        job_id: String,
        /// The run.
        run_id: String,
        /// `ok` or `error`.
        status: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A turn of an agent ended and was recorded.
    TurnCompleted {
        /// The agent.
        agent_id: String,
        /// The session.
        session_id: String,
        /// How it ended.
        status: TurnStatus,
        /// When.
        at: DateTime<Utc>,
    },

    // --- Approvals and hooks (issue 16) ---
    /// A tool call waits for an operator; the approval is stored before this is published.
    ApprovalRequested {
        /// The approval.
        approval_id: String,
        /// The agent whose call waits.
        agent_id: String,
        /// The tool.
        tool: String,
        /// When the wait ends unless decided.
        expires_at: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
    /// An approval was approved, rejected or expired; stored before this is published.
    ApprovalResolved {
        /// The approval.
        approval_id: String,
        /// The agent whose call waited.
        agent_id: String,
        /// The tool.
        tool: String,
        /// `approved`, `rejected` or `expired`.
        status: String,
        /// Who decided (`local`, `api_key`) or `system` for an expiry.
        decided_by: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A task of the queue ended: its outcome is stored before this is published.
    TaskFinished {
        /// The task.
        task_id: String,
        /// `completed` or `failed`.
        status: String,
        /// The agent that did it.
        assignee: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// `POST /api/hooks/wake` was called with a valid token.
    HookWake {
        /// The text the caller sent.
        text: String,
        /// The agent it was sent to, if one was named.
        agent_id: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// An agent left a notice for its owner (`notify_owner`); published
    /// after its turn was recorded. Channels deliver it to the owner's chat.
    OwnerNotice {
        /// The agent.
        agent_id: String,
        /// The notice.
        text: String,
        /// When.
        at: DateTime<Utc>,
    },
}

impl Event {
    /// The event's type name, as serialized in its `type` field.
    pub fn type_name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
            .unwrap_or_default()
    }
}

/// How a turn ended: part of the event vocabulary, since triggers and
/// watchers react to it, and recorded with each turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnStatus {
    /// The model gave its final answer.
    Completed,
    /// An interrupt stopped it at a tool-call boundary.
    Interrupted,
    /// `stop` cancelled it.
    Stopped,
    /// It reached the iteration limit.
    MaxIterations,
    /// A model call failed.
    Failed,
    /// A spending limit was reached between model calls.
    BudgetExceeded,
    /// Not a turn: the model summarized the session.
    Compaction,
}

/// The bus; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self {
            sender: broadcast::channel(CAPACITY).0,
        }
    }

    /// Publishes to every current subscriber; a bus with none drops the event.
    pub fn publish(&self, event: Event) {
        let _ = self.sender.send(event);
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_see_events_in_order_and_laggards_are_told() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        for i in 0..3 {
            bus.publish(Event::AgentTerminated {
                agent_id: i.to_string(),
                at: Utc::now(),
            });
        }
        for i in 0..3 {
            match rx.recv().await.unwrap() {
                Event::AgentTerminated { agent_id, .. } => assert_eq!(agent_id, i.to_string()),
                other => panic!("unexpected {other:?}"),
            }
        }
        let mut slow = bus.subscribe();
        for i in 0..(CAPACITY + 5) {
            bus.publish(Event::AgentTerminated {
                agent_id: i.to_string(),
                at: Utc::now(),
            });
        }
        assert!(matches!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(5))
        ));
    }
}
