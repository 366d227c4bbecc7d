//! The A2A client: fetch and check a remote agent's card, send it a message,
//! ask for a task. Every request is bounded by the client's timeout and
//! every answer by [`MAX_ANSWER_BYTES`].

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use crate::card::{self, RemoteCard};
use crate::wire::{MAX_MESSAGE_BYTES, Version};

/// Largest card or JSON-RPC answer read from a peer, in bytes.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The peer did not answer in time.
    #[error("the peer did not answer within {0} s")]
    Timeout(u64),
    /// The peer could not be reached.
    #[error("the peer could not be reached: {0}")]
    Unreachable(String),
    /// The URL given is not an http(s) URL.
    #[error("`{0}` is not an http:// or https:// URL")]
    BadUrl(String),
    /// The peer answered with an HTTP error.
    #[error("the peer answered HTTP {status} at {url}")]
    Status {
        /// The status.
        status: u16,
        /// What was asked for.
        url: String,
    },
    /// The answer is over [`MAX_ANSWER_BYTES`].
    #[error("the peer's answer is over {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
    /// The answer is not JSON.
    #[error("the peer's answer is not JSON: {0}")]
    NotJson(String),
    /// The card fails the checks.
    #[error("invalid agent card: {}", .0.join("; "))]
    InvalidCard(Vec<String>),
    /// The peer answered with a JSON-RPC error.
    #[error("the peer answered JSON-RPC error {code}: {message}")]
    Rpc {
        /// Its code.
        code: i64,
        /// Its message.
        message: String,
    },
    /// The answer is JSON but not what A2A says it is.
    #[error("the peer's answer is not an A2A result: {0}")]
    BadAnswer(String),
    /// The message to send is empty or too long.
    #[error("the message must be non-empty and at most {MAX_MESSAGE_BYTES} bytes")]
    BadMessage,
}

/// A task (or direct message answer) as a peer reported it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteTask {
    /// Its id (the message's id when the peer answered with a message).
    pub id: String,
    /// The conversation it belongs to.
    pub context_id: Option<String>,
    /// Its state in 0.3 naming (`completed`, `working`, ...), as reported.
    pub state: String,
    /// The text of its artifacts, else of its status message.
    pub text: Option<String>,
}

/// An A2A client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    timeout: Duration,
}

fn texts(parts: Option<&Value>) -> Vec<String> {
    parts
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a task or message result of either version.
fn remote_task(result: &Value) -> Result<RemoteTask, ClientError> {
    let inner = result
        .get("task")
        .or_else(|| result.get("message"))
        .unwrap_or(result);
    let is_message = result.get("message").is_some()
        || inner.get("kind").and_then(Value::as_str) == Some("message")
        || (inner.get("messageId").is_some() && inner.get("status").is_none());
    if is_message {
        let id = inner
            .get("messageId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Ok(RemoteTask {
            id: id.to_string(),
            context_id: inner
                .get("contextId")
                .and_then(Value::as_str)
                .map(str::to_string),
            state: "completed".into(),
            text: Some(texts(inner.get("parts")).join("\n")),
        });
    }
    let Some(id) = inner.get("id").and_then(Value::as_str) else {
        return Err(ClientError::BadAnswer(
            "neither a task with an `id` nor a message".into(),
        ));
    };
    let status = inner.get("status");
    let state = status
        .and_then(|s| s.get("state"))
        .and_then(Value::as_str)
        .ok_or_else(|| ClientError::BadAnswer("the task has no `status.state`".into()))?;
    let state = state
        .strip_prefix("TASK_STATE_")
        .map(|s| s.to_ascii_lowercase().replace('_', "-"))
        .unwrap_or_else(|| state.to_string());
    let mut text: Vec<String> = inner
        .get("artifacts")
        .and_then(Value::as_array)
        .map(|a| a.iter().flat_map(|a| texts(a.get("parts"))).collect())
        .unwrap_or_default();
    if text.is_empty() {
        text = texts(
            status
                .and_then(|s| s.get("message"))
                .and_then(|m| m.get("parts")),
        );
    }
    Ok(RemoteTask {
        id: id.to_string(),
        context_id: inner
            .get("contextId")
            .and_then(Value::as_str)
            .map(str::to_string),
        state,
        text: (!text.is_empty()).then(|| text.join("\n")),
    })
}

impl Client {
    /// A client whose every request ends within `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        Ok(Self { http, timeout })
    }

    fn fail(&self, e: reqwest::Error) -> ClientError {
        if e.is_timeout() {
            ClientError::Timeout(self.timeout.as_secs())
        } else {
            ClientError::Unreachable(e.to_string())
        }
    }

    /// Reads a JSON answer, refusing one over [`MAX_ANSWER_BYTES`].
    async fn json(&self, mut response: reqwest::Response) -> Result<Value, ClientError> {
        let url = response.url().to_string();
        if !response.status().is_success() {
            return Err(ClientError::Status {
                status: response.status().as_u16(),
                url,
            });
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(ClientError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.fail(e))? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(ClientError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::NotJson(e.to_string()))
    }

    /// Fetches and checks the card at `url`: the URL itself when it names a
    /// `.json` file, else its `/.well-known/agent-card.json` (A2A 1.0), then
    /// `/.well-known/agent.json` (earlier versions, LibreFang) if that is 404.
    pub async fn discover(&self, url: &str) -> Result<(RemoteCard, Value), ClientError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| ClientError::BadUrl(url.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(ClientError::BadUrl(url.to_string()));
        }
        let candidates: Vec<String> = if parsed.path().ends_with(".json") {
            vec![url.to_string()]
        } else {
            let base = url.trim_end_matches('/');
            vec![
                format!("{base}/.well-known/agent-card.json"),
                format!("{base}/.well-known/agent.json"),
            ]
        };
        let mut last = None;
        for candidate in candidates {
            let response = self
                .http
                .get(&candidate)
                .send()
                .await
                .map_err(|e| self.fail(e))?;
            match self.json(response).await {
                Err(e @ ClientError::Status { status: 404, .. }) => last = Some(e),
                Err(ClientError::NotJson(e)) => {
                    return Err(ClientError::InvalidCard(vec![format!(
                        "{candidate} is not JSON: {e}"
                    )]));
                }
                Err(e) => return Err(e),
                Ok(raw) => {
                    let card = card::validate(&raw).map_err(ClientError::InvalidCard)?;
                    return Ok((card, raw));
                }
            }
        }
        Err(last.unwrap_or(ClientError::BadUrl(url.to_string())))
    }

    async fn call(
        &self,
        card: &RemoteCard,
        bearer: Option<&str>,
        v1: &str,
        v03: &str,
        params: Value,
    ) -> Result<Value, ClientError> {
        let method = match card.protocol_version {
            Version::V1 => v1,
            Version::V03 => v03,
        };
        let id = uuid::Uuid::new_v4().to_string();
        let mut request = self
            .http
            .post(&card.endpoint)
            .header(
                "A2A-Version",
                match card.protocol_version {
                    Version::V1 => "1.0",
                    Version::V03 => "0.3",
                },
            )
            .json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        if let Some(key) = bearer {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| self.fail(e))?;
        let answer = self.json(response).await?;
        if let Some(error) = answer.get("error") {
            return Err(ClientError::Rpc {
                code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .chars()
                    .take(1024)
                    .collect(),
            });
        }
        answer
            .get("result")
            .cloned()
            .ok_or_else(|| ClientError::BadAnswer("no `result` and no `error`".into()))
    }

    /// Sends `text` to the peer and waits for its task to end (the peer's
    /// blocking send), within the client's timeout.
    pub async fn send(
        &self,
        card: &RemoteCard,
        bearer: Option<&str>,
        text: &str,
        context_id: Option<&str>,
    ) -> Result<RemoteTask, ClientError> {
        if text.trim().is_empty() || text.len() > MAX_MESSAGE_BYTES {
            return Err(ClientError::BadMessage);
        }
        let message_id = uuid::Uuid::new_v4().to_string();
        let mut message = match card.protocol_version {
            Version::V1 => {
                json!({"messageId": message_id, "role": "ROLE_USER", "parts": [{"text": text}]})
            }
            Version::V03 => json!({"kind": "message", "messageId": message_id, "role": "user",
                "parts": [{"kind": "text", "text": text}]}),
        };
        if let Some(context) = context_id {
            message["contextId"] = json!(context);
        }
        let result = self
            .call(
                card,
                bearer,
                "SendMessage",
                "message/send",
                json!({"message": message}),
            )
            .await?;
        remote_task(&result)
    }

    /// The peer's task `id`.
    pub async fn task(
        &self,
        card: &RemoteCard,
        bearer: Option<&str>,
        id: &str,
    ) -> Result<RemoteTask, ClientError> {
        let result = self
            .call(card, bearer, "GetTask", "tasks/get", json!({"id": id}))
            .await?;
        remote_task(&result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_of_both_versions_are_read() {
        let v1 = json!({"task": {"id": "t", "contextId": "c", "status": {"state": "TASK_STATE_COMPLETED"},
            "artifacts": [{"parts": [{"text": "echo: hi"}]}]}});
        let task = remote_task(&v1).unwrap();
        assert_eq!(
            (task.state.as_str(), task.text.as_deref()),
            ("completed", Some("echo: hi"))
        );
        let v03 = json!({"kind": "task", "id": "t", "status": {"state": "input-required",
            "message": {"parts": [{"kind": "text", "text": "more?"}]}}});
        assert_eq!(remote_task(&v03).unwrap().text.as_deref(), Some("more?"));
        let message = json!({"message": {"messageId": "m", "parts": [{"text": "hi"}]}});
        assert_eq!(remote_task(&message).unwrap().text.as_deref(), Some("hi"));
        assert!(remote_task(&json!({"nope": 1})).is_err());
    }
}
