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
use serde::Serialize;
use talon_llm::Message;
use uuid::Uuid;

use super::records::{SessionRecord, StoredMessage, Totals, TurnRecord};
use crate::KernelError;
use crate::agents::records as agents;
use crate::store::tables::{
    MESSAGES, SESSIONS, TURNS, put_message_rows, put_session_row, put_turn_row,
};
use crate::store::{self, Store, StoreError};

/// Longest session label, in bytes.
pub const MAX_LABEL_BYTES: usize = 128;

const SESSIONS_TABLE: &str = "sessions.v1";
const MESSAGES_TABLE: &str = "messages.v1";
const TURNS_TABLE: &str = "turns.v1";

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
    put_session_row(tx, session.id, &store::encode(SESSIONS_TABLE, session)?)
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

fn new_session(agent: Uuid, label: Option<String>, now: DateTime<Utc>) -> SessionRecord {
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
    let tx = store.db()?.begin_write()?;
    let mut record = agents::get_in(&tx, agent)?;
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
    let session = new_session(agent, label, store.now());
    put_in(&tx, &session)?;
    if make_current {
        record.session_id = Some(session.id);
        agents::put_in(&tx, &record)?;
    }
    tx.commit().map_err(StoreError::from)?;
    Ok(session)
}

/// The agent's current session, created (and made current) if it has none.
pub(crate) fn current(store: &Store, agent: Uuid) -> Result<SessionRecord, KernelError> {
    // The common case is a read; only a first message writes.
    {
        let tx = store.db()?.begin_read().map_err(StoreError::from)?;
        let record = agents::get_read(&tx, agent)?
            .ok_or_else(|| KernelError::NotFound(format!("agent {agent} not found")))?;
        if let Some(id) = record.session_id {
            let table = tx.open_table(SESSIONS).map_err(StoreError::from)?;
            if let Some(session) = get_in(&table, id)? {
                return Ok(session);
            }
        }
    }
    let tx = store.db()?.begin_write()?;
    let mut record = agents::get_in(&tx, agent)?;
    if let Some(id) = record.session_id {
        let table = tx.open_table(SESSIONS).map_err(StoreError::from)?;
        if let Some(session) = get_in(&table, id)? {
            return Ok(session);
        }
    }
    let session = new_session(agent, None, store.now());
    put_in(&tx, &session)?;
    record.session_id = Some(session.id);
    agents::put_in(&tx, &record)?;
    tx.commit().map_err(StoreError::from)?;
    Ok(session)
}

/// One session.
pub(crate) fn get(store: &Store, id: Uuid) -> Result<Option<SessionRecord>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(SESSIONS)?;
    get_in(&table, id)
}

/// Every session, or those of one agent, oldest first.
pub(crate) fn list(store: &Store, agent: Option<Uuid>) -> Result<Vec<SessionRecord>, StoreError> {
    let tx = store.db()?.begin_read()?;
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
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(MESSAGES)?;
    let key = session_key(session);
    let mut out = Vec::new();
    for entry in table.range((key.as_str(), 0)..=(key.as_str(), u64::MAX))? {
        let (_, value) = entry?;
        out.push(store::decode(MESSAGES_TABLE, value.value())?);
    }
    Ok(out)
}

/// The newest messages of a session, in order, as many as fit in
/// `max_tokens` by `cost`: read backwards over the key order and stopped at
/// the first that does not fit, so the work is bounded by the budget, not
/// by the session's length. Also whether older messages were left out.
pub(crate) fn recent_messages(
    store: &Store,
    session: Uuid,
    max_tokens: usize,
    cost: impl Fn(&Message) -> usize,
) -> Result<(Vec<StoredMessage>, bool), StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(MESSAGES)?;
    let key = session_key(session);
    let mut out: Vec<StoredMessage> = Vec::new();
    let mut used = 0usize;
    let mut cut = false;
    for entry in table
        .range((key.as_str(), 0)..=(key.as_str(), u64::MAX))?
        .rev()
    {
        let (_, value) = entry?;
        let message: StoredMessage = store::decode(MESSAGES_TABLE, value.value())?;
        used += cost(&message.message);
        if used > max_tokens {
            cut = true;
            break;
        }
        out.push(message);
    }
    out.reverse();
    Ok((out, cut))
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
pub(crate) fn commit_turn<M: std::borrow::Borrow<Message>>(
    store: &Store,
    session: Uuid,
    new_messages: &[M],
    turn: &TurnRecord,
) -> Result<SessionRecord, KernelError> {
    let now = store.now();
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
                    message: message.borrow().clone(),
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

/// Everything a turn's commit writes, with the values it writes. Its JSON is
/// the journal's redo record, which the store replays at recovery without
/// this type (see `store::journal::replay_turn`): keep the field names.
#[derive(Serialize)]
struct TurnWrites {
    session: SessionRecord,
    messages: Vec<StoredMessage>,
    turn: TurnRecord,
}

impl TurnWrites {
    fn apply(&self, tx: &WriteTransaction) -> Result<(), StoreError> {
        put_messages_in(tx, self.session.id, &self.messages)?;
        put_in(tx, &self.session)?;
        put_turn_in(tx, &self.turn)
    }
}

fn put_messages_in(
    tx: &WriteTransaction,
    session: Uuid,
    messages: &[StoredMessage],
) -> Result<(), StoreError> {
    let encoded = messages
        .iter()
        .map(|m| Ok((m.seq, store::encode(MESSAGES_TABLE, m)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    put_message_rows(
        tx,
        session,
        encoded.iter().map(|(seq, json)| (*seq, json.as_slice())),
    )
}

/// Longest error message a turn record keeps, in bytes: a provider's error
/// can carry a whole response body, and a client sending only failing turns
/// must not grow the store by more than a small record each.
pub const MAX_TURN_ERROR_BYTES: usize = 1024;
/// Longest sender id, name or channel a turn record keeps, in bytes.
pub const MAX_SENDER_FIELD_BYTES: usize = 256;

/// `text` cut to at most `max` bytes (on a character boundary), marked as cut.
fn cap(text: &mut String, max: usize) {
    if text.len() > max {
        let mut cut = max.saturating_sub(3);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
}

fn put_turn_in(tx: &WriteTransaction, turn: &TurnRecord) -> Result<(), StoreError> {
    let oversized = turn
        .error
        .as_ref()
        .is_some_and(|e| e.len() > MAX_TURN_ERROR_BYTES)
        || turn.sender.as_ref().is_some_and(|s| {
            [&s.id, &s.name, &s.channel_type]
                .iter()
                .any(|f| f.as_ref().is_some_and(|f| f.len() > MAX_SENDER_FIELD_BYTES))
        });
    let json = if oversized {
        let mut bounded = turn.clone();
        if let Some(error) = &mut bounded.error {
            cap(error, MAX_TURN_ERROR_BYTES);
        }
        if let Some(sender) = &mut bounded.sender {
            for field in [&mut sender.id, &mut sender.name, &mut sender.channel_type]
                .into_iter()
                .flatten()
            {
                cap(field, MAX_SENDER_FIELD_BYTES);
            }
        }
        store::encode(TURNS_TABLE, &bounded)?
    } else {
        store::encode(TURNS_TABLE, turn)?
    };
    put_turn_row(tx, turn.agent_id, turn.id, &json)
}

/// Records a turn that added no messages (a failed one).
pub(crate) fn record_turn(store: &Store, turn: &TurnRecord) -> Result<(), StoreError> {
    let tx = store.db()?.begin_write()?;
    put_turn_in(&tx, turn)?;
    tx.commit()?;
    Ok(())
}

fn modify<F>(store: &Store, session: Uuid, change: F) -> Result<SessionRecord, KernelError>
where
    F: FnOnce(&WriteTransaction, &mut SessionRecord) -> Result<(), KernelError>,
{
    let tx = store.db()?.begin_write()?;
    let mut record = {
        let table = tx.open_table(SESSIONS).map_err(StoreError::from)?;
        get_in(&table, session)?
            .ok_or_else(|| KernelError::NotFound(format!("session {session} not found")))?
    };
    change(&tx, &mut record)?;
    record.updated_at = store.now();
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
            at: store.now(),
            message: summary,
        };
        put_messages_in(tx, session, std::slice::from_ref(&stored))?;
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
    let tx = store.db()?.begin_write()?;
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
    if let Ok(mut agent) = agents::get_in(&tx, removed.agent_id)
        && agent.session_id == Some(session)
    {
        agent.session_id = None;
        agents::put_in(&tx, &agent)?;
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
    // Its own totals go with it; what it spent stays in the totals over
    // every agent and its models', so removing an agent refunds no budget.
    store::totals::remove_scope_in(tx, &key)
}

/// The newest `limit` turns of one agent, newest first.
pub(crate) fn turns_of(
    store: &Store,
    agent: Uuid,
    limit: usize,
) -> Result<Vec<TurnRecord>, StoreError> {
    let tx = store.db()?.begin_read()?;
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

/// The turns of every agent that `keep` keeps: a scan of every turn.
pub(crate) fn turns_where(
    store: &Store,
    keep: impl Fn(&TurnRecord) -> bool,
) -> Result<Vec<TurnRecord>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(TURNS)?;
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (_, value) = entry?;
        let turn: TurnRecord = store::decode(TURNS_TABLE, value.value())?;
        if keep(&turn) {
            out.push(turn);
        }
    }
    Ok(out)
}

/// Every turn that started at or after `since`, of every agent: a scan,
/// which the tests compare the running totals with.
#[cfg(test)]
pub(crate) fn turns_since(
    store: &Store,
    since: DateTime<Utc>,
) -> Result<Vec<TurnRecord>, StoreError> {
    let tx = store.db()?.begin_read()?;
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::agents::{AgentManifest, AgentRecord, AgentState};
    use crate::conversation::TurnStatus;

    pub(in crate::conversation) fn store_with_agent() -> (tempfile::TempDir, Store, Uuid) {
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
            tool_access: Default::default(),
            budget: Default::default(),
        };
        agents::insert(&store, &record).unwrap();
        (dir, store, record.id)
    }

    pub(in crate::conversation) fn turn(agent: Uuid, session: Uuid) -> TurnRecord {
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
            sender: None,
            ephemeral: false,
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
        agents::remove(&store, agent, &[remove_agent_in]).unwrap();
        assert!(get(&store, s.id).unwrap().is_none());
        assert!(messages(&store, s.id).unwrap().is_empty());
        assert!(turns_of(&store, agent, 10).unwrap().is_empty());
    }

    type TotalsRows = Vec<((String, String), store::totals::UsageTotals)>;

    /// Every row of the running totals, and the same rebuilt from the turn
    /// rows by the migration's code (in a transaction then dropped).
    fn totals_now_and_rebuilt(store: &Store) -> (TotalsRows, TotalsRows) {
        use crate::store::totals::{TURN_TOTALS, rebuild_in};
        fn all(
            table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
        ) -> Vec<((String, String), store::totals::UsageTotals)> {
            table
                .iter()
                .unwrap()
                .map(|e| {
                    let (k, v) = e.unwrap();
                    let (scope, bucket) = k.value();
                    let mut t: store::totals::UsageTotals = store::decode("t", v.value()).unwrap();
                    t.cost_usd = (t.cost_usd * 1e9).round() / 1e9;
                    ((scope.to_string(), bucket.to_string()), t)
                })
                .collect()
        }
        let now = {
            let tx = store.db().unwrap().begin_read().unwrap();
            all(&tx.open_table(TURN_TOTALS).unwrap())
        };
        let tx = store.db().unwrap().begin_write().unwrap();
        rebuild_in(&tx).unwrap();
        let rebuilt = all(&tx.open_table(TURN_TOTALS).unwrap());
        tx.abort().unwrap();
        (now, rebuilt)
    }

    #[test]
    fn running_totals_equal_a_scan_after_turns_failures_rewrites_and_replay() {
        use crate::store::totals::{self, ALL, TURN_TOTALS};
        let (dir, store, agent) = store_with_agent();
        let session = current(&store, agent).unwrap();
        let start = Utc::now() - chrono::Duration::days(3);
        let mut written = Vec::new();
        for i in 0..300u32 {
            let mut t = turn(agent, session.id);
            t.started_at = start + chrono::Duration::minutes(i64::from(i) * 17);
            t.cost_usd = f64::from(i % 7) * 0.013;
            t.iterations = i % 3;
            t.model = format!("m{}", i % 2);
            if i % 5 == 0 {
                t.status = TurnStatus::Failed;
                record_turn(&store, &t).unwrap();
            } else {
                let msgs = [Message::user(format!("q{i}")), Message::assistant("a")];
                commit_turn(&store, session.id, &msgs, &t).unwrap();
            }
            written.push(t);
        }
        // A row written again replaces its share instead of adding it twice.
        let mut again = written[7].clone();
        again.cost_usd = 2.0;
        record_turn(&store, &again).unwrap();
        written[7] = again;

        let (now, rebuilt) = totals_now_and_rebuilt(&store);
        assert_eq!(now, rebuilt, "incremental totals equal the rebuild");
        // And an independent scan: the cost of each day over every agent.
        let scan = turns_since(&store, start - chrono::Duration::days(1)).unwrap();
        assert_eq!(scan.len(), 300);
        let tx = store.db().unwrap().begin_read().unwrap();
        let table = tx.open_table(TURN_TOTALS).unwrap();
        for day in scan.iter().map(|t| t.started_at.date_naive()) {
            let want: f64 = scan
                .iter()
                .filter(|t| t.started_at.date_naive() == day)
                .map(|t| t.cost_usd)
                .sum();
            let want_turns = scan
                .iter()
                .filter(|t| t.started_at.date_naive() == day)
                .count();
            let got = totals::get(&table, ALL, &totals::day_bucket(day)).unwrap();
            assert!(
                (got.cost_usd - want).abs() < 1e-9,
                "{day}: {got:?} vs {want}"
            );
            assert_eq!(got.turns, want_turns as u64);
            let mine = totals::get(&table, &agent.to_string(), &totals::day_bucket(day)).unwrap();
            assert_eq!(mine.turns, want_turns as u64);
        }
        drop((table, tx));

        // After a crash, the journal's replay adds each lost turn once.
        let (_copy, recovered) = crash_copy(dir.path(), true);
        assert_eq!(totals_now_and_rebuilt(&recovered).0, now);
        let (_lost, without) = crash_copy(dir.path(), false);
        let (now, rebuilt) = totals_now_and_rebuilt(&without);
        assert_eq!(now, rebuilt, "the durable state alone is consistent too");
    }

    #[test]
    fn an_older_store_gets_its_totals_built_once_by_the_migration() {
        use crate::store::tables::META;
        use crate::store::totals::{ALL, TURN_TOTALS};
        let (dir, store, agent) = store_with_agent();
        let session = current(&store, agent).unwrap();
        for _ in 0..20 {
            commit_turn(
                &store,
                session.id,
                &[Message::user("q")],
                &turn(agent, session.id),
            )
            .unwrap();
        }
        let (expected, _) = totals_now_and_rebuilt(&store);
        // Make it a schema-8 store: no totals table.
        store.checkpoint().unwrap();
        let tx = store.db().unwrap().begin_write().unwrap();
        tx.delete_table(TURN_TOTALS).unwrap();
        tx.open_table(META)
            .unwrap()
            .insert("schema_version", 8)
            .unwrap();
        tx.commit().unwrap();
        drop(store);
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        assert_eq!(store.schema_version().unwrap(), store::SCHEMA_VERSION);
        let (now, _) = totals_now_and_rebuilt(&store);
        assert_eq!(now, expected);
        let all_month = now
            .iter()
            .find(|((scope, bucket), _)| scope == ALL && bucket.starts_with('m'))
            .map(|(_, t)| t.turns);
        assert_eq!(all_month, Some(20));
    }

    #[test]
    fn failing_turns_keep_a_bounded_record_each() {
        use crate::conversation::records::Sender;
        let (_dir, store, agent) = store_with_agent();
        let session = current(&store, agent).unwrap();
        let huge = "é".repeat(200_000);
        for _ in 0..200 {
            let mut t = turn(agent, session.id);
            t.status = TurnStatus::Failed;
            t.error = Some(huge.clone());
            t.sender = Some(Sender {
                id: Some(huge.clone()),
                name: Some(huge.clone()),
                channel_type: None,
            });
            record_turn(&store, &t).unwrap();
        }
        let kept = turns_of(&store, agent, 1).unwrap().remove(0);
        assert!(kept.error.as_ref().unwrap().len() <= MAX_TURN_ERROR_BYTES);
        assert!(kept.error.unwrap().ends_with("..."));
        assert!(kept.sender.unwrap().name.unwrap().len() <= MAX_SENDER_FIELD_BYTES);
        let stats = store::stats::stats(&store).unwrap();
        let turns = stats.tables.iter().find(|t| t.name == TURNS_TABLE).unwrap();
        assert_eq!(turns.rows, 200);
        assert!(
            turns.stored_bytes / 200 < 2 * 1024,
            "{} bytes a failed turn",
            turns.stored_bytes / 200
        );
    }

    #[test]
    fn recent_messages_reads_only_the_newest_that_fit() {
        let (_dir, store, agent) = store_with_agent();
        let session = current(&store, agent).unwrap();
        for i in 0..500 {
            let msgs = [Message::user(format!("q{i:03}")), Message::assistant("a")];
            commit_turn(&store, session.id, &msgs, &turn(agent, session.id)).unwrap();
        }
        let (window, cut) = recent_messages(&store, session.id, 10, |_| 1).unwrap();
        assert!(cut);
        let texts: Vec<String> = window.iter().map(|m| m.message.text()).collect();
        assert_eq!(texts.len(), 10);
        assert_eq!(texts[0], "q495");
        assert_eq!(texts[9], "a");
        assert_eq!(window[9].seq, 999);
        let (all, cut) = recent_messages(&store, session.id, usize::MAX, |_| 1).unwrap();
        assert!(!cut);
        assert_eq!(all.len(), 1000);
    }
}
