//! Small helpers shared by the wire formats.

use serde_json::{Map, Value};

use crate::error::LlmError;
use crate::types::Usage;

/// Key under which raw, non-object tool arguments are kept (see [`arguments_object`]).
pub(crate) const RAW_ARGUMENTS_KEY: &str = "_raw_arguments";

/// Tool arguments as the JSON object Anthropic and Gemini require in the
/// conversation history. Raw text that is not a JSON object (malformed, or
/// cut short by the token limit) is kept as `{"_raw_arguments": text}`: the
/// request stays valid and the model can still see what it produced.
pub(crate) fn arguments_object(raw: &str) -> Value {
    if raw.trim().is_empty() {
        return Value::Object(Map::new());
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(value @ Value::Object(_)) => value,
        _ => {
            let mut object = Map::new();
            object.insert(
                RAW_ARGUMENTS_KEY.to_string(),
                Value::String(raw.to_string()),
            );
            Value::Object(object)
        }
    }
}

/// Tool arguments from a provider that sends them as JSON values: a string
/// is taken as the raw argument text itself, anything else is serialized.
pub(crate) fn arguments_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// An `f32` as the JSON number a human wrote (`0.2`, not `0.20000000298…`).
pub(crate) fn f32_json(value: f32) -> Value {
    value
        .to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// A token count field, tolerating absence and nulls.
pub(crate) fn count(value: &Value, pointer: &str) -> u64 {
    value.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

/// A string field, if present and a string.
pub(crate) fn string<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// Parses a response body as JSON.
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, LlmError> {
    serde_json::from_slice(body).map_err(|e| {
        let preview: String = String::from_utf8_lossy(body).chars().take(200).collect();
        LlmError::decode(format!("response is not valid JSON ({e}): {preview}"))
    })
}

/// Parses one streamed chunk as JSON.
pub(crate) fn parse_chunk(data: &str) -> Result<Value, LlmError> {
    serde_json::from_str(data).map_err(|e| {
        let preview: String = data.chars().take(200).collect();
        LlmError::decode(format!("stream chunk is not valid JSON ({e}): {preview}"))
    })
}

/// Usage with both counts read from `value` at the given pointers.
pub(crate) fn usage(value: &Value, input: &[&str], output: &[&str]) -> Usage {
    Usage {
        input_tokens: input.iter().map(|p| count(value, p)).sum(),
        output_tokens: output.iter().map(|p| count(value, p)).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_object_keeps_malformed_text() {
        assert_eq!(arguments_object(r#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(arguments_object("  "), json!({}));
        assert_eq!(
            arguments_object(r#"{"a":"#),
            json!({"_raw_arguments": "{\"a\":"})
        );
        assert_eq!(arguments_object("[1]"), json!({"_raw_arguments": "[1]"}));
    }

    #[test]
    fn floats_stay_readable() {
        assert_eq!(f32_json(0.2).to_string(), "0.2");
        assert_eq!(f32_json(1.0).to_string(), "1.0");
        assert_eq!(f32_json(f32::NAN), Value::Null);
    }

    #[test]
    fn arguments_text_forms() {
        assert_eq!(arguments_text(&json!("{\"a\":")), "{\"a\":");
        assert_eq!(arguments_text(&json!({"a": 1})), "{\"a\":1}");
        assert_eq!(arguments_text(&Value::Null), "");
    }
}
