//! The agent loop: one turn of a conversation.
//!
//! System prompt and skill instructions, the session's history and the new
//! message go to the model; the tool calls it makes run through the plugin
//! runtime (only the tools the agent's manifest lists); their results go back;
//! until the model answers without calling tools, the iteration limit is
//! reached, an interrupt is seen at a tool-call boundary, or `stop` cancels
//! the turn. The turn's messages and its record (tokens, cost, tool calls,
//! timings) then commit in one transaction.
//!
//! Turns run in their own task: a client that disconnects does not cut a
//! turn in half, and what it did is still recorded (later model calls are
//! made without streaming). The one exception is a streamed model call
//! whose only reader left while the model answered (the SSE or WebSocket
//! client that asked for the turn, with nobody attached): the provider's
//! stream is dropped at once, closing its connection, and the turn ends as
//! `stopped`, as if `stop` had been sent.
//!
//! A message to a session whose turn is still running waits for it; a
//! caller reading events is told so first with a `queued` phase.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use futures::StreamExt;
use talon_llm::{
    CompletionRequest, CompletionResponse, ContentPart, Message, ResponseBuilder, Role,
    StreamEvent, Target, ToolSpec,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::live::{LiveSession, TurnEvent, TurnReply};
use super::records::{Sender, SessionRecord, ToolCallTrace, TurnRecord, TurnStatus};
use super::resume::PausedTurn;
use super::{Conversations, prompt, repair, sessions};
use crate::KernelError;
use crate::agents::manifest::{A2A_SEND, AGENT_SEND, NOTIFY_OWNER};
use crate::agents::{AgentRecord, AgentState};
use crate::approvals::{Approval, ApprovalStatus, CallToApprove};
use crate::config::Policy;
use crate::shared::blocking_kernel;
use crate::store;

/// Longest tool output handed back to the model, in characters.
pub const MAX_TOOL_OUTPUT_CHARS: usize = 200_000;
/// How often the same call (tool and arguments) may run in one turn.
const MAX_IDENTICAL_CALLS: usize = 2;
/// The channel recorded as the sender of a turn one agent asked of another.
pub const AGENT_CHANNEL: &str = "agent";
/// How many agents one chain of `agent_send` calls may involve.
const MAX_AGENT_SEND_DEPTH: usize = 5;

/// A message for an agent.
#[derive(Debug, Clone, Default)]
pub struct MessageInput {
    /// The text.
    pub text: String,
    /// The session to use instead of the agent's current one.
    pub session_id: Option<Uuid>,
    /// Further content: attachments resolved to text and images.
    pub parts: Vec<ContentPart>,
    /// Answer without the session's history and store none of the turn's
    /// messages (LibreFang's `/btw` side question); the turn's record and
    /// cost are still kept.
    pub ephemeral: bool,
    /// Answer with the session's history but store none of the turn's
    /// messages (LibreFang's incognito turn).
    pub incognito: bool,
    /// Who sent it: recorded with the turn, and the id is passed to the
    /// provider as the end user's id.
    pub sender: Option<Sender>,
}

/// A turn started by [`Conversations::start_turn`].
#[derive(Debug)]
pub struct StartedTurn {
    /// The session it runs in.
    pub session_id: Uuid,
    /// Its events, ending with `Done` or `Failed` (only when asked for).
    pub events: Option<mpsc::UnboundedReceiver<TurnEvent>>,
    /// Its outcome.
    pub outcome: tokio::task::JoinHandle<Result<TurnReply, KernelError>>,
}

/// Where a running turn's events go.
pub(super) struct Sink {
    pub(super) caller: Option<mpsc::UnboundedSender<TurnEvent>>,
    pub(super) live: Arc<LiveSession>,
    /// The session the turn runs in.
    pub(super) session: Uuid,
    /// The agents whose turns wait on this one through `agent_send`,
    /// outermost first, ending with this turn's own agent.
    pub(super) chain: Vec<Uuid>,
}

/// What a turn has done so far: all the agent loop needs to go on, and
/// what the turn's record and reply are made of. Stored with an approval
/// the turn waits on, so the turn can resume after a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct TurnState {
    /// The agent.
    pub(super) agent_id: Uuid,
    /// The session it runs in.
    pub(super) session_id: Uuid,
    started_at: DateTime<Utc>,
    /// Time spent before the daemon stopped, in milliseconds (a resumed
    /// turn's duration adds what it takes after the restart).
    elapsed_ms: u64,
    /// When the turn started or resumed in this process.
    #[serde(skip, default = "Instant::now")]
    since: Instant,
    /// What the model is sent: the history read, then the turn's messages,
    /// shared with the session's window and each model request.
    history: Vec<Arc<Message>>,
    /// How many of `history` were already in the session.
    stored_len: usize,
    /// Calls of the model's last answer not run yet.
    queue: VecDeque<talon_llm::ToolCall>,
    /// How often each call (tool and arguments) ran in this turn.
    seen_calls: HashMap<String, usize>,
    notices: Vec<String>,
    traces: Vec<ToolCallTrace>,
    input_tokens: u64,
    output_tokens: u64,
    cost_usd: f64,
    iterations: u32,
    answer: String,
    answered_model: String,
    sender: Option<Sender>,
    ephemeral: bool,
    incognito: bool,
}

impl TurnState {
    /// A copy to store, with the time spent so far.
    pub(super) fn snapshot(&self) -> Self {
        Self {
            elapsed_ms: self.elapsed_ms(),
            ..self.clone()
        }
    }

    /// Milliseconds the turn has run, over restarts.
    pub(super) fn elapsed_ms(&self) -> u64 {
        self.elapsed_ms + self.since.elapsed().as_millis() as u64
    }

    /// Records the result of a tool call: one [`Conversations::drive`] ran,
    /// or the call a resumed turn paused on.
    pub(super) fn push_result(&mut self, message: Message, trace: ToolCallTrace) {
        self.history.push(Arc::new(message));
        self.traces.push(trace);
    }

    /// The owner notices left so far, for a call run outside the loop.
    pub(super) fn notices(&mut self) -> &mut Vec<String> {
        &mut self.notices
    }
}

/// The turn a subagent turn runs for (`agent_send`): its interrupt and
/// stop reach the subagent's turn.
struct Parent {
    live: Arc<LiveSession>,
    cancel: CancellationToken,
    chain: Vec<Uuid>,
}

impl Sink {
    pub(super) fn emit(&self, event: TurnEvent) {
        self.live.publish(&event);
        if let Some(caller) = &self.caller {
            let _ = caller.send(event);
        }
    }

    fn phase(&self, phase: &str, detail: Option<String>) {
        self.emit(TurnEvent::Phase {
            phase: phase.to_string(),
            detail,
        });
    }

    /// Whether anyone reads text deltas (else the blocking API is used):
    /// a caller still connected, or a watcher.
    fn streaming(&self) -> bool {
        self.caller.as_ref().is_some_and(|c| !c.is_closed()) || self.live.watched()
    }

    /// Resolves once the caller that reads this turn's events has gone;
    /// never for a turn without one.
    async fn caller_gone(&self) {
        match &self.caller {
            Some(caller) => caller.closed().await,
            None => std::future::pending().await,
        }
    }
}

/// How a model call ended, short of an error.
enum ModelOutcome {
    /// The model answered.
    Answered(CompletionResponse),
    /// The only reader of the stream left while the model was answering.
    Abandoned,
}

/// The arguments an approved call runs with, or the refusal the model
/// reads when it was rejected or expired (or could not be asked for).
pub(super) fn decided_arguments(
    tool: &str,
    decided: Result<Approval, KernelError>,
) -> Result<serde_json::Value, String> {
    let decided = decided.map_err(|e| format!("{tool} could not be put up for approval: {e}"))?;
    let reason = decided
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    match decided.status {
        ApprovalStatus::Approved => Ok(decided.payload),
        ApprovalStatus::Rejected => Err(format!(
            "the operator rejected this call of {tool} (approval {}){reason}; it was not run",
            decided.id
        )),
        _ => Err(format!(
            "the approval for this call of {tool} expired (approval {}){reason}; it was not run",
            decided.id
        )),
    }
}

/// A finished call's result message for the model and its trace; the
/// result is announced.
pub(super) fn call_result(
    call: &talon_llm::ToolCall,
    arguments: Option<serde_json::Value>,
    outcome: Result<String, String>,
    started: Instant,
    fuel: u64,
    sink: &Sink,
) -> (Message, ToolCallTrace) {
    let is_error = outcome.is_err();
    let text = truncate(
        match outcome {
            Ok(text) | Err(text) => text,
        },
        MAX_TOOL_OUTPUT_CHARS,
    );
    sink.emit(TurnEvent::ToolResult {
        id: call.id.clone(),
        tool: call.name.clone(),
        input: arguments.unwrap_or(serde_json::Value::Null),
        result: text.clone(),
        is_error,
    });
    let trace = ToolCallTrace {
        tool: call.name.clone(),
        duration_us: started.elapsed().as_micros() as u64,
        is_error,
        fuel,
    };
    let message = if is_error {
        Message::tool_error(&call.id, text)
    } else {
        Message::tool_result(&call.id, text)
    };
    (message, trace)
}

fn estimate_tokens(messages: &[Arc<Message>]) -> usize {
    messages.iter().map(|m| prompt::message_tokens(m)).sum()
}

fn truncate(mut text: String, max_chars: usize) -> String {
    if let Some((cut, _)) = text.char_indices().nth(max_chars) {
        text.truncate(cut);
        text.push_str("\n[output truncated]");
    }
    text
}

impl Conversations {
    /// Sends a message and waits for the turn's reply.
    pub async fn send_message(
        self: &Arc<Self>,
        agent: Uuid,
        input: MessageInput,
    ) -> Result<TurnReply, KernelError> {
        let started = self.start_turn(agent, input, false).await?;
        started
            .outcome
            .await
            .map_err(|e| KernelError::Store(store::StoreError::Task(e.to_string())))?
    }

    /// Checks what can be checked before a turn (the agent runs, the session
    /// exists, the model is configured with a key, the budget allows it) and
    /// starts it in its own task.
    pub async fn start_turn(
        self: &Arc<Self>,
        agent_id: Uuid,
        input: MessageInput,
        with_events: bool,
    ) -> Result<StartedTurn, KernelError> {
        self.begin_turn(agent_id, input, with_events, None).await
    }

    /// Starts a turn; boxed with a declared type because a turn may start
    /// another one (agent_send), and an `async fn` future cannot contain itself.
    fn begin_turn(
        self: &Arc<Self>,
        agent_id: Uuid,
        input: MessageInput,
        with_events: bool,
        parent: Option<Parent>,
    ) -> futures::future::BoxFuture<'static, Result<StartedTurn, KernelError>> {
        let this = Arc::clone(self);
        Box::pin(async move {
            if input.text.trim().is_empty() && input.parts.is_empty() {
                return Err(KernelError::Invalid("the message is empty".into()));
            }
            let agent = this.agents.get(agent_id).await?;
            if agent.state != AgentState::Running {
                return Err(KernelError::Conflict(format!(
                    "agent {} is stopped; start it first",
                    agent.name()
                )));
            }
            let target = prompt::target(&agent.manifest)?;
            // A missing key is reported now, as the request's error, not mid-stream.
            this.providers.llm().api_key(&target)?;
            this.providers.llm().base_url(&target)?;
            this.check_budget(&agent, 0.0).await?;
            let session = this.turn_session(agent_id, input.session_id).await?;
            let live = this.live().get(session.id, agent_id);
            let (caller, events) = if with_events {
                let (tx, rx) = mpsc::unbounded_channel();
                (Some(tx), Some(rx))
            } else {
                (None, None)
            };
            let mut chain = parent.as_ref().map(|p| p.chain.clone()).unwrap_or_default();
            chain.push(agent_id);
            let sink = Sink {
                caller,
                live,
                session: session.id,
                chain,
            };
            let kernel = Arc::clone(&this);
            let session_id = session.id;
            let outcome = tokio::spawn(async move {
                let _turn = match sink.live.turn_lock.try_lock() {
                    Ok(turn) => turn,
                    Err(_) => {
                        // Only to this turn's caller: watchers of the
                        // session follow the running turn, which is not queued.
                        if let Some(caller) = &sink.caller {
                            let _ = caller.send(TurnEvent::Phase {
                                phase: "queued".into(),
                                detail: Some(
                                    "waiting for the session's running turn to finish".into(),
                                ),
                            });
                        }
                        sink.live.turn_lock.lock().await
                    }
                };
                let cancel = sink.live.begin(parent.as_ref().map(|p| &p.cancel));
                if let Some(parent) = &parent {
                    parent.live.adopt(&sink.live);
                }
                let result = kernel
                    .run_turn(&agent, session_id, target, input, &sink, &cancel)
                    .await;
                if let Some(parent) = &parent {
                    parent.live.release(&sink.live);
                }
                sink.live.end();
                match &result {
                    Ok(reply) => sink.emit(TurnEvent::Done(Arc::new(reply.clone()))),
                    Err(e) => sink.emit(TurnEvent::Failed {
                        error: e.to_string(),
                    }),
                }
                result
            });
            Ok(StartedTurn {
                session_id,
                events,
                outcome,
            })
        })
    }

    /// The session a turn runs in: the named one (it must be the agent's),
    /// else the agent's current one.
    pub(super) async fn turn_session(
        &self,
        agent: Uuid,
        session: Option<Uuid>,
    ) -> Result<SessionRecord, KernelError> {
        let store = self.shared.store().clone();
        blocking_kernel(move || match session {
            Some(id) => match sessions::get(&store, id)? {
                Some(s) if s.agent_id == agent => Ok(s),
                _ => Err(KernelError::NotFound(format!(
                    "session {id} not found for agent {agent}"
                ))),
            },
            None => sessions::current(&store, agent),
        })
        .await
    }

    /// The tools offered to an agent: those its manifest lists that a loaded
    /// plugin provides, plus the built-ins it lists, as far as its tool
    /// access (observe, assist, full) allows.
    pub(crate) fn agent_tools(&self, agent: &AgentRecord) -> Vec<ToolSpec> {
        let allowed: Vec<&String> = agent
            .manifest
            .capabilities
            .tools
            .iter()
            .filter(|t| agent.tool_access.allows(t))
            .collect();
        let mut specs: Vec<ToolSpec> = self
            .plugins
            .tools_where(|name| allowed.iter().any(|a| *a == name))
            .into_iter()
            .map(|t| ToolSpec::new(t.name, t.description, t.input_schema))
            .collect();
        if allowed.iter().any(|a| *a == AGENT_SEND) {
            specs.push(ToolSpec::new(
                AGENT_SEND,
                "Send a message to another agent and wait for its answer.",
                serde_json::json!({
                    "type": "object",
                    "properties": {
                        "target": {"type": "string", "description": "The agent's name or id"},
                        "message": {"type": "string", "description": "What to tell or ask it"}
                    },
                    "required": ["target", "message"]
                }),
            ));
        }
        if allowed.iter().any(|a| *a == A2A_SEND) {
            specs.push(ToolSpec::new(
                A2A_SEND,
                "Send a task to a remote agent (discovered over the A2A protocol) and wait for its answer.",
                serde_json::json!({
                    "type": "object",
                    "properties": {
                        "agent": {"type": "string", "description": "The remote agent's name or the URL it was discovered at"},
                        "message": {"type": "string", "description": "What to tell or ask it"}
                    },
                    "required": ["agent", "message"]
                }),
            ));
        }
        if allowed.iter().any(|a| *a == NOTIFY_OWNER) {
            specs.push(ToolSpec::new(
                NOTIFY_OWNER,
                "Send a private notice to this agent's owner (the operator), not shown to the user.",
                serde_json::json!({
                    "type": "object",
                    "properties": {"text": {"type": "string", "description": "The notice"}},
                    "required": ["text"]
                }),
            ));
        }
        specs
    }

    fn full_system_prompt(&self, agent: &AgentRecord) -> String {
        let mut prompt = prompt::system_prompt(&agent.manifest);
        for skill in &agent.manifest.skills {
            if let Some(instructions) = self.plugins.skill_instructions(skill) {
                prompt.push_str(&format!("\n\n## Skill: {skill}\n{instructions}"));
            }
        }
        prompt
    }

    async fn run_turn(
        self: &Arc<Self>,
        agent: &AgentRecord,
        session_id: Uuid,
        target: Target,
        input: MessageInput,
        sink: &Sink,
        cancel: &CancellationToken,
    ) -> Result<TurnReply, KernelError> {
        let mut state = self
            .open_turn(agent, session_id, &target, input, sink)
            .await?;
        let (status, failure) = self.drive(agent, &target, &mut state, sink, cancel).await;
        self.close_turn(agent, &target, state, status, failure, sink)
            .await
    }

    /// A turn's starting state: the new message after the session's history
    /// that fits the agent's context budget (compacting the session first
    /// when it is near the budget).
    async fn open_turn(
        &self,
        agent: &AgentRecord,
        session_id: Uuid,
        target: &Target,
        input: MessageInput,
        sink: &Sink,
    ) -> Result<TurnState, KernelError> {
        let config = self.shared.config();
        let user = Message {
            role: Role::User,
            content: std::iter::once(ContentPart::text(input.text))
                .filter(|p| !matches!(p, ContentPart::Text { text } if text.is_empty()))
                .chain(input.parts)
                .collect(),
            ..Message::user("")
        };
        let ephemeral = input.ephemeral;
        // What is sent is bounded by the agent's context budget: only the
        // newest messages that fit with the new one are read. An ephemeral
        // turn sees only the system prompt and its own message.
        let budget = self.context_budget(agent);
        let user_tokens = prompt::message_tokens(&user);
        let room = budget.saturating_sub(user_tokens);
        let mut history = if ephemeral {
            Vec::new()
        } else {
            self.load_history(session_id, room).await?
        };
        let compact_at = (budget as f64 * config.agents.compact_at_ratio) as usize;
        if !ephemeral
            && estimate_tokens(&history) + user_tokens > compact_at
            && history.len() > config.agents.compact_keep_recent
        {
            sink.phase("context_warning", Some("compacting the session".into()));
            self.compact_locked(agent, session_id, target).await?;
            history = self.load_history(session_id, room).await?;
        }
        let stored_len = history.len();
        history.push(Arc::new(user));
        let model = agent.manifest.model.model.clone();
        Ok(TurnState {
            agent_id: agent.id,
            session_id,
            started_at: self.shared.now(),
            elapsed_ms: 0,
            since: Instant::now(),
            history,
            stored_len,
            queue: VecDeque::new(),
            seen_calls: HashMap::new(),
            notices: Vec::new(),
            traces: Vec::new(),
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: 0.0,
            iterations: 0,
            answer: String::new(),
            answered_model: model,
            sender: input.sender,
            ephemeral,
            incognito: input.incognito,
        })
    }

    /// The agent loop from `state` on: runs the calls left of the model's
    /// last answer, then asks the model again, until it answers without
    /// calling tools or the turn must end. How it ended, and the error of
    /// a failed turn.
    pub(super) async fn drive(
        self: &Arc<Self>,
        agent: &AgentRecord,
        target: &Target,
        state: &mut TurnState,
        sink: &Sink,
        cancel: &CancellationToken,
    ) -> (TurnStatus, Option<KernelError>) {
        let config = self.shared.config();
        let model = agent.manifest.model.model.clone();
        let end_user = state.sender.as_ref().and_then(|s| s.id.clone());
        let system = self.full_system_prompt(agent);
        let mut tools = self.agent_tools(agent);
        tools.extend(
            (self
                .mcp
                .tools_for(&agent.manifest.mcp_servers)
                .await
                .into_iter())
            .filter(|t| agent.tool_access.allows(&t.name))
            .map(|t| ToolSpec::new(t.name, t.description, t.input_schema)),
        );
        let status = loop {
            if let Some(call) = state.queue.pop_front() {
                if sink.live.interrupted() || cancel.is_cancelled() {
                    state.history.push(Arc::new(Message::tool_error(
                        &call.id,
                        "not run: the turn was interrupted",
                    )));
                } else {
                    let (message, trace) = self.run_tool(agent, &call, state, sink, cancel).await;
                    state.push_result(message, trace);
                }
                continue;
            }
            if state.iterations >= config.agents.max_iterations {
                break TurnStatus::MaxIterations;
            }
            if sink.live.interrupted() {
                break TurnStatus::Interrupted;
            }
            if cancel.is_cancelled() {
                break TurnStatus::Stopped;
            }
            if state.iterations > 0
                && let Err(e) = self.check_budget(agent, state.cost_usd).await
            {
                state.answer = e.to_string();
                break TurnStatus::BudgetExceeded;
            }
            let mut messages = state.history.clone();
            repair::repair(&mut messages);
            let mut request = CompletionRequest::new(model.clone())
                .with_system(system.clone())
                .with_messages(messages);
            request.tools = tools.clone();
            if let Some(max) = agent.manifest.model.max_tokens {
                request.max_tokens = max;
            }
            request.temperature = agent.manifest.model.temperature;
            request.user = end_user.clone();
            state.iterations += 1;
            sink.phase("thinking", Some(format!("iteration {}", state.iterations)));

            let response = tokio::select! {
                _ = cancel.cancelled() => break TurnStatus::Stopped,
                response = self.call_model(target, request, sink) => response,
            };
            let response = match response {
                Ok(ModelOutcome::Answered(r)) => r,
                Ok(ModelOutcome::Abandoned) => break TurnStatus::Stopped,
                Err(e) => return (TurnStatus::Failed, Some(e)),
            };
            state.input_tokens += response.usage.input_tokens;
            state.output_tokens += response.usage.output_tokens;
            state.cost_usd += self
                .providers
                .llm()
                .cost_usd(&model, &response.usage)
                .unwrap_or(0.0);
            state.answered_model = response.model.clone();
            if !response.text.is_empty() {
                state.answer = response.text.clone();
            }
            state.history.push(Arc::new(response.to_message()));
            if response.tool_calls.is_empty() {
                break TurnStatus::Completed;
            }
            state.queue = response.tool_calls.into();
        };
        (status, None)
    }

    /// Ends a turn: commits its messages and record in one transaction (a
    /// failed turn's record alone), announces it, and builds the reply.
    pub(super) async fn close_turn(
        &self,
        agent: &AgentRecord,
        target: &Target,
        mut state: TurnState,
        status: TurnStatus,
        failure: Option<KernelError>,
        sink: &Sink,
    ) -> Result<TurnReply, KernelError> {
        let session_id = state.session_id;
        let record = TurnRecord {
            id: Uuid::now_v7(),
            agent_id: agent.id,
            session_id,
            started_at: state.started_at,
            duration_ms: state.elapsed_ms(),
            iterations: state.iterations,
            provider: target.provider.clone(),
            model: state.answered_model.clone(),
            input_tokens: state.input_tokens,
            output_tokens: state.output_tokens,
            cost_usd: state.cost_usd,
            tool_calls: std::mem::take(&mut state.traces),
            status,
            error: failure.as_ref().map(ToString::to_string),
            sender: state.sender.take(),
            ephemeral: state.ephemeral || state.incognito,
        };
        let store = self.shared.store().clone();
        if let Some(error) = failure {
            // Nothing of a failed turn was acknowledged: the session stays as
            // it was, and only the turn's record (for metrics) is kept.
            let _ = store::blocking(move || sessions::record_turn(&store, &record)).await;
            return Err(error);
        }
        let new_messages = if state.ephemeral || state.incognito {
            Vec::new()
        } else {
            state.history.split_off(state.stored_len)
        };
        let windows = Arc::clone(&self.windows);
        let capacity = self.window_capacity();
        blocking_kernel(move || {
            let session = sessions::commit_turn(&store, session_id, &new_messages, &record)?;
            windows.append(&session, &new_messages, prompt::message_tokens, capacity);
            Ok(())
        })
        .await?;
        let owner_notice = (!state.notices.is_empty()).then(|| state.notices.join("\n"));
        if let Some(text) = &owner_notice {
            sink.emit(TurnEvent::OwnerNotice { text: text.clone() });
            self.shared
                .events()
                .publish(crate::events::Event::OwnerNotice {
                    agent_id: agent.id.to_string(),
                    text: text.clone(),
                    at: self.shared.now(),
                });
        }
        self.shared
            .events()
            .publish(crate::events::Event::TurnCompleted {
                agent_id: agent.id.to_string(),
                session_id: session_id.to_string(),
                status,
                at: self.shared.now(),
            });
        Ok(TurnReply {
            response: state.answer,
            session_id,
            input_tokens: state.input_tokens,
            output_tokens: state.output_tokens,
            iterations: state.iterations,
            cost_usd: state.cost_usd,
            status,
            owner_notice,
            model: state.answered_model,
        })
    }

    /// The newest messages of the session that fit in `max_tokens`: from
    /// the session's cached window when it is current, else from the store
    /// (and then kept).
    async fn load_history(
        &self,
        session: Uuid,
        max_tokens: usize,
    ) -> Result<Vec<Arc<Message>>, KernelError> {
        let store = self.shared.store().clone();
        let windows = Arc::clone(&self.windows);
        let capacity = self.window_capacity();
        blocking_kernel(move || {
            let record = sessions::get(&store, session)?
                .ok_or_else(|| KernelError::NotFound(format!("session {session} not found")))?;
            if let Some(window) = windows.get(&record, max_tokens) {
                return Ok(window);
            }
            let (stored, cut) =
                sessions::recent_messages(&store, session, max_tokens, prompt::message_tokens)?;
            let window: Vec<Arc<Message>> =
                stored.into_iter().map(|m| Arc::new(m.message)).collect();
            windows.put(
                &record,
                &window,
                max_tokens,
                cut,
                prompt::message_tokens,
                capacity,
            );
            Ok(window)
        })
        .await
    }

    /// Bytes the cached windows may hold (`[agents] window_cache_mib`).
    fn window_capacity(&self) -> usize {
        self.shared.config().agents.window_cache_mib as usize * 1024 * 1024
    }

    /// The agent's context budget in tokens (see [`prompt::context_budget`]),
    /// with the model's window from the catalog.
    pub(super) fn context_budget(&self, agent: &AgentRecord) -> usize {
        let config = self.shared.config();
        let window = self
            .providers
            .llm()
            .find_model(&agent.manifest.model.model)
            .map_or(config.agents.default_context_window, |m| m.context_window);
        prompt::context_budget(&agent.manifest, config.agents.max_context_tokens, window)
    }

    /// One model call: streamed (deltas forwarded) when anyone watches.
    /// A stream whose caller left with nobody attached is dropped, which
    /// closes the provider's connection.
    async fn call_model(
        &self,
        target: &Target,
        request: CompletionRequest,
        sink: &Sink,
    ) -> Result<ModelOutcome, KernelError> {
        if !sink.streaming() {
            let response = self.providers.llm().complete(target, request).await?;
            return Ok(ModelOutcome::Answered(response));
        }
        let model = request.model.clone();
        let mut stream = tokio::select! {
            stream = self.providers.llm().stream(target, request) => stream?,
            () = sink.caller_gone(), if !sink.live.watched() => return Ok(ModelOutcome::Abandoned),
        };
        sink.phase("streaming", None);
        let mut builder = ResponseBuilder::new(model);
        let mut caller_left = false;
        loop {
            let event = tokio::select! {
                event = stream.next() => event,
                () = sink.caller_gone(), if !caller_left => {
                    caller_left = true;
                    if sink.live.watched() {
                        // Someone attached still reads the answer.
                        continue;
                    }
                    return Ok(ModelOutcome::Abandoned);
                }
            };
            let Some(event) = event else { break };
            let event = event?;
            if let StreamEvent::TextDelta(text) = &event {
                sink.emit(TurnEvent::TextDelta {
                    content: text.clone(),
                });
            }
            builder.push(event)?;
            if builder.is_done() {
                break;
            }
        }
        Ok(ModelOutcome::Answered(builder.finish()?))
    }

    /// Runs one tool call; a failure of any kind becomes an error result the
    /// model reads, never a failed turn.
    async fn run_tool(
        self: &Arc<Self>,
        agent: &AgentRecord,
        call: &talon_llm::ToolCall,
        state: &mut TurnState,
        sink: &Sink,
        cancel: &CancellationToken,
    ) -> (Message, ToolCallTrace) {
        sink.emit(TurnEvent::ToolUse {
            id: call.id.clone(),
            tool: call.name.clone(),
        });
        let started = Instant::now();
        let mut fuel = 0;
        let arguments = call.parse_arguments();
        let outcome: Result<String, String> = match &arguments {
            Err(e) => Err(format!(
                "the arguments of {} are not valid JSON ({e}); call it again with a JSON object matching its schema",
                call.name
            )),
            Ok(args) => {
                let count = state
                    .seen_calls
                    .entry(format!("{}\u{0}{args}", call.name))
                    .or_insert(0);
                *count += 1;
                if *count > MAX_IDENTICAL_CALLS {
                    Err(format!(
                        "{} was already called with these exact arguments {} times in this turn; use the earlier result or change the arguments",
                        call.name, MAX_IDENTICAL_CALLS
                    ))
                } else if !agent.manifest.capabilities.tools.contains(&call.name)
                    && mcp_route(agent, &call.name).is_none()
                {
                    Err(format!("{} is not one of this agent's tools", call.name))
                } else if !agent.tool_access.allows(&call.name) {
                    Err(format!(
                        "{} is not allowed in this agent's {:?} mode",
                        call.name, agent.tool_access
                    ))
                } else {
                    match self.gate(agent, call, args, state, sink, cancel).await {
                        Err(refusal) => Err(refusal),
                        Ok(args) => {
                            let notices = &mut state.notices;
                            self.dispatch(agent, call, &args, notices, sink, cancel, &mut fuel)
                                .await
                        }
                    }
                }
            }
        };
        call_result(call, arguments.ok(), outcome, started, fuel, sink)
    }

    /// Runs a call that passed every check with `args`: a built-in, or a
    /// plugin's tool (its fuel is recorded in `fuel`).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn dispatch(
        self: &Arc<Self>,
        agent: &AgentRecord,
        call: &talon_llm::ToolCall,
        args: &serde_json::Value,
        notices: &mut Vec<String>,
        sink: &Sink,
        cancel: &CancellationToken,
        fuel: &mut u64,
    ) -> Result<String, String> {
        if call.name == NOTIFY_OWNER {
            match args.get("text").and_then(|t| t.as_str()) {
                Some(text) if !text.trim().is_empty() => {
                    notices.push(text.to_string());
                    Ok("the owner will be notified".to_string())
                }
                _ => Err("notify_owner needs a non-empty `text`".to_string()),
            }
        } else if call.name == AGENT_SEND {
            self.agent_send(agent, args, sink, cancel).await
        } else if call.name == A2A_SEND {
            self.a2a_send(agent, args, cancel).await
        } else if let Some((server, tool)) = mcp_route(agent, &call.name) {
            self.mcp.call(Some(agent.id), server, tool, args).await
        } else {
            match self
                .plugins
                .invoke_tool(&call.name, &args.to_string(), Some(agent.id))
                .await
            {
                Ok((_, invocation)) => {
                    *fuel = invocation.cost.fuel;
                    invocation.result.map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            }
        }
    }

    /// Applies the approval policy to a call: `always` passes, `never`
    /// refuses, `ask` pauses the turn (with an `awaiting_approval` phase)
    /// until an operator decides or the approval expires; the turn's
    /// `state` is stored with the approval, so the turn resumes after a
    /// restart (a subagent's turn, which another turn waits for in memory,
    /// is not). The arguments to run with (an operator may have edited them
    /// while the call waited), or the refusal, the tool error the model reads.
    async fn gate<'a>(
        &self,
        agent: &AgentRecord,
        call: &talon_llm::ToolCall,
        args: &'a serde_json::Value,
        state: &TurnState,
        sink: &Sink,
        cancel: &CancellationToken,
    ) -> Result<Cow<'a, serde_json::Value>, String> {
        let risk = self.plugins.tool(&call.name).ok().and_then(|t| t.risk);
        match self.approvals.policy(agent, &call.name, risk.as_deref()) {
            Policy::Always => Ok(Cow::Borrowed(args)),
            Policy::Never => Err(format!(
                "{} may not be called: the approval policy for it is `never`",
                call.name
            )),
            Policy::Ask => {
                let turn = (sink.chain.len() == 1)
                    .then(|| PausedTurn::value(state, call))
                    .flatten();
                let request = CallToApprove {
                    agent: agent.id,
                    agent_name: agent.name().to_string(),
                    session: Some(sink.session),
                    tool: call.name.clone(),
                    risk,
                    arguments: args.clone(),
                    turn,
                };
                let decided = self
                    .approvals
                    .ask(request, cancel, |pending| {
                        sink.phase(
                            "awaiting_approval",
                            Some(format!("approval {} for {}", pending.id, call.name)),
                        )
                    })
                    .await;
                decided_arguments(&call.name, decided).map(Cow::Owned)
            }
        }
    }

    /// `agent_send`: a turn of the target agent, in its session for messages
    /// from this agent, whose answer is the tool's result.
    async fn agent_send(
        self: &Arc<Self>,
        agent: &AgentRecord,
        args: &serde_json::Value,
        sink: &Sink,
        cancel: &CancellationToken,
    ) -> Result<String, String> {
        let field = |key: &str| {
            args.get(key)
                .and_then(|v| v.as_str())
                .map(str::trim)
                .filter(|t| !t.is_empty())
        };
        let (Some(target), Some(message)) = (field("target"), field("message")) else {
            return Err(format!(
                "{AGENT_SEND} needs a `target` (an agent's name or id) and a non-empty `message`"
            ));
        };
        let target_id = match Uuid::parse_str(target) {
            Ok(id) => id,
            Err(_) => self
                .agents
                .id_by_name(target.to_string())
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("there is no agent named `{target}`"))?,
        };
        if sink.chain.contains(&target_id) {
            return Err(format!(
                "`{target}` is already waiting for an answer in this chain of {AGENT_SEND} calls; \
                 sending to it again would never finish"
            ));
        }
        if sink.chain.len() >= MAX_AGENT_SEND_DEPTH {
            return Err(format!(
                "{AGENT_SEND} chains are limited to {MAX_AGENT_SEND_DEPTH} agents; answer with what you have"
            ));
        }
        let parent = Parent {
            live: Arc::clone(&sink.live),
            cancel: cancel.clone(),
            chain: sink.chain.clone(),
        };
        let reply = self
            .agent_turn(agent, target_id, message, Some(parent))
            .await
            .map_err(|e| e.to_string())?;
        match reply.status {
            TurnStatus::Completed => Ok(reply.response),
            status => Err(format!(
                "`{target}` did not finish ({}): {}",
                serde_json::to_value(status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                reply.response
            )),
        }
    }

    /// A message from agent `from` to agent `to` (`POST /api/comms/send`),
    /// answered by a turn of `to`: the path `agent_send` takes.
    pub async fn send_from_agent(
        self: &Arc<Self>,
        from: &AgentRecord,
        to: Uuid,
        message: &str,
    ) -> Result<TurnReply, KernelError> {
        self.agent_turn(from, to, message, None).await
    }

    /// A turn of `to` answering `from`, in `to`'s session for messages from
    /// `from` (`agent:<name>`), recorded with `from` as its sender on the
    /// `agent` channel (which the comms events are read from).
    async fn agent_turn(
        self: &Arc<Self>,
        from: &AgentRecord,
        to: Uuid,
        message: &str,
        parent: Option<Parent>,
    ) -> Result<TurnReply, KernelError> {
        let session = self.delegation_session(to, from.name()).await?;
        let input = MessageInput {
            text: message.to_string(),
            session_id: Some(session),
            sender: Some(Sender {
                id: Some(from.id.to_string()),
                name: Some(from.name().to_string()),
                channel_type: Some(AGENT_CHANNEL.to_string()),
            }),
            ..MessageInput::default()
        };
        let started = self.begin_turn(to, input, false, parent).await?;
        started
            .outcome
            .await
            .map_err(|e| KernelError::Store(store::StoreError::Task(e.to_string())))?
    }

    /// `a2a_send`: a task for a discovered remote agent, bounded by
    /// `[a2a] timeout_secs`; its answer (or why there is none) is the
    /// tool's result. Stopping the turn abandons the wait.
    async fn a2a_send(
        &self,
        agent: &AgentRecord,
        args: &serde_json::Value,
        cancel: &CancellationToken,
    ) -> Result<String, String> {
        let field = |key: &str| {
            args.get(key)
                .and_then(|v| v.as_str())
                .map(str::trim)
                .filter(|t| !t.is_empty())
        };
        let (Some(target), Some(message)) = (field("agent"), field("message")) else {
            return Err(format!(
                "{A2A_SEND} needs an `agent` (a discovered remote agent's name or URL) and a non-empty `message`"
            ));
        };
        let task = tokio::select! {
            task = self.a2a.send(target, message, Some(agent.id)) => task.map_err(|e| e.to_string())?,
            () = cancel.cancelled() => return Err("the turn was stopped while waiting for the remote agent".into()),
        };
        let text = task.text.unwrap_or_default();
        match task.state.as_str() {
            "completed" => Ok(text),
            state => Err(format!(
                "the remote agent's task {} ended {state}: {text}",
                task.id
            )),
        }
    }
}

/// The server and tool an `mcp_<server>_<tool>` name calls, when `agent`'s
/// manifest lists that server (the longest listed name wins, so servers
/// `a` and `a_b` stay apart).
fn mcp_route<'a>(agent: &'a AgentRecord, name: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = name.strip_prefix(crate::mcp::PREFIX)?;
    (agent.manifest.mcp_servers.iter())
        .filter_map(|server| {
            let tool = rest.strip_prefix(server.as_str())?.strip_prefix('_')?;
            (!tool.is_empty()).then_some((server.as_str(), tool))
        })
        .max_by_key(|(server, _)| server.len())
}
