//! Connectivity tests: one cheap, free request to a provider (its model
//! list) that proves the base URL answers and the key is accepted.
//!
//! The probe bypasses retries and the circuit breaker on purpose: it is a
//! diagnosis, so it must report what the provider says right now, and a
//! failed probe must not count against the agents' calls.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::anthropic::ANTHROPIC_VERSION;
use crate::catalog::DriverKind;
use crate::error::LlmError;
use crate::transport::{error_chain, error_message};

/// Largest model list read; real ones are a few hundred kilobytes.
const MAX_LIST_BYTES: usize = 8 * 1024 * 1024;

/// What a successful probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    /// Time from sending the request to having the whole answer.
    pub latency: Duration,
    /// How many models the provider listed.
    pub model_count: usize,
}

/// Everything the probe needs, already resolved by the client.
pub(crate) struct ProbeRequest<'a> {
    pub provider: &'a str,
    pub kind: DriverKind,
    pub base_url: &'a str,
    pub api_key: Option<&'a str>,
    pub http: reqwest::Client,
    pub timeout: Duration,
}

fn sensitive(value: &str) -> Result<HeaderValue, LlmError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        LlmError::invalid("the API key contains characters that are not allowed in an HTTP header")
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// The list-models URL and authentication headers of each wire format.
fn list_request(probe: &ProbeRequest<'_>) -> Result<(String, HeaderMap), LlmError> {
    let base = probe.base_url.trim_end_matches('/');
    let mut headers = HeaderMap::new();
    let url = match probe.kind {
        DriverKind::OpenAi => {
            if let Some(key) = probe.api_key {
                headers.insert(
                    reqwest::header::AUTHORIZATION,
                    sensitive(&format!("Bearer {key}"))?,
                );
            }
            format!("{base}/models")
        }
        DriverKind::Anthropic => {
            if let Some(key) = probe.api_key {
                headers.insert(HeaderName::from_static("x-api-key"), sensitive(key)?);
            }
            headers.insert(
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(ANTHROPIC_VERSION),
            );
            format!("{base}/v1/models")
        }
        DriverKind::Gemini => {
            // The header, not `?key=`, so the key never appears in a URL
            // that an error message might quote.
            if let Some(key) = probe.api_key {
                headers.insert(HeaderName::from_static("x-goog-api-key"), sensitive(key)?);
            }
            format!("{base}/v1beta/models")
        }
    };
    Ok((url, headers))
}

fn connect_error(provider: &str, error: &reqwest::Error, timeout: Duration) -> LlmError {
    if error.is_timeout() {
        return LlmError::Timeout {
            provider: provider.to_string(),
            phase: crate::error::TimeoutPhase::Request,
            after: timeout,
        };
    }
    LlmError::Connect {
        provider: provider.to_string(),
        detail: error_chain(error),
    }
}

/// Lists the provider's models once and times it.
pub(crate) async fn probe(probe: ProbeRequest<'_>) -> Result<ProbeReport, LlmError> {
    let (url, headers) = list_request(&probe)?;
    let started = Instant::now();
    let response = probe
        .http
        .get(&url)
        .headers(headers)
        .timeout(probe.timeout)
        .send()
        .await
        .map_err(|e| connect_error(probe.provider, &e, probe.timeout))?;
    let status = response.status();
    let mut body = Vec::new();
    let mut response = response;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| connect_error(probe.provider, &e, probe.timeout))?
    {
        if body.len() + chunk.len() > MAX_LIST_BYTES {
            return Err(LlmError::decode(format!(
                "model list larger than {MAX_LIST_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let latency = started.elapsed();
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(LlmError::RateLimited {
            provider: probe.provider.to_string(),
            retry_after: None,
            message: error_message(&body, status),
        });
    }
    if !status.is_success() {
        return Err(LlmError::Http {
            provider: probe.provider.to_string(),
            status: status.as_u16(),
            message: error_message(&body, status),
        });
    }
    // A 200 that is not a model list (a web page, a proxy's banner) means
    // the base URL points somewhere else than the provider's API.
    let json: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
        LlmError::decode(format!(
            "{url} answered 200 but not with JSON; is the base URL the provider's API?"
        ))
    })?;
    let list = match probe.kind {
        DriverKind::Gemini => json.get("models"),
        DriverKind::OpenAi | DriverKind::Anthropic => json.get("data"),
    };
    // Gemini omits `models` when a key can see none.
    let model_count = match list {
        Some(serde_json::Value::Array(models)) => models.len(),
        None if probe.kind == DriverKind::Gemini => 0,
        _ => {
            return Err(LlmError::decode(format!(
                "{url} answered 200 without a model list; is the base URL the provider's API?"
            )));
        }
    };
    Ok(ProbeReport {
        latency,
        model_count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: DriverKind, key: Option<&str>) -> ProbeRequest<'_> {
        ProbeRequest {
            provider: "p",
            kind,
            base_url: "http://127.0.0.1:1/base/",
            api_key: key,
            http: reqwest::Client::new(),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn each_format_lists_models_at_its_own_path_with_its_own_auth() {
        let (url, headers) = list_request(&request(DriverKind::OpenAi, Some("k1"))).unwrap();
        assert_eq!(url, "http://127.0.0.1:1/base/models");
        assert_eq!(headers["authorization"], "Bearer k1");
        let (url, headers) = list_request(&request(DriverKind::Anthropic, Some("k2"))).unwrap();
        assert_eq!(url, "http://127.0.0.1:1/base/v1/models");
        assert_eq!(headers["x-api-key"], "k2");
        assert_eq!(headers["anthropic-version"], ANTHROPIC_VERSION);
        let (url, headers) = list_request(&request(DriverKind::Gemini, Some("k3"))).unwrap();
        assert_eq!(url, "http://127.0.0.1:1/base/v1beta/models");
        assert!(!url.contains("k3"), "the key stays out of the URL");
        assert_eq!(headers["x-goog-api-key"], "k3");
        let (_, headers) = list_request(&request(DriverKind::OpenAi, None)).unwrap();
        assert!(headers.is_empty());
    }

    #[test]
    fn a_key_that_cannot_be_a_header_is_refused() {
        assert!(matches!(
            list_request(&request(DriverKind::OpenAi, Some("bad\nkey"))),
            Err(LlmError::InvalidRequest { .. })
        ));
    }

    #[tokio::test]
    async fn an_unreachable_provider_is_a_connect_error() {
        let error = probe(request(DriverKind::OpenAi, None)).await.unwrap_err();
        assert!(matches!(error, LlmError::Connect { .. }), "{error:?}");
    }
}
