//! A task on the wire: A2A 1.0's protobuf-JSON shapes, 0.3's `kind`-tagged
//! ones and LibreFang's `/a2a/tasks/*` shape, all made from one [`TaskView`];
//! and the text of an incoming message in either version.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::jsonrpc::{CONTENT_TYPE_NOT_SUPPORTED, INVALID_PARAMS};

/// Longest text one message may carry, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Longest id (message, context, task) accepted, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// The protocol version a request spoke, and so the shape of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Version {
    /// A2A 1.0.
    #[serde(rename = "1.0")]
    V1,
    /// A2A 0.3.
    #[serde(rename = "0.3")]
    V03,
}

/// Where a task is; only the states Talon's tasks can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Accepted, its turn not yet started.
    Submitted,
    /// Its turn runs.
    Working,
    /// The agent answered.
    Completed,
    /// The turn failed, or the daemon stopped while it ran.
    Failed,
    /// Canceled by a client.
    Canceled,
}

impl TaskState {
    /// Whether the task has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Canceled)
    }

    fn v1(self) -> &'static str {
        match self {
            Self::Submitted => "TASK_STATE_SUBMITTED",
            Self::Working => "TASK_STATE_WORKING",
            Self::Completed => "TASK_STATE_COMPLETED",
            Self::Failed => "TASK_STATE_FAILED",
            Self::Canceled => "TASK_STATE_CANCELED",
        }
    }

    /// The 0.3 (and LibreFang) name.
    pub fn v03(self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::Working => "working",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    /// A state named in either version (`TASK_STATE_COMPLETED` or `completed`);
    /// `None` for states Talon's tasks never reach but a peer's may.
    pub fn parse(name: &str) -> Option<Self> {
        let name = name.strip_prefix("TASK_STATE_").unwrap_or(name);
        Some(match name.to_ascii_lowercase().as_str() {
            "submitted" => Self::Submitted,
            "working" => Self::Working,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "canceled" | "cancelled" => Self::Canceled,
            _ => return None,
        })
    }
}

/// A task as every shape needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskView {
    /// Its id.
    pub id: String,
    /// The conversation it belongs to.
    pub context_id: String,
    /// Where it is.
    pub state: TaskState,
    /// The message that asked for it.
    pub request: String,
    /// The id of that message.
    pub request_message_id: String,
    /// The agent's answer, once completed.
    pub answer: Option<String>,
    /// Why it failed or was canceled.
    pub reason: Option<String>,
    /// When its state last changed.
    pub updated_at: DateTime<Utc>,
}

fn text_part(version: Version, text: &str) -> Value {
    match version {
        Version::V1 => json!({"text": text}),
        Version::V03 => json!({"kind": "text", "text": text}),
    }
}

fn message(version: Version, role_agent: bool, id: &str, task: &TaskView, text: &str) -> Value {
    match version {
        Version::V1 => json!({
            "messageId": id,
            "contextId": task.context_id,
            "taskId": task.id,
            "role": if role_agent { "ROLE_AGENT" } else { "ROLE_USER" },
            "parts": [text_part(version, text)],
        }),
        Version::V03 => json!({
            "kind": "message",
            "messageId": id,
            "contextId": task.context_id,
            "taskId": task.id,
            "role": if role_agent { "agent" } else { "user" },
            "parts": [text_part(version, text)],
        }),
    }
}

impl TaskView {
    fn status(&self, version: Version) -> Value {
        let mut status = Map::new();
        let state = match version {
            Version::V1 => self.state.v1(),
            Version::V03 => self.state.v03(),
        };
        status.insert("state".into(), json!(state));
        let said = match self.state {
            TaskState::Completed => self.answer.as_deref(),
            _ => self.reason.as_deref(),
        };
        if let Some(text) = said {
            let id = format!("{}-status", self.id);
            status.insert("message".into(), message(version, true, &id, self, text));
        }
        status.insert(
            "timestamp".into(),
            json!(self.updated_at.to_rfc3339_opts(SecondsFormat::Millis, true)),
        );
        Value::Object(status)
    }

    fn artifact(&self, version: Version) -> Option<Value> {
        let answer = self.answer.as_deref()?;
        Some(json!({
            "artifactId": format!("{}-answer", self.id),
            "name": "answer",
            "parts": [text_part(version, answer)],
        }))
    }

    /// The task object of `version`.
    pub fn to_task(&self, version: Version) -> Value {
        let mut task = json!({
            "id": self.id,
            "contextId": self.context_id,
            "status": self.status(version),
            "history": [message(version, false, &self.request_message_id, self, &self.request)],
        });
        if let Some(artifact) = self.artifact(version) {
            task["artifacts"] = json!([artifact]);
        }
        if version == Version::V03 {
            task["kind"] = json!("task");
        }
        task
    }

    /// `SendMessage`'s result (`{"task": ...}` in 1.0, the task itself in 0.3).
    pub fn to_send_result(&self, version: Version) -> Value {
        match version {
            Version::V1 => json!({"task": self.to_task(version)}),
            Version::V03 => self.to_task(version),
        }
    }

    /// A stream's first event: the task as it is.
    pub fn to_stream_task(&self, version: Version) -> Value {
        self.to_send_result(version)
    }

    /// A stream event with the task's current status; `final` (0.3 only)
    /// when the task has ended.
    pub fn to_status_update(&self, version: Version) -> Value {
        match version {
            Version::V1 => json!({"statusUpdate": {
                "taskId": self.id,
                "contextId": self.context_id,
                "status": self.status(version),
            }}),
            Version::V03 => json!({
                "kind": "status-update",
                "taskId": self.id,
                "contextId": self.context_id,
                "status": self.status(version),
                "final": self.state.is_terminal(),
            }),
        }
    }

    /// A stream event with the answer, once there is one.
    pub fn to_artifact_update(&self, version: Version) -> Option<Value> {
        let artifact = self.artifact(version)?;
        Some(match version {
            Version::V1 => json!({"artifactUpdate": {
                "taskId": self.id,
                "contextId": self.context_id,
                "artifact": artifact,
                "lastChunk": true,
            }}),
            Version::V03 => json!({
                "kind": "artifact-update",
                "taskId": self.id,
                "contextId": self.context_id,
                "artifact": artifact,
                "lastChunk": true,
            }),
        })
    }

    /// LibreFang's `/a2a/tasks/*` shape: `{task_id, status, result}`.
    pub fn to_librefang(&self) -> Value {
        let mut out = json!({
            "task_id": self.id,
            "context_id": self.context_id,
            "status": self.state.v03(),
            "updated_at": self.updated_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        });
        if let Some(answer) = &self.answer {
            out["result"] = json!({"role": "agent", "parts": [{"text": answer}]});
        }
        if let Some(reason) = &self.reason {
            out["error"] = json!(reason);
        }
        out
    }
}

/// A message a client sent, reduced to what a turn uses.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingMessage {
    /// Its text parts, joined by blank lines.
    pub text: String,
    /// Its id.
    pub message_id: String,
    /// The conversation it continues, if named.
    pub context_id: Option<String>,
    /// The agent it is for (`metadata.agent`: a name or id), if named.
    pub agent: Option<String>,
}

fn id_field(object: &Map<String, Value>, key: &str) -> Result<Option<String>, (i64, String)> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.len() <= MAX_ID_BYTES => Ok(Some(s.clone())),
        Some(_) => Err((
            INVALID_PARAMS,
            format!("`message.{key}` must be a string of at most {MAX_ID_BYTES} bytes"),
        )),
    }
}

/// Reads `params.message` of a send in either version. `Err` is the
/// JSON-RPC code and what is wrong.
pub fn incoming_message(params: &Value) -> Result<IncomingMessage, (i64, String)> {
    let Some(Value::Object(message)) = params.get("message") else {
        return Err((INVALID_PARAMS, "`params.message` must be an object".into()));
    };
    if id_field(message, "taskId")?.is_some() {
        return Err((
            INVALID_PARAMS,
            "continuing an existing task is not supported: send without `taskId` \
             (a `contextId` keeps the conversation)"
                .into(),
        ));
    }
    let Some(Value::Array(parts)) = message.get("parts") else {
        return Err((INVALID_PARAMS, "`message.parts` must be an array".into()));
    };
    let mut texts = Vec::new();
    for part in parts {
        let kind = part.get("kind").and_then(Value::as_str);
        match (part.get("text"), kind) {
            (Some(Value::String(text)), None | Some("text")) => texts.push(text.as_str()),
            _ => {
                return Err((
                    CONTENT_TYPE_NOT_SUPPORTED,
                    "only text parts are supported".into(),
                ));
            }
        }
    }
    let text = texts.join("\n\n");
    if text.trim().is_empty() {
        return Err((INVALID_PARAMS, "the message has no text".into()));
    }
    if text.len() > MAX_MESSAGE_BYTES {
        return Err((
            INVALID_PARAMS,
            format!("the message's text is over {MAX_MESSAGE_BYTES} bytes"),
        ));
    }
    let message_id = id_field(message, "messageId")?.ok_or((
        INVALID_PARAMS,
        "`message.messageId` is required".to_string(),
    ))?;
    let agent = [params.get("metadata"), message.get("metadata")]
        .into_iter()
        .flatten()
        .find_map(|m| m.get("agent").and_then(Value::as_str))
        .map(str::to_string);
    Ok(IncomingMessage {
        text,
        message_id,
        context_id: id_field(message, "contextId")?,
        agent,
    })
}

/// Whether a send asks for the task at once rather than when it ends:
/// 1.0's `configuration.returnImmediately: true`, 0.3's
/// `configuration.blocking: false`.
pub fn returns_immediately(params: &Value) -> bool {
    let configuration = params.get("configuration");
    let field = |key: &str| {
        configuration
            .and_then(|c| c.get(key))
            .and_then(Value::as_bool)
    };
    field("returnImmediately") == Some(true) || field("blocking") == Some(false)
}

/// `params.id` of a get, cancel or subscribe.
pub fn task_id(params: &Value) -> Result<String, (i64, String)> {
    match params.get("id") {
        Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_ID_BYTES => Ok(id.clone()),
        _ => Err((INVALID_PARAMS, "`params.id` must be a task id".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(state: TaskState) -> TaskView {
        TaskView {
            id: "t".into(),
            context_id: "c".into(),
            state,
            request: "hi".into(),
            request_message_id: "m".into(),
            answer: (state == TaskState::Completed).then(|| "hello".into()),
            reason: None,
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn both_versions_shape_a_task() {
        let done = view(TaskState::Completed);
        let v1 = done.to_send_result(Version::V1);
        assert_eq!(v1["task"]["status"]["state"], "TASK_STATE_COMPLETED");
        assert_eq!(v1["task"]["artifacts"][0]["parts"][0]["text"], "hello");
        let v03 = done.to_send_result(Version::V03);
        assert_eq!(
            (v03["kind"].as_str(), v03["status"]["state"].as_str()),
            (Some("task"), Some("completed"))
        );
        assert_eq!(v03["history"][0]["role"], "user");
        assert_eq!(
            view(TaskState::Working).to_status_update(Version::V03)["final"],
            false
        );
    }

    #[test]
    fn messages_of_either_version_are_read() {
        let v1 = json!({"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "a"}, {"text": "b"}]}});
        assert_eq!(incoming_message(&v1).unwrap().text, "a\n\nb");
        let v03 = json!({"message": {"kind": "message", "messageId": "m", "role": "user",
            "parts": [{"kind": "text", "text": "a"}], "metadata": {"agent": "x"}}});
        assert_eq!(incoming_message(&v03).unwrap().agent.as_deref(), Some("x"));
        let file = json!({"message": {"messageId": "m", "parts": [{"kind": "file", "file": {}}]}});
        assert_eq!(
            incoming_message(&file).unwrap_err().0,
            CONTENT_TYPE_NOT_SUPPORTED
        );
        let empty = json!({"message": {"messageId": "m", "parts": []}});
        assert_eq!(incoming_message(&empty).unwrap_err().0, INVALID_PARAMS);
        assert_eq!(incoming_message(&json!({})).unwrap_err().0, INVALID_PARAMS);
    }
}
