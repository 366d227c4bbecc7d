//! Replies streamed as edits: on a platform whose component has the
//! `edits` capability, the agent's turn goes out as it is written
//! (`stream-start`, coalesced `stream-delta`s, `stream-end`), one message
//! edited in place.
//!
//! What is durable is the final text: it is queued in the outbox like any
//! reply, in the transaction that settles the message. The stream itself
//! lives in memory, keyed by that outbox entry; the sender finishes it with
//! the rest of the final text and `stream-end`. Without it (the daemon was
//! killed, the instance restarted, an edit failed) the sender posts the
//! final text whole, as for a platform without edits, so the final text
//! arrives once; the partial message already posted stays as it was
//! (edits are best-effort).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use talon_runtime::channel::{ChannelCallError, ChannelError, ChannelHandle, Destination};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::conversation::TurnEvent;

/// At most one edit this often: platforms rate-limit edits (Telegram about
/// one a second per chat), and each is a call into the instance.
pub const EDIT_EVERY: Duration = Duration::from_secs(1);

/// A reply being streamed: its stream id in the running instance and the
/// text the platform was given so far.
#[derive(Debug, Clone)]
pub(super) struct LiveStream {
    id: String,
    sent: String,
}

/// The streams whose final text waits in the outbox, by outbox entry.
#[derive(Default)]
pub(super) struct Streams(Mutex<HashMap<Uuid, LiveStream>>);

impl Streams {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, LiveStream>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The outbox entry `id` finishes `stream`.
    pub(super) fn park(&self, id: Uuid, stream: LiveStream) {
        self.map().insert(id, stream);
    }

    /// The stream the outbox entry `id` finishes, if it is still live.
    pub(super) fn take(&self, id: Uuid) -> Option<LiveStream> {
        self.map().remove(&id)
    }
}

/// What relaying a turn left: the stream that carries the reply so far,
/// and how long the platform asked to be left alone if it refused a start
/// or an edit as rate limited (the whole reply must wait that long).
#[derive(Debug, Default)]
pub(super) struct Relayed {
    /// The live stream; `None` when nothing was started (no text, or the
    /// platform refused the start) or the stream was given up.
    pub stream: Option<LiveStream>,
    /// The platform's `retry after`, from a refused start or edit.
    pub hold: Option<Duration>,
}

/// Relays a turn's text to the platform as it comes: the stream starts at
/// the first text, then what came meanwhile goes out at most once per
/// [`EDIT_EVERY`]. Returns once the turn's events end. A failed start or
/// edit stops the streaming; the final text still goes out whole (after
/// the platform's delay when it was rate limited).
pub(super) async fn relay(
    handle: &ChannelHandle,
    to: Destination,
    mut events: mpsc::UnboundedReceiver<TurnEvent>,
) -> Relayed {
    let mut stream: Option<LiveStream> = None;
    let mut pending = String::new();
    let mut gave_up = false;
    let mut hold: Option<Duration> = None;
    let mut next_edit = tokio::time::Instant::now();
    loop {
        let due = !gave_up && stream.is_some() && !pending.is_empty();
        let event = tokio::select! {
            event = events.recv() => event,
            () = tokio::time::sleep_until(next_edit), if due => {
                if let Some(live) = stream.as_mut() {
                    match handle.stream_delta(live.id.clone(), pending.clone()).await {
                        Ok(()) => live.sent.push_str(&std::mem::take(&mut pending)),
                        Err(error) => {
                            tracing::debug!(%error, "a streamed edit failed; the reply will be sent whole");
                            hold = hold.or(rate_limit(&error));
                            gave_up = true;
                        }
                    }
                }
                next_edit = tokio::time::Instant::now() + EDIT_EVERY;
                continue;
            }
        };
        match event {
            None | Some(TurnEvent::Done(_)) | Some(TurnEvent::Failed { .. }) => break,
            Some(TurnEvent::TextDelta { content }) if !gave_up => {
                pending.push_str(&content);
                if stream.is_none() {
                    match handle.stream_start(to.clone()).await {
                        Ok(id) => {
                            stream = Some(LiveStream {
                                id,
                                sent: String::new(),
                            });
                            // The first text goes out at once.
                            next_edit = tokio::time::Instant::now();
                        }
                        Err(error) => {
                            tracing::debug!(%error, "the platform refused a stream; the reply will be sent whole");
                            hold = hold.or(rate_limit(&error));
                            gave_up = true;
                        }
                    }
                }
            }
            Some(_) => {}
        }
    }
    // Drain what is left so the turn never blocks on its events.
    while events.try_recv().is_ok() {}
    let stream = match gave_up {
        true => {
            if let Some(live) = stream {
                abandon(handle, live).await;
            }
            None
        }
        false => stream,
    };
    Relayed { stream, hold }
}

/// The platform's delay, when `error` is a rate limit.
fn rate_limit(error: &ChannelCallError) -> Option<Duration> {
    match error {
        ChannelCallError::Channel(ChannelError::RateLimited(ms)) => {
            Some(Duration::from_millis(u64::from(*ms)))
        }
        _ => None,
    }
}

/// Finishes a stream with the final `text`: the part the platform does not
/// have yet, then `stream-end`; the platform's id of the message.
/// `Ok(None)` when the stream cannot carry the final text (the turn's text
/// was not a prefix of it, as when the model wrote before calling a tool):
/// the stream is ended as it is and the caller sends the text whole.
pub(super) async fn finish(
    handle: &ChannelHandle,
    stream: LiveStream,
    text: &str,
) -> Result<Option<Vec<String>>, ChannelCallError> {
    let Some(rest) = text.strip_prefix(stream.sent.as_str()) else {
        abandon(handle, stream).await;
        return Ok(None);
    };
    if !rest.is_empty() {
        handle
            .stream_delta(stream.id.clone(), rest.to_string())
            .await?;
    }
    let id = handle.stream_end(stream.id).await?;
    Ok(Some(vec![id]))
}

/// Ends a stream that will not carry the final text (best-effort: the
/// message stays with what it had).
pub(super) async fn abandon(handle: &ChannelHandle, stream: LiveStream) {
    if let Err(error) = handle.stream_end(stream.id).await {
        tracing::debug!(%error, "ending an abandoned stream failed");
    }
}
