//! The `/mcp` HTTP endpoint: the SDK's streamable HTTP service behind a
//! front that checks each POSTed message first.
//!
//! The SDK answers a body it cannot read with a plain-text 413 or 415; MCP
//! clients expect JSON-RPC errors with the spec's codes, so the front reads
//! the body itself (bounded), and answers malformed JSON (-32700), batches
//! and messages that are not JSON-RPC 2.0 (-32600), wrongly shaped params
//! of a known method (-32602) and oversized bodies (-32600, HTTP 413) before
//! the SDK sees them. Everything else (sessions, the GET stream, DELETE,
//! protocol negotiation, unknown methods as -32601) is the SDK's.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::server::{Host, McpServer};

/// JSON-RPC 2.0: the body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC 2.0: the JSON is not a valid request (or is too large).
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC 2.0: the params do not fit the method.
pub const INVALID_PARAMS: i64 = -32602;

/// How the endpoint is set up.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Largest POST body read, in bytes.
    pub max_body_bytes: usize,
    /// `Host` headers accepted (DNS-rebinding protection); `None` accepts any,
    /// for daemons an API key guards.
    pub allowed_hosts: Option<Vec<String>>,
    /// Cancelled when the daemon shuts down: ends every session and stream.
    pub shutdown: CancellationToken,
}

/// The `/mcp` endpoint; cheap to clone, all clones share the sessions.
#[derive(Clone)]
pub struct Endpoint {
    service: StreamableHttpService<McpServer, LocalSessionManager>,
    max_body_bytes: usize,
}

impl Endpoint {
    /// An endpoint serving `host`.
    pub fn new(host: Arc<dyn Host>, config: EndpointConfig) -> Self {
        let mut http = StreamableHttpServerConfig::default()
            .with_cancellation_token(config.shutdown)
            .with_max_request_body_bytes(config.max_body_bytes);
        http = match config.allowed_hosts {
            Some(hosts) => http.with_allowed_hosts(hosts),
            None => http.disable_allowed_hosts(),
        };
        let server = McpServer::new(host);
        Self {
            service: StreamableHttpService::new(
                move || Ok(server.clone()),
                Arc::new(LocalSessionManager::default()),
                http,
            ),
            max_body_bytes: config.max_body_bytes,
        }
    }

    /// Answers one HTTP request to `/mcp`.
    pub async fn handle(&self, request: Request) -> Response {
        let request = if request.method() == Method::POST {
            match self.checked(request).await {
                Ok(request) => request,
                Err(response) => return response,
            }
        } else {
            request
        };
        // `handle` borrows the service: going through `tower::Service::call`
        // would clone it, and with it the configuration's host lists, per request.
        self.service.handle(request).await.map(Body::new)
    }

    /// Reads and checks a POST body, and gives the request back with it.
    async fn checked(&self, request: Request) -> Result<Request, Response> {
        let (parts, body) = request.into_parts();
        let bytes = match Limited::new(body, self.max_body_bytes).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                return Err(rpc_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Value::Null,
                    INVALID_REQUEST,
                    format!("the message is larger than {} bytes", self.max_body_bytes),
                ));
            }
            Err(error) => {
                return Err(rpc_error(
                    StatusCode::BAD_REQUEST,
                    Value::Null,
                    PARSE_ERROR,
                    format!("the body could not be read: {error}"),
                ));
            }
        };
        check_message(&bytes)?;
        Ok(Request::from_parts(parts, Body::from(bytes)))
    }
}

/// Checks that `bytes` hold one JSON-RPC 2.0 message the SDK can read.
fn check_message(bytes: &Bytes) -> Result<(), Response> {
    let bad =
        |code, id, message: String| Err(rpc_error(StatusCode::BAD_REQUEST, id, code, message));
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(e) => {
            return bad(
                PARSE_ERROR,
                Value::Null,
                format!("the body is not JSON: {e}"),
            );
        }
    };
    let Value::Object(message) = &value else {
        let what = if value.is_array() {
            "batches are not part of the protocol revisions served here; send one message per request"
        } else {
            "a JSON-RPC message is a JSON object"
        };
        return bad(INVALID_REQUEST, Value::Null, what.to_string());
    };
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    let id_ok = matches!(id, Value::String(_) | Value::Number(_));
    let echo = if id_ok { id.clone() } else { Value::Null };
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return bad(INVALID_REQUEST, echo, "\"jsonrpc\" must be \"2.0\"".into());
    }
    match message.get("method") {
        Some(Value::String(_)) => {
            if message.contains_key("id") && !id_ok {
                return bad(
                    INVALID_REQUEST,
                    Value::Null,
                    "\"id\" must be a string or a number".into(),
                );
            }
        }
        Some(_) => return bad(INVALID_REQUEST, echo, "\"method\" must be a string".into()),
        None if id_ok && (message.contains_key("result") || message.contains_key("error")) => {}
        None => {
            return bad(
                INVALID_REQUEST,
                echo,
                "a message needs a \"method\" (request, notification) or an \"id\" with \"result\" or \"error\" (response)"
                    .into(),
            );
        }
    }
    // The value is not needed after this check: handing it over (rather
    // than a clone) spares a deep copy of every message.
    if let Err(e) = serde_json::from_value::<ClientJsonRpcMessage>(value) {
        return bad(
            INVALID_PARAMS,
            echo,
            format!("the params do not fit the method: {e}"),
        );
    }
    Ok(())
}

/// A JSON-RPC error response outside any session.
fn rpc_error(status: StatusCode, id: Value, code: i64, message: String) -> Response {
    let body = json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> Option<i64> {
        check_message(&Bytes::from(body.to_string()))
            .err()
            .map(|response| {
                let status = response.status();
                assert_eq!(status, StatusCode::BAD_REQUEST);
                // The code is in the body; read it back synchronously.
                let bytes = futures::executor::block_on(response.into_body().collect())
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                let value: Value = serde_json::from_slice(&bytes).unwrap_or_default();
                value["error"]["code"].as_i64().unwrap_or_default()
            })
    }

    #[test]
    fn malformed_messages_get_the_spec_codes() {
        assert_eq!(code("{not json"), Some(PARSE_ERROR));
        assert_eq!(code("[]"), Some(INVALID_REQUEST));
        assert_eq!(code("42"), Some(INVALID_REQUEST));
        assert_eq!(
            code(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#),
            Some(INVALID_REQUEST)
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":7}"#),
            Some(INVALID_REQUEST)
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#),
            Some(INVALID_REQUEST)
        );
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1}"#), Some(INVALID_REQUEST));
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"}"#),
            Some(INVALID_PARAMS)
        );
    }

    #[test]
    fn well_formed_messages_pass() {
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#), None);
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":"a","method":"no/such/method"}"#),
            None
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            None
        );
    }
}
