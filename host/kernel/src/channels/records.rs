//! Configured channels, inbound messages, the outbox and the session of
//! each conversation, and their store functions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::tables::{CHANNEL_INBOX, CHANNEL_OUTBOX, CHANNEL_SESSIONS, CHANNELS};
use crate::store::{self, Store, StoreError};

const CONFIGS: &str = "channels.v1";
const INBOX: &str = "channel_inbox.v1";
const OUTBOX: &str = "channel_outbox.v1";
const SESSIONS: &str = "channel_sessions.v1";

/// Which agent answers a chat or a sender, over the channel's default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Binding {
    /// The chat it applies to (an IRC `#channel`, a room id); any chat
    /// when absent.
    #[serde(default)]
    pub chat_id: Option<String>,
    /// The sender it applies to (a nick, a user id); anyone when absent.
    #[serde(default)]
    pub sender_id: Option<String>,
    /// The agent that answers.
    pub agent_id: Uuid,
    /// This chat is where the agent's owner is reached: its owner notices
    /// (`notify_owner`) and approval requests are delivered here. Needs a
    /// `chat_id`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub owner: bool,
}

/// A configured channel: which plugin runs it, with what configuration,
/// bound to which agents. Its secret settings are in `secrets.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelConfig {
    /// Its name, unique in the daemon (`irc`, `irc-work`).
    pub name: String,
    /// The installed channel plugin that runs it.
    pub plugin: String,
    /// The configuration `connect` receives, without the secret keys.
    pub config: BTreeMap<String, serde_json::Value>,
    /// Names of the secret keys set (their values are in the secrets file).
    pub secret_keys: Vec<String>,
    /// The agent that answers when no binding matches.
    pub agent_id: Option<Uuid>,
    /// Overrides per chat or sender, the first match winning (a binding
    /// naming both chat and sender is checked before one naming either).
    pub bindings: Vec<Binding>,
    /// Off: not started.
    pub enabled: bool,
    /// When it was configured first.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl ChannelConfig {
    /// The chat where `agent`'s owner is reached on this channel, if a
    /// binding names one.
    pub fn owner_chat(&self, agent: Uuid) -> Option<&str> {
        self.bindings
            .iter()
            .find(|b| b.owner && b.agent_id == agent)
            .and_then(|b| b.chat_id.as_deref())
    }

    /// Whether `agent` answers any of its messages: the default agent, or
    /// named by a binding.
    pub fn serves(&self, agent: Uuid) -> bool {
        self.agent_id == Some(agent) || self.bindings.iter().any(|b| b.agent_id == agent)
    }

    /// The agent that answers `sender` in `chat`.
    pub fn agent_for(&self, chat: &str, sender: &str) -> Option<Uuid> {
        let matches = |b: &&Binding| {
            b.chat_id.as_deref().is_none_or(|c| c == chat)
                && b.sender_id.as_deref().is_none_or(|s| s == sender)
        };
        let both = self
            .bindings
            .iter()
            .filter(|b| b.chat_id.is_some() && b.sender_id.is_some())
            .find(matches);
        both.or_else(|| self.bindings.iter().find(matches))
            .map(|b| b.agent_id)
            .or(self.agent_id)
    }
}

/// What became of an inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum InboundState {
    /// Stored, not answered yet (answered at the next start if the daemon
    /// stops first).
    Pending,
    /// Answered: the reply is in the outbox.
    Answered,
    /// The turn failed or no agent is bound; the error says which.
    Failed,
    /// Its sender had more messages waiting than the per-sender limit: stored
    /// and never answered.
    RateLimited,
}

/// An inbound message, stored before anything else is done with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inbound {
    /// The channel it came through.
    pub channel: String,
    /// The platform's id, or one the host assigned.
    pub message_id: String,
    /// The chat it was written in.
    pub chat_id: String,
    /// `direct` or `group`.
    pub chat_kind: String,
    /// Its thread, where the platform has threads.
    pub thread_id: Option<String>,
    /// Who wrote it.
    pub sender_id: String,
    /// The sender's display name.
    pub sender_name: Option<String>,
    /// The text.
    pub text: String,
    /// When it was stored.
    pub received_at: DateTime<Utc>,
    /// What became of it.
    pub state: InboundState,
    /// The agent that answered (or was to).
    pub agent_id: Option<Uuid>,
    /// Why it failed.
    pub error: Option<String>,
}

impl Inbound {
    /// The dedupe key: the channel and the message's id.
    pub fn key(&self) -> String {
        inbound_key(&self.channel, &self.message_id)
    }

    /// The conversation it belongs to: channel, chat and thread.
    pub fn conversation_key(&self) -> String {
        format!(
            "{}\n{}\n{}",
            self.channel,
            self.chat_id,
            self.thread_id.as_deref().unwrap_or("")
        )
    }
}

/// The dedupe key of message `id` in `channel`.
pub fn inbound_key(channel: &str, id: &str) -> String {
    format!("{channel}\n{id}")
}

/// Where an outbound message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum OutboundStatus {
    /// Waiting for its first attempt or a retry.
    Queued,
    /// The platform took it.
    Sent,
    /// Used up its attempts: a dead letter, retryable over the API.
    Dead,
}

/// A message on its way out through a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outbound {
    /// Its id (v7).
    pub id: Uuid,
    /// The channel it goes through.
    pub channel: String,
    /// The agent it comes from, if any.
    pub agent_id: Option<Uuid>,
    /// The chat it goes to.
    pub chat_id: String,
    /// The thread, if any.
    pub thread_id: Option<String>,
    /// The message it answers, if any.
    pub reply_to: Option<String>,
    /// The text.
    pub text: String,
    /// Why it is sent: `reply`, `cron:<job id>`, `trigger:<trigger id>`,
    /// `notify` or `test`.
    pub origin: String,
    /// Where it stands.
    pub status: OutboundStatus,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due.
    pub next_attempt_at: DateTime<Utc>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When the platform took it.
    pub sent_at: Option<DateTime<Utc>>,
    /// The platform's ids of what it posted.
    pub platform_ids: Vec<String>,
}

/// The session a conversation (channel, chat, thread) is held in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// The agent that answers it.
    pub agent_id: Uuid,
    /// Its session.
    pub session_id: Uuid,
}

fn put(
    tx: &WriteTransaction,
    table: TableDefinition<&str, &[u8]>,
    name: &'static str,
    key: &str,
    value: &impl Serialize,
) -> Result<(), StoreError> {
    let bytes = store::encode(name, value)?;
    tx.open_table(table)?.insert(key, bytes.as_slice())?;
    Ok(())
}

fn read_all<T: serde::de::DeserializeOwned>(
    store: &Store,
    table: TableDefinition<&str, &[u8]>,
    name: &'static str,
) -> Result<Vec<T>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(table)?;
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (_, value) = entry?;
        out.push(store::decode(name, value.value())?);
    }
    Ok(out)
}

/// Every configured channel, by name.
pub(super) fn configs(store: &Store) -> Result<Vec<ChannelConfig>, StoreError> {
    read_all(store, CHANNELS, CONFIGS)
}

/// Stores a channel's configuration (new or changed).
pub(super) fn put_config(store: &Store, config: &ChannelConfig) -> Result<(), StoreError> {
    let tx = store.db()?.begin_write()?;
    put(&tx, CHANNELS, CONFIGS, &config.name, config)?;
    tx.commit()?;
    Ok(())
}

/// Removes a channel's configuration and its conversations' sessions map;
/// its inbox and outbox stay as history. True when it existed.
pub(super) fn delete_config(store: &Store, name: &str) -> Result<bool, StoreError> {
    let tx = store.db()?.begin_write()?;
    let existed = tx.open_table(CHANNELS)?.remove(name)?.is_some();
    {
        let mut sessions = tx.open_table(CHANNEL_SESSIONS)?;
        let prefix = format!("{name}\n");
        let keys: Vec<String> = sessions
            .range(prefix.as_str()..)?
            .map_while(|e| {
                e.ok()
                    .map(|(k, _)| k.value().to_string())
                    .filter(|k| k.starts_with(&prefix))
            })
            .collect();
        for key in keys {
            sessions.remove(key.as_str())?;
        }
    }
    tx.commit()?;
    Ok(existed)
}

/// Stores an inbound message unless one with the same key is stored:
/// synced before it returns. True when it is new.
pub(super) fn insert_inbound(store: &Store, message: &Inbound) -> Result<bool, StoreError> {
    let tx = store.db()?.begin_write()?;
    let key = message.key();
    let exists = tx.open_table(CHANNEL_INBOX)?.get(key.as_str())?.is_some();
    if exists {
        return Ok(false);
    }
    put(&tx, CHANNEL_INBOX, INBOX, &key, message)?;
    tx.commit()?;
    Ok(true)
}

/// The messages of `channel` still pending, in the order they came.
pub(super) fn pending_inbound(store: &Store, channel: &str) -> Result<Vec<Inbound>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(CHANNEL_INBOX)?;
    let prefix = format!("{channel}\n");
    let mut out: Vec<Inbound> = Vec::new();
    for entry in table.range(prefix.as_str()..)? {
        let (key, value) = entry?;
        if !key.value().starts_with(&prefix) {
            break;
        }
        let message: Inbound = store::decode(INBOX, value.value())?;
        if message.state == InboundState::Pending {
            out.push(message);
        }
    }
    out.sort_by_key(|m| m.received_at);
    Ok(out)
}

/// Records what became of an inbound message and, in the same synced
/// transaction, queues its reply: a reply is queued once or not at all.
pub(super) fn settle_inbound(
    store: &Store,
    message: &Inbound,
    reply: Option<&Outbound>,
) -> Result<(), StoreError> {
    let tx = store.db()?.begin_write()?;
    put(&tx, CHANNEL_INBOX, INBOX, &message.key(), message)?;
    if let Some(reply) = reply {
        put(&tx, CHANNEL_OUTBOX, OUTBOX, &reply.id.to_string(), reply)?;
    }
    tx.commit()?;
    Ok(())
}

/// Counts of a channel's inbound messages by state.
pub(super) fn inbound_counts(
    store: &Store,
    channel: &str,
) -> Result<BTreeMap<&'static str, u64>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(CHANNEL_INBOX)?;
    let prefix = format!("{channel}\n");
    let mut counts = BTreeMap::new();
    for entry in table.range(prefix.as_str()..)? {
        let (key, value) = entry?;
        if !key.value().starts_with(&prefix) {
            break;
        }
        let message: Inbound = store::decode(INBOX, value.value())?;
        let state = match message.state {
            InboundState::Pending => "pending",
            InboundState::Answered => "answered",
            InboundState::Failed => "failed",
            InboundState::RateLimited => "rate_limited",
        };
        *counts.entry(state).or_insert(0) += 1;
    }
    Ok(counts)
}

/// Queues an outbound message (or stores its new state), synced.
pub(super) fn put_outbound(store: &Store, message: &Outbound) -> Result<(), StoreError> {
    let tx = store.db()?.begin_write()?;
    put(
        &tx,
        CHANNEL_OUTBOX,
        OUTBOX,
        &message.id.to_string(),
        message,
    )?;
    tx.commit()?;
    Ok(())
}

/// Records an attempt's outcome. A final one (sent, dead) is synced: left
/// unsynced, a `kill -9` soon after a send rolled it back and the restarted
/// daemon sent the reply again (seen end to end with Telegram). A failed
/// attempt to be retried is not: losing it only costs that retry again.
/// Only a crash between the platform taking a message and this sync still
/// sends it twice (at least once on the wire).
pub(super) fn record_attempt(store: &Store, message: &Outbound) -> Result<(), StoreError> {
    let mut tx = store.db()?.begin_write()?;
    if message.status == OutboundStatus::Queued {
        tx.set_durability(Durability::None)
            .map_err(|e| StoreError::Db(redb::Error::from(e)))?;
    }
    put(
        &tx,
        CHANNEL_OUTBOX,
        OUTBOX,
        &message.id.to_string(),
        message,
    )?;
    tx.commit()?;
    Ok(())
}

/// One outbound message.
pub(super) fn outbound(store: &Store, id: Uuid) -> Result<Option<Outbound>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(CHANNEL_OUTBOX)?;
    let key = id.to_string();
    table
        .get(key.as_str())?
        .map(|v| store::decode(OUTBOX, v.value()))
        .transpose()
}

/// The newest `limit` outbound messages that `keep` wants, newest first.
pub(super) fn outbox(
    store: &Store,
    limit: usize,
    keep: impl Fn(&Outbound) -> bool,
) -> Result<Vec<Outbound>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(CHANNEL_OUTBOX)?;
    let mut out = Vec::new();
    for entry in table.iter()?.rev() {
        let (_, value) = entry?;
        let message: Outbound = store::decode(OUTBOX, value.value())?;
        if keep(&message) {
            out.push(message);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// The session of a conversation, if it has one.
pub(super) fn conversation(store: &Store, key: &str) -> Result<Option<Conversation>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(CHANNEL_SESSIONS)?;
    table
        .get(key)?
        .map(|v| store::decode(SESSIONS, v.value()))
        .transpose()
}

/// Remembers the session of a conversation.
pub(super) fn put_conversation(
    store: &Store,
    key: &str,
    conversation: &Conversation,
) -> Result<(), StoreError> {
    let tx = store.db()?.begin_write()?;
    put(&tx, CHANNEL_SESSIONS, SESSIONS, key, conversation)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(bindings: Vec<Binding>) -> ChannelConfig {
        ChannelConfig {
            name: "irc".into(),
            plugin: "irc".into(),
            config: BTreeMap::new(),
            secret_keys: Vec::new(),
            agent_id: Some(Uuid::from_u128(1)),
            bindings,
            enabled: true,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn the_most_specific_binding_wins_over_the_default() {
        let chat = Binding {
            chat_id: Some("#ops".into()),
            sender_id: None,
            agent_id: Uuid::from_u128(2),
            owner: false,
        };
        let both = Binding {
            chat_id: Some("#ops".into()),
            sender_id: Some("alice".into()),
            agent_id: Uuid::from_u128(3),
            owner: false,
        };
        let c = config(vec![chat, both]);
        assert_eq!(c.agent_for("#talon", "bob"), Some(Uuid::from_u128(1)));
        assert_eq!(c.agent_for("#ops", "bob"), Some(Uuid::from_u128(2)));
        assert_eq!(c.agent_for("#ops", "alice"), Some(Uuid::from_u128(3)));
    }
}
