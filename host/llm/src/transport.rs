//! The HTTP side shared by all drivers: sending with timeouts and retries,
//! the circuit breaker, turning error responses into [`LlmError`]s, and
//! reading server-sent-event bodies into [`StreamEvent`]s.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{Stream, StreamExt};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};

use crate::error::{LlmError, TimeoutPhase};
use crate::resilience::{BreakerPermit, CircuitBreaker, Deadline, ResilienceConfig};
use crate::sse::{SseEvent, SseParser};
use crate::stream::{Decoder, EventStream};
use crate::types::StreamEvent;

/// Largest blocking response body we accept; a real completion is far
/// smaller, so anything bigger is a broken or hostile server.
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
/// Bytes of streamed output (text and tool-call arguments) allowed per
/// token of the request's `max_tokens`. A token is about four bytes of
/// English and rarely more than eight of anything; four times that leaves
/// room for every honest answer while still cutting a runaway stream.
pub(crate) const STREAM_BYTES_PER_TOKEN: usize = 32;
/// How much of an error body we read to find the provider's message.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// Longest error message kept when the body is not the usual error JSON.
const MAX_ERROR_MESSAGE_CHARS: usize = 500;

/// A request ready to be sent (possibly several times).
#[derive(Debug, Clone)]
pub(crate) struct PreparedRequest {
    pub url: String,
    pub headers: HeaderMap,
    /// Shared, so a retry sends it again without a copy.
    pub body: bytes::Bytes,
}

impl PreparedRequest {
    pub fn new(url: String, body: &impl serde::Serialize) -> Result<Self, LlmError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| LlmError::invalid(format!("encoding the request: {e}")))?
            .into();
        Ok(PreparedRequest {
            url,
            headers: HeaderMap::new(),
            body,
        })
    }

    /// Adds a header that carries a secret (kept out of debug output).
    pub fn secret_header(&mut self, name: &'static str, value: &str) -> Result<(), LlmError> {
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            LlmError::invalid(
                "the API key contains characters that are not allowed in an HTTP header",
            )
        })?;
        value.set_sensitive(true);
        self.headers.insert(HeaderName::from_static(name), value);
        Ok(())
    }

    /// Adds a plain header.
    pub fn header(&mut self, name: &'static str, value: &'static str) {
        self.headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
}

/// Builds the HTTP client for a provider. Only the connect timeout is set on
/// the client: blocking and streaming calls need different overall limits,
/// which are applied per request.
pub(crate) fn http_client(
    provider: &str,
    connect_timeout: Duration,
) -> Result<reqwest::Client, LlmError> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .user_agent(concat!("talon-llm/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| LlmError::Connect {
            provider: provider.to_string(),
            detail: format!("cannot build the HTTP client: {}", error_chain(&e)),
        })
}

/// Sends one provider's requests.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    provider: String,
    http: reqwest::Client,
    resilience: ResilienceConfig,
    breaker: Arc<CircuitBreaker>,
}

impl Transport {
    pub fn new(
        provider: String,
        http: reqwest::Client,
        resilience: ResilienceConfig,
        breaker: Arc<CircuitBreaker>,
    ) -> Self {
        Transport {
            provider,
            http,
            resilience,
            breaker,
        }
    }

    pub fn provider(&self) -> &str {
        &self.provider
    }

    fn builder(&self, request: &PreparedRequest) -> reqwest::RequestBuilder {
        self.http
            .post(&request.url)
            .headers(request.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(request.body.clone())
    }

    fn deadline(&self) -> Deadline {
        Deadline::starting(Instant::now(), self.resilience.timeouts.call_deadline)
    }

    fn deadline_error(&self, deadline: &Deadline) -> LlmError {
        LlmError::Deadline {
            provider: self.provider.clone(),
            limit: deadline.limit(),
        }
    }

    /// A blocking call: send, read the whole body, `parse` it. Retried as a
    /// whole within the call deadline; counted once by the breaker.
    pub async fn complete<T>(
        &self,
        request: &PreparedRequest,
        parse: impl Fn(&[u8]) -> Result<T, LlmError>,
    ) -> Result<T, LlmError> {
        let permit = self.breaker.acquire()?;
        let deadline = self.deadline();
        let parse = &parse;
        let outcome = self
            .retrying(&deadline, move || async move {
                let response = self
                    .builder(request)
                    .timeout(self.resilience.timeouts.request)
                    .send()
                    .await
                    .map_err(|e| self.map_error(&e, TimeoutPhase::Request))?;
                let response = self.check_status(response).await?;
                let body = self.read_body(response).await?;
                parse(&body)
            })
            .await;
        permit.record(&outcome);
        outcome
    }

    /// A streaming call. Until the first event has been decoded the call is
    /// retried like a blocking one (this covers error statuses, but also an
    /// `overloaded` error event sent as the first thing after a 200); once
    /// an event has been returned to the caller it never is, since the
    /// caller may already have shown it. The call deadline runs on to the
    /// end of the stream, and the stream is cut once its text and tool-call
    /// arguments pass `max_tokens` × [`STREAM_BYTES_PER_TOKEN`] bytes.
    pub async fn stream<D: Decoder>(
        &self,
        request: &PreparedRequest,
        max_tokens: u32,
        make_decoder: impl Fn() -> D,
    ) -> Result<EventStream, LlmError> {
        let permit = self.breaker.acquire()?;
        let deadline = self.deadline();
        let idle = self.resilience.timeouts.stream_idle;
        let cap = OutputCap::new(max_tokens);
        let make_decoder = &make_decoder;
        let outcome = self
            .retrying(&deadline, move || async move {
                let response = match tokio::time::timeout(idle, self.builder(request).send()).await
                {
                    Err(_) => return Err(self.timeout(TimeoutPhase::StreamIdle, idle)),
                    Ok(sent) => sent.map_err(|e| self.map_error(&e, TimeoutPhase::StreamIdle))?,
                };
                let response = self.check_status(response).await?;
                let mut reader = EventReader {
                    transport: self.clone(),
                    body: Some(Box::pin(response.bytes_stream())),
                    parser: SseParser::new(),
                    decoder: make_decoder(),
                    idle,
                    deadline,
                    cap,
                    pending: VecDeque::new(),
                    deferred: None,
                    eof: false,
                    finished: false,
                    permit: None,
                };
                match reader.next_event().await {
                    Some(Ok(first)) => Ok((first, reader)),
                    Some(Err(error)) => Err(error),
                    None => Err(LlmError::stream("the stream ended before any event")),
                }
            })
            .await;
        match outcome {
            Ok((first, mut reader)) => {
                reader.permit = Some(permit);
                if matches!(first, StreamEvent::Done { .. }) {
                    reader.settle(None);
                }
                let rest = futures::stream::unfold(reader, |mut reader| async move {
                    reader.next_event().await.map(|item| (item, reader))
                });
                Ok(Box::pin(
                    futures::stream::once(async move { Ok(first) }).chain(rest),
                ))
            }
            Err(error) => {
                if error.counts_against_provider() {
                    permit.failure();
                } else {
                    permit.success();
                }
                Err(error)
            }
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the deadline
    /// leaves no room for another try. An attempt still running when the
    /// deadline expires is dropped (closing its connection).
    async fn retrying<T, F, Fut>(&self, deadline: &Deadline, mut attempt: F) -> Result<T, LlmError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, LlmError>>,
    {
        let policy = &self.resilience.retry;
        let max_attempts = policy.max_attempts.max(1);
        let mut number = 1;
        loop {
            let error = match tokio::time::timeout_at(deadline.at().into(), attempt()).await {
                Err(_) => return Err(self.deadline_error(deadline)),
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => error,
            };
            if number >= max_attempts || !error.is_retryable() {
                return Err(error);
            }
            let delay = match error.retry_after() {
                Some(after) if after > policy.max_retry_after => return Err(error),
                Some(after) => after,
                None => policy.backoff(number),
            };
            if !deadline.allows_retry_after(Instant::now(), delay) {
                tracing::warn!(
                    provider = %self.provider,
                    attempt = number,
                    ?delay,
                    %error,
                    "LLM call failed; no time left for a retry within the call deadline"
                );
                return Err(error);
            }
            tracing::warn!(
                provider = %self.provider,
                attempt = number,
                max_attempts,
                ?delay,
                %error,
                "LLM call failed; retrying"
            );
            tokio::time::sleep(delay).await;
            number += 1;
        }
    }

    fn timeout(&self, phase: TimeoutPhase, after: Duration) -> LlmError {
        LlmError::Timeout {
            provider: self.provider.clone(),
            phase,
            after,
        }
    }

    fn map_error(&self, error: &reqwest::Error, phase: TimeoutPhase) -> LlmError {
        if error.is_timeout() {
            let phase = if error.is_connect() {
                TimeoutPhase::Connect
            } else {
                phase
            };
            let after = match phase {
                TimeoutPhase::Connect => self.resilience.timeouts.connect,
                TimeoutPhase::Request => self.resilience.timeouts.request,
                TimeoutPhase::StreamIdle => self.resilience.timeouts.stream_idle,
            };
            return self.timeout(phase, after);
        }
        if error.is_builder() {
            return LlmError::invalid(format!(
                "cannot build the HTTP request: {}",
                error_chain(error)
            ));
        }
        LlmError::Connect {
            provider: self.provider.clone(),
            detail: error_chain(error),
        }
    }

    async fn check_status(
        &self,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, LlmError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = parse_retry_after(response.headers(), SystemTime::now());
        // The body is only there to explain the status: if reading it fails
        // the status alone still makes a useful error.
        let body = read_limited(response, MAX_ERROR_BODY_BYTES, true)
            .await
            .unwrap_or_default();
        let message = error_message(&body, status);
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(LlmError::RateLimited {
                provider: self.provider.clone(),
                retry_after,
                message,
            });
        }
        Err(LlmError::Http {
            provider: self.provider.clone(),
            status: status.as_u16(),
            message,
        })
    }

    async fn read_body(&self, response: reqwest::Response) -> Result<Vec<u8>, LlmError> {
        match read_limited(response, MAX_RESPONSE_BYTES, false).await {
            Ok(body) => Ok(body),
            Err(ReadError::TooLarge) => Err(LlmError::decode(format!(
                "response body larger than {MAX_RESPONSE_BYTES} bytes"
            ))),
            Err(ReadError::Http(e)) => Err(self.map_error(&e, TimeoutPhase::Request)),
        }
    }
}

enum ReadError {
    TooLarge,
    Http(reqwest::Error),
}

/// Reads a body up to `limit` bytes; beyond it either truncates or fails.
async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
    truncate: bool,
) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Http)? {
        if body.len() + chunk.len() > limit {
            if truncate {
                body.extend_from_slice(&chunk[..limit - body.len()]);
                return Ok(body);
            }
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The human-readable message in a provider's error body. OpenAI, Anthropic
/// and Gemini all use `{"error": {"message": ...}}`; Ollama uses
/// `{"error": "..."}`; FastAPI-based servers (vLLM) use `{"detail": ...}`.
pub(crate) fn error_message(body: &[u8], status: reqwest::StatusCode) -> String {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        let candidates = [
            json.pointer("/error/message"),
            json.get("error"),
            json.get("message"),
            json.get("detail"),
            json.pointer("/0/error/message"), // Gemini sometimes wraps errors in an array
        ];
        for candidate in candidates.into_iter().flatten() {
            match candidate {
                serde_json::Value::String(text) if !text.trim().is_empty() => {
                    return text.trim().to_string();
                }
                serde_json::Value::Null | serde_json::Value::String(_) => {}
                serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                    // e.g. FastAPI validation details: show them compactly
                    if candidate.pointer("/message").is_none() {
                        return truncate_chars(&candidate.to_string(), MAX_ERROR_MESSAGE_CHARS);
                    }
                }
                other => return other.to_string(),
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return status
            .canonical_reason()
            .unwrap_or("no message")
            .to_string();
    }
    truncate_chars(text, MAX_ERROR_MESSAGE_CHARS)
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// How long a 429 asks us to wait: `retry-after-ms` (OpenAI's SDKs honour
/// it), else `Retry-After` as seconds (fractions accepted) or an HTTP date.
pub(crate) fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && let Some(delay) = seconds(ms / 1000.0)
    {
        return Some(delay);
    }
    let value = text(RETRY_AFTER.as_str())?;
    if let Ok(secs) = value.parse::<f64>() {
        return seconds(secs);
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A non-negative, finite number of seconds as a duration (capped at a day,
/// which is beyond any sane retry hint and keeps the conversion panic-free).
fn seconds(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only HTTP
/// date format servers are allowed to send.
fn parse_http_date(value: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_weekday, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u32 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u32
        + 1;
    let year: i64 = year.parse().ok()?;
    let mut hms = time.split(':').map(|part| part.parse::<u64>().ok());
    let (hours, minutes, secs) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || !(1..=31).contains(&day) || hours > 23 || minutes > 59 || secs > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let total = days.checked_mul(86_400)? + (hours * 3600 + minutes * 60 + secs) as i64;
    let total = u64::try_from(total).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(total))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The cap on one streamed answer's output.
#[derive(Debug, Clone, Copy)]
struct OutputCap {
    max_tokens: u32,
    limit_bytes: usize,
    seen_bytes: usize,
}

impl OutputCap {
    fn new(max_tokens: u32) -> Self {
        OutputCap {
            max_tokens,
            limit_bytes: (max_tokens.max(1) as usize).saturating_mul(STREAM_BYTES_PER_TOKEN),
            seen_bytes: 0,
        }
    }

    /// Counts the output in `events`; false once past the limit.
    fn admit(&mut self, events: &[StreamEvent]) -> bool {
        for event in events {
            let bytes = match event {
                StreamEvent::TextDelta(text) => text.len(),
                StreamEvent::ToolCallDelta {
                    arguments_fragment, ..
                } => arguments_fragment.len(),
                _ => 0,
            };
            self.seen_bytes = self.seen_bytes.saturating_add(bytes);
        }
        self.seen_bytes <= self.limit_bytes
    }
}

/// Reads a server-sent-event body and decodes it, one [`StreamEvent`] at a time.
struct EventReader<S, D> {
    transport: Transport,
    /// `None` once the stream failed: dropping the body closes the
    /// connection, so a provider that keeps sending is cut off at once.
    body: Option<S>,
    parser: SseParser,
    decoder: D,
    idle: Duration,
    deadline: Deadline,
    cap: OutputCap,
    pending: VecDeque<StreamEvent>,
    /// An error to report once the events decoded before it are delivered.
    deferred: Option<LlmError>,
    eof: bool,
    finished: bool,
    /// Held from the moment the stream is handed to the caller; settled on
    /// the first verdict (done, error, or drop).
    permit: Option<BreakerPermit>,
}

impl<S, B, D> EventReader<S, D>
where
    S: Stream<Item = Result<B, reqwest::Error>> + Unpin,
    B: AsRef<[u8]>,
    D: Decoder,
{
    async fn next_event(&mut self) -> Option<Result<StreamEvent, LlmError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                if matches!(event, StreamEvent::Done { .. }) {
                    self.finished = true;
                    self.pending.clear();
                    self.settle(None);
                }
                return Some(Ok(event));
            }
            if self.finished {
                return None;
            }
            if let Some(error) = self.deferred.take() {
                return Some(Err(self.fail(error)));
            }
            if self.eof {
                // The decoder contract is to emit Done or fail at EOF; this
                // keeps a decoder bug from turning into a silent truncation.
                return Some(Err(self.fail(LlmError::stream(
                    "the stream ended before the model finished",
                ))));
            }
            let body = self.body.as_mut()?;
            let mut out = Vec::new();
            let (wait, deadline_limits) = self.deadline.bound(Instant::now(), self.idle);
            let result = match tokio::time::timeout(wait, body.next()).await {
                Err(_) if deadline_limits => Err(self.transport.deadline_error(&self.deadline)),
                Err(_) => Err(self.transport.timeout(TimeoutPhase::StreamIdle, self.idle)),
                Ok(Some(Err(error))) => {
                    Err(self.transport.map_error(&error, TimeoutPhase::StreamIdle))
                }
                Ok(Some(Ok(chunk))) => self.decode_chunk(chunk.as_ref(), &mut out),
                Ok(None) => {
                    self.eof = true;
                    self.decode_eof(&mut out)
                }
            };
            let result = result.and_then(|()| {
                if self.cap.admit(&out) {
                    Ok(())
                } else {
                    // Nothing of the chunk that went past the cap is passed on.
                    out.clear();
                    Err(LlmError::OutputTooLarge {
                        provider: self.transport.provider.clone(),
                        limit_bytes: self.cap.limit_bytes,
                        max_tokens: self.cap.max_tokens,
                    })
                }
            });
            self.pending.extend(out);
            if let Err(error) = result {
                self.body = None;
                self.deferred = Some(error);
            }
        }
    }

    fn decode_chunk(&mut self, chunk: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        let mut events = Vec::new();
        let parsed = self
            .parser
            .push(chunk, &mut events)
            .map_err(|e| LlmError::stream(e.to_string()));
        self.decode_events(&events, out)?;
        parsed
    }

    fn decode_eof(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        let mut events = Vec::new();
        self.parser
            .finish(&mut events)
            .map_err(|e| LlmError::stream(e.to_string()))?;
        if self.decode_events(&events, out)? {
            return Ok(());
        }
        self.decoder.on_eof(out)
    }

    /// Feeds events to the decoder until it reports Done; returns whether it did.
    fn decode_events(
        &mut self,
        events: &[SseEvent],
        out: &mut Vec<StreamEvent>,
    ) -> Result<bool, LlmError> {
        for event in events {
            self.decoder.on_event(event, out)?;
            if out.iter().any(|e| matches!(e, StreamEvent::Done { .. })) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn fail(&mut self, error: LlmError) -> LlmError {
        self.finished = true;
        self.body = None;
        self.pending.clear();
        self.settle(Some(&error));
        tracing::warn!(provider = %self.transport.provider, %error, "LLM stream failed");
        error
    }
}

impl<S, D> EventReader<S, D> {
    fn settle(&mut self, error: Option<&LlmError>) {
        if let Some(permit) = self.permit.take() {
            match error {
                Some(error) if error.counts_against_provider() => permit.failure(),
                _ => permit.success(),
            }
        }
    }
}

impl<S, D> Drop for EventReader<S, D> {
    fn drop(&mut self) {
        // Dropped by the caller mid-answer: the provider was answering, so
        // as far as its health goes this call succeeded.
        self.settle(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                );
            }
            map
        };
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", "2")]), now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", "0.05")]), now),
            Some(Duration::from_millis(50))
        );
        assert_eq!(
            parse_retry_after(
                &headers(&[("retry-after", "1"), ("retry-after-ms", "20")]),
                now
            ),
            Some(Duration::from_millis(20))
        );
        assert_eq!(
            parse_retry_after(
                &headers(&[("retry-after", "Sun, 06 Nov 1994 08:49:47 GMT")]),
                now
            ),
            Some(Duration::from_secs(10))
        );
        // A date in the past means "now".
        assert_eq!(
            parse_retry_after(
                &headers(&[("retry-after", "Sat, 05 Nov 1994 08:49:37 GMT")]),
                now
            ),
            Some(Duration::ZERO)
        );
        for bad in [
            "-1",
            "NaN",
            "inf",
            "soon",
            "Sun, 06 Nov 1994 25:00:00 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
        ] {
            let mut map = HeaderMap::new();
            map.insert(RETRY_AFTER, HeaderValue::from_static(bad));
            assert_eq!(parse_retry_after(&map, now), None, "{bad}");
        }
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", "1e300")]), now),
            Some(Duration::from_secs(86_400))
        );
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn error_messages_from_each_provider_format() {
        let status = reqwest::StatusCode::BAD_REQUEST;
        let cases: [(&str, &str); 6] = [
            (
                r#"{"error":{"message":"Invalid key","type":"invalid_request_error"}}"#,
                "Invalid key",
            ),
            (
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                "Overloaded",
            ),
            (
                r#"{"error":{"code":400,"message":"API key not valid","status":"INVALID_ARGUMENT"}}"#,
                "API key not valid",
            ),
            (r#"{"error":"model 'x' not found"}"#, "model 'x' not found"),
            (r#"{"detail":"Not Found"}"#, "Not Found"),
            ("upstream connect error", "upstream connect error"),
        ];
        for (body, expected) in cases {
            assert_eq!(error_message(body.as_bytes(), status), expected, "{body}");
        }
        assert_eq!(error_message(b"", status), "Bad Request");
        let long = "x".repeat(2000);
        assert_eq!(
            error_message(long.as_bytes(), status).chars().count(),
            MAX_ERROR_MESSAGE_CHARS + 1
        );
    }
}
