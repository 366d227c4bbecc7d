//! The conventions every route shares, as layers around the router.
//!
//! Order, outermost first: request id (so every answer, even a 429 or a
//! recovered panic, carries one), security headers, metrics, panic recovery,
//! CORS (preflights are answered before auth), rate limiting (so failed logins
//! are limited too), authentication, the request body's deadline.

pub mod auth;
pub mod body_limit;
pub mod body_timeout;
pub mod headers;
pub mod rate_limit;
pub mod request_id;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics::{RequestLabels, RouteLabels};
use crate::state::AppState;

/// Counts requests and their latency by route template.
pub async fn metrics(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    tracing::debug!(%method, %route, status, micros = elapsed.as_micros() as u64, "request");
    state
        .metrics
        .http_requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status,
        })
        .inc();
    state
        .metrics
        .http_duration
        .get_or_create(&RouteLabels { method, route })
        .observe(elapsed.as_secs_f64());
    response
}
