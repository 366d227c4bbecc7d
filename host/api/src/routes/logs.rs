//! `GET /api/logs/stream`: audit entries as they are appended, over SSE.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use talon_kernel::events::Event;
use tokio::sync::broadcast::error::RecvError;

use crate::state::AppState;

/// Streams each new audit entry as one `data:` frame of JSON. A client that
/// falls too far behind gets a `lagged` event telling how many it missed.
/// The stream ends when the daemon shuts down, so it never holds up a
/// graceful shutdown.
#[utoipa::path(get, path = "/api/logs/stream", tag = "audit",
    responses((status = 200, description = "SSE stream of audit entries", content_type = "text/event-stream")))]
pub async fn stream(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let receiver = state.kernel.events().subscribe();
    let shutdown = state.shutdown.clone();
    let stream = futures::stream::unfold((receiver, shutdown), |(mut rx, shutdown)| async move {
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return None,
                next = rx.recv() => next,
            };
            let frame = match next {
                Ok(Event::Audit(entry)) => match serde_json::to_string(&entry) {
                    Ok(json) => SseEvent::default().data(json),
                    Err(_) => continue,
                },
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => SseEvent::default()
                    .event("lagged")
                    .data(format!("{{\"missed\":{missed}}}")),
                Err(RecvError::Closed) => return None,
            };
            return Some((Ok(frame), (rx, shutdown)));
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
