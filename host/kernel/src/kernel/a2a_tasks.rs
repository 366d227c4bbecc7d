//! A2A tasks sent to Talon's agents: each is a turn of the agent, in its
//! session for the task's context (`a2a:<context_id>`). This spans the A2A
//! and conversation domains, so it is the kernel's.

use std::sync::Arc;

use talon_a2a::TaskState;
use uuid::Uuid;

use super::Kernel;
use crate::KernelError;
use crate::a2a::{A2a, TaskRecord};
use crate::agents::AgentRecord;
use crate::conversation::{MessageInput, Sender, TurnStatus};

/// A message another agent sent over A2A.
#[derive(Debug, Clone)]
pub struct A2aMessage {
    /// The agent it is for.
    pub agent: Uuid,
    /// Its text.
    pub text: String,
    /// Its id.
    pub message_id: String,
    /// The conversation it continues; a new one when `None`.
    pub context_id: Option<String>,
}

/// Why a turn that did not complete ended, for the task's status.
fn unfinished(status: TurnStatus, response: &str) -> (TaskState, String) {
    let name = serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let state = match status {
        TurnStatus::Stopped | TurnStatus::Interrupted => TaskState::Canceled,
        _ => TaskState::Failed,
    };
    let reason = if response.is_empty() {
        format!("the agent's turn ended {name}")
    } else {
        format!("the agent's turn ended {name}: {response}")
    };
    (state, reason)
}

impl Kernel {
    /// The agent a task is for: by id, by name, or, when none is named,
    /// the only running agent.
    pub async fn a2a_agent(&self, named: Option<&str>) -> Result<AgentRecord, KernelError> {
        if let Some(named) = named {
            let id = match Uuid::parse_str(named) {
                Ok(id) => id,
                Err(_) => self
                    .agents()
                    .id_by_name(named.to_string())
                    .await?
                    .ok_or_else(|| KernelError::NotFound(format!("there is no agent `{named}`")))?,
            };
            return self.agents().get(id).await;
        }
        let running: Vec<AgentRecord> = self
            .agents()
            .list()
            .await?
            .into_iter()
            .filter(|a| a.state == crate::agents::AgentState::Running)
            .collect();
        match <[AgentRecord; 1]>::try_from(running) {
            Ok([agent]) => Ok(agent),
            Err(running) => Err(KernelError::Invalid(format!(
                "{} agents run here: name one in `metadata.agent` (an agent's name or id, \
                 one of the card's skills)",
                running.len()
            ))),
        }
    }

    /// Starts a task: checks the turn can run (agent running, model and key,
    /// budget), stores the task as `working` (synced) and runs the turn in
    /// its own task. The task as stored.
    pub async fn a2a_submit(&self, message: A2aMessage) -> Result<TaskRecord, KernelError> {
        let context_id = message
            .context_id
            .unwrap_or_else(|| Uuid::new_v4().to_string());
        let conversations = Arc::clone(self.conversations());
        let session = conversations
            .labelled_session(message.agent, format!("a2a:{context_id}"))
            .await?;
        let input = MessageInput {
            text: message.text.clone(),
            session_id: Some(session),
            sender: Some(Sender {
                id: Some(context_id.clone()),
                name: None,
                channel_type: Some("a2a".into()),
            }),
            ..MessageInput::default()
        };
        let started = conversations
            .start_turn(message.agent, input, false)
            .await?;
        let now = self.shared.now();
        let task = TaskRecord {
            id: Uuid::now_v7().to_string(),
            context_id,
            agent_id: message.agent,
            session_id: session,
            state: TaskState::Working,
            request: message.text,
            request_message_id: message.message_id,
            answer: None,
            reason: None,
            created_at: now,
            updated_at: now,
        };
        let a2a: Arc<A2a> = Arc::clone(self.a2a());
        let task = a2a.open_task(task).await?;
        let id = task.id.clone();
        tokio::spawn(async move {
            let (state, answer, reason) = match started.outcome.await {
                Ok(Ok(reply)) if reply.status == TurnStatus::Completed => {
                    (TaskState::Completed, Some(reply.response), None)
                }
                Ok(Ok(reply)) => {
                    let (state, reason) = unfinished(reply.status, &reply.response);
                    (state, None, Some(reason))
                }
                Ok(Err(e)) => (TaskState::Failed, None, Some(e.to_string())),
                Err(e) => (
                    TaskState::Failed,
                    None,
                    Some(format!("the turn's task failed: {e}")),
                ),
            };
            if let Err(e) = a2a.end_task(&id, state, answer, reason).await {
                tracing::error!(task = %id, error = %e, "cannot record the end of an A2A task");
            }
        });
        Ok(task)
    }

    /// Cancels a running task: its turn is stopped and the task ends
    /// `canceled`. A task that has ended is a conflict.
    pub async fn a2a_cancel(&self, id: &str) -> Result<TaskRecord, KernelError> {
        let task = self.a2a().task(id).await?;
        if task.state.is_terminal() {
            return Err(KernelError::Conflict(format!(
                "A2A task {id} has ended ({}) and cannot be canceled",
                task.state.v03()
            )));
        }
        if let Some(live) = self.conversations().live().find(task.session_id) {
            live.cancel();
        }
        self.a2a()
            .end_task(
                id,
                TaskState::Canceled,
                None,
                Some("canceled by the client".into()),
            )
            .await
    }
}
