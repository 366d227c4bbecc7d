//! Redaction of secrets from text leaving the daemon (trajectory exports).
//!
//! It catches what commonly leaks into conversations: provider keys by their
//! well-known prefixes, bearer tokens, and `key=value` pairs whose key names a
//! secret. It is a safety net for sharing transcripts, not a guarantee.

use std::sync::LazyLock;

use regex::Regex;
use sha2::{Digest, Sha256};

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

static PATTERNS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        // Provider keys and tokens by prefix (OpenAI, Anthropic, GitHub, Slack, AWS, Google).
        r"\b(?:sk-(?:ant-)?[A-Za-z0-9_\-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|xox[abposr]-[A-Za-z0-9\-]{10,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_\-]{35})",
        // Authorization headers.
        r"(?i)\bbearer\s+[A-Za-z0-9._~+/\-]{12,}=*",
        // key=value and "key": "value" where the key names a secret.
        r#"(?i)\b([A-Za-z0-9_]*(?:api[_-]?key|secret|token|password|passwd)[A-Za-z0-9_]*)(["']?\s*[:=]\s*["']?)([^\s"',;]{4,})"#,
    ]
    .iter()
    .filter_map(|p| Regex::new(p).ok())
    .collect()
});

/// `text` with every secret found replaced by [`REDACTED`].
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for (i, pattern) in PATTERNS.iter().enumerate() {
        out = if i == 2 {
            pattern
                .replace_all(&out, format!("${{1}}${{2}}{REDACTED}").as_str())
                .into_owned()
        } else {
            pattern.replace_all(&out, REDACTED).into_owned()
        };
    }
    out
}

/// Every string inside a JSON value, redacted.
pub fn redact_json(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(redact(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(redact_json).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, redact_json(v))).collect())
        }
        other => other,
    }
}

/// A short, stable fingerprint of a text that does not reveal it.
pub fn fingerprint(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_secrets_are_redacted_and_prose_is_not() {
        let text = "key sk-abcdefghijklmnopqrstuv, header Bearer abcdef1234567890xyz, \
                    OPENAI_API_KEY=hunter2hunter2 and {\"password\": \"s3cretpw\"}";
        let out = redact(text);
        for secret in ["sk-abcdef", "abcdef1234567890xyz", "hunter2", "s3cretpw"] {
            assert!(!out.contains(secret), "{secret} leaked in {out}");
        }
        assert!(out.contains("OPENAI_API_KEY=[REDACTED]"));
        assert_eq!(
            redact("the token bucket is empty"),
            "the token bucket is empty"
        );
    }
}
