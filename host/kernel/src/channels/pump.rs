//! The pump of one running channel: inbound messages stored (deduplicated)
//! before anything else, answered by the bound agent with senders taking
//! turns, replies put in the outbox in the same transaction that settles
//! the message, and the outbox sent with retries, backoff and a rate limit.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use talon_runtime::channel::{
    ChannelCallError, ChannelError, ChannelEvent, ChannelHandle, ChatKind, Destination,
    InboundMessage, OutboundMessage,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::records::{self, Conversation, Inbound, InboundState, Outbound, OutboundStatus};
use super::stream::{self, LiveStream};
use super::{Ctx, MAX_ATTEMPTS, MAX_PENDING_PER_SENDER, PARALLEL_TURNS, SENDS_PER_MINUTE};
use crate::KernelError;
use crate::conversation::{MessageInput, Sender};
use crate::store;

/// Longest inbound text kept, in bytes; longer ones are cut (the platform
/// decides what a message is, the host what it stores).
const MAX_INBOUND_BYTES: usize = 64 * 1024;
/// The first retry's pause; it doubles with each attempt.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest pause between two attempts.
const MAX_RETRY: Duration = Duration::from_secs(300);

/// Cuts `text` to at most `max` bytes on a character boundary.
fn clip(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// An inbound message of `channel` as stored.
pub(super) fn inbound_of(channel: &str, message: InboundMessage, now: DateTime<Utc>) -> Inbound {
    Inbound {
        channel: channel.to_string(),
        message_id: message
            .id
            .filter(|id| !id.is_empty())
            .map(|id| clip(id, 256))
            .unwrap_or_else(|| Uuid::now_v7().to_string()),
        chat_id: clip(message.chat_id, 512),
        chat_kind: match message.chat_kind {
            ChatKind::Direct => "direct",
            ChatKind::Group => "group",
        }
        .into(),
        thread_id: message.thread_id.map(|t| clip(t, 512)),
        sender_id: clip(message.sender.id, 256),
        sender_name: message.sender.display_name.map(|n| clip(n, 256)),
        text: clip(message.text, MAX_INBOUND_BYTES),
        received_at: now,
        state: InboundState::Pending,
        agent_id: None,
        error: None,
    }
}

/// Stores an inbound event's message (once per id) and hands a new one to
/// the dispatcher; true when it was new. Typing and reactions are not
/// routed, nor messages of bots (two bots would answer each other forever).
pub(super) async fn accept(
    ctx: &Ctx,
    channel: &str,
    event: ChannelEvent,
    dispatch: &mpsc::UnboundedSender<Inbound>,
) -> Result<bool, KernelError> {
    let ChannelEvent::Message(message) = event else {
        return Ok(false);
    };
    if message.sender.is_bot {
        return Ok(false);
    }
    let inbound = inbound_of(channel, message, ctx.shared.now());
    let store = ctx.shared.store().clone();
    let stored = inbound.clone();
    let new = store::blocking(move || records::insert_inbound(&store, &stored)).await?;
    if new {
        let _ = dispatch.send(inbound);
    }
    Ok(new)
}

/// Reads the supervisor's events and stores them, in order.
pub(super) async fn intake(
    ctx: Arc<Ctx>,
    channel: String,
    mut events: mpsc::Receiver<ChannelEvent>,
    dispatch: mpsc::UnboundedSender<Inbound>,
) {
    while let Some(event) = events.recv().await {
        // A store that cannot write leaves the event unstored and so
        // unanswered; it is logged, never answered without its record.
        if let Err(error) = accept(&ctx, &channel, event, &dispatch).await {
            tracing::error!(%channel, %error, "cannot store an inbound message");
        }
    }
}

/// Answers inbound messages: one at a time per sender, senders taking
/// turns, at most [`PARALLEL_TURNS`] at once. A sender with more than
/// [`MAX_PENDING_PER_SENDER`] waiting has the excess recorded as
/// `rate_limited` and not answered.
pub(super) async fn dispatcher(
    ctx: Arc<Ctx>,
    channel: String,
    mut inbox: mpsc::UnboundedReceiver<Inbound>,
    outbox: mpsc::UnboundedSender<Uuid>,
    streamer: Option<Arc<ChannelHandle>>,
) {
    let mut waiting: HashMap<String, VecDeque<Inbound>> = HashMap::new();
    let mut order: VecDeque<String> = VecDeque::new();
    let mut busy: HashSet<String> = HashSet::new();
    let mut turns: JoinSet<String> = JoinSet::new();
    let mut open = true;
    loop {
        // Start what may start: the next sender in line that is not busy.
        let mut tried = 0;
        while turns.len() < PARALLEL_TURNS && tried < order.len() {
            tried += 1;
            let Some(sender) = order.pop_front() else {
                break;
            };
            if busy.contains(&sender) {
                order.push_back(sender);
                continue;
            }
            let Some(message) = waiting.get_mut(&sender).and_then(VecDeque::pop_front) else {
                waiting.remove(&sender);
                continue;
            };
            if waiting.get(&sender).is_some_and(|q| !q.is_empty()) {
                order.push_back(sender.clone());
            } else {
                waiting.remove(&sender);
            }
            busy.insert(sender.clone());
            let (ctx, outbox, streamer) = (ctx.clone(), outbox.clone(), streamer.clone());
            turns.spawn(async move {
                answer(&ctx, message, &outbox, streamer.as_deref()).await;
                sender
            });
            tried = 0;
        }
        if !open && turns.is_empty() && waiting.is_empty() {
            return;
        }
        tokio::select! {
            message = inbox.recv(), if open => match message {
                None => open = false,
                Some(message) => {
                    let sender = message.sender_id.clone();
                    let queue = waiting.entry(sender.clone()).or_default();
                    if queue.len() >= MAX_PENDING_PER_SENDER {
                        tracing::warn!(%channel, %sender, "sender over the per-sender limit; message recorded as rate_limited");
                        let refused = Inbound {
                            state: InboundState::RateLimited,
                            error: Some(format!(
                                "{MAX_PENDING_PER_SENDER} messages of this sender were already waiting"
                            )),
                            ..message
                        };
                        settle(&ctx, refused, None).await;
                        continue;
                    }
                    if queue.is_empty() && !order.contains(&sender) {
                        order.push_back(sender);
                    }
                    queue.push_back(message);
                }
            },
            Some(done) = turns.join_next(), if !turns.is_empty() => {
                if let Ok(sender) = done {
                    busy.remove(&sender);
                    if waiting.contains_key(&sender) && !order.contains(&sender) {
                        order.push_back(sender);
                    }
                } else {
                    // A panicked turn task: forget who was busy so nobody waits forever.
                    busy.clear();
                }
            }
        }
    }
}

/// Records an inbound message's outcome and queues its reply, in one
/// transaction; false, logged, if the store fails (the message stays
/// pending and is answered at the next start).
async fn settle(ctx: &Ctx, message: Inbound, reply: Option<Outbound>) -> bool {
    let store = ctx.shared.store().clone();
    let channel = message.channel.clone();
    let done =
        store::blocking(move || records::settle_inbound(&store, &message, reply.as_ref())).await;
    if let Err(error) = &done {
        tracing::error!(%channel, %error, "cannot record an inbound message's outcome");
    }
    done.is_ok()
}

/// The session of the message's conversation with `agent`: the one it had,
/// or a new one.
async fn session_for(ctx: &Ctx, message: &Inbound, agent: Uuid) -> Result<Uuid, KernelError> {
    let key = message.conversation_key();
    let store = ctx.shared.store().clone();
    let lookup = key.clone();
    let known = store::blocking(move || records::conversation(&store, &lookup)).await?;
    if let Some(known) = known.filter(|c| c.agent_id == agent) {
        return Ok(known.session_id);
    }
    let session = ctx.conversations.create_session(agent, None, false).await?;
    let store = ctx.shared.store().clone();
    let conversation = Conversation {
        agent_id: agent,
        session_id: session.id,
    };
    store::blocking(move || records::put_conversation(&store, &key, &conversation)).await?;
    Ok(session.id)
}

/// Runs the bound agent's turn for one message and settles it; with a
/// `streamer`, the reply is streamed to the platform as it is written.
pub(super) async fn answer(
    ctx: &Ctx,
    message: Inbound,
    outbox: &mpsc::UnboundedSender<Uuid>,
    streamer: Option<&ChannelHandle>,
) {
    let config = ctx.config_of(&message.channel);
    let agent = config
        .as_ref()
        .and_then(|c| c.agent_for(&message.chat_id, &message.sender_id));
    let Some(agent) = agent else {
        let failed = Inbound {
            state: InboundState::Failed,
            error: Some("no agent is bound to this channel, chat or sender".into()),
            ..message
        };
        settle(ctx, failed, None).await;
        return;
    };
    let result = run_turn(ctx, &message, agent, streamer).await;
    let message = Inbound {
        agent_id: Some(agent),
        ..message
    };
    match result {
        Err((error, live)) => {
            if let (Some(handle), Some(live)) = (streamer, live) {
                stream::abandon(handle, live).await;
            }
            tracing::warn!(channel = %message.channel, %error, "a channel message's turn failed");
            let failed = Inbound {
                state: InboundState::Failed,
                error: Some(clip(error.to_string(), 1024)),
                ..message
            };
            settle(ctx, failed, None).await;
        }
        Ok((text, stream::Relayed { stream: live, hold })) => {
            let now = ctx.shared.now();
            // A platform that refused the streamed start as rate limited
            // gets the whole reply only after its delay.
            let first_attempt = hold
                .and_then(|hold| chrono::Duration::from_std(hold).ok())
                .map_or(now, |hold| now + hold);
            let reply = (!text.trim().is_empty()).then(|| Outbound {
                id: Uuid::now_v7(),
                channel: message.channel.clone(),
                agent_id: Some(agent),
                chat_id: message.chat_id.clone(),
                thread_id: message.thread_id.clone(),
                reply_to: Some(message.message_id.clone()),
                text,
                origin: "reply".into(),
                status: OutboundStatus::Queued,
                attempts: 0,
                next_attempt_at: first_attempt,
                last_error: None,
                created_at: now,
                sent_at: None,
                platform_ids: Vec::new(),
            });
            let id = reply.as_ref().map(|r| r.id);
            let answered = Inbound {
                state: InboundState::Answered,
                ..message
            };
            // Parked before the reply is queued, so the sender finds it.
            let parked = match (id, live) {
                (Some(id), Some(live)) => {
                    ctx.streams.park(id, live);
                    true
                }
                (None, Some(live)) => {
                    if let Some(handle) = streamer {
                        stream::abandon(handle, live).await;
                    }
                    false
                }
                _ => false,
            };
            let settled = settle(ctx, answered, reply).await;
            match (id, settled) {
                (Some(id), true) => {
                    let _ = outbox.send(id);
                }
                (Some(id), false) if parked => {
                    if let (Some(handle), Some(live)) = (streamer, ctx.streams.take(id)) {
                        stream::abandon(handle, live).await;
                    }
                }
                _ => {}
            }
        }
    }
}

/// The agent's answer, and the stream that carried it so far (with a
/// `streamer`); on failure, the error and any stream started.
async fn run_turn(
    ctx: &Ctx,
    message: &Inbound,
    agent: Uuid,
    streamer: Option<&ChannelHandle>,
) -> Result<(String, stream::Relayed), (KernelError, Option<LiveStream>)> {
    let session = session_for(ctx, message, agent)
        .await
        .map_err(|e| (e, None))?;
    let channel_type = ctx
        .config_of(&message.channel)
        .map(|c| c.plugin)
        .unwrap_or_else(|| message.channel.clone());
    let input = MessageInput {
        text: message.text.clone(),
        session_id: Some(session),
        sender: Some(Sender {
            id: Some(message.sender_id.clone()),
            name: message.sender_name.clone(),
            channel_type: Some(channel_type),
        }),
        ..Default::default()
    };
    let Some(handle) = streamer else {
        let reply = ctx
            .conversations
            .send_message(agent, input)
            .await
            .map_err(|e| (e, None))?;
        return Ok((reply.response, stream::Relayed::default()));
    };
    let started = ctx
        .conversations
        .start_turn(agent, input, true)
        .await
        .map_err(|e| (e, None))?;
    let to = Destination {
        chat_id: message.chat_id.clone(),
        thread_id: message.thread_id.clone(),
        reply_to: Some(message.message_id.clone()),
    };
    let relayed = match started.events {
        Some(events) => stream::relay(handle, to, events).await,
        None => stream::Relayed::default(),
    };
    let reply = match started.outcome.await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => return Err((e, relayed.stream)),
        Err(e) => {
            let e = KernelError::Store(store::StoreError::Task(e.to_string()));
            return Err((e, relayed.stream));
        }
    };
    Ok((reply.response, relayed))
}

/// The pause before attempt `attempts + 1`.
fn backoff(attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(16));
    (FIRST_RETRY * factor).min(MAX_RETRY)
}

/// Sends the channel's outbox: due messages in the order they were queued,
/// no faster than [`SENDS_PER_MINUTE`]; a failed attempt is retried after
/// an exponential backoff (or the platform's own delay), and after
/// [`MAX_ATTEMPTS`] the message is a dead letter.
pub(super) async fn sender(
    ctx: Arc<Ctx>,
    channel: String,
    handle: Arc<ChannelHandle>,
    mut queued: mpsc::UnboundedReceiver<Uuid>,
    stop: CancellationToken,
) {
    let interval = Duration::from_secs(60) / SENDS_PER_MINUTE;
    let mut due: BTreeMap<(DateTime<Utc>, Uuid), ()> = BTreeMap::new();
    let mut last_send = tokio::time::Instant::now()
        .checked_sub(interval)
        .unwrap_or_else(tokio::time::Instant::now);
    loop {
        let next = due.keys().next().copied();
        let wait = match next {
            Some((at, _)) => (at - ctx.shared.now()).to_std().unwrap_or(Duration::ZERO),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            id = queued.recv() => match id {
                None => return,
                Some(id) => {
                    due.insert((ctx.shared.now(), id), ());
                    continue;
                }
            },
            _ = tokio::time::sleep(wait) => {}
            // Only between attempts: one under way is recorded first.
            () = stop.cancelled() => return,
        }
        let Some(((at, id), ())) = due.pop_first() else {
            continue;
        };
        if at > ctx.shared.now() {
            due.insert((at, id), ());
            continue;
        }
        tokio::time::sleep_until(last_send + interval).await;
        last_send = tokio::time::Instant::now();
        match attempt(&ctx, &handle, id).await {
            Ok(Some(retry_at)) => {
                due.insert((retry_at, id), ());
            }
            Ok(None) => {}
            Err(error) => {
                tracing::error!(%channel, %error, "cannot record an outbound attempt");
            }
        }
    }
}

/// One attempt at one queued message; when to try again, if it failed
/// and has attempts left.
async fn attempt(
    ctx: &Ctx,
    handle: &ChannelHandle,
    id: Uuid,
) -> Result<Option<DateTime<Utc>>, KernelError> {
    let store = ctx.shared.store().clone();
    let Some(mut message) = store::blocking(move || records::outbound(&store, id)).await? else {
        return Ok(None);
    };
    if message.status != OutboundStatus::Queued {
        return Ok(None);
    }
    // Not due yet (the platform asked for a pause before its first attempt,
    // or it was queued again at start-up): back in line until then.
    if message.next_attempt_at > ctx.shared.now() {
        return Ok(Some(message.next_attempt_at));
    }
    let outbound = OutboundMessage {
        to: Destination {
            chat_id: message.chat_id.clone(),
            thread_id: message.thread_id.clone(),
            reply_to: message.reply_to.clone(),
        },
        text: message.text.clone(),
        attachments: Vec::new(),
    };
    let streamed = match ctx.streams.take(id) {
        Some(live) => stream::finish(handle, live, &message.text).await,
        None => Ok(None),
    };
    let sent = match streamed {
        Ok(Some(ids)) => Ok(ids),
        Ok(None) => handle.send(outbound).await,
        Err(e) => Err(e),
    };
    message.attempts += 1;
    let now = ctx.shared.now();
    let retry = match sent {
        Ok(ids) => {
            message.status = OutboundStatus::Sent;
            message.sent_at = Some(now);
            message.platform_ids = ids;
            message.last_error = None;
            None
        }
        Err(error) => {
            let pause = match &error {
                ChannelCallError::Channel(ChannelError::RateLimited(ms)) => {
                    Duration::from_millis(u64::from(*ms)).max(backoff(message.attempts))
                }
                _ => backoff(message.attempts),
            };
            message.last_error = Some(clip(error.to_string(), 1024));
            if message.attempts >= MAX_ATTEMPTS {
                message.status = OutboundStatus::Dead;
                tracing::warn!(channel = %message.channel, id = %message.id, %error, "outbound message is a dead letter");
                None
            } else {
                let at = now
                    + chrono::Duration::from_std(pause)
                        .unwrap_or_else(|_| chrono::Duration::zero());
                message.next_attempt_at = at;
                Some(at)
            }
        }
    };
    let store = ctx.shared.store().clone();
    store::blocking(move || records::record_attempt(&store, &message)).await?;
    Ok(retry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(40), MAX_RETRY);
    }

    #[test]
    fn clip_cuts_on_a_character_boundary() {
        assert_eq!(clip("héllo".into(), 2), "h");
        assert_eq!(clip("abc".into(), 10), "abc");
    }
}
