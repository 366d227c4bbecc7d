//! Comms: what agents say to each other, as LibreFang's `/api/comms/*`
//! shows it. Nothing of its own is stored: agent-to-agent messages are the
//! turns one agent asked of another (`agent_send`, `POST /api/comms/send`;
//! recorded with the asking agent as sender on the `agent` channel), and
//! hand-offs are the task queue's tasks. This spans the agents,
//! conversation and automation domains, so it is the kernel's.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::Kernel;
use crate::KernelError;
use crate::agents::AgentRecord;
use crate::automation::tasks::{Task, TaskStatus};
use crate::conversation::{TurnRecord, TurnReply};

/// Longest detail of an event, in characters.
const DETAIL_CHARS: usize = 200;

/// An agent in the topology.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopoNode {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `Running` or `Stopped` (LibreFang's spelling).
    pub state: String,
    /// The model it uses.
    pub model: String,
}

/// What links two agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// One spawned the other (Talon's agents have no such hierarchy, so
    /// this kind never appears; it is LibreFang's).
    ParentChild,
    /// One sent the other a message.
    Peer,
}

/// A link between two agents.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopoEdge {
    /// The agent that sent first.
    pub from: String,
    /// The other.
    pub to: String,
    /// What links them.
    pub kind: EdgeKind,
}

/// The agents and who talked to whom.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Topology {
    /// Every agent.
    pub nodes: Vec<TopoNode>,
    /// One edge per pair of agents that exchanged a message.
    pub edges: Vec<TopoEdge>,
}

/// What kind of communication an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CommsEventKind {
    /// One agent sent another a message, and the other answered.
    AgentMessage,
    /// A task was handed to an agent through the queue.
    TaskPosted,
    /// A task was done.
    TaskCompleted,
    /// A task failed (Talon's; LibreFang has no such kind).
    TaskFailed,
}

/// One inter-agent communication (LibreFang's `CommsEvent`).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommsEvent {
    /// Stable id: the turn's id, or `task-posted-<id>` / `task-<status>-<id>`.
    pub id: String,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// What it is.
    pub kind: CommsEventKind,
    /// The agent that sent or posted (empty when none did).
    pub source_id: String,
    /// Its name (`api` when no agent posted a task).
    pub source_name: String,
    /// The agent it was for (empty when none).
    pub target_id: String,
    /// Its name.
    pub target_name: String,
    /// A summary.
    pub detail: String,
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(DETAIL_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

fn status_name<T: Serialize>(status: T) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The events of `turns` and `tasks`, newest first; names from `agents`
/// (a removed agent's id stands for its name).
fn events_of(agents: &[AgentRecord], turns: &[TurnRecord], tasks: &[Task]) -> Vec<CommsEvent> {
    let name = |id: &str| {
        agents
            .iter()
            .find(|a| a.id.to_string() == id)
            .map_or_else(|| id.to_string(), |a| a.name().to_string())
    };
    let mut events = Vec::new();
    for turn in turns {
        let sender = turn.sender.clone().unwrap_or_default();
        let source_id = sender.id.unwrap_or_default();
        let target_id = turn.agent_id.to_string();
        events.push(CommsEvent {
            id: turn.id.to_string(),
            timestamp: turn.started_at,
            kind: CommsEventKind::AgentMessage,
            source_name: sender.name.unwrap_or_else(|| name(&source_id)),
            source_id,
            target_name: name(&target_id),
            target_id,
            detail: format!(
                "{} in / {} out tokens, {}",
                turn.input_tokens,
                turn.output_tokens,
                status_name(turn.status)
            ),
        });
    }
    for task in tasks {
        let source_id = task.posted_by.map(|a| a.to_string()).unwrap_or_default();
        let target_id = task.assignee.map(|a| a.to_string()).unwrap_or_default();
        let source_name = if source_id.is_empty() {
            "api".to_string()
        } else {
            name(&source_id)
        };
        events.push(CommsEvent {
            id: format!("task-posted-{}", task.id),
            timestamp: task.created_at,
            kind: CommsEventKind::TaskPosted,
            source_id,
            source_name,
            target_name: if target_id.is_empty() {
                String::new()
            } else {
                name(&target_id)
            },
            target_id: target_id.clone(),
            detail: cut(&format!("Task posted: {} ({})", task.title, task.id)),
        });
        let (kind, outcome) = match task.status {
            TaskStatus::Completed => (
                CommsEventKind::TaskCompleted,
                task.result.as_deref().unwrap_or(""),
            ),
            TaskStatus::Failed => (
                CommsEventKind::TaskFailed,
                task.error.as_deref().unwrap_or(""),
            ),
            _ => continue,
        };
        events.push(CommsEvent {
            id: format!("task-{}-{}", status_name(task.status), task.id),
            timestamp: task.updated_at,
            kind,
            source_name: name(&target_id),
            source_id: target_id,
            target_id: String::new(),
            target_name: String::new(),
            detail: cut(&format!(
                "Task {}: {} — {outcome}",
                status_name(task.status),
                task.id
            )),
        });
    }
    events.sort_by(|a, b| b.timestamp.cmp(&a.timestamp).then(b.id.cmp(&a.id)));
    events
}

impl Kernel {
    /// Every agent, and an edge for each pair that exchanged a message.
    pub async fn comms_topology(&self) -> Result<Topology, KernelError> {
        let agents = self.agents().list().await?;
        let turns = self.conversations().agent_message_turns().await?;
        let nodes = agents
            .iter()
            .map(|a| TopoNode {
                id: a.id.to_string(),
                name: a.name().to_string(),
                state: format!("{:?}", a.state),
                model: a.manifest.model.model.clone(),
            })
            .collect();
        let mut pairs = HashSet::new();
        let mut edges = Vec::new();
        let mut turns = turns;
        turns.sort_by_key(|t| t.started_at);
        for turn in &turns {
            let Some(from) = turn.sender.as_ref().and_then(|s| s.id.clone()) else {
                continue;
            };
            let to = turn.agent_id.to_string();
            if from == to {
                continue;
            }
            let key = if from < to {
                (from.clone(), to.clone())
            } else {
                (to.clone(), from.clone())
            };
            if pairs.insert(key) {
                edges.push(TopoEdge {
                    from,
                    to,
                    kind: EdgeKind::Peer,
                });
            }
        }
        Ok(Topology { nodes, edges })
    }

    /// Inter-agent messages and task hand-offs, newest first: one page, and
    /// how many there are.
    pub async fn comms_events(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<CommsEvent>, usize), KernelError> {
        let agents = self.agents().list().await?;
        let turns = self.conversations().agent_message_turns().await?;
        let tasks = self.automation().tasks(None).await?;
        let events = events_of(&agents, &turns, &tasks);
        let total = events.len();
        Ok((events.into_iter().skip(offset).take(limit).collect(), total))
    }

    /// `from` sends `to` a message and waits for its answer (what
    /// `agent_send` does). Either agent unknown: not found.
    pub async fn comms_send(
        &self,
        from: Uuid,
        to: Uuid,
        message: &str,
    ) -> Result<TurnReply, KernelError> {
        let from = self.agents().get(from).await.map_err(|e| match e {
            KernelError::NotFound(_) => KernelError::NotFound(format!("no source agent {from}")),
            other => other,
        })?;
        self.agents().get(to).await.map_err(|e| match e {
            KernelError::NotFound(_) => KernelError::NotFound(format!("no target agent {to}")),
            other => other,
        })?;
        self.conversations()
            .send_from_agent(&from, to, message)
            .await
    }
}
