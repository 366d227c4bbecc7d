//! What the kernel does for a running hand: its `agent` import (a turn of
//! its agent; a notification for the agent's owner) and its ticks from
//! the scheduler's engine.

use std::sync::{Arc, Weak};

use talon_runtime::hand::{AgentHost, HostFuture};
use talon_scheduler::clock::BoxFuture;
use talon_scheduler::{Dispatcher, Firing};
use uuid::Uuid;

use crate::automation::Automation;
use crate::shared::Shared;
use crate::store::audit::AuditEvent;

use super::Hands;

/// Serves one instance's `agent` import.
pub(super) struct InstanceHost {
    pub(super) instance: Uuid,
    pub(super) shared: Arc<Shared>,
    pub(super) automation: Arc<Automation>,
}

impl AgentHost for InstanceHost {
    fn send(
        &self,
        _hand: &str,
        agent_id: &str,
        message: String,
    ) -> HostFuture<Result<String, String>> {
        let automation = self.automation.clone();
        let agent = agent_id.parse::<Uuid>();
        Box::pin(async move {
            let agent = agent.map_err(|_| "the hand's agent id is not a uuid".to_string())?;
            automation.agent_turn(agent, message, false).await
        })
    }

    /// The message is an audit entry (`hand_owner_notified`, which the event
    /// bus carries to `/api/logs/stream` and `/api/audit`) and an owner
    /// notice of the hand's agent, which channels deliver to the chat of an
    /// owner binding of that agent.
    fn notify_owner(&self, hand: &str, agent_id: &str, message: String) -> HostFuture<()> {
        let shared = self.shared.clone();
        let details = serde_json::json!({
            "hand": hand, "instance_id": self.instance, "message": message,
        });
        let mut event = AuditEvent::new("hand_owner_notified", details.to_string());
        event.agent_id = Some(agent_id.to_string());
        let hand = hand.to_string();
        let agent_id = agent_id.to_string();
        Box::pin(async move {
            if let Err(error) = shared.audit(event).await {
                tracing::error!(%hand, %error, "cannot record a hand's notification");
            }
            shared.events().publish(crate::events::Event::OwnerNotice {
                agent_id,
                text: message,
                at: shared.now(),
            });
        })
    }
}

/// Hands the engine's firings to the domain.
pub(super) struct TickDispatcher {
    pub(super) hands: Weak<Hands>,
}

impl Dispatcher for TickDispatcher {
    fn fire(&self, firing: Firing) -> BoxFuture<()> {
        let hands = self.hands.clone();
        Box::pin(async move {
            if let Some(hands) = hands.upgrade() {
                hands.scheduled_tick(firing).await;
            }
        })
    }

    fn overlapped(&self, firing: Firing) {
        tracing::debug!(instance = %firing.job_id, "hand tick skipped: the previous one is still running");
    }
}
