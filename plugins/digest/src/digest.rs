//! The digest's pure parts, unit-tested natively: its settings, its
//! schedule, and the text built from the daemon's answers that its agent
//! is asked to summarise.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use talon_sdk::serde_json::{self, Value};

/// JSON Schema of the settings; the host validates against it before
/// `activate`, and [`Settings::parse`] checks the same again.
pub const SETTINGS_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "base_url": {
      "type": "string",
      "pattern": "^https?://",
      "description": "The daemon's API (http://127.0.0.1:4200); the hand must be granted its host:port."
    },
    "sections": {
      "type": "array",
      "items": {"enum": ["audit", "usage", "tasks"]},
      "minItems": 1,
      "uniqueItems": true,
      "description": "What the digest covers (default all three)."
    },
    "every_secs": {
      "type": "integer",
      "minimum": 1,
      "maximum": 604800,
      "description": "Seconds between two digests (default 86400: daily)."
    },
    "at": {
      "type": "string",
      "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$",
      "description": "Time of day (UTC, HH:MM) of a daily digest; only with every_secs 86400."
    },
    "max_items": {
      "type": "integer",
      "minimum": 1,
      "maximum": 50,
      "description": "Most failures listed per section (default 10)."
    }
  },
  "required": ["base_url"],
  "dependentSchemas": {"at": {"properties": {"every_secs": {"const": 86400}}}},
  "additionalProperties": false
}"#;

const DAY: u64 = 86_400;
const KNOWN: [&str; 5] = ["base_url", "sections", "every_secs", "at", "max_items"];
/// Characters of an audit entry's details shown to the agent.
const MAX_DETAIL: usize = 200;

/// A part of the digest, read from one API route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `GET /api/audit/recent`: entries since the last digest.
    Audit,
    /// `GET /api/usage/summary`: today's tokens, requests and cost.
    Usage,
    /// `GET /api/tasks/list`: tasks posted since the last digest.
    Tasks,
}

impl Section {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "audit" => Some(Self::Audit),
            "usage" => Some(Self::Usage),
            "tasks" => Some(Self::Tasks),
            _ => None,
        }
    }

    /// The route read for it, below the base URL.
    pub fn path(self) -> &'static str {
        match self {
            Self::Audit => "/api/audit/recent?limit=500",
            Self::Usage => "/api/usage/summary",
            Self::Tasks => "/api/tasks/list",
        }
    }
}

/// What the operator set.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Without a trailing slash.
    pub base_url: String,
    pub sections: Vec<Section>,
    pub every_secs: u64,
    /// Seconds after midnight UTC at which a daily digest is due.
    pub offset_secs: u64,
    pub max_items: usize,
}

impl Settings {
    /// Reads the settings; the error names the field.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("settings: {e}"))?;
        let object = value.as_object().ok_or("settings: expected an object")?;
        if let Some(extra) = object.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(format!("{extra}: unknown setting"));
        }
        let base_url = object
            .get("base_url")
            .and_then(Value::as_str)
            .ok_or("base_url: required, the daemon's http(s) URL")?;
        talon_sdk::http::url::parse(base_url).map_err(|e| format!("base_url: {e}"))?;
        let base_url = base_url.trim().trim_end_matches('/').to_string();
        let sections = match object.get("sections") {
            None => vec![Section::Audit, Section::Usage, Section::Tasks],
            Some(v) => {
                let list = v
                    .as_array()
                    .filter(|l| !l.is_empty())
                    .ok_or("sections: a non-empty list of audit, usage, tasks")?;
                let mut sections = Vec::new();
                for (i, s) in list.iter().enumerate() {
                    let section = s
                        .as_str()
                        .and_then(Section::parse)
                        .ok_or_else(|| format!("sections[{i}]: one of audit, usage, tasks"))?;
                    if sections.contains(&section) {
                        return Err(format!("sections[{i}]: listed twice"));
                    }
                    sections.push(section);
                }
                sections
            }
        };
        let every_secs = match object.get("every_secs") {
            None => DAY,
            Some(v) => v
                .as_u64()
                .filter(|s| (1..=604_800).contains(s))
                .ok_or("every_secs: an integer from 1 to 604800")?,
        };
        let offset_secs = match object.get("at") {
            None => 0,
            Some(_) if every_secs != DAY => {
                return Err("at: only for a daily digest (every_secs 86400)".into());
            }
            Some(v) => v
                .as_str()
                .and_then(parse_hh_mm)
                .ok_or("at: a time of day HH:MM (UTC)")?,
        };
        let max_items = match object.get("max_items") {
            None => 10,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=50).contains(n))
                .and_then(|n| usize::try_from(n).ok())
                .ok_or("max_items: an integer from 1 to 50")?,
        };
        Ok(Self {
            base_url,
            sections,
            every_secs,
            offset_secs,
            max_items,
        })
    }

    /// Start (unix seconds) of the period `now` falls in: periods of
    /// `every_secs` starting at `at` (daily) or at the epoch.
    pub fn period_start(&self, now: u64) -> u64 {
        let shifted = now.saturating_sub(self.offset_secs);
        shifted - shifted % self.every_secs + self.offset_secs
    }

    /// Whether a digest is due at `now`, given when the last one was sent:
    /// once per period (none yet: the first is sent at once, covering the
    /// current period so far).
    pub fn due(&self, now: u64, last: Option<u64>) -> bool {
        last.is_none_or(|last| self.period_start(now) > self.period_start(last))
    }

    /// Where the window of a digest sent at `now` starts: when the last one
    /// was sent, or the current period's start for the first.
    pub fn since(&self, now: u64, last: Option<u64>) -> u64 {
        last.unwrap_or_else(|| self.period_start(now))
    }
}

fn parse_hh_mm(text: &str) -> Option<u64> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m) = (h.parse::<u64>().ok()?, m.parse::<u64>().ok()?);
    (h < 24 && m < 60).then_some(h * 3600 + m * 60)
}

/// `secs` as RFC 3339 UTC, to the second.
pub fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
        .map_or_else(
            || secs.to_string(),
            |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
        )
}

/// Whether the RFC 3339 `stamp` of an item is at or after `since`.
fn in_window(stamp: Option<&Value>, since: u64) -> bool {
    stamp
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .is_some_and(|t| u64::try_from(t.timestamp()).is_ok_and(|t| t >= since))
}

fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// The audit section: entries since `since` counted by type, and the ones
/// whose outcome is not `ok`.
pub fn audit_section(body: &Value, since: u64, max_items: usize) -> String {
    let entries: Vec<&Value> = body["entries"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| in_window(e.get("timestamp"), since))
                .collect()
        })
        .unwrap_or_default();
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &entries {
        *by_type
            .entry(e["event_type"].as_str().unwrap_or("?"))
            .or_default() += 1;
    }
    let failures: Vec<&&Value> = entries
        .iter()
        .filter(|e| e["outcome"].as_str().is_some_and(|o| o != "ok"))
        .collect();
    // The route answers 500 entries at most: all in the window means more
    // may have happened.
    let at_least = if entries.len() >= 500 {
        "at least "
    } else {
        ""
    };
    let mut out = format!("Audit: {at_least}{} entries", entries.len());
    if !by_type.is_empty() {
        let types: Vec<String> = by_type.iter().map(|(t, n)| format!("{t} {n}")).collect();
        out.push_str(&format!(" ({})", types.join(", ")));
    }
    out.push_str(&format!("; {} not ok.\n", failures.len()));
    for e in failures.iter().take(max_items) {
        out.push_str(&format!(
            "- {} {}: {} ({})\n",
            e["timestamp"].as_str().unwrap_or("?"),
            e["event_type"].as_str().unwrap_or("?"),
            cut(e["outcome"].as_str().unwrap_or("?"), MAX_DETAIL),
            cut(e["details"].as_str().unwrap_or(""), MAX_DETAIL),
        ));
    }
    out
}

/// The usage section: today's totals (UTC) and the month's cost.
pub fn usage_section(body: &Value) -> String {
    let today = &body["today"];
    format!(
        "Usage today: {} requests, {} input tokens, {} output tokens, cost ${:.4} (month ${:.4}).\n",
        today["requests"].as_u64().unwrap_or(0),
        today["input_tokens"].as_u64().unwrap_or(0),
        today["output_tokens"].as_u64().unwrap_or(0),
        today["cost_usd"].as_f64().unwrap_or(0.0),
        body["month"]["cost_usd"].as_f64().unwrap_or(0.0),
    )
}

/// The tasks section: tasks posted since `since` by status, and the
/// failed ones with their error.
pub fn tasks_section(body: &Value, since: u64, max_items: usize) -> String {
    let tasks: Vec<&Value> = body["tasks"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter(|t| in_window(t.get("created_at"), since))
                .collect()
        })
        .unwrap_or_default();
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &tasks {
        *by_status
            .entry(t["status"].as_str().unwrap_or("?"))
            .or_default() += 1;
    }
    let mut out = format!("Tasks: {} posted", tasks.len());
    if !by_status.is_empty() {
        let statuses: Vec<String> = by_status.iter().map(|(s, n)| format!("{s} {n}")).collect();
        out.push_str(&format!(" ({})", statuses.join(", ")));
    }
    out.push_str(".\n");
    for t in tasks
        .iter()
        .filter(|t| t["status"] == "failed")
        .take(max_items)
    {
        out.push_str(&format!(
            "- failed: {}: {}\n",
            cut(t["title"].as_str().unwrap_or("?"), MAX_DETAIL),
            cut(t["error"].as_str().unwrap_or("no error given"), MAX_DETAIL),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use talon_sdk::serde_json::json;

    fn settings(v: Value) -> Result<Settings, String> {
        Settings::parse(&v.to_string())
    }

    #[test]
    fn settings_errors_name_the_field() {
        for (v, field) in [
            (json!({}), "base_url"),
            (json!({"base_url": "ftp://x"}), "base_url"),
            (json!({"base_url": "http://h", "sections": []}), "sections"),
            (
                json!({"base_url": "http://h", "sections": ["x"]}),
                "sections[0]",
            ),
            (
                json!({"base_url": "http://h", "sections": ["audit", "audit"]}),
                "sections[1]",
            ),
            (
                json!({"base_url": "http://h", "every_secs": 0}),
                "every_secs",
            ),
            (json!({"base_url": "http://h", "at": "25:00"}), "at"),
            (
                json!({"base_url": "http://h", "every_secs": 60, "at": "08:00"}),
                "at",
            ),
            (
                json!({"base_url": "http://h", "max_items": 51}),
                "max_items",
            ),
            (json!({"base_url": "http://h", "x": 1}), "x"),
        ] {
            let e = settings(v.clone()).unwrap_err();
            assert!(e.starts_with(field), "{v}: {e}");
        }
        let s = settings(json!({"base_url": "http://127.0.0.1:4200/", "at": "18:30"})).unwrap();
        assert_eq!(s.base_url, "http://127.0.0.1:4200");
        assert_eq!(s.sections.len(), 3);
        assert_eq!(
            (s.every_secs, s.offset_secs, s.max_items),
            (DAY, 18 * 3600 + 1800, 10)
        );
    }

    #[test]
    fn the_schema_is_json_naming_every_setting() {
        let schema: Value = serde_json::from_str(SETTINGS_SCHEMA).unwrap();
        let names: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        assert_eq!(names.len(), KNOWN.len());
        assert!(names.iter().all(|n| KNOWN.contains(&n.as_str())));
    }

    #[test]
    fn a_daily_digest_is_due_once_per_day_at_its_time() {
        let s = settings(json!({"base_url": "http://h", "at": "18:00"})).unwrap();
        let day = 20_000 * DAY;
        // 10:00: the period started yesterday at 18:00.
        assert_eq!(s.period_start(day + 10 * 3600), day - 6 * 3600);
        assert!(s.due(day + 10 * 3600, None));
        let sent = day + 10 * 3600;
        assert!(!s.due(day + 17 * 3600, Some(sent)));
        assert!(s.due(day + 18 * 3600, Some(sent)));
        assert_eq!(s.since(day + 18 * 3600, Some(sent)), sent);
        assert_eq!(s.since(day + 10 * 3600, None), day - 6 * 3600);
        assert_eq!(rfc3339(day), "2024-10-04T00:00:00Z");
    }

    #[test]
    fn sections_count_what_is_in_the_window() {
        let audit = json!({"entries": [
            {"timestamp": "2024-10-04T12:00:00.5Z", "event_type": "agent_message", "outcome": "ok", "details": ""},
            {"timestamp": "2024-10-04T12:00:01Z", "event_type": "tool_call", "outcome": "denied", "details": "shell"},
            {"timestamp": "2024-10-03T12:00:00Z", "event_type": "agent_message", "outcome": "boom", "details": ""},
        ]});
        let since = 20_000 * DAY;
        let text = audit_section(&audit, since, 10);
        assert_eq!(
            text,
            "Audit: 2 entries (agent_message 1, tool_call 1); 1 not ok.\n\
             - 2024-10-04T12:00:01Z tool_call: denied (shell)\n"
        );
        let tasks = json!({"tasks": [
            {"created_at": "2024-10-04T01:00:00Z", "status": "completed", "title": "a"},
            {"created_at": "2024-10-04T02:00:00Z", "status": "failed", "title": "b", "error": "no model"},
            {"created_at": "2024-10-03T02:00:00Z", "status": "failed", "title": "old"},
        ]});
        assert_eq!(
            tasks_section(&tasks, since, 10),
            "Tasks: 2 posted (completed 1, failed 1).\n- failed: b: no model\n"
        );
        let usage = json!({"today": {"requests": 3, "input_tokens": 10, "output_tokens": 5, "cost_usd": 0.5}, "month": {"cost_usd": 1.25}});
        assert_eq!(
            usage_section(&usage),
            "Usage today: 3 requests, 10 input tokens, 5 output tokens, cost $0.5000 (month $1.2500).\n"
        );
        // Hostile shapes give empty counts, not a panic.
        assert_eq!(
            audit_section(&json!("x"), since, 1),
            "Audit: 0 entries; 0 not ok.\n"
        );
        assert_eq!(
            tasks_section(&json!({"tasks": 3}), since, 1),
            "Tasks: 0 posted.\n"
        );
    }
}
