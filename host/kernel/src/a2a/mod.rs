//! A2A: remote agents Talon has discovered, and the tasks other agents sent
//! to Talon's agents (docs/A2A.md).
//!
//! Owns `a2a_peers.v1` and `a2a_tasks.v1`. Uses only the foundation and the
//! `talon-a2a` crate (protocol and client); running a task's turn spans the
//! conversation domain, so it is the kernel's (`kernel/a2a_tasks.rs`), and
//! the conversation domain holds this one for the `a2a_send` tool.
//!
//! Guarantee: a task is stored (synced) before it is acknowledged, and every
//! change of its state is stored before it is reported; a task that was
//! running when the daemon stopped, even by `kill -9`, is failed at the next
//! start with a reason saying so, never left `working` nor lost.

mod records;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use talon_a2a::{Client, RemoteTask, TaskState};
use tokio::sync::watch;
use uuid::Uuid;

pub use records::{Peer, TaskRecord};

use crate::KernelError;
use crate::shared::{Shared, blocking_kernel};
use crate::store::audit::AuditEvent;

/// The reason a task running at a stop is failed with.
pub const INTERRUPTED: &str = "interrupted: the daemon stopped while this task was running";

/// The A2A domain.
pub struct A2a {
    shared: Arc<Shared>,
    client: Client,
    /// The running tasks' latest state, for streams and resubscriptions.
    running: Mutex<HashMap<String, watch::Sender<TaskRecord>>>,
}

impl std::fmt::Debug for A2a {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("A2a").finish_non_exhaustive()
    }
}

impl A2a {
    /// The domain; tasks a previous run left unfinished are failed now, so
    /// nobody waits on them.
    pub fn new(shared: Arc<Shared>) -> Result<Self, KernelError> {
        let timeout = Duration::from_secs(shared.config().a2a.timeout_secs.max(1));
        let client = Client::new(timeout)?;
        let ended = crate::error::unless_disk_full(
            records::fail_unfinished(shared.store(), INTERRUPTED, shared.now())
                .map_err(KernelError::from),
            "failing the A2A tasks the last stop interrupted",
        )?;
        if !ended.is_empty() {
            tracing::warn!(tasks = ?ended, "A2A tasks interrupted by the last stop were failed");
        }
        Ok(Self {
            shared,
            client,
            running: Mutex::new(HashMap::new()),
        })
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<TaskRecord>>> {
        // A poisoned map holds only senders; their state is still whole.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    // --- Remote agents (Talon as client) ---

    /// Fetches and checks the card at `url` and remembers the agent.
    pub async fn discover(&self, url: &str) -> Result<Peer, KernelError> {
        // A URL that serves no card (refused, an HTTP error, too large) is
        // the caller's to fix, like a card that fails the checks; only a
        // peer that does not answer in time stays a gateway error.
        let (card, raw) = self.client.discover(url).await.map_err(|e| match e {
            talon_a2a::ClientError::Unreachable(_)
            | talon_a2a::ClientError::Status { .. }
            | talon_a2a::ClientError::TooLarge => {
                KernelError::NotFound(format!("no A2A agent card at {url}: {e}"))
            }
            e => KernelError::Peer(e),
        })?;
        let peer = Peer {
            url: url.trim_end_matches('/').to_string(),
            name: card.name,
            description: card.description,
            endpoint: card.endpoint,
            protocol_version: card.protocol_version,
            skills: card.skills,
            streaming: card.streaming,
            card: raw,
            discovered_at: self.shared.now(),
        };
        let store = self.shared.store().clone();
        let stored = peer.clone();
        blocking_kernel(move || Ok(records::put_peer(&store, &stored)?)).await?;
        self.shared
            .audit(AuditEvent::new(
                "a2a_agent_discovered",
                format!("{} at {}", peer.name, peer.url),
            ))
            .await?;
        Ok(peer)
    }

    /// Every discovered agent.
    pub async fn peers(&self) -> Result<Vec<Peer>, KernelError> {
        let store = self.shared.store().clone();
        blocking_kernel(move || Ok(records::peers(&store)?)).await
    }

    /// The discovered agent with this URL or name.
    pub async fn peer(&self, id: &str) -> Result<Peer, KernelError> {
        let wanted = id.trim_end_matches('/');
        self.peers()
            .await?
            .into_iter()
            .find(|p| p.url == wanted || p.name == id)
            .ok_or_else(|| {
                KernelError::NotFound(format!(
                    "no discovered A2A agent `{id}` (POST /api/a2a/discover first)"
                ))
            })
    }

    fn remote_card(peer: &Peer) -> talon_a2a::RemoteCard {
        talon_a2a::RemoteCard {
            name: peer.name.clone(),
            description: peer.description.clone(),
            endpoint: peer.endpoint.clone(),
            protocol_version: peer.protocol_version,
            skills: peer.skills.clone(),
            streaming: peer.streaming,
        }
    }

    /// Sends `text` to a discovered agent and waits for its task to end;
    /// `from` (an agent's id) is audited.
    pub async fn send(
        &self,
        peer: &str,
        text: &str,
        from: Option<Uuid>,
    ) -> Result<RemoteTask, KernelError> {
        let peer = self.peer(peer).await?;
        let result = self
            .client
            .send(&Self::remote_card(&peer), None, text, None)
            .await;
        let mut event = AuditEvent::new(
            "a2a_task_sent",
            format!("to {} at {}", peer.name, peer.endpoint),
        );
        if let Some(agent) = from {
            event = event.agent(agent);
        }
        match &result {
            Ok(task) => event
                .details
                .push_str(&format!(": task {} {}", task.id, task.state)),
            Err(e) => event.outcome = e.to_string(),
        }
        self.shared.audit(event).await?;
        Ok(result?)
    }

    /// The state of task `id` at the agent discovered at `url`.
    pub async fn remote_task(&self, url: &str, id: &str) -> Result<RemoteTask, KernelError> {
        let peer = self.peer(url).await?;
        Ok(self
            .client
            .task(&Self::remote_card(&peer), None, id)
            .await?)
    }

    // --- Tasks sent to Talon's agents (Talon as server) ---

    /// Stores a new task, `working`, and starts following it.
    pub(crate) async fn open_task(&self, task: TaskRecord) -> Result<TaskRecord, KernelError> {
        let store = self.shared.store().clone();
        let stored = task.clone();
        blocking_kernel(move || Ok(records::put_task(&store, &stored)?)).await?;
        let (sender, _) = watch::channel(task.clone());
        self.running().insert(task.id.clone(), sender);
        Ok(task)
    }

    /// Ends a task (`Completed`, `Failed` or `Canceled`) unless it has ended
    /// already (a cancel wins over the turn's late outcome); the task as stored.
    pub(crate) async fn end_task(
        &self,
        id: &str,
        state: TaskState,
        answer: Option<String>,
        reason: Option<String>,
    ) -> Result<TaskRecord, KernelError> {
        let store = self.shared.store().clone();
        let now = self.shared.now();
        let key = id.to_string();
        let task = blocking_kernel(move || {
            let mut task = records::task(&store, &key)?
                .ok_or_else(|| KernelError::NotFound(format!("A2A task {key} not found")))?;
            if task.state.is_terminal() {
                return Ok(task);
            }
            task.state = state;
            task.answer = answer;
            task.reason = reason;
            task.updated_at = now;
            records::put_task(&store, &task)?;
            Ok(task)
        })
        .await?;
        if let Some(sender) = self.running().remove(id) {
            sender.send_replace(task.clone());
        }
        Ok(task)
    }

    /// The task `id`.
    pub async fn task(&self, id: &str) -> Result<TaskRecord, KernelError> {
        let store = self.shared.store().clone();
        let key = id.to_string();
        blocking_kernel(move || Ok(records::task(&store, &key)?))
            .await?
            .ok_or_else(|| KernelError::NotFound(format!("A2A task {id} not found")))
    }

    /// Follows a running task: its state now, then each change until it
    /// ends. `None` once it has ended (read it with [`A2a::task`]).
    pub fn watch(&self, id: &str) -> Option<watch::Receiver<TaskRecord>> {
        self.running().get(id).map(watch::Sender::subscribe)
    }
}
