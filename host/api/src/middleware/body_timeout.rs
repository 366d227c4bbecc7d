//! A deadline for request bodies: a client that sends its headers and then
//! trickles (or stalls) its body is answered 408 once
//! `[server] body_read_timeout_secs` have passed since the headers, and its
//! connection closed, instead of holding a handler and its buffers for as
//! long as it likes. The header timeout and the connection caps are in
//! [`crate::connections`]; this covers what comes after the headers.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Sleep;

use crate::error::error_response;
use crate::state::AppState;

/// What the body yields once its deadline has passed.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut;

/// A request body that fails once its deadline passes, noting that it did.
struct Deadline {
    inner: Body,
    sleep: Pin<Box<Sleep>>,
    expired: Arc<AtomicBool>,
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.expired.store(true, Ordering::Release);
                Poll::Ready(Some(Err(Box::new(BodyTimedOut))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Gives the request's body a deadline; answers 408 (and closes the
/// connection) when the handler failed because the body came too slowly.
pub async fn body_timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let secs = state.kernel.config().server.body_read_timeout_secs;
    let expired = Arc::new(AtomicBool::new(false));
    let request = request.map(|inner| {
        Body::new(Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(secs))),
            expired: expired.clone(),
        })
    });
    let response = next.run(request).await;
    if !expired.load(Ordering::Acquire) {
        return response;
    }
    // The handler's own answer (a 400 for an unreadable body, say) is
    // replaced: the cause is the client's pace.
    let _ = response.into_body().collect().await;
    let mut timed_out = error_response(
        StatusCode::REQUEST_TIMEOUT,
        &format!(
            "the request body did not arrive within {secs} s of its headers \
             (server.body_read_timeout_secs); send it faster or raise the setting"
        ),
    );
    timed_out
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    timed_out
}
