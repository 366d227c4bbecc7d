//! Compaction: a session's older messages replaced by a summary the
//! agent's own model writes, keeping the most recent ones.

use std::sync::Arc;
use std::time::Instant;

use talon_llm::{CompletionRequest, Message, Role, Target};
use uuid::Uuid;

use super::records::{TurnRecord, TurnStatus};
use super::{Conversations, prompt, sessions};
use crate::KernelError;
use crate::agents::AgentRecord;
use crate::shared::blocking_kernel;
use crate::store;

impl Conversations {
    /// Summarizes a session's older messages with the agent's model, keeping
    /// the most recent ones; `(summarized, kept)`. Waits for a running turn.
    pub async fn compact_session(
        self: &Arc<Self>,
        agent_id: Uuid,
        session: Option<Uuid>,
    ) -> Result<(u64, u64), KernelError> {
        let agent = self.agents.get(agent_id).await?;
        let target = prompt::target(&agent.manifest)?;
        let session = self.turn_session(agent_id, session).await?;
        let live = self.live().get(session.id, agent_id);
        let _turn = live.turn_lock.lock().await;
        self.compact_locked(&agent, session.id, &target).await
    }

    pub(super) async fn compact_locked(
        &self,
        agent: &AgentRecord,
        session: Uuid,
        target: &Target,
    ) -> Result<(u64, u64), KernelError> {
        // Only what fits in the context budget is summarized (older messages
        // were no longer sent anyway), so the summary request fits too and
        // the work does not grow with the session.
        let store = self.shared.store().clone();
        let budget = self.context_budget(agent);
        let (stored, _) = store::blocking(move || {
            sessions::recent_messages(&store, session, budget, prompt::message_tokens)
        })
        .await?;
        let keep = self.shared.config().agents.compact_keep_recent;
        if stored.len() <= keep {
            return Ok((0, stored.len() as u64));
        }
        // Never start the kept tail with tool results cut from their call.
        let mut split = stored.len() - keep;
        while split > 0 && stored[split].message.role == Role::Tool {
            split -= 1;
        }
        if split == 0 {
            return Ok((0, stored.len() as u64));
        }
        let transcript: String = stored[..split]
            .iter()
            .map(|m| {
                let calls: Vec<&str> = m
                    .message
                    .tool_calls
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect();
                let role = format!("{:?}", m.message.role).to_lowercase();
                if calls.is_empty() {
                    format!("{role}: {}\n", m.message.text())
                } else {
                    format!(
                        "{role}: {} [called {}]\n",
                        m.message.text(),
                        calls.join(", ")
                    )
                }
            })
            .collect();
        let request = CompletionRequest::new(agent.manifest.model.model.clone())
            .with_system(
                "Summarize the conversation below for the assistant that will continue it. \
                 Keep facts, decisions, names, numbers and open questions; be concise.",
            )
            .with_message(Message::user(transcript));
        let started = Instant::now();
        let response = self.providers.llm().complete(target, request).await?;
        let cost = self
            .providers
            .llm()
            .cost_usd(&agent.manifest.model.model, &response.usage)
            .unwrap_or(0.0);
        let summary = Message::user(format!(
            "[Summary of the earlier conversation]\n{}",
            response.text
        ));
        let keep_from = stored[split].seq;
        let record = TurnRecord {
            id: Uuid::now_v7(),
            agent_id: agent.id,
            session_id: session,
            started_at: self.shared.now(),
            duration_ms: started.elapsed().as_millis() as u64,
            iterations: 1,
            provider: target.provider.clone(),
            model: response.model.clone(),
            input_tokens: response.usage.input_tokens,
            output_tokens: response.usage.output_tokens,
            cost_usd: cost,
            tool_calls: Vec::new(),
            status: TurnStatus::Compaction,
            error: None,
            sender: None,
            ephemeral: false,
        };
        let store = self.shared.store().clone();
        let kept = (stored.len() - split) as u64;
        let (_, removed) = blocking_kernel(move || {
            sessions::record_turn(&store, &record)?;
            sessions::compact(&store, session, keep_from, summary)
        })
        .await?;
        Ok((removed, kept))
    }
}
