//! `GET /api/logs/stream`: the newest audit entries, then each new one as it
//! is appended, over SSE.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use talon_kernel::events::Event;
use talon_kernel::store::audit::AuditEntry;
use tokio::sync::broadcast::error::RecvError;

use crate::error::ApiError;
use crate::state::AppState;

/// How many past entries a new subscriber gets first (LibreFang's backfill).
pub const BACKLOG: usize = 200;

fn frame(entry: &AuditEntry) -> Option<SseEvent> {
    serde_json::to_string(entry)
        .ok()
        .map(|json| SseEvent::default().data(json))
}

/// Sends the newest [`BACKLOG`] entries, oldest first, then streams each new
/// audit entry as one `data:` frame of JSON. A client that falls too far
/// behind gets a `lagged` event telling how many it missed. The stream ends
/// when the daemon shuts down, so it never holds up a graceful shutdown.
#[utoipa::path(get, path = "/api/logs/stream", tag = "audit",
    responses((status = 200, description = "SSE stream of audit entries: the newest 200 first, then new ones", content_type = "text/event-stream")))]
pub async fn stream(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    // Subscribe before reading the backlog so nothing appended in between is
    // lost; entries seen in both are skipped by their position in the chain.
    let receiver = state.kernel.events().subscribe();
    let (mut newest_first, _) = state.kernel.audit_recent(BACKLOG).await?;
    newest_first.reverse();
    let last_sent = newest_first.last().map_or(0, |e| e.id);
    let backlog: VecDeque<AuditEntry> = newest_first.into();
    let shutdown = state.shutdown.clone();
    let stream = futures::stream::unfold(
        (backlog, receiver, shutdown),
        move |(mut backlog, mut rx, shutdown)| async move {
            while let Some(entry) = backlog.pop_front() {
                if let Some(frame) = frame(&entry) {
                    return Some((Ok(frame), (backlog, rx, shutdown)));
                }
            }
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    next = rx.recv() => next,
                };
                let frame = match next {
                    Ok(Event::Audit(entry)) if entry.id > last_sent => match frame(&entry) {
                        Some(frame) => frame,
                        None => continue,
                    },
                    Ok(_) => continue,
                    Err(RecvError::Lagged(missed)) => SseEvent::default()
                        .event("lagged")
                        .data(format!("{{\"missed\":{missed}}}")),
                    Err(RecvError::Closed) => return None,
                };
                return Some((Ok(frame), (backlog, rx, shutdown)));
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
