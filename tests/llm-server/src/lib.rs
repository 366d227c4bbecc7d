//! A local LLM provider for tests and benchmarks.
//!
//! [`TestLlm`] is an HTTP server on `127.0.0.1` (a free port) that speaks the
//! real wire formats of OpenAI Chat Completions, Anthropic Messages and
//! Google Gemini, blocking and streaming (server-sent events), with tool
//! calls and token usage. It answers from a script of [`Reply`]s, one per
//! request, in order, whatever the format; when the script is empty it
//! answers every request at once with a short fixed text ([`DEFAULT_REPLY`]),
//! which is what benchmarks want. Every request is recorded so that tests
//! can check what a client sent. Each format's model list (`GET /v1/models`,
//! `GET /v1beta/models`) answers with [`LISTED_MODELS`], without consuming
//! the script, so connectivity tests can be made against it.
//!
//! ```no_run
//! # async fn demo() {
//! use talon_test_llm::{Reply, TestLlm};
//!
//! let server = TestLlm::start().await;
//! server.push(Reply::text("hi"));
//! server.push(Reply::tool_call("word_count", r#"{"text":"a b"}"#));
//! let openai_base_url = server.openai_url(); // {url}/v1
//! let anthropic_base_url = server.anthropic_url(); // {url}
//! let gemini_base_url = server.gemini_url(); // {url}
//! // ... point a client at one of them ...
//! let sent = server.requests();
//! # }
//! ```
//!
//! The server runs on its own thread and runtime, so it keeps answering
//! while the test's own runtime is busy or blocked, and it stops when the
//! [`TestLlm`] is dropped.

#![warn(missing_docs)]

mod misbehave;
mod reply;
mod tools;
mod wire;

use reply::Kind;
pub use reply::Reply;

use wire::{
    answer_anthropic, answer_gemini, answer_openai, anthropic, gemini, openai, validate_anthropic,
    validate_gemini, validate_openai,
};

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// What the server answers when its script is empty.
pub const DEFAULT_REPLY: &str = "Hello from talon-test-llm.";

/// The models every format's model list names.
pub const LISTED_MODELS: &[&str] = &["test-model", "test-model-large"];

/// Which wire format a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// `POST /v1/chat/completions`.
    OpenAi,
    /// `POST /v1/messages`.
    Anthropic,
    /// `POST /v1beta/models/{model}:generateContent` or `:streamGenerateContent`.
    Gemini,
}

/// A request the server received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// The wire format.
    pub api: Api,
    /// The request path.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// Headers, names lowercase (repeated headers: the last value).
    pub headers: BTreeMap<String, String>,
    /// The JSON body (`Value::Null` if it was not JSON).
    pub body: Value,
    /// Whether a streamed answer was asked for.
    pub stream: bool,
    /// The model asked for (from the body, or the path for Gemini).
    pub model: Option<String>,
}

impl RecordedRequest {
    /// A header's value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

#[derive(Debug)]
struct Script {
    replies: VecDeque<Reply>,
    requests: Vec<RecordedRequest>,
    default_reply: String,
    api_key: Option<String>,
    recording: bool,
}

#[derive(Debug)]
struct Shared {
    script: Mutex<Script>,
    sequence: AtomicU64,
    /// Misbehaving answers whose connection went away before they ended.
    abandoned: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Script> {
        // Plain data, never left half-updated: usable even after a panic.
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next_id(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::Relaxed)
    }
}

/// The running server. Dropping it stops the server.
#[derive(Debug)]
pub struct TestLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestLlm {
    /// Starts a server on a free port of 127.0.0.1.
    pub async fn start() -> TestLlm {
        Self::start_blocking()
    }

    /// Starts a server from synchronous code (benchmarks, `#[test]`s).
    ///
    /// Panics if no port can be bound or no thread started: a test that
    /// cannot have its server cannot run.
    pub fn start_blocking() -> TestLlm {
        // Bound here, before returning: connections made as soon as this
        // returns wait in the backlog until the server thread accepts them.
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("talon-test-llm: bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("talon-test-llm: non-blocking listener");
        let addr = listener
            .local_addr()
            .expect("talon-test-llm: local address");
        let shared = Arc::new(Shared {
            script: Mutex::new(Script {
                replies: VecDeque::new(),
                requests: Vec::new(),
                default_reply: DEFAULT_REPLY.to_string(),
                api_key: None,
                recording: true,
            }),
            sequence: AtomicU64::new(1),
            abandoned: AtomicU64::new(0),
        });
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = router(Arc::clone(&shared));
        std::thread::Builder::new()
            .name(format!("talon-test-llm-{}", addr.port()))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        eprintln!("talon-test-llm: cannot start a runtime: {error}");
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(error) => {
                            eprintln!("talon-test-llm: cannot use the listener: {error}");
                            return;
                        }
                    };
                    // Select rather than graceful shutdown: a stalled stream
                    // must not keep a dropped server alive.
                    tokio::select! {
                        // Real providers stream without Nagle delays; so must we.
                        served = axum::serve(
                            axum::serve::ListenerExt::tap_io(listener, |tcp| {
                                let _ = tcp.set_nodelay(true);
                            }),
                            app,
                        ) => {
                            if let Err(error) = served {
                                eprintln!("talon-test-llm: server stopped: {error}");
                            }
                        }
                        _ = stopped => {}
                    }
                });
            })
            .expect("talon-test-llm: spawn the server thread");
        TestLlm {
            addr,
            shared,
            shutdown: Some(shutdown),
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Base URL for an OpenAI-compatible client: `{url}/v1`.
    pub fn openai_url(&self) -> String {
        format!("{}/v1", self.url())
    }

    /// Base URL for an Anthropic client: `{url}`.
    pub fn anthropic_url(&self) -> String {
        self.url()
    }

    /// Base URL for a Gemini client: `{url}`.
    pub fn gemini_url(&self) -> String {
        self.url()
    }

    /// Appends a reply to the script.
    pub fn push(&self, reply: Reply) {
        self.shared.lock().replies.push_back(reply);
    }

    /// Appends several replies to the script.
    pub fn push_all(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.lock().replies.extend(replies);
    }

    /// Scripted replies not yet used.
    pub fn pending(&self) -> usize {
        self.shared.lock().replies.len()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// The last request received.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared.lock().requests.last().cloned()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// How many [`Reply::hang`], [`Reply::endless`] and [`Reply::stall`]
    /// answers were dropped by the server because their connection went
    /// away: the client gave up on them (or the server stopped). None of
    /// them ever ends by itself, so this is how a test sees that a client
    /// closed the connection of a provider that misbehaves.
    pub fn abandoned(&self) -> u64 {
        self.shared.abandoned.load(Ordering::SeqCst)
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Turns request recording on or off (off for long benchmarks, so
    /// memory does not grow with the number of requests).
    pub fn set_recording(&self, on: bool) {
        self.shared.lock().recording = on;
    }

    /// Sets the answer used when the script is empty.
    pub fn set_default_reply(&self, text: impl Into<String>) {
        self.shared.lock().default_reply = text.into();
    }

    /// Requires this API key (`Authorization: Bearer`, `x-api-key` or
    /// `x-goog-api-key`, per format); `None` accepts any request.
    pub fn require_api_key(&self, key: Option<&str>) {
        self.shared.lock().api_key = key.map(str::to_string);
    }
}

impl Drop for TestLlm {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai))
        .route("/chat/completions", post(openai))
        .route("/v1/messages", post(anthropic))
        .route("/v1beta/models/{*rest}", post(gemini))
        .route("/v1/models", get(list_models))
        .route("/models", get(list_models))
        .route("/v1beta/models", get(list_models))
        .fallback(|uri: Uri| async move {
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"error": {"message": format!("no route for {}", uri.path())}})),
            )
        })
        // Requests with images can be large.
        .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
        .with_state(shared)
}

// ---------------------------------------------------------------------------
// Request handling common to the three formats

/// What a handler needs to know about the request, once recorded and checked.
struct Incoming {
    body: Value,
    stream: bool,
    model: String,
    /// The OpenAI client asked for a final usage chunk.
    include_usage: bool,
}

fn record(
    shared: &Shared,
    api: Api,
    uri: &Uri,
    headers: &HeaderMap,
    raw: &Bytes,
    stream_hint: Option<bool>,
) -> Incoming {
    let body: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
    let stream =
        stream_hint.unwrap_or_else(|| body.get("stream").and_then(Value::as_bool).unwrap_or(false));
    let model = match api {
        Api::Gemini => uri
            .path()
            .trim_start_matches("/v1beta/models/")
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string(),
        _ => body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    };
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut script = shared.lock();
    if script.recording {
        script.requests.push(RecordedRequest {
            api,
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
            headers: headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_string(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.clone(),
            stream,
            model: (!model.is_empty()).then(|| model.clone()),
        });
    }
    Incoming {
        body,
        stream,
        model,
        include_usage,
    }
}

/// Checks the API key; `Some` is the provider's authentication error.
fn check_key(shared: &Shared, api: Api, headers: &HeaderMap, uri: &Uri) -> Option<Response> {
    let expected = shared.lock().api_key.clone()?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let given = match api {
        Api::OpenAi => header("authorization").and_then(|v| v.strip_prefix("Bearer ")),
        Api::Anthropic => header("x-api-key"),
        Api::Gemini => header("x-goog-api-key").or_else(|| {
            uri.query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("key=")))
        }),
    };
    if given == Some(expected.as_str()) {
        return None;
    }
    Some(match api {
        Api::OpenAi => error_response(api, 401, "Incorrect API key provided.", &[]),
        Api::Anthropic => error_response(api, 401, "invalid x-api-key", &[]),
        // Gemini answers a bad key with 400 INVALID_ARGUMENT.
        Api::Gemini => error_response(
            api,
            400,
            "API key not valid. Please pass a valid API key.",
            &[],
        ),
    })
}

/// `GET /v1/models` (OpenAI, or Anthropic when its version header is
/// present: both use that path) and `GET /v1beta/models` (Gemini): the
/// model list in each format, behind the same key check as completions.
async fn list_models(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let api = if uri.path().starts_with("/v1beta/") {
        Api::Gemini
    } else if headers.contains_key("anthropic-version") {
        Api::Anthropic
    } else {
        Api::OpenAi
    };
    record(&shared, api, &uri, &headers, &Bytes::new(), Some(false));
    if let Some(response) = check_key(&shared, api, &headers, &uri) {
        return response;
    }
    let created = now_secs();
    let body = match api {
        Api::OpenAi => json!({
            "object": "list",
            "data": LISTED_MODELS.iter().map(|id| json!({
                "id": id, "object": "model", "created": created, "owned_by": "talon-test-llm"
            })).collect::<Vec<_>>(),
        }),
        Api::Anthropic => json!({
            "data": LISTED_MODELS.iter().map(|id| json!({
                "type": "model", "id": id, "display_name": id, "created_at": "2025-01-01T00:00:00Z"
            })).collect::<Vec<_>>(),
            "has_more": false,
            "first_id": LISTED_MODELS.first(),
            "last_id": LISTED_MODELS.last(),
        }),
        Api::Gemini => json!({
            "models": LISTED_MODELS.iter().map(|id| json!({
                "name": format!("models/{id}"),
                "displayName": id,
                "supportedGenerationMethods": ["generateContent", "streamGenerateContent"],
            })).collect::<Vec<_>>(),
        }),
    };
    axum::Json(body).into_response()
}

fn next_reply(shared: &Shared) -> Reply {
    let mut script = shared.lock();
    match script.replies.pop_front() {
        Some(reply) => reply,
        None => Reply::text(script.default_reply.clone()),
    }
}

/// The error JSON of each format.
fn error_response(api: Api, status: u16, message: &str, headers: &[(String, String)]) -> Response {
    let body = match api {
        Api::OpenAi => json!({
            "error": {
                "message": message,
                "type": match status {
                    429 => "rate_limit_exceeded",
                    500..=599 => "server_error",
                    _ => "invalid_request_error",
                },
                "param": null,
                "code": null,
            }
        }),
        Api::Anthropic => json!({
            "type": "error",
            "error": {
                "type": match status {
                    400 => "invalid_request_error",
                    401 => "authentication_error",
                    403 => "permission_error",
                    404 => "not_found_error",
                    413 => "request_too_large",
                    429 => "rate_limit_error",
                    529 => "overloaded_error",
                    _ => "api_error",
                },
                "message": message,
            }
        }),
        Api::Gemini => json!({
            "error": {
                "code": status,
                "message": message,
                "status": match status {
                    400 => "INVALID_ARGUMENT",
                    401 => "UNAUTHENTICATED",
                    403 => "PERMISSION_DENIED",
                    404 => "NOT_FOUND",
                    429 => "RESOURCE_EXHAUSTED",
                    503 => "UNAVAILABLE",
                    504 => "DEADLINE_EXCEEDED",
                    _ => "INTERNAL",
                },
            }
        }),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(body)).into_response();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn bad_request(api: Api, message: &str) -> Response {
    error_response(api, 400, message, &[])
}

/// The events of a streamed answer, with the pause before each.
struct Frames {
    frames: Vec<(Duration, String)>,
    content_delay: Duration,
    seen_content: bool,
}

impl Frames {
    fn new(content_delay: Duration) -> Self {
        Frames {
            frames: Vec::new(),
            content_delay,
            seen_content: false,
        }
    }

    /// Protocol framing (starts, stops, usage, terminators): sent at once.
    fn control(&mut self, frame: String) {
        self.frames.push((Duration::ZERO, frame));
    }

    /// A content fragment (text, arguments): the first is sent at once,
    /// each later one after the reply's chunk delay, so that a client sees
    /// content first and then the gaps.
    fn content(&mut self, frame: String) {
        let pause = if self.seen_content {
            self.content_delay
        } else {
            Duration::ZERO
        };
        self.seen_content = true;
        self.frames.push((pause, frame));
    }

    fn into_response(self) -> Response {
        let stream = futures::stream::unfold(self.frames.into_iter(), |mut frames| async move {
            let (pause, frame) = frames.next()?;
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            Some((Ok::<_, Infallible>(frame), frames))
        });
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }
}

/// Splits `text` into `n` pieces of about equal length (on character
/// boundaries); empty text gives no pieces.
fn split(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    let size = chars.len().div_ceil(n.max(1));
    chars
        .chunks(size)
        .map(|piece| piece.iter().collect())
        .collect()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The reply's usage, or a deterministic estimate (about four bytes a token).
fn usage_of(reply: &Reply, request: &Value, text: &str, calls: &[(String, String)]) -> (u64, u64) {
    reply.usage.unwrap_or_else(|| {
        let input = (request.to_string().len() as u64 / 4).max(1);
        let produced = text.len() + calls.iter().map(|(n, a)| n.len() + a.len()).sum::<usize>();
        (input, (produced as u64 / 4).max(1))
    })
}

/// Arguments as the JSON object Anthropic and Gemini put on the wire; text
/// that is not an object goes as a JSON string (see [`Reply::tool_call`]).
fn arguments_value(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => value,
        _ if arguments.trim().is_empty() => json!({}),
        _ => Value::String(arguments.to_string()),
    }
}

/// Produces a successful answer: `(shared, request, reply, text, tool calls)`.
type AnswerFn = fn(&Shared, &Incoming, &Reply, &str, &[(String, String)]) -> Response;

/// How one wire format checks and answers requests.
struct Format {
    api: Api,
    /// The provider's own request checks (`Err` is the 400 message).
    validate: fn(&Incoming, &HeaderMap) -> Result<(), String>,
    answer: AnswerFn,
}

const OPENAI: Format = Format {
    api: Api::OpenAi,
    validate: validate_openai,
    answer: answer_openai,
};

const ANTHROPIC: Format = Format {
    api: Api::Anthropic,
    validate: validate_anthropic,
    answer: answer_anthropic,
};

const GEMINI: Format = Format {
    api: Api::Gemini,
    validate: validate_gemini,
    answer: answer_gemini,
};

/// Shared handler skeleton: record, check, pick the reply, wait, answer.
async fn handle(
    shared: Arc<Shared>,
    format: &Format,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
    stream_hint: Option<bool>,
) -> Response {
    let api = format.api;
    let incoming = record(&shared, api, &uri, &headers, &raw, stream_hint);
    if incoming.body.is_null() {
        return bad_request(api, "The request body is not valid JSON.");
    }
    if let Some(response) = check_key(&shared, api, &headers, &uri) {
        return response;
    }
    if let Err(message) = (format.validate)(&incoming, &headers) {
        return bad_request(api, &message);
    }
    let reply = next_reply(&shared);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    match &reply.kind {
        Kind::Error {
            status,
            message,
            headers,
        } => error_response(api, *status, message, headers),
        Kind::StreamError { message } if incoming.stream => stream_error_response(api, message),
        Kind::StreamError { message } => {
            let status = match api {
                Api::OpenAi => 500,
                Api::Anthropic => 529,
                Api::Gemini => 503,
            };
            error_response(api, status, message, &[])
        }
        Kind::Answer { text, calls } => (format.answer)(&shared, &incoming, &reply, text, calls),
        Kind::Hang => misbehave::hang(&shared).await,
        Kind::Endless { piece } => {
            misbehave::respond(&shared, api, &incoming, piece, misbehave::Tail::Endless)
        }
        Kind::Stall { text } => {
            misbehave::respond(&shared, api, &incoming, text, misbehave::Tail::Stall)
        }
    }
}

fn stream_error_response(api: Api, message: &str) -> Response {
    let frame = match api {
        Api::OpenAi => format!(
            "data: {}\n\n",
            json!({"error": {"message": message, "type": "server_error", "code": null}})
        ),
        Api::Anthropic => format!(
            "event: error\ndata: {}\n\n",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": message}})
        ),
        Api::Gemini => format!(
            "data: {}\r\n\r\n",
            json!({"error": {"code": 503, "message": message, "status": "UNAVAILABLE"}})
        ),
    };
    let mut frames = Frames::new(Duration::ZERO);
    frames.control(frame);
    frames.into_response()
}

// ---------------------------------------------------------------------------
// OpenAI Chat Completions

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_the_text_in_n_pieces() {
        assert_eq!(split("abcdef", 3), vec!["ab", "cd", "ef"]);
        assert_eq!(split("abcdefg", 3), vec!["abc", "def", "g"]);
        assert_eq!(split("ab", 5), vec!["a", "b"]);
        assert_eq!(split("日本語", 2), vec!["日本", "語"]);
        assert!(split("", 3).is_empty());
    }

    #[test]
    fn arguments_are_objects_or_raw_strings() {
        assert_eq!(arguments_value(r#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(arguments_value(""), json!({}));
        assert_eq!(arguments_value(r#"{"a":"#), json!("{\"a\":"));
    }

    #[test]
    fn rate_limit_headers_round_up_seconds() {
        let reply = Reply::rate_limited(Duration::from_millis(1500));
        match reply.kind {
            Kind::Error {
                status, headers, ..
            } => {
                assert_eq!(status, 429);
                assert!(headers.contains(&("retry-after".into(), "2".into())));
                assert!(headers.contains(&("retry-after-ms".into(), "1500".into())));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
