//! Turns in flight: one [`LiveSession`] per session that runs or is
//! watched now, or did so recently.
//!
//! It serializes turns of a session (two messages to one conversation must
//! not interleave), carries the interrupt flag the loop checks at tool-call
//! boundaries and the cancellation token `stop` fires, and fans every event
//! of the running turn out to read-only watchers (`attach`) over a broadcast
//! channel, so any number of watchers cost the producer one send per event
//! and a slow watcher loses old events rather than slowing the turn down.
//!
//! An idle session's entry holds nothing worth keeping (a turn clears the
//! interrupt flag when it starts), so entries nobody holds or watches are
//! swept as the map grows: a daemon that served a million chats keeps the
//! live side of the few that are active, not of all of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::records::TurnStatus;

/// Events a watcher may lag behind before it loses the oldest.
const WATCH_CAPACITY: usize = 256;
/// Entries below which [`LiveSessions`] never sweeps.
const SWEEP_FLOOR: usize = 1024;

/// What a turn reports while it runs.
#[derive(Debug, Clone)]
pub enum TurnEvent {
    /// A model call began (`detail` is the iteration number).
    Phase {
        /// `thinking`, `streaming`, `tool_use`, `compacting`, `done`, `error`...
        phase: String,
        /// More about it, if anything.
        detail: Option<String>,
    },
    /// More answer text.
    TextDelta {
        /// The new text.
        content: String,
    },
    /// The agent starts a tool call.
    ToolUse {
        /// The call id.
        id: String,
        /// The tool.
        tool: String,
    },
    /// A tool call finished.
    ToolResult {
        /// The call id.
        id: String,
        /// The tool.
        tool: String,
        /// The arguments it was called with (`null` when they were not JSON).
        input: serde_json::Value,
        /// Its output, or the error.
        result: String,
        /// Whether it failed.
        is_error: bool,
    },
    /// The agent left a private notice for the owner.
    OwnerNotice {
        /// The notice.
        text: String,
    },
    /// The turn ended with this reply.
    Done(Arc<TurnReply>),
    /// The turn failed; nothing was recorded in the session.
    Failed {
        /// Why.
        error: String,
    },
}

/// The outcome of a turn.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnReply {
    /// The final answer (the text so far when the turn did not complete).
    pub response: String,
    /// The session the turn ran in.
    pub session_id: Uuid,
    /// Prompt tokens over all model calls.
    pub input_tokens: u64,
    /// Generated tokens over all model calls.
    pub output_tokens: u64,
    /// Model calls made.
    pub iterations: u32,
    /// USD spent.
    pub cost_usd: f64,
    /// How it ended.
    pub status: TurnStatus,
    /// Notices for the owner, joined, if the agent left any.
    pub owner_notice: Option<String>,
    /// The model that answered.
    pub model: String,
}

/// The in-memory side of one session.
#[derive(Debug)]
pub struct LiveSession {
    /// The agent it belongs to.
    pub agent_id: Uuid,
    /// Held for the whole of a turn.
    pub(crate) turn_lock: tokio::sync::Mutex<()>,
    interrupt: AtomicBool,
    cancel: Mutex<Option<CancellationToken>>,
    /// Made by the first watcher: its 256 slots cost ~40 KB, which most
    /// sessions, never watched, should not pay.
    watchers: OnceLock<broadcast::Sender<TurnEvent>>,
    /// The sessions running subagent turns (`agent_send`) for this session's
    /// turn right now; an interrupt reaches them too.
    children: Mutex<Vec<Arc<LiveSession>>>,
}

impl LiveSession {
    fn new(agent_id: Uuid) -> Self {
        Self {
            agent_id,
            turn_lock: tokio::sync::Mutex::new(()),
            interrupt: AtomicBool::new(false),
            cancel: Mutex::new(None),
            watchers: OnceLock::new(),
            children: Mutex::new(Vec::new()),
        }
    }

    /// Asks the running turn, and the subagent turns it waits for, to stop
    /// at their next tool-call boundary.
    pub fn interrupt(&self) {
        self.interrupt.store(true, Ordering::SeqCst);
        // Cloned so no two sessions' locks are ever held together.
        let children = self
            .children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for child in children {
            child.interrupt();
        }
    }

    /// Links a subagent's session whose turn this session's turn waits for;
    /// an interrupt that already arrived reaches it at once.
    pub(crate) fn adopt(&self, child: &Arc<LiveSession>) {
        self.children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(child));
        if self.interrupted() {
            child.interrupt();
        }
    }

    /// Unlinks a subagent's session when its turn is over.
    pub(crate) fn release(&self, child: &Arc<LiveSession>) {
        self.children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|c| !Arc::ptr_eq(c, child));
    }

    /// Forgets a pending interrupt (the session was reset).
    pub(crate) fn clear_interrupt(&self) {
        self.interrupt.store(false, Ordering::SeqCst);
    }

    /// Whether an interrupt is pending.
    pub(crate) fn interrupted(&self) -> bool {
        self.interrupt.load(Ordering::SeqCst)
    }

    /// Called when a turn starts: a fresh token (cancelled with `parent`'s,
    /// for a subagent turn), and earlier interrupts cleared.
    pub(crate) fn begin(&self, parent: Option<&CancellationToken>) -> CancellationToken {
        self.clear_interrupt();
        let token = parent.map_or_else(CancellationToken::new, CancellationToken::child_token);
        *self.cancel.lock().unwrap_or_else(PoisonError::into_inner) = Some(token.clone());
        token
    }

    /// Called when a turn ends.
    pub(crate) fn end(&self) {
        *self.cancel.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Cancels the running turn, if any; true when there was one.
    pub fn cancel(&self) -> bool {
        match self
            .cancel
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Whether a turn is running.
    pub fn busy(&self) -> bool {
        self.cancel
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// A receiver of every event of this session's turns from now on.
    pub fn watch(&self) -> broadcast::Receiver<TurnEvent> {
        self.watchers
            .get_or_init(|| broadcast::channel(WATCH_CAPACITY).0)
            .subscribe()
    }

    /// Whether anyone watches.
    pub(crate) fn watched(&self) -> bool {
        self.watchers
            .get()
            .is_some_and(|watchers| watchers.receiver_count() > 0)
    }

    /// Sends to the watchers; none watching costs nothing.
    pub(crate) fn publish(&self, event: &TurnEvent) {
        if let Some(watchers) = self.watchers.get()
            && watchers.receiver_count() > 0
        {
            let _ = watchers.send(event.clone());
        }
    }
}

/// Every live session, by session id.
#[derive(Debug, Default)]
pub struct LiveSessions {
    sessions: Mutex<Sessions>,
}

#[derive(Debug, Default)]
struct Sessions {
    by_id: HashMap<Uuid, Arc<LiveSession>>,
    /// The size at which the next sweep runs.
    sweep_at: usize,
}

impl Sessions {
    /// Drops the entries nobody holds or watches. Holders get their `Arc`
    /// from this map under its lock, so an entry the map alone holds cannot
    /// be handed out while it is dropped: no two live sides of one session.
    fn sweep(&mut self) {
        self.by_id
            .retain(|_, live| Arc::strong_count(live) > 1 || live.watched());
        // Sweeping again only after the map doubles keeps `get` O(1) on
        // average.
        self.sweep_at = (self.by_id.len() * 2).max(SWEEP_FLOOR);
    }
}

impl LiveSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The live side of `session`, created on first use.
    pub fn get(&self, session: Uuid, agent: Uuid) -> Arc<LiveSession> {
        let mut sessions = self.lock();
        if !sessions.by_id.contains_key(&session) && sessions.by_id.len() >= sessions.sweep_at {
            sessions.sweep();
        }
        Arc::clone(
            sessions
                .by_id
                .entry(session)
                .or_insert_with(|| Arc::new(LiveSession::new(agent))),
        )
    }

    /// The live side of `session` if it has one.
    pub fn find(&self, session: Uuid) -> Option<Arc<LiveSession>> {
        self.lock().by_id.get(&session).cloned()
    }

    /// Cancels every running turn of `agent`; how many there were.
    pub fn cancel_agent(&self, agent: Uuid) -> usize {
        self.lock()
            .by_id
            .values()
            .filter(|s| s.agent_id == agent)
            .filter(|s| s.cancel())
            .count()
    }

    /// Forgets a session (deleted, or its agent killed); a running turn is cancelled.
    pub fn forget(&self, session: Uuid) {
        let removed = self.lock().by_id.remove(&session);
        if let Some(live) = removed {
            live.cancel();
        }
    }

    /// Forgets every session of `agent`.
    pub fn forget_agent(&self, agent: Uuid) {
        self.lock().by_id.retain(|_, live| {
            let keep = live.agent_id != agent;
            if !keep {
                live.cancel();
            }
            keep
        });
    }

    /// Turns running now.
    pub fn running(&self) -> usize {
        self.lock().by_id.values().filter(|s| s.busy()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_sessions_are_swept_and_held_or_watched_ones_kept() {
        let live = LiveSessions::default();
        let agent = Uuid::now_v7();
        let held_id = Uuid::now_v7();
        let held = live.get(held_id, agent);
        let watched_id = Uuid::now_v7();
        let watcher = live.get(watched_id, agent).watch();
        // A hundred thousand sessions, each used once and let go.
        for _ in 0..100_000 {
            live.get(Uuid::now_v7(), agent);
        }
        let entries = live.lock().by_id.len();
        assert!(entries <= 2 * SWEEP_FLOOR, "{entries} entries kept");
        // The held session is the same one (its turns stay serialized), the
        // watched one still reaches its watcher.
        assert!(Arc::ptr_eq(&held, &live.get(held_id, agent)));
        assert!(live.find(watched_id).is_some_and(|l| l.watched()));
        drop(watcher);
    }

    #[test]
    fn an_unwatched_session_makes_no_channel() {
        let live = LiveSessions::default();
        let session = live.get(Uuid::now_v7(), Uuid::now_v7());
        session.publish(&TurnEvent::OwnerNotice { text: "x".into() });
        assert!(session.watchers.get().is_none());
        let mut watcher = session.watch();
        session.publish(&TurnEvent::OwnerNotice { text: "y".into() });
        assert!(matches!(
            watcher.try_recv(),
            Ok(TurnEvent::OwnerNotice { text }) if text == "y"
        ));
    }
}
