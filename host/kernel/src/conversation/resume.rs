//! Turns paused on an approval, resumed after a restart.
//!
//! When a call of a turn waits for approval, the turn's state
//! ([`TurnState`]: the messages so far, the calls of the model's answer not
//! run yet, its counters, usage and notices) and the call are stored with
//! the approval in one transaction. At the next start
//! [`Conversations::resume_paused`] re-arms each such turn: it holds the
//! session (a new message waits for the paused turn, as it would for a
//! running one), waits for the decision or the expiry with no client
//! attached, runs the call (or hands the model the refusal), goes on with
//! the loop and commits the turn to the session, where clients read it.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use talon_llm::{Target, ToolCall};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::live::{TurnEvent, TurnReply};
use super::turn::{Sink, TurnState, call_result, decided_arguments};
use super::{Conversations, prompt};
use crate::KernelError;
use crate::agents::AgentRecord;
use crate::approvals::Approval;

/// A turn waiting on an approval, as stored with it.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PausedTurn {
    /// The turn up to the call.
    state: TurnState,
    /// The call that waits.
    call: ToolCall,
}

impl PausedTurn {
    /// The stored form of `state` paused on `call`; none (the turn cannot
    /// resume after a restart) if it cannot be written.
    pub(super) fn value(state: &TurnState, call: &ToolCall) -> Option<serde_json::Value> {
        let paused = Self {
            state: state.snapshot(),
            call: call.clone(),
        };
        serde_json::to_value(paused)
            .map_err(|e| tracing::warn!(error = %e, "cannot store a paused turn's state"))
            .ok()
    }
}

impl Conversations {
    /// Re-arms the turns stored with pending approvals (see the module
    /// docs): each holds its session once this returns; the calls run, once
    /// decided, after `ready` turns true (the plugins are loaded). An
    /// approval whose turn cannot resume (its agent was removed, its state
    /// is unreadable) is expired with the reason. How many were re-armed.
    pub async fn resume_paused(
        self: &Arc<Self>,
        ready: watch::Receiver<bool>,
    ) -> Result<usize, KernelError> {
        let mut resumed = 0;
        for (approval, turn) in self.approvals.paused_turns().await? {
            let id = approval.id;
            match self.rearm(approval, turn, ready.clone()).await {
                Ok(()) => resumed += 1,
                Err(reason) => {
                    tracing::warn!(approval = %id, %reason, "a paused turn cannot resume");
                    self.approvals
                        .abandon(
                            id,
                            format!(
                                "the daemon stopped while the call waited; its turn cannot resume: {reason}"
                            ),
                        )
                        .await?;
                }
            }
        }
        Ok(resumed)
    }

    /// Starts the task that finishes one paused turn; returns once it holds
    /// the session.
    async fn rearm(
        self: &Arc<Self>,
        approval: Approval,
        turn: serde_json::Value,
        mut ready: watch::Receiver<bool>,
    ) -> Result<(), String> {
        let paused: PausedTurn = serde_json::from_value(turn)
            .map_err(|e| format!("its stored state cannot be read ({e})"))?;
        let agent = self
            .agents
            .get(paused.state.agent_id)
            .await
            .map_err(|e| e.to_string())?;
        let target = prompt::target(&agent.manifest).map_err(|e| e.to_string())?;
        let session = paused.state.session_id;
        let live = self.live().get(session, agent.id);
        let held = Arc::clone(&live);
        let (armed, is_armed) = oneshot::channel();
        let kernel = Arc::clone(self);
        tokio::spawn(async move {
            let _turn = held.turn_lock.lock().await;
            let _ = armed.send(());
            let sink = Sink {
                caller: None,
                live,
                session,
                chain: vec![agent.id],
            };
            let cancel = sink.live.begin(None);
            tracing::info!(approval = %approval.id, %session, "a paused turn waits for its approval again");
            // A clean stop leaves the approval pending: the turn is stored
            // and resumes at the next start again.
            let decided = kernel.approvals.wait(&approval, &cancel, false).await;
            // A dropped sender (the daemon stops) lets the turn go on.
            let _ = ready.wait_for(|loaded| *loaded).await;
            let result = kernel
                .resume_turn(&agent, &target, paused, decided, &sink, &cancel)
                .await;
            sink.live.end();
            match result {
                Ok(reply) => sink.emit(TurnEvent::Done(Arc::new(reply))),
                Err(e) => {
                    tracing::warn!(%session, error = %e, "a resumed turn failed");
                    sink.emit(TurnEvent::Failed {
                        error: e.to_string(),
                    });
                }
            }
        });
        is_armed
            .await
            .map_err(|_| "its task ended before it held the session".to_string())
    }

    /// Finishes a paused turn: the call runs when approved (with the
    /// arguments approved) or fails with the refusal, then the loop goes on
    /// and the turn is committed as any other.
    async fn resume_turn(
        self: &Arc<Self>,
        agent: &AgentRecord,
        target: &Target,
        paused: PausedTurn,
        decided: Result<Approval, KernelError>,
        sink: &Sink,
        cancel: &CancellationToken,
    ) -> Result<TurnReply, KernelError> {
        let PausedTurn { mut state, call } = paused;
        let started = Instant::now();
        let mut fuel = 0;
        let outcome = match decided_arguments(&call.name, decided) {
            Ok(args) => {
                self.dispatch(
                    agent,
                    &call,
                    &args,
                    state.notices(),
                    sink,
                    cancel,
                    &mut fuel,
                )
                .await
            }
            Err(refusal) => Err(refusal),
        };
        let arguments = call.parse_arguments().ok();
        let (message, trace) = call_result(&call, arguments, outcome, started, fuel, sink);
        state.push_result(message, trace);
        let (status, failure) = self.drive(agent, target, &mut state, sink, cancel).await;
        self.close_turn(agent, target, state, status, failure, sink)
            .await
    }
}
