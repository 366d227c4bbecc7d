//! A blocking HTTP GET over `wasi:http/outgoing-handler`, with a wall-clock
//! deadline and a cap on the body size.
//!
//! The host decides which hosts a plugin may reach; a refused request comes
//! back as `HttpRequestDenied` (or a prohibited destination) and is reported
//! as a permission error naming the host.

use std::fmt;
use std::time::Duration;

use wasip2::clocks::monotonic_clock;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingResponse, Method, OutgoingRequest,
    RequestOptions, Scheme,
};
use wasip2::io::poll;
use wasip2::io::streams::StreamError;

use super::url::HttpUrl;

/// A response, its body read up to the limit.
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body was longer than the limit and was cut there.
    pub truncated: bool,
}

impl Response {
    /// The first value of header `name` (lower-case), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request produced no response.
#[derive(Debug)]
pub enum FetchError {
    /// The host refused the destination: not granted, or a private address.
    Denied { host: String, detail: String },
    /// The deadline passed.
    TimedOut,
    /// DNS, connection, TLS or protocol failure.
    Transport(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied { host, detail } => write!(
                f,
                "the host refused the request to `{host}` ({detail}): the operator must grant \
                 this plugin network access to it"
            ),
            Self::TimedOut => write!(f, "the request timed out"),
            Self::Transport(detail) => write!(f, "{detail}"),
        }
    }
}

/// Sends `GET url` and reads at most `max_bytes` of the body, all within
/// `timeout`.
pub fn get(url: &HttpUrl, timeout: Duration, max_bytes: usize) -> Result<Response, FetchError> {
    let deadline = monotonic_clock::now().saturating_add(nanos(timeout));
    let request = build_request(url)?;
    let options = RequestOptions::new();
    // Hosts may not support every timeout; the deadline below still holds.
    let _ = options.set_connect_timeout(Some(nanos(timeout)));
    let _ = options.set_first_byte_timeout(Some(nanos(timeout)));
    let _ = options.set_between_bytes_timeout(Some(nanos(timeout)));
    let pending =
        outgoing_handler::handle(request, Some(options)).map_err(|e| error_from_code(url, e))?;
    let response = wait_for_response(url, &pending, deadline)?;
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase(),
                String::from_utf8_lossy(&value).into_owned(),
            )
        })
        .collect();
    let (body, truncated) = read_body(&response, deadline, max_bytes)?;
    Ok(Response {
        status,
        headers,
        body,
        truncated,
    })
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn build_request(url: &HttpUrl) -> Result<OutgoingRequest, FetchError> {
    let headers = Fields::new();
    for (name, value) in [
        ("user-agent", "Talon-web_fetch/0.1"),
        (
            "accept",
            "text/html,application/xhtml+xml,text/plain;q=0.9,application/json;q=0.9,*/*;q=0.5",
        ),
    ] {
        headers
            .append(name, value.as_bytes())
            .map_err(|e| FetchError::Transport(format!("cannot set header {name}: {e:?}")))?;
    }
    let request = OutgoingRequest::new(headers);
    let invalid = |what: &str| FetchError::Transport(format!("the host rejected the {what}"));
    request
        .set_method(&Method::Get)
        .map_err(|()| invalid("method"))?;
    request
        .set_scheme(Some(if url.https {
            &Scheme::Https
        } else {
            &Scheme::Http
        }))
        .map_err(|()| invalid("scheme"))?;
    request
        .set_authority(Some(&url.authority))
        .map_err(|()| invalid("host"))?;
    request
        .set_path_with_query(Some(&url.path_and_query))
        .map_err(|()| invalid("path"))?;
    Ok(request)
}

fn wait_for_response(
    url: &HttpUrl,
    pending: &FutureIncomingResponse,
    deadline: u64,
) -> Result<IncomingResponse, FetchError> {
    loop {
        if let Some(outcome) = pending.get() {
            return match outcome {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(code)) => Err(error_from_code(url, code)),
                Err(()) => Err(FetchError::Transport(
                    "the response was already taken".into(),
                )),
            };
        }
        wait_until(&pending.subscribe(), deadline)?;
    }
}

/// Blocks until `ready` fires or the deadline passes.
fn wait_until(ready: &poll::Pollable, deadline: u64) -> Result<(), FetchError> {
    let now = monotonic_clock::now();
    if now >= deadline {
        return Err(FetchError::TimedOut);
    }
    let timer = monotonic_clock::subscribe_duration(deadline - now);
    let fired = poll::poll(&[ready, &timer]);
    if fired.contains(&0) {
        Ok(())
    } else {
        Err(FetchError::TimedOut)
    }
}

fn read_body(
    response: &IncomingResponse,
    deadline: u64,
    max_bytes: usize,
) -> Result<(Vec<u8>, bool), FetchError> {
    let body = response
        .consume()
        .map_err(|()| FetchError::Transport("the response body was already taken".into()))?;
    let stream = body
        .stream()
        .map_err(|()| FetchError::Transport("the response body stream was already taken".into()))?;
    let mut data = Vec::new();
    loop {
        let want = (max_bytes + 1 - data.len()).min(64 * 1024) as u64;
        match stream.read(want) {
            Ok(chunk) if chunk.is_empty() => wait_until(&stream.subscribe(), deadline)?,
            Ok(chunk) => {
                data.extend_from_slice(&chunk);
                if data.len() > max_bytes {
                    data.truncate(max_bytes);
                    return Ok((data, true));
                }
            }
            Err(StreamError::Closed) => return Ok((data, false)),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(FetchError::Transport(format!(
                    "reading the body failed: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
}

fn error_from_code(url: &HttpUrl, code: ErrorCode) -> FetchError {
    let host = url.authority.clone();
    match code {
        ErrorCode::HttpRequestDenied => FetchError::Denied {
            host,
            detail: "not granted".into(),
        },
        ErrorCode::DestinationIpProhibited => FetchError::Denied {
            host,
            detail: "private or reserved address".into(),
        },
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::DnsTimeout => FetchError::TimedOut,
        ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => {
            FetchError::Transport(format!("`{host}` could not be resolved"))
        }
        ErrorCode::ConnectionRefused => {
            FetchError::Transport(format!("`{host}` refused the connection"))
        }
        ErrorCode::TlsCertificateError => {
            FetchError::Transport(format!("`{host}` presented an invalid TLS certificate"))
        }
        ErrorCode::InternalError(Some(message)) => FetchError::Transport(message),
        other => FetchError::Transport(format!("{other:?}")),
    }
}
