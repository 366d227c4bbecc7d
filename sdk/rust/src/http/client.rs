use std::fmt;

use wasip2::clocks::monotonic_clock;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingResponse, Method, OutgoingBody,
    OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::poll;
use wasip2::io::streams::StreamError;

use super::url::HttpUrl;

/// Why a request produced no usable response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The URL is not an absolute `http(s)://host[:port]/path` URL.
    InvalidUrl(String),
    /// The host refused the destination: not granted, or a private address
    /// without a literal `ip:port` grant.
    Denied { host: String, detail: String },
    /// The deadline passed.
    TimedOut,
    /// The response body was longer than the caller's limit.
    TooLarge(usize),
    /// DNS, connection, TLS or protocol failure.
    Transport(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl(url) => write!(f, "invalid URL {url:?}: expected http(s)://host/path"),
            Self::Denied { host, detail } => write!(
                f,
                "the host refused the request to `{host}` ({detail}): the operator must grant \
                 this plugin network access to it"
            ),
            Self::TimedOut => write!(f, "the request timed out"),
            Self::TooLarge(max) => write!(f, "the response is larger than {max} bytes"),
            Self::Transport(detail) => write!(f, "{detail}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// A response, its body read whole.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body was longer than the limit and was cut there (only for
    /// [`get`](super::get); [`request`] fails with [`HttpError::TooLarge`]).
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

/// One request to send.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `GET`, `POST`, `PUT`, `DELETE`, ...
    pub method: &'a str,
    /// Absolute `http://` or `https://` URL; path segments already encoded
    /// (see [`encode`]).
    pub url: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    /// Sent as is; empty sends no body.
    pub body: &'a [u8],
    /// The longest response body accepted.
    pub max_response_bytes: usize,
}

/// The parts of `url` an outgoing request needs ([`super::url::parse`]'s
/// rules: absolute http(s), no credentials, nothing unencoded).
fn parse_url(url: &str) -> Result<HttpUrl, HttpError> {
    super::url::parse(url).map_err(|_| HttpError::InvalidUrl(url.to_string()))
}

/// Percent-encodes `text` for one path segment or query value: everything
/// but unreserved characters (`A-Z a-z 0-9 - . _ ~`).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn now_ns() -> u64 {
    monotonic_clock::now()
}

fn ms_to_ns(ms: u64) -> u64 {
    ms.saturating_mul(1_000_000)
}

/// A request sent whose response has not been read yet. It keeps running
/// in the host while the plugin does other things (between channel calls
/// too); dropping it cancels it.
pub struct Pending {
    authority: String,
    future: FutureIncomingResponse,
    max_response_bytes: usize,
    overflow: Overflow,
}

/// What a body longer than the limit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Overflow {
    /// Fail with [`HttpError::TooLarge`].
    Fail,
    /// Keep the first `max_response_bytes` and mark the response truncated.
    Truncate,
}

/// Sends `request` and waits for its whole response within `timeout_ms`.
pub fn request(request: &Request<'_>, timeout_ms: u64) -> Result<Response, HttpError> {
    send(request, timeout_ms, Overflow::Fail)
}

/// [`request`], with what an overlong body does.
pub(super) fn send(
    request: &Request<'_>,
    timeout_ms: u64,
    overflow: Overflow,
) -> Result<Response, HttpError> {
    let deadline = now_ns().saturating_add(ms_to_ns(timeout_ms));
    let mut pending = start(request, timeout_ms)?;
    pending.overflow = overflow;
    match pending.wait_until(deadline)? {
        Some(response) => Ok(response),
        None => Err(HttpError::TimedOut),
    }
}

/// Sends `request` and returns at once; the host gives up on it (a
/// [`HttpError::TimedOut`] from [`Pending::wait`]) when no answer came
/// within `timeout_ms`.
pub fn start(request: &Request<'_>, timeout_ms: u64) -> Result<Pending, HttpError> {
    let url = parse_url(request.url)?;
    let headers = Fields::new();
    for (name, value) in request.headers {
        headers
            .append(name, value.as_bytes())
            .map_err(|e| HttpError::Transport(format!("the host refused header {name}: {e:?}")))?;
    }
    let outgoing = OutgoingRequest::new(headers);
    let refused = |what: &str| HttpError::Transport(format!("the host refused the {what}"));
    let method = match request.method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "HEAD" => Method::Head,
        other => Method::Other(other.to_string()),
    };
    outgoing
        .set_method(&method)
        .map_err(|()| refused("method"))?;
    outgoing
        .set_scheme(Some(if url.https {
            &Scheme::Https
        } else {
            &Scheme::Http
        }))
        .map_err(|()| refused("scheme"))?;
    outgoing
        .set_authority(Some(&url.authority))
        .map_err(|()| refused("host"))?;
    outgoing
        .set_path_with_query(Some(&url.path_and_query))
        .map_err(|()| refused("path"))?;
    let body = outgoing.body().map_err(|()| refused("request body"))?;
    let options = RequestOptions::new();
    // A host may not support every timeout; the caller's deadline still holds.
    let _ = options.set_connect_timeout(Some(ms_to_ns(timeout_ms)));
    let _ = options.set_first_byte_timeout(Some(ms_to_ns(timeout_ms)));
    let _ = options.set_between_bytes_timeout(Some(ms_to_ns(timeout_ms)));
    let future = outgoing_handler::handle(outgoing, Some(options))
        .map_err(|e| error_from_code(&url.authority, e))?;
    write_body(body, request.body)?;
    Ok(Pending {
        authority: url.authority,
        future,
        max_response_bytes: request.max_response_bytes,
        overflow: Overflow::Fail,
    })
}

fn write_body(body: OutgoingBody, data: &[u8]) -> Result<(), HttpError> {
    {
        let stream = body.write().map_err(|()| {
            HttpError::Transport("the request body stream was already taken".into())
        })?;
        // `blocking-write-and-flush` takes at most 4096 bytes at a time.
        for chunk in data.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|e| {
                HttpError::Transport(format!("writing the request body failed: {e:?}"))
            })?;
        }
    }
    OutgoingBody::finish(body, None)
        .map_err(|e| HttpError::Transport(format!("finishing the request body failed: {e:?}")))
}

impl Pending {
    /// Waits at most `wait_ms` for the response: `None` if it has not come
    /// yet (the request keeps running), the whole response once it has.
    /// The body is read within `wait_ms` more at most.
    pub fn wait(&self, wait_ms: u64) -> Result<Option<Response>, HttpError> {
        self.wait_until(now_ns().saturating_add(ms_to_ns(wait_ms)))
    }

    fn wait_until(&self, deadline: u64) -> Result<Option<Response>, HttpError> {
        loop {
            if let Some(outcome) = self.future.get() {
                let response = match outcome {
                    Ok(Ok(response)) => response,
                    Ok(Err(code)) => return Err(error_from_code(&self.authority, code)),
                    Err(()) => {
                        return Err(HttpError::Transport(
                            "the response was already taken".into(),
                        ));
                    }
                };
                // The body gets its own deadline when the headers came
                // just as the wait ran out.
                let body_deadline = deadline.max(now_ns().saturating_add(ms_to_ns(10_000)));
                return self.read(response, body_deadline).map(Some);
            }
            if !wait_until(&self.future.subscribe(), deadline) {
                return Ok(None);
            }
        }
    }

    fn read(&self, response: IncomingResponse, deadline: u64) -> Result<Response, HttpError> {
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
        let (body, truncated) =
            read_body(&response, deadline, self.max_response_bytes, self.overflow)?;
        Ok(Response {
            status,
            headers,
            body,
            truncated,
        })
    }
}

/// Blocks until `ready` fires (`true`) or the deadline passes (`false`).
fn wait_until(ready: &poll::Pollable, deadline: u64) -> bool {
    let now = now_ns();
    if now >= deadline {
        return ready.ready();
    }
    let timer = monotonic_clock::subscribe_duration(deadline - now);
    poll::poll(&[ready, &timer]).contains(&0)
}

fn read_body(
    response: &IncomingResponse,
    deadline: u64,
    max_bytes: usize,
    overflow: Overflow,
) -> Result<(Vec<u8>, bool), HttpError> {
    let body = response
        .consume()
        .map_err(|()| HttpError::Transport("the response body was already taken".into()))?;
    let stream = body
        .stream()
        .map_err(|()| HttpError::Transport("the response body stream was already taken".into()))?;
    let mut data = Vec::new();
    loop {
        let want = (max_bytes + 1 - data.len()).min(64 * 1024) as u64;
        match stream.read(want) {
            Ok(chunk) if chunk.is_empty() => {
                if !wait_until(&stream.subscribe(), deadline) {
                    return Err(HttpError::TimedOut);
                }
            }
            Ok(chunk) => {
                data.extend_from_slice(&chunk);
                if data.len() > max_bytes {
                    if overflow == Overflow::Fail {
                        return Err(HttpError::TooLarge(max_bytes));
                    }
                    data.truncate(max_bytes);
                    return Ok((data, true));
                }
            }
            Err(StreamError::Closed) => return Ok((data, false)),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(HttpError::Transport(format!(
                    "reading the body failed: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
}

fn error_from_code(authority: &str, code: ErrorCode) -> HttpError {
    let host = authority.to_string();
    match code {
        ErrorCode::HttpRequestDenied => HttpError::Denied {
            host,
            detail: "not granted".into(),
        },
        ErrorCode::DestinationIpProhibited => HttpError::Denied {
            host,
            detail: "private or reserved address".into(),
        },
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::DnsTimeout => HttpError::TimedOut,
        ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => {
            HttpError::Transport(format!("`{host}` could not be resolved"))
        }
        ErrorCode::ConnectionRefused => {
            HttpError::Transport(format!("`{host}` refused the connection"))
        }
        ErrorCode::TlsCertificateError => {
            HttpError::Transport(format!("`{host}` presented an invalid TLS certificate"))
        }
        ErrorCode::InternalError(Some(message)) => HttpError::Transport(message),
        other => HttpError::Transport(format!("{host}: {other:?}")),
    }
}

/// Sleeps `ms` milliseconds (a channel in webhook mode has nothing to poll,
/// a rate-limited one waits before retrying).
pub fn sleep_ms(ms: u64) {
    monotonic_clock::subscribe_duration(ms_to_ns(ms)).block();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        let url = parse_url("https://api.telegram.org/bot1:x/getMe").unwrap();
        assert_eq!(
            url,
            HttpUrl {
                https: true,
                authority: "api.telegram.org".into(),
                path_and_query: "/bot1:x/getMe".into()
            }
        );
        let url = parse_url("HTTP://127.0.0.1:8008?since=a#frag").unwrap();
        assert!(!url.https);
        assert_eq!(url.authority, "127.0.0.1:8008");
        assert_eq!(url.path_and_query, "/?since=a");
        assert_eq!(parse_url("http://h").unwrap().path_and_query, "/");
    }

    #[test]
    fn hostile_urls_are_refused() {
        for bad in [
            "ftp://h/x",
            "http://",
            "http:///x",
            "http://user@evil/x",
            "http://h/a b",
            "http://h/\r\nX: y",
            "//h/x",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn encode_keeps_only_unreserved_characters() {
        assert_eq!(encode("!abc:example.org"), "%21abc%3Aexample.org");
        assert_eq!(encode("a/b?c=d e"), "a%2Fb%3Fc%3Dd%20e");
        assert_eq!(encode("é"), "%C3%A9");
    }
}
