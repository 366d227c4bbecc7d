//! The legacy HTTP+SSE client transport (protocol 2024-11-05).
//!
//! `rmcp` 1.x dropped it, but servers still offer it: the client opens a
//! `GET` event stream, whose first `endpoint` event names the URL to `POST`
//! messages to; the server's messages come back as `message` events on the
//! stream. The endpoint must be on the stream's origin, so the bearer token
//! is never sent anywhere else.

use std::borrow::Cow;

use futures::StreamExt;
use futures::stream::BoxStream;
use http::StatusCode;
use http::header::{ACCEPT, CONTENT_TYPE};
use reqwest::Url;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::service::RoleClient;
use rmcp::transport::Transport;
use rmcp::transport::streamable_http_client::SseError;
use sse_stream::Sse;
use tokio::sync::mpsc;

use crate::http::bounded_events;

/// Why the legacy SSE transport failed.
#[derive(Debug, thiserror::Error)]
pub enum SseTransportError {
    /// The request could not be sent.
    #[error(transparent)]
    Request(#[from] reqwest::Error),
    /// The server answered with an unexpected status or content.
    #[error("{0}")]
    Server(Cow<'static, str>),
}

/// A connected legacy SSE session.
pub struct SseTransport {
    client: reqwest::Client,
    endpoint: Url,
    token: Option<String>,
    incoming: mpsc::Receiver<ServerJsonRpcMessage>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for SseTransport {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl SseTransport {
    /// Opens the event stream at `url` and waits for its `endpoint` event;
    /// each event is capped at `max_event` bytes. The caller bounds the wait.
    pub async fn connect(
        client: reqwest::Client,
        url: &str,
        token: Option<String>,
        max_event: usize,
    ) -> Result<Self, SseTransportError> {
        let url = Url::parse(url).map_err(|e| server(format!("bad URL {url}: {e}")))?;
        let mut request = client.get(url.clone()).header(ACCEPT, "text/event-stream");
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        if response.status() != StatusCode::OK {
            return Err(server(format!(
                "the event stream answered HTTP {}",
                response.status()
            )));
        }
        let is_sse = (response.headers().get(CONTENT_TYPE))
            .and_then(|ct| ct.to_str().ok())
            .is_some_and(|ct| ct.trim_start().starts_with("text/event-stream"));
        if !is_sse {
            return Err(server("the event stream is not text/event-stream"));
        }
        let mut events = bounded_events(response.bytes_stream(), max_event);
        let endpoint = loop {
            match events.next().await {
                Some(Ok(Sse {
                    event: Some(event),
                    data: Some(data),
                    ..
                })) if event == "endpoint" => break data,
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(server(format!("the event stream failed: {e}"))),
                None => return Err(server("the event stream ended before its endpoint")),
            }
        };
        let endpoint = (url.join(endpoint.trim()))
            .map_err(|e| server(format!("bad endpoint {endpoint}: {e}")))?;
        if endpoint.origin() != url.origin() {
            return Err(server(format!(
                "the endpoint {endpoint} is not on the stream's origin"
            )));
        }
        let (sender, incoming) = mpsc::channel(64);
        let reader = tokio::spawn(read_messages(events, sender));
        Ok(Self {
            client,
            endpoint,
            token,
            incoming,
            reader,
        })
    }
}

fn server(message: impl Into<Cow<'static, str>>) -> SseTransportError {
    SseTransportError::Server(message.into())
}

/// Forwards the stream's messages until it ends (which closes the session).
/// An event that is not a JSON-RPC message is logged and skipped: a call
/// waiting for an answer is bounded by its own timeout.
async fn read_messages(
    mut events: BoxStream<'static, Result<Sse, SseError>>,
    sender: mpsc::Sender<ServerJsonRpcMessage>,
) {
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(%error, "MCP event stream failed");
                return;
            }
        };
        if !matches!(event.event.as_deref(), None | Some("message")) {
            continue;
        }
        let Some(data) = event.data else { continue };
        match serde_json::from_str::<ServerJsonRpcMessage>(&data) {
            Ok(message) => {
                if sender.send(message).await.is_err() {
                    return;
                }
            }
            Err(error) => tracing::warn!(%error, "MCP server sent an event that is not JSON-RPC"),
        }
    }
}

impl Transport<RoleClient> for SseTransport {
    type Error = SseTransportError;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let mut request = self.client.post(self.endpoint.clone()).json(&item);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(server(format!(
                    "the server refused a message: HTTP {}",
                    response.status()
                )))
            }
        }
    }

    async fn receive(&mut self) -> Option<ServerJsonRpcMessage> {
        self.incoming.recv().await
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.reader.abort();
        Ok(())
    }
}
