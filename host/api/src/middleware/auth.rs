//! Bearer-token authentication, and the loopback-only rule when no key is set.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::routes::openai::OpenAiError;
use crate::state::AppState;

/// A refusal, in OpenAI's error shape on the OpenAI-compatible `/v1` routes
/// (whose clients read `error.code` and `error.type`), in the API's own
/// shape everywhere else.
fn refuse(request: &Request, error: ApiError, openai_code: &'static str) -> Response {
    let path = request.uri().path();
    if path == "/v1" || path.starts_with("/v1/") {
        OpenAiError::auth(error.status(), error.to_string(), openai_code).into_response()
    } else {
        error.into_response()
    }
}

/// Routes anyone may call, key or not. The inbound hooks check their own
/// tokens (`webhooks.*_token`) instead of the API key.
fn is_public(method: &Method, path: &str) -> bool {
    ((method == Method::GET || method == Method::HEAD)
        && (matches!(
            path,
            "/api/health"
                | "/api/ready"
                | "/.well-known/agent.json"
                | "/.well-known/agent-card.json"
        ) || talon_dashboard::is_public(path)))
        || (method == Method::POST && matches!(path, "/api/hooks/wake" | "/api/hooks/agent"))
        || (method == Method::POST && is_channel_webhook(path))
}

/// `/api/channels/{name}/webhook`: a chat platform's push, whose signature
/// the channel's component checks (the platform has no API key).
fn is_channel_webhook(path: &str) -> bool {
    path.strip_prefix("/api/channels/")
        .and_then(|rest| rest.strip_suffix("/webhook"))
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// The credential a request carries: `Authorization: Bearer <key>` or `X-API-Key`.
fn presented_key(request: &Request) -> Option<&str> {
    let headers = request.headers();
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim());
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok())
}

/// Compares in constant time; hashing first hides the key's length too.
pub(crate) fn keys_match(presented: &str, expected: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

/// Enforces the API key when one is configured; without one, refuses
/// non-loopback clients unless the operator allowed them explicitly.
pub async fn auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let config = state.kernel.config();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if config.api_key.is_empty() {
        let remote = peer.is_some_and(|ip| !ip.is_loopback());
        if remote && !config.allow_remote_without_key {
            return refuse(
                &request,
                ApiError::Forbidden(
                    "this daemon has no api_key, so it only accepts loopback clients; set api_key in config.toml".into(),
                ),
                "remote_access_refused",
            );
        }
        return next.run(request).await;
    }
    if is_public(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    match presented_key(&request) {
        Some(key) if keys_match(key, &config.api_key) => next.run(request).await,
        Some(_) => refuse(
            &request,
            ApiError::Unauthorized("invalid API key".into()),
            "invalid_api_key",
        ),
        None => refuse(
            &request,
            ApiError::Unauthorized(
                "missing Authorization header: send `Authorization: Bearer <api_key>`".into(),
            ),
            "missing_api_key",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_comparison() {
        assert!(keys_match("secret", "secret"));
        assert!(!keys_match("secret", "secreT"));
        assert!(!keys_match("", "secret"));
    }

    #[test]
    fn only_health_and_root_are_public() {
        assert!(is_public(&Method::GET, "/api/health"));
        assert!(is_public(&Method::GET, "/api/ready"));
        assert!(is_public(&Method::GET, "/"));
        assert!(is_public(&Method::GET, "/assets/index-abc.js"));
        assert!(!is_public(&Method::POST, "/"));
        assert!(!is_public(&Method::POST, "/api/health"));
        assert!(!is_public(&Method::GET, "/api/health/detail"));
        assert!(!is_public(&Method::GET, "/api/status"));
    }
}
