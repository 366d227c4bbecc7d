//! JSON-RPC 2.0 as A2A uses it: one request per POST (batches are refused,
//! as by `a2a-sdk`), the method names of 1.0 and 0.3, and the error codes of
//! JSON-RPC and of the A2A specification.

use serde_json::{Value, json};

use crate::wire::Version;

/// The body was not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// The body was JSON but not a JSON-RPC request.
pub const INVALID_REQUEST: i64 = -32600;
/// No such method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// The method's parameters are wrong.
pub const INVALID_PARAMS: i64 = -32602;
/// Talon failed.
pub const INTERNAL_ERROR: i64 = -32603;
/// A2A: no task with that id.
pub const TASK_NOT_FOUND: i64 = -32001;
/// A2A: the task has ended and cannot be canceled.
pub const TASK_NOT_CANCELABLE: i64 = -32002;
/// A2A: push notifications are not offered.
pub const PUSH_NOT_SUPPORTED: i64 = -32003;
/// A2A: a method Talon knows but does not offer.
pub const UNSUPPORTED_OPERATION: i64 = -32004;
/// A2A: a part Talon cannot read (only text is).
pub const CONTENT_TYPE_NOT_SUPPORTED: i64 = -32005;

/// Longest request id echoed back, in bytes; a longer one is answered with a null id.
const MAX_ID_BYTES: usize = 256;

/// A method Talon serves, with the protocol version its name belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `SendMessage` / `message/send`: run a task and answer when it ends.
    Send,
    /// `SendStreamingMessage` / `message/stream`: run a task, its updates as SSE.
    Stream,
    /// `GetTask` / `tasks/get`.
    Get,
    /// `CancelTask` / `tasks/cancel`.
    Cancel,
    /// `SubscribeToTask` / `tasks/resubscribe`: a running task's updates as SSE.
    Subscribe,
}

impl Method {
    /// The method a name stands for, and the version that names it so.
    /// `Err` carries the JSON-RPC error code: a method of A2A that Talon does
    /// not offer (push notifications, listing) is `UNSUPPORTED_OPERATION`
    /// or `PUSH_NOT_SUPPORTED`, anything else `METHOD_NOT_FOUND`.
    pub fn parse(name: &str) -> Result<(Self, Version), i64> {
        Ok(match name {
            "SendMessage" => (Self::Send, Version::V1),
            "SendStreamingMessage" => (Self::Stream, Version::V1),
            "GetTask" => (Self::Get, Version::V1),
            "CancelTask" => (Self::Cancel, Version::V1),
            "SubscribeToTask" => (Self::Subscribe, Version::V1),
            "message/send" => (Self::Send, Version::V03),
            "message/stream" => (Self::Stream, Version::V03),
            "tasks/get" => (Self::Get, Version::V03),
            "tasks/cancel" => (Self::Cancel, Version::V03),
            "tasks/resubscribe" => (Self::Subscribe, Version::V03),
            "CreateTaskPushNotificationConfig"
            | "GetTaskPushNotificationConfig"
            | "ListTaskPushNotificationConfigs"
            | "DeleteTaskPushNotificationConfig"
            | "tasks/pushNotificationConfig/set"
            | "tasks/pushNotificationConfig/get"
            | "tasks/pushNotificationConfig/list"
            | "tasks/pushNotificationConfig/delete" => return Err(PUSH_NOT_SUPPORTED),
            "ListTasks" | "GetExtendedAgentCard" | "agent/getAuthenticatedExtendedCard" => {
                return Err(UNSUPPORTED_OPERATION);
            }
            _ => return Err(METHOD_NOT_FOUND),
        })
    }

    /// Whether the answer is an SSE stream.
    pub fn streams(self) -> bool {
        matches!(self, Self::Stream | Self::Subscribe)
    }
}

/// A request that parsed.
#[derive(Debug, Clone)]
pub struct RpcRequest {
    /// Its id, echoed in the answer.
    pub id: Value,
    /// What it asks for.
    pub method: Method,
    /// The version whose method name it used.
    pub version: Version,
    /// Its parameters (an object).
    pub params: Value,
}

/// A JSON-RPC error, with the id of the request it answers.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The request's id, or null when it could not be read.
    pub id: Value,
    /// The JSON-RPC or A2A error code.
    pub code: i64,
    /// What was wrong, for a person.
    pub message: String,
    /// The body itself was unusable (not JSON, not a request, no params
    /// object), so the HTTP answer is a 400 rather than a 200 carrying the
    /// error.
    pub malformed: bool,
}

impl RpcError {
    /// An error answering the request `id`.
    pub fn new(id: Value, code: i64, message: impl Into<String>) -> Self {
        Self {
            id,
            code,
            message: message.into(),
            malformed: false,
        }
    }

    fn malformed(mut self) -> Self {
        self.malformed = true;
        self
    }

    /// The error response object.
    pub fn to_json(&self) -> Value {
        json!({
            "jsonrpc": "2.0",
            "id": self.id,
            "error": {"code": self.code, "message": self.message},
        })
    }
}

/// A successful response object.
pub fn result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn usable_id(id: Option<&Value>) -> Value {
    match id {
        Some(Value::String(s)) if s.len() <= MAX_ID_BYTES => Value::String(s.clone()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Value::Number(n.clone()),
        _ => Value::Null,
    }
}

/// Reads one request from a POST body. An error is `malformed` unless the
/// envelope was whole and only the method is unknown or not offered.
pub fn parse(body: &[u8]) -> Result<RpcRequest, RpcError> {
    read(body).map_err(|e| match e.code {
        METHOD_NOT_FOUND | PUSH_NOT_SUPPORTED | UNSUPPORTED_OPERATION => e,
        _ => e.malformed(),
    })
}

fn read(body: &[u8]) -> Result<RpcRequest, RpcError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        RpcError::new(
            Value::Null,
            PARSE_ERROR,
            format!("the body is not JSON: {e}"),
        )
    })?;
    let Value::Object(object) = value else {
        let what = if value.is_array() {
            "an array (batches are not supported)"
        } else {
            "a bare value"
        };
        return Err(RpcError::new(
            Value::Null,
            INVALID_REQUEST,
            format!("a request is one JSON object: expected a JSON object, not {what}"),
        ));
    };
    let id = usable_id(object.get("id"));
    let valid_id = match object.get("id") {
        None => false,
        Some(Value::String(s)) => s.len() <= MAX_ID_BYTES,
        Some(Value::Number(n)) => n.is_i64() || n.is_u64(),
        // A null id is allowed by JSON-RPC but discouraged; A2A's clients
        // never send one, and an answer to it could not be matched.
        Some(_) => false,
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(RpcError::new(
            id,
            INVALID_REQUEST,
            "`jsonrpc` must be \"2.0\"",
        ));
    }
    if !valid_id {
        return Err(RpcError::new(
            id,
            INVALID_REQUEST,
            format!(
                "`id` must be a string of at most {MAX_ID_BYTES} bytes or an integer (notifications are not supported)"
            ),
        ));
    }
    let Some(name) = object.get("method").and_then(Value::as_str) else {
        return Err(RpcError::new(
            id,
            INVALID_REQUEST,
            "`method` must be a string",
        ));
    };
    let params = match object.get("params") {
        Some(Value::Object(p)) => Value::Object(p.clone()),
        _ => {
            return Err(RpcError::new(
                id,
                INVALID_PARAMS,
                "`params` must be an object",
            ));
        }
    };
    let (method, version) = Method::parse(name).map_err(|code| {
        let message = match code {
            METHOD_NOT_FOUND => format!("method `{name}` not found"),
            PUSH_NOT_SUPPORTED => "push notifications are not supported".to_string(),
            _ => format!("`{name}` is not supported by this server"),
        };
        RpcError::new(id.clone(), code, message)
    })?;
    Ok(RpcRequest {
        id,
        method,
        version,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_requests_get_the_spec_codes() {
        assert_eq!(parse(b"{nope").unwrap_err().code, PARSE_ERROR);
        assert_eq!(parse(b"[]").unwrap_err().code, INVALID_REQUEST);
        assert_eq!(
            parse(br#"{"jsonrpc":"1.0","id":1,"method":"GetTask","params":{}}"#)
                .unwrap_err()
                .code,
            INVALID_REQUEST
        );
        let unknown =
            parse(br#"{"jsonrpc":"2.0","id":"x","method":"Nope","params":{}}"#).unwrap_err();
        assert_eq!((unknown.code, unknown.id), (METHOD_NOT_FOUND, json!("x")));
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"GetTask","params":[1]}"#)
                .unwrap_err()
                .code,
            INVALID_PARAMS
        );
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","id":{"a":1},"method":"GetTask","params":{}}"#)
                .unwrap_err()
                .code,
            INVALID_REQUEST
        );
    }

    #[test]
    fn both_versions_name_the_same_methods() {
        let v1 = parse(br#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{}}"#).unwrap();
        let v03 =
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"message/send","params":{}}"#).unwrap();
        assert_eq!((v1.method, v1.version), (Method::Send, Version::V1));
        assert_eq!((v03.method, v03.version), (Method::Send, Version::V03));
    }
}
