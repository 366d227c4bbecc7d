//! Fetching a page: a `GET` whose body is cut at a limit instead of failing.

use std::time::Duration;

use super::client::{HttpError, Overflow, Request, Response, send};
use super::url::HttpUrl;

/// Sends `GET url` and reads at most `max_bytes` of the body (the rest is
/// dropped and the response marked [`Response::truncated`]), all within
/// `timeout`.
pub fn get(url: &HttpUrl, timeout: Duration, max_bytes: usize) -> Result<Response, HttpError> {
    let url = url.to_string();
    let request = Request {
        method: "GET",
        url: &url,
        headers: &[],
        body: &[],
        max_response_bytes: max_bytes,
    };
    let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    send(&request, timeout_ms, Overflow::Truncate)
}
