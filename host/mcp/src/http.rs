//! The streamable HTTP client transport over the workspace's reqwest.
//!
//! `rmcp` drives the protocol (sessions, the SSE streams, reconnection of a
//! dropped GET stream) through its [`StreamableHttpClient`] trait; its own
//! implementation is for reqwest 0.13 while the workspace builds 0.12, and
//! moving every crate to 0.13 would change the LLM, A2A and channel clients
//! with it. This module implements the trait over [`reqwest::Client`] 0.12
//! instead, with the same caps: a JSON body or SSE event larger than its
//! limit is refused as it streams in, never buffered whole, and an error
//! body is read only as a short prefix.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use http::header::{ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, StatusCode};
use rmcp::model::{ClientJsonRpcMessage, JsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::common::http_header::{
    EVENT_STREAM_MIME_TYPE, HEADER_LAST_EVENT_ID, HEADER_SESSION_ID, JSON_MIME_TYPE,
};
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, HttpStatusError, SseError, StreamableHttpClient, StreamableHttpError,
    StreamableHttpPostResponse, StreamableHttpResponseLimits,
};
use sse_stream::{Sse, SseStream};

/// Why an HTTP exchange with a server failed below the protocol.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request could not be sent or its body read.
    #[error(transparent)]
    Request(#[from] reqwest::Error),
    /// One event of an SSE stream grew past the cap.
    #[error("an event of the server's stream is larger than {0} bytes")]
    EventTooLarge(usize),
}

/// A reqwest 0.12 client speaking MCP's streamable HTTP.
#[derive(Debug, Clone)]
pub struct HttpClient(pub reqwest::Client);

type HttpResult<T> = Result<T, StreamableHttpError<HttpError>>;

fn client_error(error: reqwest::Error) -> StreamableHttpError<HttpError> {
    StreamableHttpError::Client(HttpError::Request(error))
}

/// Whether a `Content-Type` value names `expected` (parameters ignored).
fn media_type_is(value: &[u8], expected: &str) -> bool {
    (value.split(|b| *b == b';').next())
        .and_then(|essence| std::str::from_utf8(essence).ok())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(expected))
}

/// The SSE events of `bytes`, failing (and ending) the stream when one
/// event's bytes pass `max`: a server streaming one endless event cannot
/// grow the client's memory.
pub(crate) fn bounded_events<S>(bytes: S, max: usize) -> BoxStream<'static, Result<Sse, SseError>>
where
    S: Stream<Item = Result<Bytes, reqwest::Error>> + Send + 'static,
{
    // Bytes since the last blank line (an event's end); `\r` is ignored so
    // CRLF streams count the same.
    let limited = bytes.scan(
        (0usize, false, false),
        move |(pending, newline, failed), chunk| {
            if *failed {
                return std::future::ready(None);
            }
            let item = chunk.map_err(HttpError::from).and_then(|chunk| {
                for &byte in chunk.iter() {
                    match byte {
                        b'\n' if *newline => *pending = 0,
                        b'\n' => *newline = true,
                        b'\r' => {}
                        _ => {
                            *newline = false;
                            *pending += 1;
                        }
                    }
                }
                if *pending > max {
                    Err(HttpError::EventTooLarge(max))
                } else {
                    Ok(chunk)
                }
            });
            *failed = item.is_err();
            std::future::ready(Some(item))
        },
    );
    SseStream::from_bytes_stream(limited).boxed()
}

/// Reads a whole body, refusing it once it passes `max` bytes.
async fn read_capped(response: reqwest::Response, max: usize) -> HttpResult<Vec<u8>> {
    if response
        .content_length()
        .is_some_and(|len| len > max as u64)
    {
        return Err(StreamableHttpError::ResponseBodyTooLarge { max_size: max });
    }
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(client_error)?;
        if chunk.len() > max - body.len() {
            return Err(StreamableHttpError::ResponseBodyTooLarge { max_size: max });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// At most `max` bytes of a body, as text for an error message.
async fn read_prefix(response: reqwest::Response, max: usize) -> String {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while body.len() < max {
        match chunks.next().await {
            Some(Ok(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(max - body.len())]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// The request with Talon's headers: bearer token, session, the caller's.
fn decorate(
    mut request: reqwest::RequestBuilder,
    session_id: Option<&str>,
    auth_token: Option<String>,
    custom_headers: HashMap<HeaderName, HeaderValue>,
) -> reqwest::RequestBuilder {
    if let Some(token) = auth_token {
        request = request.bearer_auth(token);
    }
    if let Some(session_id) = session_id {
        request = request.header(HEADER_SESSION_ID, session_id);
    }
    for (name, value) in custom_headers {
        request = request.header(name, value);
    }
    request
}

/// A 401 with a challenge, or a 429/5xx, as the SDK's typed errors (it
/// decides from them whether to retry a dropped stream).
fn status_error(response: &reqwest::Response) -> Option<StreamableHttpError<HttpError>> {
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED {
        let header = (response.headers().get(WWW_AUTHENTICATE))
            .and_then(|h| h.to_str().ok())
            .unwrap_or("Bearer")
            .to_string();
        return Some(StreamableHttpError::AuthRequired(AuthRequiredError::new(
            header,
        )));
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        let retry_after = (response.headers().get(http::header::RETRY_AFTER))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        return Some(HttpStatusError::new(status.as_u16(), retry_after).into());
    }
    None
}

impl StreamableHttpClient for HttpClient {
    type Error = HttpError;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_token: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<StreamableHttpPostResponse> {
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_token,
            custom_headers,
            StreamableHttpResponseLimits::default(),
        )
        .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_token: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> HttpResult<StreamableHttpPostResponse> {
        let request = self.0.post(uri.as_ref()).header(
            ACCEPT,
            format!("{EVENT_STREAM_MIME_TYPE}, {JSON_MIME_TYPE}"),
        );
        let had_session = session_id.is_some();
        let request = decorate(request, session_id.as_deref(), auth_token, custom_headers);
        let response = request.json(&message).send().await.map_err(client_error)?;
        let status = response.status();
        if status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT {
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        if status == StatusCode::NOT_FOUND && had_session {
            return Err(StreamableHttpError::SessionExpired);
        }
        let content_type = (response.headers().get(CONTENT_TYPE))
            .map(|ct| String::from_utf8_lossy(ct.as_bytes()).into_owned());
        let is_json = (content_type.as_deref())
            .is_some_and(|ct| media_type_is(ct.as_bytes(), JSON_MIME_TYPE));
        let new_session = (response.headers().get(HEADER_SESSION_ID))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let awaits_nothing = !matches!(message, ClientJsonRpcMessage::Request(_));
        if !status.is_success() {
            // A JSON-RPC error carried by an HTTP error is the server's
            // answer to the request: the caller reads it as such.
            if is_json && status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
                let typed = status_error(&response);
                let body = read_capped(response, limits.max_json_response_size).await?;
                if let Ok(error @ JsonRpcMessage::Error(_)) =
                    serde_json::from_slice::<ServerJsonRpcMessage>(&body)
                {
                    return Ok(StreamableHttpPostResponse::Json(error, new_session));
                }
                if let Some(error) = typed {
                    return Err(error);
                }
                let prefix = &body[..body.len().min(limits.max_error_response_size)];
                return Err(StreamableHttpError::UnexpectedServerResponse(Cow::Owned(
                    format!("HTTP {status}: {}", String::from_utf8_lossy(prefix)),
                )));
            }
            if let Some(error) = status_error(&response) {
                return Err(error);
            }
            let body = read_prefix(response, limits.max_error_response_size).await;
            return Err(StreamableHttpError::UnexpectedServerResponse(Cow::Owned(
                format!("HTTP {status}: {body}"),
            )));
        }
        if awaits_nothing && response.content_length() == Some(0) {
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        match content_type.as_deref() {
            Some(ct) if media_type_is(ct.as_bytes(), EVENT_STREAM_MIME_TYPE) => {
                let events = bounded_events(response.bytes_stream(), limits.max_sse_event_size);
                Ok(StreamableHttpPostResponse::Sse(events, new_session))
            }
            Some(_) if is_json => {
                let body = read_capped(response, limits.max_json_response_size).await?;
                match serde_json::from_slice::<ServerJsonRpcMessage>(&body) {
                    Ok(parsed) => Ok(StreamableHttpPostResponse::Json(parsed, new_session)),
                    Err(_) if awaits_nothing => Ok(StreamableHttpPostResponse::Accepted),
                    Err(e) => Err(StreamableHttpError::UnexpectedServerResponse(Cow::Owned(
                        format!(
                            "not a JSON-RPC message ({e}): {}",
                            String::from_utf8_lossy(&body[..body.len().min(256)])
                        ),
                    ))),
                }
            }
            // A notification's answer carries nothing we need.
            _ if awaits_nothing => Ok(StreamableHttpPostResponse::Accepted),
            _ => Err(StreamableHttpError::UnexpectedContentType(content_type)),
        }
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_token: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<()> {
        let request = decorate(
            self.0.delete(uri.as_ref()),
            Some(&session_id),
            auth_token,
            custom_headers,
        );
        let response = request.send().await.map_err(client_error)?;
        // A server without session deletion answers 405: nothing to end.
        if response.status() == StatusCode::METHOD_NOT_ALLOWED {
            return Ok(());
        }
        response.error_for_status().map_err(client_error)?;
        Ok(())
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_token: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<BoxStream<'static, Result<Sse, SseError>>> {
        self.get_stream_with_max_sse_event_size(
            uri,
            session_id,
            last_event_id,
            auth_token,
            custom_headers,
            StreamableHttpResponseLimits::default().max_sse_event_size,
        )
        .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_token: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> HttpResult<BoxStream<'static, Result<Sse, SseError>>> {
        let mut request = self.0.get(uri.as_ref()).header(
            ACCEPT,
            format!("{EVENT_STREAM_MIME_TYPE}, {JSON_MIME_TYPE}"),
        );
        if let Some(last_event_id) = last_event_id {
            request = request.header(HEADER_LAST_EVENT_ID, last_event_id);
        }
        let request = decorate(request, session_id.as_deref(), auth_token, custom_headers);
        let response = request.send().await.map_err(client_error)?;
        if response.status() == StatusCode::METHOD_NOT_ALLOWED {
            return Err(StreamableHttpError::ServerDoesNotSupportSse);
        }
        if let Some(error) = status_error(&response) {
            return Err(error);
        }
        let response = response.error_for_status().map_err(client_error)?;
        match response.headers().get(CONTENT_TYPE) {
            Some(ct)
                if media_type_is(ct.as_bytes(), EVENT_STREAM_MIME_TYPE)
                    || media_type_is(ct.as_bytes(), JSON_MIME_TYPE) => {}
            other => {
                return Err(StreamableHttpError::UnexpectedContentType(
                    other.map(|ct| String::from_utf8_lossy(ct.as_bytes()).into_owned()),
                ));
            }
        }
        Ok(bounded_events(response.bytes_stream(), max_sse_event_size))
    }
}
