//! Sessions: an agent's conversations, their messages, and the record of each turn.
//!
//! A session's messages live under `(session id, sequence number)`, so a
//! conversation is one range read and a turn appends without rewriting what
//! came before. A turn's new messages, the session's counters and the turn's
//! record (tokens, cost, tool calls, timings) commit in one transaction: a
//! reply the API returned is on disk, and a crash mid-turn leaves the session
//! as it was before the turn.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use talon_llm::Message;
use uuid::Uuid;

use crate::KernelError;
use crate::agents::{self, AgentRecord};
use crate::kernel::blocking_kernel;
use crate::store::{self, AGENTS, MESSAGES, SESSIONS, Store, StoreError, TURNS};

/// Longest session label, in bytes.
pub const MAX_LABEL_BYTES: usize = 128;

const SESSIONS_TABLE: &str = "sessions.v1";
const MESSAGES_TABLE: &str = "messages.v1";
const TURNS_TABLE: &str = "turns.v1";

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
    fn add(&mut self, turn: &TurnRecord) {
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

/// How a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnStatus {
    /// The model gave its final answer.
    Completed,
    /// An interrupt stopped it at a tool-call boundary.
    Interrupted,
    /// `stop` cancelled it.
    Stopped,
    /// It reached the iteration limit.
    MaxIterations,
    /// A model call failed.
    Failed,
    /// A spending limit was reached between model calls.
    BudgetExceeded,
    /// Not a turn: the model summarized the session.
    Compaction,
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
}

fn session_key(id: Uuid) -> String {
    id.to_string()
}

fn get_in<T: ReadableTable<&'static str, &'static [u8]>>(
    table: &T,
    id: Uuid,
) -> Result<Option<SessionRecord>, StoreError> {
    table
        .get(session_key(id).as_str())?
        .map(|v| store::decode(SESSIONS_TABLE, v.value()))
        .transpose()
}

fn put_in(tx: &WriteTransaction, session: &SessionRecord) -> Result<(), StoreError> {
    let bytes = store::encode(SESSIONS_TABLE, session)?;
    tx.open_table(SESSIONS)?
        .insert(session_key(session.id).as_str(), bytes.as_slice())?;
    Ok(())
}

fn agent_in(tx: &WriteTransaction, agent: Uuid) -> Result<AgentRecord, KernelError> {
    let table = tx.open_table(AGENTS).map_err(StoreError::from)?;
    let value = table
        .get(agent.to_string().as_str())
        .map_err(StoreError::from)?
        .ok_or_else(|| KernelError::NotFound(format!("agent {agent} not found")))?;
    Ok(store::decode("agents.v1", value.value())?)
}

fn put_agent_in(tx: &WriteTransaction, agent: &AgentRecord) -> Result<(), StoreError> {
    let bytes = store::encode("agents.v1", agent)?;
    tx.open_table(AGENTS)?
        .insert(agent.id.to_string().as_str(), bytes.as_slice())?;
    Ok(())
}

fn sessions_of(
    tx_table: &impl ReadableTable<&'static str, &'static [u8]>,
    agent: Uuid,
) -> Result<Vec<SessionRecord>, StoreError> {
    let mut out = Vec::new();
    for entry in tx_table.iter()? {
        let (_, value) = entry?;
        let session: SessionRecord = store::decode(SESSIONS_TABLE, value.value())?;
        if session.agent_id == agent {
            out.push(session);
        }
    }
    out.sort_by_key(|s| (s.created_at, s.id));
    Ok(out)
}

fn validate_label(label: &str) -> Result<(), KernelError> {
    if label.trim().is_empty()
        || label.len() > MAX_LABEL_BYTES
        || label.chars().any(char::is_control)
    {
        return Err(KernelError::Invalid(format!(
            "a session label must be 1-{MAX_LABEL_BYTES} bytes of printable text"
        )));
    }
    Ok(())
}

fn new_session(agent: Uuid, label: Option<String>) -> SessionRecord {
    let now = Utc::now();
    SessionRecord {
        id: Uuid::new_v4(),
        agent_id: agent,
        label,
        created_at: now,
        updated_at: now,
        message_count: 0,
        next_seq: 0,
        totals: Totals::default(),
        compactions: 0,
    }
}

/// Creates a session of `agent`; with `make_current` the agent switches to it.
pub(crate) fn create(
    store: &Store,
    agent: Uuid,
    label: Option<String>,
    make_current: bool,
) -> Result<SessionRecord, KernelError> {
    if let Some(label) = &label {
        validate_label(label)?;
    }
    let tx = store.db().begin_write().map_err(StoreError::from)?;
    let mut record = agent_in(&tx, agent)?;
    if let Some(label) = &label {
        let table = tx.open_table(SESSIONS).map_err(StoreError::from)?;
        if sessions_of(&table, agent)?
            .iter()
            .any(|s| s.label.as_deref() == Some(label))
        {
            return Err(KernelError::Conflict(format!(
                "agent {agent} already has a session labelled `{label}`"
            )));
        }
    }
    let session = new_session(agent, label);
    put_in(&tx, &session)?;
    if make_current {
        record.session_id = Some(session.id);
        put_agent_in(&tx, &record)?;
    }
    tx.commit().map_err(StoreError::from)?;
    Ok(session)
}

/// The agent's current session, created (and made current) if it has none.
pub(crate) fn current(store: &Store, agent: Uuid) -> Result<SessionRecord, KernelError> {
    // The common case is a read; only a first message writes.
    {
        let tx = store.db().begin_read().map_err(StoreError::from)?;
        let agents_table = tx.open_table(AGENTS).map_err(StoreError::from)?;
        let value = agents_table
            .get(agent.to_string().as_str())
            .map_err(StoreError::from)?
            .ok_or_else(|| KernelError::NotFound(format!("agent {agent} not found")))?;
        let record: AgentRecord = store::decode("agents.v1", value.value())?;
        if let Some(id) = record.session_id {
            let table = tx.open_table(SESSIONS).map_err(StoreError::from)?;
            if let Some(session) = get_in(&table, id)? {
                return Ok(session);
            }
        }
    }
    let tx = store.db().begin_write().map_err(StoreError::from)?;
    let mut record = agent_in(&tx, agent)?;
    if let Some(id) = record.session_id {
        let table = tx.open_table(SESSIONS).map_err(StoreError::from)?;
        if let Some(session) = get_in(&table, id)? {
            return Ok(session);
        }
    }
    let session = new_session(agent, None);
    put_in(&tx, &session)?;
    record.session_id = Some(session.id);
    put_agent_in(&tx, &record)?;
    tx.commit().map_err(StoreError::from)?;
    Ok(session)
}

/// One session.
pub(crate) fn get(store: &Store, id: Uuid) -> Result<Option<SessionRecord>, StoreError> {
    let tx = store.db().begin_read()?;
    let table = tx.open_table(SESSIONS)?;
    get_in(&table, id)
}

/// Every session, or those of one agent, oldest first.
pub(crate) fn list(store: &Store, agent: Option<Uuid>) -> Result<Vec<SessionRecord>, StoreError> {
    let tx = store.db().begin_read()?;
    let table = tx.open_table(SESSIONS)?;
    if let Some(agent) = agent {
        return sessions_of(&table, agent);
    }
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (_, value) = entry?;
        out.push(store::decode::<SessionRecord>(
            SESSIONS_TABLE,
            value.value(),
        )?);
    }
    out.sort_by_key(|s| (s.created_at, s.id));
    Ok(out)
}

/// The messages of a session, in order.
pub(crate) fn messages(store: &Store, session: Uuid) -> Result<Vec<StoredMessage>, StoreError> {
    let tx = store.db().begin_read()?;
    let table = tx.open_table(MESSAGES)?;
    let key = session_key(session);
    let mut out = Vec::new();
    for entry in table.range((key.as_str(), 0)..=(key.as_str(), u64::MAX))? {
        let (_, value) = entry?;
        out.push(store::decode(MESSAGES_TABLE, value.value())?);
    }
    Ok(out)
}

fn remove_messages_in(
    tx: &WriteTransaction,
    session: Uuid,
    below_seq: u64,
) -> Result<u64, StoreError> {
    let key = session_key(session);
    let mut table = tx.open_table(MESSAGES)?;
    let seqs: Vec<u64> = table
        .range((key.as_str(), 0)..(key.as_str(), below_seq))?
        .map(|entry| entry.map(|(k, _)| k.value().1))
        .collect::<Result<_, _>>()?;
    for seq in &seqs {
        table.remove((key.as_str(), *seq))?;
    }
    Ok(seqs.len() as u64)
}

/// Appends a turn's messages and records the turn, in one transaction.
pub(crate) fn commit_turn(
    store: &Store,
    session: Uuid,
    new_messages: &[Message],
    turn: &TurnRecord,
) -> Result<SessionRecord, KernelError> {
    let now = Utc::now();
    store.write_journaled(|tx| {
        let mut record = {
            let table = tx.open_table(SESSIONS).map_err(StoreError::from)?;
            get_in(&table, session)?
                .ok_or_else(|| KernelError::NotFound(format!("session {session} not found")))?
        };
        let messages = new_messages
            .iter()
            .map(|message| {
                let stored = StoredMessage {
                    seq: record.next_seq,
                    at: now,
                    message: message.clone(),
                };
                record.next_seq += 1;
                record.message_count += 1;
                stored
            })
            .collect();
        record.totals.add(turn);
        record.updated_at = now;
        let writes = TurnWrites {
            session: record,
            messages,
            turn: turn.clone(),
        };
        writes.apply(tx)?;
        let redo = store::encode(JOURNAL_RECORD, &writes)?;
        Ok((writes.session, redo))
    })
}

const JOURNAL_RECORD: &str = "the turn journal";

/// Everything a turn's commit writes, with the values it writes: applying it
/// again (see [`redo`]) gives the same rows.
#[derive(Serialize, Deserialize)]
struct TurnWrites {
    session: SessionRecord,
    messages: Vec<StoredMessage>,
    turn: TurnRecord,
}

impl TurnWrites {
    fn apply(&self, tx: &WriteTransaction) -> Result<(), StoreError> {
        {
            let key = session_key(self.session.id);
            let mut table = tx.open_table(MESSAGES)?;
            for stored in &self.messages {
                let bytes = store::encode(MESSAGES_TABLE, stored)?;
                table.insert((key.as_str(), stored.seq), bytes.as_slice())?;
            }
        }
        put_in(tx, &self.session)?;
        put_turn_in(tx, &self.turn)
    }
}

/// Applies a turn's journaled writes again, at recovery.
pub(crate) fn redo(tx: &WriteTransaction, record: &[u8]) -> Result<(), StoreError> {
    store::decode::<TurnWrites>(JOURNAL_RECORD, record)?.apply(tx)
}

fn put_turn_in(tx: &WriteTransaction, turn: &TurnRecord) -> Result<(), StoreError> {
    let bytes = store::encode(TURNS_TABLE, turn)?;
    tx.open_table(TURNS)?.insert(
        (
            turn.agent_id.to_string().as_str(),
            turn.id.to_string().as_str(),
        ),
        bytes.as_slice(),
    )?;
    Ok(())
}

/// Records a turn that added no messages (a failed one).
pub(crate) fn record_turn(store: &Store, turn: &TurnRecord) -> Result<(), StoreError> {
    let tx = store.db().begin_write()?;
    put_turn_in(&tx, turn)?;
    tx.commit()?;
    Ok(())
}

fn modify<F>(store: &Store, session: Uuid, change: F) -> Result<SessionRecord, KernelError>
where
    F: FnOnce(&WriteTransaction, &mut SessionRecord) -> Result<(), KernelError>,
{
    let tx = store.db().begin_write().map_err(StoreError::from)?;
    let mut record = {
        let table = tx.open_table(SESSIONS).map_err(StoreError::from)?;
        get_in(&table, session)?
            .ok_or_else(|| KernelError::NotFound(format!("session {session} not found")))?
    };
    change(&tx, &mut record)?;
    record.updated_at = Utc::now();
    put_in(&tx, &record)?;
    tx.commit().map_err(StoreError::from)?;
    Ok(record)
}

/// Removes every message of a session; the session itself stays.
pub(crate) fn clear(store: &Store, session: Uuid) -> Result<SessionRecord, KernelError> {
    modify(store, session, |tx, record| {
        remove_messages_in(tx, session, u64::MAX)?;
        record.message_count = 0;
        Ok(())
    })
}

/// Replaces the messages before `keep_from` (a sequence number) with `summary`.
pub(crate) fn compact(
    store: &Store,
    session: Uuid,
    keep_from: u64,
    summary: Message,
) -> Result<(SessionRecord, u64), KernelError> {
    let mut removed = 0;
    let record = modify(store, session, |tx, record| {
        if keep_from == 0 {
            return Err(KernelError::Invalid("nothing to compact".into()));
        }
        removed = remove_messages_in(tx, session, keep_from)?;
        // The summary takes the slot just before the first kept message.
        let stored = StoredMessage {
            seq: keep_from - 1,
            at: Utc::now(),
            message: summary,
        };
        let bytes = store::encode(MESSAGES_TABLE, &stored)?;
        tx.open_table(MESSAGES)
            .map_err(StoreError::from)?
            .insert(
                (session_key(session).as_str(), keep_from - 1),
                bytes.as_slice(),
            )
            .map_err(StoreError::from)?;
        record.message_count = record.message_count + 1 - removed;
        record.compactions += 1;
        Ok(())
    })?;
    Ok((record, removed))
}

/// Sets or clears a session's label.
pub(crate) fn set_label(
    store: &Store,
    session: Uuid,
    label: Option<String>,
) -> Result<SessionRecord, KernelError> {
    if let Some(label) = &label {
        validate_label(label)?;
    }
    modify(store, session, |tx, record| {
        if let Some(label) = &label {
            let table = tx.open_table(SESSIONS).map_err(StoreError::from)?;
            if sessions_of(&table, record.agent_id)?
                .iter()
                .any(|s| s.id != session && s.label.as_deref() == Some(label))
            {
                return Err(KernelError::Conflict(format!(
                    "agent {} already has a session labelled `{label}`",
                    record.agent_id
                )));
            }
        }
        record.label = label;
        Ok(())
    })
}

/// Makes `session` the agent's current one.
pub(crate) fn switch(store: &Store, agent: Uuid, session: Uuid) -> Result<(), KernelError> {
    agents::update(store, agent, |record| {
        let owner = get(store, session)?
            .ok_or_else(|| KernelError::NotFound(format!("session {session} not found")))?
            .agent_id;
        if owner != agent {
            return Err(KernelError::NotFound(format!(
                "session {session} does not belong to agent {agent}"
            )));
        }
        record.session_id = Some(session);
        Ok(None)
    })
    .map(|_| ())
}

/// Deletes a session and its messages; false when it did not exist.
pub(crate) fn delete(store: &Store, session: Uuid) -> Result<bool, KernelError> {
    let tx = store.db().begin_write().map_err(StoreError::from)?;
    let removed = {
        let mut table = tx.open_table(SESSIONS).map_err(StoreError::from)?;
        table
            .remove(session_key(session).as_str())
            .map_err(StoreError::from)?
            .map(|v| store::decode::<SessionRecord>(SESSIONS_TABLE, v.value()))
            .transpose()?
    };
    let Some(removed) = removed else {
        return Ok(false);
    };
    remove_messages_in(&tx, session, u64::MAX)?;
    if let Ok(mut agent) = agent_in(&tx, removed.agent_id)
        && agent.session_id == Some(session)
    {
        agent.session_id = None;
        put_agent_in(&tx, &agent)?;
    }
    tx.commit().map_err(StoreError::from)?;
    Ok(true)
}

/// Removes an agent's sessions, messages and turn records inside `tx`.
pub(crate) fn remove_agent_in(tx: &WriteTransaction, agent: Uuid) -> Result<(), StoreError> {
    let sessions: Vec<Uuid> = {
        let table = tx.open_table(SESSIONS)?;
        sessions_of(&table, agent)?.iter().map(|s| s.id).collect()
    };
    for session in sessions {
        remove_messages_in(tx, session, u64::MAX)?;
        tx.open_table(SESSIONS)?
            .remove(session_key(session).as_str())?;
    }
    let key = agent.to_string();
    let mut turns = tx.open_table(TURNS)?;
    let mut ids: Vec<String> = Vec::new();
    for entry in turns.range((key.as_str(), "")..(key.as_str(), "~"))? {
        let (k, _) = entry?;
        ids.push(k.value().1.to_string());
    }
    for id in ids {
        turns.remove((key.as_str(), id.as_str()))?;
    }
    Ok(())
}

/// The newest `limit` turns of one agent, newest first.
pub(crate) fn turns_of(
    store: &Store,
    agent: Uuid,
    limit: usize,
) -> Result<Vec<TurnRecord>, StoreError> {
    let tx = store.db().begin_read()?;
    let table = tx.open_table(TURNS)?;
    let key = agent.to_string();
    let mut out = Vec::new();
    // Keys are `(agent, v7 id)`: "~" sorts after every id of this agent.
    for entry in table.range((key.as_str(), "")..(key.as_str(), "~"))?.rev() {
        let (_, value) = entry?;
        out.push(store::decode(TURNS_TABLE, value.value())?);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// Every turn that started at or after `since`, of every agent.
pub(crate) fn turns_since(
    store: &Store,
    since: DateTime<Utc>,
) -> Result<Vec<TurnRecord>, StoreError> {
    let tx = store.db().begin_read()?;
    let table = tx.open_table(TURNS)?;
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (_, value) = entry?;
        let turn: TurnRecord = store::decode(TURNS_TABLE, value.value())?;
        if turn.started_at >= since {
            out.push(turn);
        }
    }
    out.sort_by_key(|t| t.started_at);
    Ok(out)
}

/// A session with its messages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionView {
    /// The session.
    #[serde(flatten)]
    pub session: SessionRecord,
    /// Its messages, in order.
    pub messages: Vec<StoredMessage>,
    /// Estimated tokens the messages take in a prompt.
    pub context_window_tokens: u64,
}

impl crate::Kernel {
    /// A session and its messages; the agent's current one when `session` is `None`.
    pub async fn session_view(
        &self,
        agent: Option<uuid::Uuid>,
        session: Option<Uuid>,
    ) -> Result<SessionView, KernelError> {
        let store = self.store().clone();
        blocking_kernel(move || {
            let record = match (agent, session) {
                (Some(agent), None) => current(&store, agent)?,
                (agent, Some(id)) => get(&store, id)?
                    .filter(|s| agent.is_none_or(|a| a == s.agent_id))
                    .ok_or_else(|| KernelError::NotFound(format!("session {id} not found")))?,
                (None, None) => return Err(KernelError::Invalid("no session named".into())),
            };
            let messages = messages(&store, record.id)?;
            let chars: usize = messages.iter().map(|m| m.message.text().len()).sum();
            Ok(SessionView {
                session: record,
                context_window_tokens: (chars / 4) as u64,
                messages,
            })
        })
        .await
    }

    /// Sessions of one agent, or of all.
    pub async fn sessions(&self, agent: Option<Uuid>) -> Result<Vec<SessionRecord>, KernelError> {
        if let Some(agent) = agent {
            self.agent(agent).await?;
        }
        let store = self.store().clone();
        Ok(store::blocking(move || list(&store, agent)).await?)
    }

    /// A new session of `agent`; with `make_current` the agent switches to it.
    pub async fn create_session(
        &self,
        agent: Uuid,
        label: Option<String>,
        make_current: bool,
    ) -> Result<SessionRecord, KernelError> {
        let store = self.store().clone();
        blocking_kernel(move || create(&store, agent, label, make_current)).await
    }

    /// Makes `session` the agent's current one.
    pub async fn switch_session(&self, agent: Uuid, session: Uuid) -> Result<(), KernelError> {
        let store = self.store().clone();
        blocking_kernel(move || switch(&store, agent, session)).await
    }

    /// Removes every message of the agent's current session.
    pub async fn clear_history(&self, agent: Uuid) -> Result<SessionRecord, KernelError> {
        let store = self.store().clone();
        let session = blocking_kernel({
            let store = store.clone();
            move || current(&store, agent)
        })
        .await?;
        let live = self.live().get(session.id, agent);
        let _turn = live.turn_lock.lock().await;
        blocking_kernel(move || clear(&store, session.id)).await
    }

    /// Starts the agent on a fresh session (the old one is kept) and clears
    /// pending interrupts; the new session.
    pub async fn reset_session(&self, agent: Uuid) -> Result<SessionRecord, KernelError> {
        let store = self.store().clone();
        if let Some(old) = self.agent(agent).await?.session_id
            && let Some(live) = self.live().find(old)
        {
            live.clear_interrupt();
        }
        blocking_kernel(move || create(&store, agent, None, true)).await
    }

    /// Deletes a session and its messages.
    pub async fn delete_session(&self, session: Uuid) -> Result<(), KernelError> {
        self.live().forget(session);
        let store = self.store().clone();
        if blocking_kernel(move || delete(&store, session)).await? {
            Ok(())
        } else {
            Err(KernelError::NotFound(format!(
                "session {session} not found"
            )))
        }
    }

    /// Sets or clears a session's label.
    pub async fn label_session(
        &self,
        session: Uuid,
        label: Option<String>,
    ) -> Result<SessionRecord, KernelError> {
        let store = self.store().clone();
        blocking_kernel(move || set_label(&store, session, label)).await
    }

    /// The agent's session with this label.
    pub async fn session_by_label(
        &self,
        agent: Uuid,
        label: String,
    ) -> Result<SessionRecord, KernelError> {
        self.sessions(Some(agent))
            .await?
            .into_iter()
            .find(|s| s.label.as_deref() == Some(label.as_str()))
            .ok_or_else(|| KernelError::NotFound(format!("no session labelled `{label}`")))
    }

    /// The session of `agent` that holds what `sender` tells it through
    /// `agent_send`, labelled `agent:<sender>`: created on first use, and
    /// apart from the conversations people have with it.
    pub(crate) async fn delegation_session(
        &self,
        agent: Uuid,
        sender: &str,
    ) -> Result<Uuid, KernelError> {
        let label = format!("agent:{sender}");
        let store = self.store().clone();
        blocking_kernel(move || {
            let find = || -> Result<Option<Uuid>, KernelError> {
                Ok(list(&store, Some(agent))?
                    .into_iter()
                    .find(|s| s.label.as_deref() == Some(label.as_str()))
                    .map(|s| s.id))
            };
            if let Some(id) = find()? {
                return Ok(id);
            }
            match create(&store, agent, Some(label.clone()), false) {
                Ok(session) => Ok(session.id),
                // Created meanwhile by another turn of the same sender.
                Err(KernelError::Conflict(_)) => find()?.ok_or_else(|| {
                    KernelError::Conflict(format!("session `{label}` vanished while created"))
                }),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Asks a session's running turn to stop at its next tool-call boundary.
    pub async fn interrupt_session(&self, agent: Uuid, session: Uuid) -> Result<(), KernelError> {
        let record = self.session_view(Some(agent), Some(session)).await?.session;
        self.live().get(record.id, agent).interrupt();
        Ok(())
    }

    /// Cancels every running turn of an agent; how many there were.
    pub async fn stop_agent(&self, agent: Uuid) -> Result<usize, KernelError> {
        self.agent(agent).await?;
        Ok(self.live().cancel_agent(agent))
    }

    /// The newest turns of an agent, newest first.
    pub async fn turns(&self, agent: Uuid, limit: usize) -> Result<Vec<TurnRecord>, KernelError> {
        self.agent(agent).await?;
        let store = self.store().clone();
        Ok(store::blocking(move || turns_of(&store, agent, limit)).await?)
    }

    /// Every turn since `since`, of every agent.
    pub async fn turns_since(&self, since: DateTime<Utc>) -> Result<Vec<TurnRecord>, KernelError> {
        let store = self.store().clone();
        Ok(store::blocking(move || turns_since(&store, since)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::{AgentManifest, AgentState};

    fn store_with_agent() -> (tempfile::TempDir, Store, Uuid) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        let now = Utc::now();
        let record = AgentRecord {
            id: Uuid::new_v4(),
            manifest: AgentManifest {
                name: "a".into(),
                ..Default::default()
            },
            manifest_toml: "name = \"a\"".into(),
            state: AgentState::Running,
            created_at: now,
            last_active: now,
            session_id: None,
            mode: Default::default(),
            budget: Default::default(),
        };
        agents::insert(&store, &record).unwrap();
        (dir, store, record.id)
    }

    fn turn(agent: Uuid, session: Uuid) -> TurnRecord {
        TurnRecord {
            id: Uuid::now_v7(),
            agent_id: agent,
            session_id: session,
            started_at: Utc::now(),
            duration_ms: 1,
            iterations: 1,
            provider: "p".into(),
            model: "m".into(),
            input_tokens: 10,
            output_tokens: 5,
            cost_usd: 0.5,
            tool_calls: vec![],
            status: TurnStatus::Completed,
            error: None,
        }
    }

    #[test]
    fn turns_append_in_order_and_compaction_keeps_the_tail() {
        let (_dir, store, agent) = store_with_agent();
        let session = current(&store, agent).unwrap();
        assert_eq!(current(&store, agent).unwrap().id, session.id, "stable");
        for i in 0..3 {
            let msgs = [
                Message::user(format!("q{i}")),
                Message::assistant(format!("a{i}")),
            ];
            commit_turn(&store, session.id, &msgs, &turn(agent, session.id)).unwrap();
        }
        let all = messages(&store, session.id).unwrap();
        assert_eq!(all.len(), 6);
        assert_eq!(all[5].message.text(), "a2");
        let (record, removed) = compact(&store, session.id, 4, Message::user("summary")).unwrap();
        assert_eq!((removed, record.message_count), (4, 3));
        let texts: Vec<String> = messages(&store, session.id)
            .unwrap()
            .iter()
            .map(|m| m.message.text())
            .collect();
        assert_eq!(texts, ["summary", "q2", "a2"]);
        assert_eq!(record.totals.turns, 3);
        assert_eq!(turns_of(&store, agent, 2).unwrap().len(), 2);
    }

    /// The files as a `kill -9` at this moment would leave them: what the
    /// process wrote, without anything only in its memory.
    fn crash_copy(dir: &std::path::Path, journal: bool) -> (tempfile::TempDir, Store) {
        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(dir.join("t.redb"), copy.path().join("t.redb")).unwrap();
        if journal {
            std::fs::copy(dir.join("t.journal"), copy.path().join("t.journal")).unwrap();
        }
        let store = Store::open(&copy.path().join("t.redb")).unwrap();
        (copy, store)
    }

    #[test]
    fn journaled_turns_survive_a_crash_and_later_durable_writes_are_kept() {
        let (dir, store, agent) = store_with_agent();
        let session = current(&store, agent).unwrap();
        for i in 0..3 {
            let msgs = [Message::user(format!("q{i}")), Message::assistant("a")];
            commit_turn(&store, session.id, &msgs, &turn(agent, session.id)).unwrap();
        }
        // The database file alone has only the durable state: the session, empty.
        let (_lost, without) = crash_copy(dir.path(), false);
        assert_eq!(messages(&without, session.id).unwrap().len(), 0);
        // With the journal, every acknowledged turn is back.
        let (_copy, recovered) = crash_copy(dir.path(), true);
        let record = get(&recovered, session.id).unwrap().unwrap();
        assert_eq!((record.message_count, record.totals.turns), (6, 3));
        assert_eq!(
            messages(&recovered, session.id).unwrap()[4].message.text(),
            "q2"
        );
        assert_eq!(turns_of(&recovered, agent, 10).unwrap().len(), 3);
        // A recovered store goes on from where the journal left off.
        let msgs = [Message::user("q3"), Message::assistant("a")];
        commit_turn(&recovered, session.id, &msgs, &turn(agent, session.id)).unwrap();
        assert_eq!(
            messages(&recovered, session.id).unwrap()[6].message.text(),
            "q3"
        );

        // A durable write after the turns (a label) is not undone by replaying them.
        set_label(&store, session.id, Some("kept".into())).unwrap();
        let msgs = [Message::user("q4"), Message::assistant("a")];
        commit_turn(&store, session.id, &msgs, &turn(agent, session.id)).unwrap();
        let (_copy, recovered) = crash_copy(dir.path(), true);
        let record = get(&recovered, session.id).unwrap().unwrap();
        assert_eq!(record.label.as_deref(), Some("kept"));
        assert_eq!((record.message_count, record.totals.turns), (8, 4));
    }

    #[test]
    fn turns_too_large_for_the_journal_commit_durably() {
        let (dir, store, agent) = store_with_agent();
        let session = current(&store, agent).unwrap();
        let big = "x".repeat(300_000);
        for _ in 0..5 {
            let msgs = [Message::user(big.clone()), Message::assistant("a")];
            commit_turn(&store, session.id, &msgs, &turn(agent, session.id)).unwrap();
        }
        let msgs = [Message::user("small"), Message::assistant("a")];
        commit_turn(&store, session.id, &msgs, &turn(agent, session.id)).unwrap();
        let (_copy, recovered) = crash_copy(dir.path(), true);
        assert_eq!(
            get(&recovered, session.id).unwrap().unwrap().message_count,
            12
        );
        let (_lost, without) = crash_copy(dir.path(), false);
        assert!(
            messages(&without, session.id).unwrap().len() >= 8,
            "the journal filled up, so a commit was a checkpoint"
        );
    }

    #[test]
    fn labels_are_unique_per_agent_and_removal_takes_everything() {
        let (_dir, store, agent) = store_with_agent();
        let s = create(&store, agent, Some("work".into()), false).unwrap();
        assert!(matches!(
            create(&store, agent, Some("work".into()), false),
            Err(KernelError::Conflict(_))
        ));
        assert!(matches!(
            create(&store, agent, Some("\u{7}".into()), false),
            Err(KernelError::Invalid(_))
        ));
        commit_turn(&store, s.id, &[Message::user("x")], &turn(agent, s.id)).unwrap();
        agents::remove(&store, agent).unwrap();
        assert!(get(&store, s.id).unwrap().is_none());
        assert!(messages(&store, s.id).unwrap().is_empty());
        assert!(turns_of(&store, agent, 10).unwrap().is_empty());
    }
}
