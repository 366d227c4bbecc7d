//! The task queue: work posted for agents, run one task at a time by a
//! worker that sends each task to its assignee as a message.
//!
//! A task is committed before it is announced (`task_posted` on the event
//! bus, which triggers match) or run; its move to `running` is committed
//! before the turn starts, and a task found `running` at start-up (the daemon
//! stopped mid-task) is recorded as failed, so it is retried on request and
//! never run twice unasked. Tasks without an assignee wait until one is given
//! by a retry with an assignee, or are cancelled.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Automation;
use crate::KernelError;
use crate::shared::blocking_kernel;
use crate::store::audit::{self, AuditEvent};
use crate::store::tables::TASKS;
use crate::store::{self, Store, StoreError};

const TABLE: &str = "tasks.v1";
/// Longest task title, in bytes.
pub const MAX_TITLE_BYTES: usize = 256;
/// Longest task description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 64 * 1024;

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for the worker (or for an assignee).
    Pending,
    /// Its assignee is working on it.
    Running,
    /// Done; `result` holds the answer.
    Completed,
    /// It failed; `error` says why. It can be retried.
    Failed,
    /// Cancelled before it ran.
    Cancelled,
}

/// A task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Time-ordered id (UUIDv7): the queue runs tasks in this order.
    pub id: Uuid,
    /// A short name.
    pub title: String,
    /// What to do: the message the assignee receives.
    pub description: String,
    /// The agent that does it.
    pub assignee: Option<Uuid>,
    /// The agent that posted it, if an agent did.
    pub posted_by: Option<Uuid>,
    /// Where it stands.
    pub status: TaskStatus,
    /// Runs started so far.
    pub attempts: u32,
    /// The assignee's answer.
    pub result: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// When it was posted.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

fn put(tx: &redb::WriteTransaction, task: &Task) -> Result<(), StoreError> {
    let bytes = store::encode(TABLE, task)?;
    tx.open_table(TASKS)?
        .insert(task.id.to_string().as_str(), bytes.as_slice())?;
    Ok(())
}

fn all(store: &Store) -> Result<Vec<Task>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(TASKS)?;
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (_, value) = entry?;
        out.push(store::decode(TABLE, value.value())?);
    }
    Ok(out)
}

/// Stores a new task with its audit entry.
fn insert(store: &Store, task: &Task) -> Result<(), StoreError> {
    let tx = store.db()?.begin_write()?;
    put(&tx, task)?;
    audit::append_in(
        &tx,
        store.now(),
        AuditEvent::new(
            "task_posted",
            format!("task '{}' ({})", task.title, task.id),
        ),
    )?;
    tx.commit()?;
    Ok(())
}

/// Changes one task in a transaction; `change` may refuse.
fn modify<F>(store: &Store, id: Uuid, change: F) -> Result<Task, KernelError>
where
    F: FnOnce(&mut Task) -> Result<(), KernelError>,
{
    let tx = store.db()?.begin_write()?;
    let mut task: Task = {
        let table = tx.open_table(TASKS).map_err(StoreError::from)?;
        let value = table
            .get(id.to_string().as_str())
            .map_err(StoreError::from)?
            .ok_or_else(|| KernelError::NotFound(format!("task {id} not found")))?;
        store::decode(TABLE, value.value())?
    };
    change(&mut task)?;
    task.updated_at = store.now();
    put(&tx, &task)?;
    tx.commit().map_err(StoreError::from)?;
    Ok(task)
}

/// Counts of tasks by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TaskCounts {
    /// Waiting.
    pub pending: u64,
    /// Being worked on.
    pub running: u64,
    /// Done.
    pub completed: u64,
    /// Failed.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
    /// All of them.
    pub total: u64,
}

impl Automation {
    /// Posts a task; the worker runs it when its assignee is free.
    pub async fn post_task(
        &self,
        title: String,
        description: String,
        assignee: Option<Uuid>,
        posted_by: Option<Uuid>,
    ) -> Result<Task, KernelError> {
        if title.trim().is_empty() || title.len() > MAX_TITLE_BYTES {
            return Err(KernelError::Invalid(format!(
                "a task title must be 1-{MAX_TITLE_BYTES} bytes"
            )));
        }
        if description.trim().is_empty() || description.len() > MAX_DESCRIPTION_BYTES {
            return Err(KernelError::Invalid(format!(
                "a task description must be 1-{MAX_DESCRIPTION_BYTES} bytes"
            )));
        }
        if let Some(agent) = assignee {
            self.agents.get(agent).await?;
        }
        let now = self.shared.now();
        let task = Task {
            id: Uuid::now_v7(),
            title,
            description,
            assignee,
            posted_by,
            status: TaskStatus::Pending,
            attempts: 0,
            result: None,
            error: None,
            created_at: now,
            updated_at: now,
        };
        let store = self.shared.store().clone();
        let stored = task.clone();
        store::blocking(move || insert(&store, &stored)).await?;
        self.shared
            .events()
            .publish(crate::events::Event::TaskPosted {
                task_id: task.id.to_string(),
                title: task.title.clone(),
                assignee: task.assignee.map(|a| a.to_string()),
                posted_by: task.posted_by.map(|a| a.to_string()),
                at: now,
            });
        self.task_wake.notify_one();
        Ok(task)
    }

    /// Every task, oldest first, optionally of one status.
    pub async fn tasks(&self, status: Option<TaskStatus>) -> Result<Vec<Task>, KernelError> {
        let store = self.shared.store().clone();
        let mut tasks = store::blocking(move || all(&store)).await?;
        tasks.retain(|t| status.is_none_or(|s| t.status == s));
        tasks.sort_by_key(|t| t.id);
        Ok(tasks)
    }

    /// How many tasks are in each status.
    pub async fn task_counts(&self) -> Result<TaskCounts, KernelError> {
        let mut counts = TaskCounts::default();
        for task in self.tasks(None).await? {
            counts.total += 1;
            match task.status {
                TaskStatus::Pending => counts.pending += 1,
                TaskStatus::Running => counts.running += 1,
                TaskStatus::Completed => counts.completed += 1,
                TaskStatus::Failed => counts.failed += 1,
                TaskStatus::Cancelled => counts.cancelled += 1,
            }
        }
        Ok(counts)
    }

    /// Cancels a pending or failed task; a running one is refused (stop its agent instead).
    pub async fn cancel_task(&self, id: Uuid) -> Result<Task, KernelError> {
        let store = self.shared.store().clone();
        blocking_kernel(move || {
            modify(&store, id, |task| match task.status {
                TaskStatus::Pending | TaskStatus::Failed => {
                    task.status = TaskStatus::Cancelled;
                    Ok(())
                }
                other => Err(KernelError::Conflict(format!(
                    "task {id} is {other:?}; only pending or failed tasks can be cancelled"
                ))),
            })
        })
        .await
    }

    /// Queues a failed or cancelled task again, optionally for another assignee.
    pub async fn retry_task(&self, id: Uuid, assignee: Option<Uuid>) -> Result<Task, KernelError> {
        if let Some(agent) = assignee {
            self.agents.get(agent).await?;
        }
        let store = self.shared.store().clone();
        let task = blocking_kernel(move || {
            modify(&store, id, |task| match task.status {
                TaskStatus::Failed | TaskStatus::Cancelled => {
                    task.status = TaskStatus::Pending;
                    task.error = None;
                    if assignee.is_some() {
                        task.assignee = assignee;
                    }
                    Ok(())
                }
                other => Err(KernelError::Conflict(format!(
                    "task {id} is {other:?}; only failed or cancelled tasks can be retried"
                ))),
            })
        })
        .await?;
        self.task_wake.notify_one();
        Ok(task)
    }

    /// Starts the worker: tasks left running by the last stop are recorded
    /// as failed, then pending tasks run in order, one at a time.
    pub async fn start_task_worker(self: &Arc<Self>) -> Result<(), KernelError> {
        let store = self.shared.store().clone();
        let interrupted = blocking_kernel(move || {
            let mut count = 0;
            for task in all(&store)? {
                if task.status == TaskStatus::Running {
                    modify(&store, task.id, |t| {
                        t.status = TaskStatus::Failed;
                        t.error = Some("interrupted: the daemon stopped while it ran".into());
                        Ok(())
                    })?;
                    count += 1;
                }
            }
            Ok(count)
        })
        .await;
        let interrupted =
            crate::error::unless_disk_full(interrupted, "recording interrupted tasks")?;
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "tasks interrupted by the last stop recorded as failed"
            );
        }
        let kernel = Arc::downgrade(self);
        let wake = Arc::clone(&self.task_wake);
        tokio::spawn(async move {
            loop {
                let Some(kernel) = kernel.upgrade() else {
                    return;
                };
                let next = kernel
                    .tasks(Some(TaskStatus::Pending))
                    .await
                    .map(|tasks| tasks.into_iter().find(|t| t.assignee.is_some()));
                match next {
                    Ok(Some(task)) => kernel.run_task(task).await,
                    Ok(None) => {
                        drop(kernel);
                        wake.notified().await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "task queue unreadable; the worker waits for the next post");
                        drop(kernel);
                        wake.notified().await;
                    }
                }
            }
        });
        Ok(())
    }

    async fn run_task(self: &Arc<Self>, task: Task) {
        let Some(assignee) = task.assignee else {
            return;
        };
        let store = self.shared.store().clone();
        let id = task.id;
        let claimed = blocking_kernel(move || {
            modify(&store, id, |t| {
                if t.status != TaskStatus::Pending {
                    return Err(KernelError::Conflict("no longer pending".into()));
                }
                t.status = TaskStatus::Running;
                t.attempts += 1;
                Ok(())
            })
        })
        .await;
        if claimed.is_err() {
            return;
        }
        let message = format!("Task: {}\n\n{}", task.title, task.description);
        let outcome = self
            .conversations
            .send_message(
                assignee,
                crate::conversation::MessageInput {
                    text: message,
                    ..Default::default()
                },
            )
            .await;
        let store = self.shared.store().clone();
        let saved = blocking_kernel(move || {
            modify(&store, id, |t| {
                match outcome {
                    Ok(reply) => {
                        t.status = TaskStatus::Completed;
                        t.result = Some(reply.response);
                    }
                    Err(e) => {
                        t.status = TaskStatus::Failed;
                        t.error = Some(e.to_string());
                    }
                }
                Ok(())
            })
        })
        .await;
        match saved {
            Ok(task) => self
                .shared
                .events()
                .publish(crate::events::Event::TaskFinished {
                    task_id: id.to_string(),
                    status: serde_json::to_value(task.status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    assignee: task.assignee.map(|a| a.to_string()),
                    at: task.updated_at,
                }),
            Err(e) => {
                tracing::error!(task = %id, error = %e, "could not record a task's outcome");
            }
        }
    }
}
