//! The watcher's pure parts, unit-tested natively: its settings, where a
//! page's text is kept, and the line diff its agent is shown.

use std::collections::BTreeSet;

use talon_sdk::serde_json::{self, Value};

/// JSON Schema of the settings; the host validates against it before
/// `activate`, and [`Settings::parse`] checks the same again.
pub const SETTINGS_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "urls": {
      "type": "array",
      "items": {"type": "string", "pattern": "^https?://"},
      "minItems": 1,
      "maxItems": 20,
      "description": "Pages to watch (http or https); the hand must be granted their hosts."
    },
    "interval_secs": {
      "type": "integer",
      "minimum": 1,
      "maximum": 604800,
      "description": "Seconds between two checks (default 300)."
    }
  },
  "required": ["urls"],
  "additionalProperties": false
}"#;

/// Most pages one activation watches.
const MAX_URLS: usize = 20;
/// Lines of each side of a change shown to the agent.
const MAX_DIFF_LINES: usize = 40;

/// What the operator set.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub urls: Vec<String>,
    pub interval_secs: u64,
}

impl Settings {
    /// Reads the settings; the error names the field.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("settings: {e}"))?;
        let object = value.as_object().ok_or("settings: expected an object")?;
        if let Some(extra) = object
            .keys()
            .find(|k| *k != "urls" && *k != "interval_secs")
        {
            return Err(format!("{extra}: unknown setting"));
        }
        let urls = object
            .get("urls")
            .and_then(Value::as_array)
            .ok_or("urls: required, a list of http(s) URLs")?;
        if urls.is_empty() || urls.len() > MAX_URLS {
            return Err(format!("urls: give 1 to {MAX_URLS} URLs"));
        }
        let mut parsed = Vec::new();
        for (i, url) in urls.iter().enumerate() {
            let url = url
                .as_str()
                .ok_or_else(|| format!("urls[{i}]: expected a string"))?;
            talon_sdk::http::url::parse(url).map_err(|e| format!("urls[{i}]: {e}"))?;
            parsed.push(url.to_string());
        }
        let interval_secs = match object.get("interval_secs") {
            None => 300,
            Some(v) => v
                .as_u64()
                .filter(|s| (1..=604_800).contains(s))
                .ok_or("interval_secs: an integer from 1 to 604800")?,
        };
        Ok(Self {
            urls: parsed,
            interval_secs,
        })
    }
}

/// The memory key of a page's last text: `page:` and the FNV-1a hash of
/// its URL, so any URL fits the host's key length.
pub fn page_key(url: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in url.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("page:{hash:016x}")
}

/// The lines that went away and the lines that came, for the agent.
pub fn diff_lines(before: &str, after: &str) -> String {
    let old: BTreeSet<&str> = before
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let new: BTreeSet<&str> = after
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut out = String::new();
    for (title, lines) in [
        ("Removed lines:", old.difference(&new)),
        ("Added lines:", new.difference(&old)),
    ] {
        let lines: Vec<&&str> = lines.collect();
        if lines.is_empty() {
            continue;
        }
        out.push_str(title);
        out.push('\n');
        for line in lines.iter().take(MAX_DIFF_LINES) {
            out.push_str("- ");
            out.push_str(line);
            out.push('\n');
        }
        if lines.len() > MAX_DIFF_LINES {
            out.push_str(&format!("({} more)\n", lines.len() - MAX_DIFF_LINES));
        }
    }
    if out.is_empty() {
        out.push_str("Only the order or the spacing of lines changed.\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_errors_name_the_field() {
        let ok = Settings::parse(r#"{"urls":["http://example.com/a"],"interval_secs":5}"#);
        assert_eq!(ok.unwrap().interval_secs, 5);
        let defaulted = Settings::parse(r#"{"urls":["https://example.com/"]}"#).unwrap();
        assert_eq!(defaulted.interval_secs, 300);
        for (bad, field) in [
            (r#"{}"#, "urls"),
            (r#"{"urls":[]}"#, "urls"),
            (r#"{"urls":["ftp://x"]}"#, "urls[0]"),
            (
                r#"{"urls":["http://x/"],"interval_secs":0}"#,
                "interval_secs",
            ),
            (r#"{"urls":["http://x/"],"colour":1}"#, "colour"),
            (r#"[1]"#, "settings"),
        ] {
            let err = Settings::parse(bad).unwrap_err();
            assert!(err.starts_with(field), "{bad}: {err}");
        }
        assert_eq!(
            serde_json::from_str::<Value>(SETTINGS_SCHEMA).unwrap()["required"][0],
            "urls"
        );
    }

    #[test]
    fn page_keys_are_short_and_stable() {
        let long = format!("http://example.com/{}", "a".repeat(5000));
        assert_eq!(page_key(&long).len(), "page:".len() + 16);
        assert_eq!(page_key("http://a/"), page_key("http://a/"));
        assert_ne!(page_key("http://a/"), page_key("http://b/"));
    }

    #[test]
    fn the_diff_shows_removed_and_added_lines() {
        let diff = diff_lines("title\nprice: 10\n", "title\nprice: 12\nnew offer\n");
        assert_eq!(
            diff,
            "Removed lines:\n- price: 10\nAdded lines:\n- new offer\n- price: 12\n"
        );
        assert!(diff_lines("a\nb", "b\na").starts_with("Only the order"));
    }
}
