//! Request body limits that refuse a declared-oversized body before reading
//! any of it.
//!
//! axum's own limit ([`DefaultBodyLimit`]) only stops the extractors once
//! they have read past it: a request announcing 1 GiB to a route taking
//! 171 MiB had 171 MiB buffered before its 413 (issue 19). [`BodyLimit`]
//! answers 413 as soon as the headers are in when `Content-Length` is over
//! the limit (a client sending `Expect: 100-continue` then never sends the
//! body), and sets axum's limit to the same value for bodies of unknown
//! length (chunked), whose reading stops at the limit.

use std::task::{Context, Poll};

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderValue;
use axum::http::header::{CONNECTION, CONTENT_LENGTH};
use axum::response::{IntoResponse, Response};
use futures::future::Either;
use tower::{Layer, Service};

use crate::error::ApiError;

/// A layer limiting request bodies to `max` bytes.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    max: usize,
}

impl BodyLimit {
    /// Bodies of at most `max` bytes.
    pub fn max(max: usize) -> Self {
        BodyLimit { max }
    }
}

impl<S> Layer<S> for BodyLimit {
    type Service = BodyLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyLimitService {
            inner,
            max: self.max,
        }
    }
}

/// The service [`BodyLimit`] wraps around a route.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimitService<S> {
    inner: S,
    max: usize,
}

impl<S> Service<Request> for BodyLimitService<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<std::future::Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        if let Some(declared) = declared_length(&request)
            && declared > self.max as u64
        {
            let refusal = ApiError::PayloadTooLarge(format!(
                "length limit exceeded: the request body of {declared} bytes is larger than \
                 the {} bytes this route accepts",
                self.max
            ));
            // The body is never read, so the connection cannot carry another
            // request: saying so keeps a client from reusing it and failing.
            let mut response = refusal.into_response();
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return Either::Left(std::future::ready(Ok(response)));
        }
        DefaultBodyLimit::max(self.max).apply(&mut request);
        Either::Right(self.inner.call(request))
    }
}

/// The body length the request announces (hyper has already refused a
/// malformed or contradictory `Content-Length`).
fn declared_length(request: &Request) -> Option<u64> {
    request
        .headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::{Body, Bytes};
    use axum::routing::post;
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new()
            .route(
                "/",
                post(|body: Bytes| async move { body.len().to_string() }),
            )
            .layer(BodyLimit::max(16))
    }

    #[tokio::test]
    async fn a_declared_oversized_body_is_refused_unread() {
        // A body that fails when read: the answer proves it never was.
        let unread = Body::from_stream(futures::stream::once(async {
            Err::<Bytes, std::io::Error>(std::io::Error::other("the body was read"))
        }));
        let request = Request::post("/")
            .header(CONTENT_LENGTH, "1073741824")
            .body(unread)
            .unwrap();
        let response = app().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 413);
        assert_eq!(response.headers()[CONNECTION], "close");
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("1073741824") && text.contains("16 bytes"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_undeclared_body_stops_at_the_limit_and_a_small_one_passes() {
        let chunks = futures::stream::iter(
            (0..64).map(|_| Ok::<_, std::io::Error>(Bytes::from_static(b"0123456789"))),
        );
        let request = Request::post("/").body(Body::from_stream(chunks)).unwrap();
        assert_eq!(app().oneshot(request).await.unwrap().status(), 413);
        let request = Request::post("/")
            .header(CONTENT_LENGTH, "5")
            .body(Body::from("hello"))
            .unwrap();
        let response = app().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
    }
}
