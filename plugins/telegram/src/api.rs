//! Calls to the Bot API: `POST <base>/bot<token>/<method>` with a JSON
//! body, and Telegram's envelope (`{ok, result}` or `{ok: false,
//! error_code, description, parameters}`) decoded into a result or an
//! [`ApiError`]. A 429 carries `retry_after`: [`Bot::call`] waits it out
//! and tries again when it is short, and reports it otherwise.

use talon_sdk::http::{self, HttpError, Pending, Request, Response};
use talon_sdk::serde_json::{self, Value};

use crate::wit::talon::plugin::log::{Level, log};

/// The longest Bot API answer accepted (a `getUpdates` of 100 updates).
const MAX_RESPONSE: usize = 4 * 1024 * 1024;
/// A 429 whose `retry_after` is at most this long is waited out inside the
/// call; a longer one is reported to the host as `rate-limited`.
pub const MAX_INLINE_RETRY_S: u32 = 5;
/// Tries of one call through 429s.
const TRIES: u32 = 3;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The request did not complete.
    Http(HttpError),
    /// Telegram refused it: its code and description.
    Refused { code: i64, description: String },
    /// Too many requests: try again after this many seconds.
    RateLimited(u32),
    /// The answer is not a Bot API envelope.
    Malformed(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Http(e) => write!(f, "{e}"),
            Self::Refused { code, description } => {
                write!(f, "Telegram refused ({code}): {description}")
            }
            Self::RateLimited(s) => write!(f, "Telegram asks to retry after {s} s"),
            Self::Malformed(m) => write!(f, "not a Bot API answer: {m}"),
        }
    }
}

/// A bot: the API's base URL and the token.
#[derive(Debug, Clone)]
pub struct Bot {
    base: String,
    token: String,
}

impl Bot {
    /// `base` without a trailing slash, e.g. `https://api.telegram.org`.
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        }
    }

    fn request<'a>(&self, url: &'a str, body: &'a [u8]) -> Request<'a> {
        Request {
            method: "POST",
            url,
            headers: &[("content-type", "application/json")],
            body,
            max_response_bytes: MAX_RESPONSE,
        }
    }

    fn url(&self, method: &str) -> String {
        format!("{}/bot{}/{method}", self.base, self.token)
    }

    /// Calls `method` once.
    pub fn call_once(
        &self,
        method: &str,
        params: &Value,
        timeout_ms: u64,
    ) -> Result<Value, ApiError> {
        let url = self.url(method);
        let body = serde_json::to_vec(params).unwrap_or_default();
        let response =
            http::request(&self.request(&url, &body), timeout_ms).map_err(ApiError::Http)?;
        decode(&response)
    }

    /// Calls `method`, waiting out short 429s (at most [`MAX_INLINE_RETRY_S`]
    /// each) before trying again.
    pub fn call(&self, method: &str, params: &Value, timeout_ms: u64) -> Result<Value, ApiError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.call_once(method, params, timeout_ms) {
                Err(ApiError::RateLimited(s)) if s <= MAX_INLINE_RETRY_S && tries < TRIES => {
                    log(
                        Level::Warn,
                        &format!("{method}: rate limited, retrying after {s} s"),
                    );
                    http::sleep_ms(u64::from(s.max(1)) * 1000);
                }
                other => return other,
            }
        }
    }

    /// Starts a long-polled `getUpdates` from `offset`, waiting up to
    /// `timeout_s` on Telegram's side.
    pub fn start_poll(&self, offset: i64, timeout_s: u32) -> Result<Pending, ApiError> {
        let url = self.url("getUpdates");
        let params = talon_sdk::json!({
            "offset": offset,
            "timeout": timeout_s,
            "allowed_updates": ALLOWED_UPDATES,
        });
        let body = serde_json::to_vec(&params).unwrap_or_default();
        // The host gives up a little after Telegram should have answered.
        let timeout_ms = u64::from(timeout_s) * 1000 + 15_000;
        http::start(&self.request(&url, &body), timeout_ms).map_err(ApiError::Http)
    }
}

/// The updates the channel asks for (webhook and polling alike).
pub const ALLOWED_UPDATES: &[&str] = &[
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "message_reaction",
];

/// Decodes Telegram's envelope.
pub fn decode(response: &Response) -> Result<Value, ApiError> {
    let envelope: Value = serde_json::from_slice(&response.body).map_err(|_| {
        ApiError::Malformed(format!(
            "HTTP {} with a body that is not JSON ({} bytes)",
            response.status,
            response.body.len()
        ))
    })?;
    match envelope.get("ok").and_then(Value::as_bool) {
        Some(true) => envelope
            .get("result")
            .cloned()
            .ok_or_else(|| ApiError::Malformed("`ok` without a `result`".into())),
        Some(false) => {
            let code = envelope
                .get("error_code")
                .and_then(Value::as_i64)
                .unwrap_or(i64::from(response.status));
            let description = envelope
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("no description")
                .to_string();
            if code == 429 {
                let retry_after = envelope
                    .pointer("/parameters/retry_after")
                    .and_then(Value::as_u64)
                    .unwrap_or(1);
                return Err(ApiError::RateLimited(
                    u32::try_from(retry_after).unwrap_or(u32::MAX),
                ));
            }
            Err(ApiError::Refused { code, description })
        }
        None => Err(ApiError::Malformed(format!(
            "HTTP {} without `ok`",
            response.status
        ))),
    }
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
    fn envelopes_decode_into_results_and_errors() {
        assert_eq!(
            decode(&response(200, r#"{"ok":true,"result":{"message_id":5}}"#)).unwrap()["message_id"],
            5
        );
        assert_eq!(
            decode(&response(
                400,
                r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#
            )),
            Err(ApiError::Refused {
                code: 400,
                description: "Bad Request: chat not found".into()
            })
        );
        assert_eq!(
            decode(&response(
                429,
                r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}"#
            )),
            Err(ApiError::RateLimited(7))
        );
        assert!(matches!(
            decode(&response(502, "<html>bad gateway</html>")),
            Err(ApiError::Malformed(_))
        ));
        assert!(matches!(
            decode(&response(200, r#"{"result":1}"#)),
            Err(ApiError::Malformed(_))
        ));
    }
}
