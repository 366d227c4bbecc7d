//! The windows of recently active sessions: the newest messages a turn sends
//! to the model, kept decoded between turns.
//!
//! Without it, every turn of a long session reads its whole window back from
//! the store and decodes it (400 messages for a 2,000-token budget of short
//! ones): that work grew with the budget and made a turn in a long session
//! cost twice one in a new session. A window read once is kept here; a turn's
//! commit appends its messages to it and drops what slid out of the budget,
//! so the store is read again only after a miss.
//!
//! An entry is trusted only while the session's record still carries the
//! stamp (next sequence number, message count, compactions) it was made
//! from: every write to a session's messages (a turn's commit, clearing,
//! compaction, deletion) changes one of them, so a window changed behind the
//! cache's back is a miss, never a stale answer. The entries share a bound in
//! bytes (`[agents] window_cache_mib`); the least recently used go first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use talon_llm::{ContentPart, Message};
use uuid::Uuid;

use super::records::SessionRecord;

/// What identifies one state of a session's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    next_seq: u64,
    message_count: u64,
    compactions: u32,
}

impl From<&SessionRecord> for Stamp {
    fn from(session: &SessionRecord) -> Self {
        Self {
            next_seq: session.next_seq,
            message_count: session.message_count,
            compactions: session.compactions,
        }
    }
}

/// One session's window.
#[derive(Debug)]
struct Entry {
    /// The agent the session belongs to.
    agent: Uuid,
    stamp: Stamp,
    /// The newest messages, oldest first, with their cost in tokens. A turn
    /// shares them (its history, the model request), it does not copy them.
    messages: VecDeque<(Arc<Message>, usize)>,
    /// Their tokens, summed.
    tokens: usize,
    /// The budget the window was read for: it answers any smaller one.
    covers: usize,
    /// Whether it starts at the session's first message (nothing was cut).
    complete: bool,
    /// Bytes it holds, estimated.
    bytes: usize,
    /// When it was last used, on the cache's clock.
    used: u64,
}

impl Entry {
    /// Adds `messages` as the newest.
    fn extend(&mut self, messages: &[Arc<Message>], cost: impl Fn(&Message) -> usize) {
        for message in messages {
            let tokens = cost(message);
            self.tokens += tokens;
            self.bytes += message_bytes(message);
            self.messages.push_back((Arc::clone(message), tokens));
        }
    }

    /// Drops the oldest messages until the window fits what it covers.
    fn trim(&mut self) {
        while self.tokens > self.covers {
            let Some((message, tokens)) = self.messages.pop_front() else {
                break;
            };
            self.tokens -= tokens;
            self.bytes -= message_bytes(&message);
            self.complete = false;
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Uuid, Entry>,
    bytes: usize,
    clock: u64,
}

impl Inner {
    fn remove(&mut self, session: Uuid) {
        if let Some(entry) = self.entries.remove(&session) {
            self.bytes -= entry.bytes;
        }
    }

    /// Evicts the least recently used entries when more than `capacity` is
    /// held, down to seven eighths of it: one sort of the entries makes room
    /// for many inserts, where evicting one at a time would scan every entry
    /// on each insert of a full cache (tens of thousands of small windows).
    fn evict_to(&mut self, capacity: usize) {
        if self.bytes <= capacity {
            return;
        }
        let low_water = capacity - capacity / 8;
        let mut by_age: Vec<(u64, Uuid)> = self
            .entries
            .iter()
            .map(|(id, entry)| (entry.used, *id))
            .collect();
        by_age.sort_unstable();
        for (_, id) in by_age {
            if self.bytes <= low_water {
                break;
            }
            self.remove(id);
        }
    }
}

/// The decoded windows of recently active sessions.
#[derive(Debug, Default)]
pub(crate) struct Windows {
    inner: Mutex<Inner>,
}

/// Bytes a message holds in memory, estimated: its text, images and tool
/// calls, and a fixed share for the structure around them.
fn message_bytes(message: &Message) -> usize {
    let content: usize = message
        .content
        .iter()
        .map(|part| match part {
            ContentPart::Text { text } => text.len(),
            ContentPart::Image { media_type, data } => media_type.len() + data.len(),
        })
        .sum();
    let calls: usize = message
        .tool_calls
        .iter()
        .map(|c| c.id.len() + c.name.len() + c.arguments.len() + 64)
        .sum();
    content + calls + message.tool_call_id.as_ref().map_or(0, String::len) + 96
}

impl Windows {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest messages of `session` that fit in `max_tokens` (the same
    /// as reading them from the store), if its window is here and current.
    pub(crate) fn get(
        &self,
        session: &SessionRecord,
        max_tokens: usize,
    ) -> Option<Vec<Arc<Message>>> {
        let mut inner = self.lock();
        inner.clock += 1;
        let clock = inner.clock;
        let entry = inner.entries.get_mut(&session.id)?;
        if entry.stamp != Stamp::from(session) || (!entry.complete && max_tokens > entry.covers) {
            return None;
        }
        entry.used = clock;
        let mut used = 0;
        let fit = entry
            .messages
            .iter()
            .rev()
            .take_while(|(_, tokens)| {
                used += tokens;
                used <= max_tokens
            })
            .count();
        Some(
            entry
                .messages
                .range(entry.messages.len() - fit..)
                .map(|(message, _)| Arc::clone(message))
                .collect(),
        )
    }

    /// Keeps the window just read for `session`: the newest messages that fit
    /// in `covers` tokens, and whether older ones were left out.
    pub(crate) fn put(
        &self,
        session: &SessionRecord,
        messages: &[Arc<Message>],
        covers: usize,
        cut: bool,
        cost: impl Fn(&Message) -> usize,
        capacity: usize,
    ) {
        let mut entry = Entry {
            agent: session.agent_id,
            stamp: Stamp::from(session),
            messages: VecDeque::with_capacity(messages.len()),
            tokens: 0,
            covers,
            complete: !cut,
            bytes: 0,
            used: 0,
        };
        entry.extend(messages, cost);
        self.insert(session.id, entry, capacity);
    }

    fn insert(&self, session: Uuid, mut entry: Entry, capacity: usize) {
        let mut inner = self.lock();
        inner.remove(session);
        if entry.bytes > capacity {
            return;
        }
        inner.clock += 1;
        entry.used = inner.clock;
        inner.bytes += entry.bytes;
        inner.entries.insert(session, entry);
        inner.evict_to(capacity);
    }

    /// Adds a committed turn's `added` messages to the session's window,
    /// `after` being the session as the commit left it. A window that was not
    /// the session's state just before the commit is dropped.
    pub(crate) fn append(
        &self,
        after: &SessionRecord,
        added: &[Arc<Message>],
        cost: impl Fn(&Message) -> usize,
        capacity: usize,
    ) {
        let mut inner = self.lock();
        let Some(mut entry) = inner.entries.remove(&after.id) else {
            return;
        };
        inner.bytes -= entry.bytes;
        drop(inner);
        let before = Stamp {
            next_seq: after.next_seq.saturating_sub(added.len() as u64),
            message_count: after.message_count.saturating_sub(added.len() as u64),
            compactions: after.compactions,
        };
        if entry.stamp != before {
            return;
        }
        entry.extend(added, cost);
        entry.trim();
        entry.stamp = Stamp::from(after);
        self.insert(after.id, entry, capacity);
    }

    /// Forgets a session's window (the session is gone).
    pub(crate) fn forget(&self, session: Uuid) {
        self.lock().remove(session);
    }

    /// Forgets every window of `agent`'s sessions (the agent is gone).
    pub(crate) fn forget_agent(&self, agent: Uuid) {
        let mut inner = self.lock();
        let gone: Vec<Uuid> = inner
            .entries
            .iter()
            .filter(|(_, entry)| entry.agent == agent)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            inner.remove(id);
        }
    }

    /// Bytes held now, estimated.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::prompt::message_tokens;
    use crate::conversation::sessions::tests::{store_with_agent, turn};
    use crate::conversation::sessions::{self, get};
    use crate::store::Store;

    const MIB: usize = 1024 * 1024;

    fn texts(messages: &[Arc<Message>]) -> Vec<String> {
        messages.iter().map(|m| m.text()).collect()
    }

    /// What the store says the window for `budget` is.
    fn from_store(store: &Store, session: Uuid, budget: usize) -> Vec<String> {
        let (window, _) =
            sessions::recent_messages(store, session, budget, message_tokens).unwrap();
        window.iter().map(|m| m.message.text()).collect()
    }

    /// A turn's read: the cache, else the store (and kept). True on a hit.
    fn read(windows: &Windows, store: &Store, session: Uuid, budget: usize) -> (Vec<String>, bool) {
        let record = get(store, session).unwrap().unwrap();
        if let Some(window) = windows.get(&record, budget) {
            return (texts(&window), true);
        }
        let (stored, cut) =
            sessions::recent_messages(store, session, budget, message_tokens).unwrap();
        let window: Vec<Arc<Message>> = stored.into_iter().map(|m| Arc::new(m.message)).collect();
        windows.put(&record, &window, budget, cut, message_tokens, 16 * MIB);
        (texts(&window), false)
    }

    fn commit(windows: &Windows, store: &Store, agent: Uuid, session: Uuid, i: usize) {
        // Messages of varying sizes, so windows cut at different places.
        let added = [
            Message::user(format!("question {i} {}", "x".repeat(i % 37))),
            Message::assistant(format!("answer {i} {}", "y".repeat(i % 53))),
        ]
        .map(Arc::new);
        let after = sessions::commit_turn(store, session, &added, &turn(agent, session)).unwrap();
        windows.append(&after, &added, message_tokens, 16 * MIB);
    }

    #[test]
    fn a_cached_window_answers_as_the_store_does_as_the_session_grows() {
        let (_dir, store, agent) = store_with_agent();
        let session = sessions::current(&store, agent).unwrap().id;
        let windows = Windows::default();
        let mut hits = 0;
        for i in 0..300 {
            // A turn reads with the room its own message leaves.
            let budget = 200 - i % 7;
            let (window, hit) = read(&windows, &store, session, budget);
            assert_eq!(window, from_store(&store, session, budget), "turn {i}");
            hits += usize::from(hit);
            commit(&windows, &store, agent, session, i);
        }
        // Only the first read (and none after) went to the store.
        assert_eq!(hits, 299);
        // A bigger budget than the window was read for is a miss, then kept.
        assert!(!read(&windows, &store, session, 400).1);
        let (window, hit) = read(&windows, &store, session, 400);
        assert!(hit);
        assert_eq!(window, from_store(&store, session, 400));
    }

    #[test]
    fn clearing_compacting_or_writing_behind_its_back_is_a_miss() {
        let (_dir, store, agent) = store_with_agent();
        let session = sessions::current(&store, agent).unwrap().id;
        let windows = Windows::default();
        for i in 0..40 {
            commit(&windows, &store, agent, session, i);
        }
        read(&windows, &store, session, 100);
        assert!(read(&windows, &store, session, 100).1);

        // A commit the cache was not told of: the stamp moves on.
        let added = [Message::user("unseen"), Message::assistant("reply")];
        sessions::commit_turn(&store, session, &added, &turn(agent, session)).unwrap();
        let (window, hit) = read(&windows, &store, session, 100);
        assert!(!hit);
        assert_eq!(window.last().map(String::as_str), Some("reply"));
        // The window it was holding is not revived by a later append either.
        commit(&windows, &store, agent, session, 40);
        assert_eq!(
            read(&windows, &store, session, 100).0,
            from_store(&store, session, 100)
        );

        let next = get(&store, session).unwrap().unwrap().next_seq;
        sessions::compact(&store, session, next - 4, Message::user("summary")).unwrap();
        let (window, hit) = read(&windows, &store, session, 100);
        assert!(!hit);
        assert_eq!(window.first().map(String::as_str), Some("summary"));

        sessions::clear(&store, session).unwrap();
        let (window, hit) = read(&windows, &store, session, 100);
        assert!(!hit);
        assert!(window.is_empty());
    }

    #[test]
    fn the_least_recently_used_windows_go_first_when_memory_runs_out() {
        let (_dir, store, agent) = store_with_agent();
        let windows = Windows::default();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let session = sessions::create(&store, agent, None, false).unwrap().id;
            for i in 0..10 {
                commit(&windows, &store, agent, session, i);
            }
            ids.push(session);
        }
        let one_window = {
            read(&windows, &store, ids[0], 10_000);
            windows.bytes()
        };
        let capacity = 2 * one_window + one_window / 2;
        for id in &ids {
            let record = get(&store, *id).unwrap().unwrap();
            let (stored, cut) =
                sessions::recent_messages(&store, *id, 10_000, message_tokens).unwrap();
            let window: Vec<Arc<Message>> =
                stored.into_iter().map(|m| Arc::new(m.message)).collect();
            windows.put(&record, &window, 10_000, cut, message_tokens, capacity);
        }
        assert!(windows.bytes() <= capacity);
        let cached = |id: Uuid| {
            let record = get(&store, id).unwrap().unwrap();
            windows.get(&record, 10_000).is_some()
        };
        assert!(!cached(ids[0]), "the oldest window was evicted");
        assert!(cached(ids[1]) && cached(ids[2]));

        // Forgetting an agent drops its windows; a zero capacity keeps none.
        windows.forget_agent(agent);
        assert_eq!(windows.bytes(), 0);
        let record = get(&store, ids[0]).unwrap().unwrap();
        let one = [Arc::new(Message::user("x"))];
        windows.put(&record, &one, 10, false, message_tokens, 0);
        assert!(windows.get(&record, 10).is_none());
    }
}
