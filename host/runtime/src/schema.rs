//! The JSON Schema a long-lived plugin describes for what it is started
//! with (a hand's settings, a channel's configuration), compiled once at
//! load and checked by the host before the plugin sees a value, so a bad
//! value is refused with the field it concerns, never half-applied.
//!
//! Schemas are compiled with `jsonschema` without remote or file
//! retrieval: a `$ref` outside the schema does not compile.

use serde_json::Value;

/// Why a value does not fit the schema: the field (`urls[0]`, `mode`, or
/// empty for the value as a whole) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if field.is_empty() { String::new() } else { format!("{field}: ") })]
pub struct SchemaError {
    /// The field, as a path: `a.b[2]`.
    pub field: String,
    /// What is wrong, in the validator's words.
    pub message: String,
}

/// A compiled schema.
pub struct ConfigSchema {
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for ConfigSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigSchema").finish_non_exhaustive()
    }
}

impl ConfigSchema {
    /// Compiles `schema` (JSON text); the error says why it does not.
    pub fn compile(schema: &str) -> Result<Self, String> {
        let schema: Value = serde_json::from_str(schema).map_err(|e| format!("not JSON: {e}"))?;
        if !schema.is_object() {
            return Err("not a JSON Schema object".into());
        }
        let validator = jsonschema::validator_for(&schema).map_err(|e| e.to_string())?;
        Ok(Self { validator })
    }

    /// Checks `value`; the first error names its field.
    pub fn check(&self, value: &Value) -> Result<(), SchemaError> {
        let Err(error) = self.validator.validate(value) else {
            return Ok(());
        };
        let mut field = String::new();
        for segment in error.instance_path().as_str().split('/').skip(1) {
            let segment = segment.replace("~1", "/").replace("~0", "~");
            push_segment(&mut field, &segment);
        }
        match error.kind() {
            jsonschema::error::ValidationErrorKind::Required { property } => {
                push_segment(&mut field, property.as_str().unwrap_or_default());
            }
            jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                if let Some(first) = unexpected.first() {
                    push_segment(&mut field, first);
                }
            }
            _ => {}
        }
        Err(SchemaError {
            field,
            message: error.to_string(),
        })
    }
}

/// Appends one step of a path: an index as `[n]`, a name after a dot.
fn push_segment(path: &mut String, segment: &str) {
    if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
        path.push_str(&format!("[{segment}]"));
    } else {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(segment);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCHEMA: &str = r#"{
        "type": "object",
        "properties": {
            "urls": {"type": "array", "items": {"type": "string", "pattern": "^https?://"}, "minItems": 1},
            "interval_secs": {"type": "integer", "minimum": 1}
        },
        "required": ["urls"],
        "additionalProperties": false
    }"#;

    #[test]
    fn errors_name_the_field() {
        let schema = ConfigSchema::compile(SCHEMA).unwrap();
        assert_eq!(schema.check(&json!({"urls": ["http://a/"]})), Ok(()));
        for (value, field) in [
            (json!({}), "urls"),
            (json!({"urls": ["http://a/", "ftp://b"]}), "urls[1]"),
            (
                json!({"urls": ["http://a/"], "interval_secs": 0}),
                "interval_secs",
            ),
            (json!({"urls": ["http://a/"], "colour": 1}), "colour"),
            (json!([1]), ""),
        ] {
            let err = schema.check(&value).unwrap_err();
            assert_eq!(err.field, field, "{value}: {err}");
            assert!(!err.message.is_empty());
        }
        let err = schema.check(&json!({"urls": [1]})).unwrap_err();
        assert!(err.to_string().starts_with("urls[0]: "), "{err}");
    }

    #[test]
    fn schemas_that_do_not_compile_are_refused() {
        assert!(
            ConfigSchema::compile("nope")
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(ConfigSchema::compile("[1]").is_err());
        assert!(ConfigSchema::compile(r#"{"type": 12}"#).is_err());
        // Nothing is fetched to resolve a reference.
        assert!(ConfigSchema::compile(r#"{"$ref": "http://127.0.0.1:1/schema.json"}"#).is_err());
    }
}
