//! Calls to a homeserver's client-server API (`/_matrix/client/v3/...`):
//! JSON in and out, Matrix's error shape (`{errcode, error}`) decoded, and
//! `M_LIMIT_EXCEEDED` honoured (a short `retry_after_ms` is waited out and
//! the same request, same transaction id, sent again).

use talon_sdk::http::{self, HttpError, Pending, Request, Response};
use talon_sdk::serde_json::{self, Value};

use crate::wit::talon::plugin::log::{Level, log};

/// The largest answer accepted: a sync of busy rooms. Bigger is an error
/// (and the sync filter keeps timelines short).
pub const MAX_RESPONSE: usize = 8 * 1024 * 1024;
/// A rate limit at most this long is waited out inside the call.
const MAX_INLINE_RETRY_MS: u64 = 5_000;
/// Tries of one request through rate limits.
const TRIES: u32 = 3;
/// Timeout of an ordinary call.
pub const CALL_TIMEOUT_MS: u64 = 15_000;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The request did not complete.
    Http(HttpError),
    /// The homeserver refused: its HTTP status, `errcode` and `error`.
    Refused {
        status: u16,
        errcode: String,
        error: String,
    },
    /// Rate limited: retry after this many ms.
    RateLimited(u64),
    /// The answer is not the JSON expected.
    Malformed(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Http(e) => write!(f, "{e}"),
            Self::Refused {
                status,
                errcode,
                error,
            } => write!(
                f,
                "the homeserver refused (HTTP {status}, {errcode}): {error}"
            ),
            Self::RateLimited(ms) => write!(f, "rate limited: retry after {ms} ms"),
            Self::Malformed(m) => write!(f, "not a Matrix answer: {m}"),
        }
    }
}

/// A homeserver and the bot's access token.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(homeserver: &str) -> Self {
        Self {
            base: homeserver.trim_end_matches('/').to_string(),
            token: None,
        }
    }

    pub fn set_token(&mut self, token: &str) {
        self.token = Some(token.to_string());
    }

    fn url(&self, path: &str) -> String {
        format!("{}/_matrix/client/v3{path}", self.base)
    }

    fn start(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        timeout_ms: u64,
    ) -> Result<Pending, ApiError> {
        let url = self.url(path);
        let body = body
            .map(|b| serde_json::to_vec(b).unwrap_or_default())
            .unwrap_or_default();
        let bearer = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer.as_str()));
        }
        let request = Request {
            method,
            url: &url,
            headers: &headers,
            body: &body,
            max_response_bytes: MAX_RESPONSE,
        };
        http::start(&request, timeout_ms).map_err(ApiError::Http)
    }

    /// One request, no retry.
    pub fn once(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, ApiError> {
        let pending = self.start(method, path, body, CALL_TIMEOUT_MS)?;
        match pending.wait(CALL_TIMEOUT_MS).map_err(ApiError::Http)? {
            Some(response) => decode(&response),
            None => Err(ApiError::Http(HttpError::TimedOut)),
        }
    }

    /// A request, sent again after a short rate limit. Sends are PUTs with
    /// a transaction id in the path, so sending one again is idempotent.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, ApiError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.once(method, path, body) {
                Err(ApiError::RateLimited(ms)) if ms <= MAX_INLINE_RETRY_MS && tries < TRIES => {
                    log(
                        Level::Warn,
                        &format!("rate limited, retrying after {ms} ms"),
                    );
                    http::sleep_ms(ms.max(100));
                }
                other => return other,
            }
        }
    }

    /// Starts a `/sync` long poll; it runs in the host between calls.
    pub fn start_sync(&self, query: &str, timeout_ms: u64) -> Result<Pending, ApiError> {
        // The host gives up a little after the homeserver should have answered.
        self.start("GET", &format!("/sync?{query}"), None, timeout_ms + 15_000)
    }
}

/// Decodes a response: the JSON of a 2xx, or Matrix's error.
pub fn decode(response: &Response) -> Result<Value, ApiError> {
    let value: Result<Value, _> = serde_json::from_slice(&response.body);
    if (200..300).contains(&response.status) {
        return value.map_err(|_| {
            ApiError::Malformed(format!(
                "HTTP {} with a body that is not JSON ({} bytes)",
                response.status,
                response.body.len()
            ))
        });
    }
    let value = value.unwrap_or(Value::Null);
    let errcode = value
        .get("errcode")
        .and_then(Value::as_str)
        .unwrap_or("M_UNKNOWN")
        .to_string();
    if response.status == 429 || errcode == "M_LIMIT_EXCEEDED" {
        let ms = value
            .get("retry_after_ms")
            .and_then(Value::as_u64)
            .or_else(|| {
                response
                    .header("retry-after")
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .map(|s| s * 1000)
            })
            .unwrap_or(1000);
        return Err(ApiError::RateLimited(ms));
    }
    Err(ApiError::Refused {
        status: response.status,
        errcode,
        error: value
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no reason given")
            .chars()
            .take(500)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
            truncated: false,
        }
    }

    #[test]
    fn answers_and_errors_decode() {
        assert_eq!(
            decode(&response(200, r#"{"event_id":"$a"}"#)).unwrap()["event_id"],
            "$a"
        );
        assert_eq!(
            decode(&response(
                403,
                r#"{"errcode":"M_FORBIDDEN","error":"Invalid password"}"#
            )),
            Err(ApiError::Refused {
                status: 403,
                errcode: "M_FORBIDDEN".into(),
                error: "Invalid password".into()
            })
        );
        assert_eq!(
            decode(&response(
                429,
                r#"{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":2000}"#
            )),
            Err(ApiError::RateLimited(2000))
        );
        assert!(matches!(
            decode(&response(200, "garbage{")),
            Err(ApiError::Malformed(_))
        ));
        assert!(matches!(
            decode(&response(502, "<html>")),
            Err(ApiError::Refused { status: 502, .. })
        ));
    }
}
