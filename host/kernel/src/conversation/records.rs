//! What a conversation is made of, as stored: sessions, their messages, and
//! the record of each turn.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use talon_llm::Message;
use uuid::Uuid;

pub use crate::events::TurnStatus;

/// Token and cost totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Totals {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// USD, from the catalog's prices (0 for models it does not price).
    pub cost_usd: f64,
    /// Turns counted.
    pub turns: u64,
}

impl Totals {
    pub(crate) fn add(&mut self, turn: &TurnRecord) {
        self.input_tokens += turn.input_tokens;
        self.output_tokens += turn.output_tokens;
        self.cost_usd += turn.cost_usd;
        self.turns += 1;
    }
}

/// A conversation of one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Stable identifier.
    pub id: Uuid,
    /// The agent it belongs to.
    pub agent_id: Uuid,
    /// A name the user gave it, unique per agent.
    #[serde(default)]
    pub label: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When a message was last added.
    pub updated_at: DateTime<Utc>,
    /// Messages it holds now.
    pub message_count: u64,
    /// Sequence number of the next message.
    pub next_seq: u64,
    /// Everything its turns used.
    #[serde(default)]
    pub totals: Totals,
    /// Times it was compacted.
    #[serde(default)]
    pub compactions: u32,
}

/// A message as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Position in the session.
    pub seq: u64,
    /// When it was added.
    pub at: DateTime<Utc>,
    /// The message itself.
    #[serde(flatten)]
    pub message: Message,
}

/// Who sent a turn's message, as a channel or client names them
/// (LibreFang's `sender_id`, `sender_name`, `channel_type`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sender {
    /// The platform's id of the sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The sender's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The channel it came through (`telegram`, `whatsapp`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_type: Option<String>,
}

/// One tool call of a turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallTrace {
    /// The tool.
    pub tool: String,
    /// Wall time in microseconds.
    pub duration_us: u64,
    /// Whether it failed (including refused and malformed calls).
    pub is_error: bool,
    /// Fuel the plugin burned.
    #[serde(default)]
    pub fuel: u64,
}

/// The record of one turn: what traces, metrics, usage and budgets report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnRecord {
    /// Time-ordered identifier (UUIDv7).
    pub id: Uuid,
    /// The agent.
    pub agent_id: Uuid,
    /// The session.
    pub session_id: Uuid,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// Model calls made.
    pub iterations: u32,
    /// The provider called.
    pub provider: String,
    /// The model called.
    pub model: String,
    /// Prompt tokens over all calls.
    pub input_tokens: u64,
    /// Generated tokens over all calls.
    pub output_tokens: u64,
    /// USD over all calls.
    pub cost_usd: f64,
    /// Tool calls, in order.
    pub tool_calls: Vec<ToolCallTrace>,
    /// How it ended.
    pub status: TurnStatus,
    /// Why it failed, for [`TurnStatus::Failed`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Who sent the message, when the caller said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<Sender>,
    /// An ephemeral or incognito turn: its messages were not stored (only
    /// this record and its cost were).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ephemeral: bool,
}
