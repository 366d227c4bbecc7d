//! The A2A domain's records and their store functions.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use talon_a2a::card::RemoteSkill;
use talon_a2a::{TaskState, TaskView, Version};
use uuid::Uuid;

use crate::store::tables::{A2A_PEERS, A2A_TASKS};
use crate::store::{self, Store, StoreError};

const PEERS: &str = "a2a_peers.v1";
const TASKS: &str = "a2a_tasks.v1";

/// A remote A2A agent Talon has discovered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Peer {
    /// The URL its card was fetched from (its identity).
    pub url: String,
    /// Its name.
    pub name: String,
    /// What it offers.
    pub description: String,
    /// The JSON-RPC endpoint Talon sends to.
    pub endpoint: String,
    /// The protocol version spoken there (`1.0` or `0.3`).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub protocol_version: Version,
    /// Its skills.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub skills: Vec<RemoteSkill>,
    /// Whether it streams.
    pub streaming: bool,
    /// The card as fetched.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub card: serde_json::Value,
    /// When it was (last) discovered.
    pub discovered_at: DateTime<Utc>,
}

/// A task another agent sent to one of Talon's agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Its id (a v7 UUID).
    pub id: String,
    /// The conversation it belongs to; its agent's session for it is
    /// labelled `a2a:<context_id>`.
    pub context_id: String,
    /// The agent that runs it.
    pub agent_id: Uuid,
    /// The session its turn runs in.
    pub session_id: Uuid,
    /// Where it is.
    pub state: TaskState,
    /// The message's text.
    pub request: String,
    /// The message's id.
    pub request_message_id: String,
    /// The agent's answer, once completed.
    pub answer: Option<String>,
    /// Why it failed or was canceled.
    pub reason: Option<String>,
    /// When it was received.
    pub created_at: DateTime<Utc>,
    /// When its state last changed.
    pub updated_at: DateTime<Utc>,
}

impl TaskRecord {
    /// The task as the wire shapes need it.
    pub fn view(&self) -> TaskView {
        TaskView {
            id: self.id.clone(),
            context_id: self.context_id.clone(),
            state: self.state,
            request: self.request.clone(),
            request_message_id: self.request_message_id.clone(),
            answer: self.answer.clone(),
            reason: self.reason.clone(),
            updated_at: self.updated_at,
        }
    }
}

/// Stores a peer (new or rediscovered).
pub(super) fn put_peer(store: &Store, peer: &Peer) -> Result<(), StoreError> {
    let bytes = store::encode(PEERS, peer)?;
    let tx = store.db()?.begin_write()?;
    tx.open_table(A2A_PEERS)?
        .insert(peer.url.as_str(), bytes.as_slice())?;
    tx.commit()?;
    Ok(())
}

/// Every peer, by URL.
pub(super) fn peers(store: &Store) -> Result<Vec<Peer>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(A2A_PEERS)?;
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (_, value) = entry?;
        out.push(store::decode(PEERS, value.value())?);
    }
    Ok(out)
}

/// Stores a task (new or changed), synced: an acknowledged task survives `kill -9`.
pub(super) fn put_task(store: &Store, task: &TaskRecord) -> Result<(), StoreError> {
    let bytes = store::encode(TASKS, task)?;
    let tx = store.db()?.begin_write()?;
    tx.open_table(A2A_TASKS)?
        .insert(task.id.as_str(), bytes.as_slice())?;
    tx.commit()?;
    Ok(())
}

/// The task `id`.
pub(super) fn task(store: &Store, id: &str) -> Result<Option<TaskRecord>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(A2A_TASKS)?;
    table
        .get(id)?
        .map(|v| store::decode(TASKS, v.value()))
        .transpose()
}

/// Ends, in one transaction, every task that was running when the daemon
/// stopped: it is failed with `reason`. The tasks ended.
pub(super) fn fail_unfinished(
    store: &Store,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let tx = store.db()?.begin_write()?;
    let mut ended = Vec::new();
    {
        let mut table = tx.open_table(A2A_TASKS)?;
        let mut changed = Vec::new();
        for entry in table.iter()? {
            let (_, value) = entry?;
            let mut task: TaskRecord = store::decode(TASKS, value.value())?;
            if !task.state.is_terminal() {
                task.state = TaskState::Failed;
                task.reason = Some(reason.to_string());
                task.updated_at = now;
                changed.push(task);
            }
        }
        for task in changed {
            let bytes = store::encode(TASKS, &task)?;
            table.insert(task.id.as_str(), bytes.as_slice())?;
            ended.push(task.id);
        }
    }
    tx.commit()?;
    Ok(ended)
}
