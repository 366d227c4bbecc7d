//! Agent cards: the one Talon serves, and the checks a remote one must pass
//! before Talon sends it anything.
//!
//! Talon's card is an A2A 1.0 card (`supportedInterfaces` naming the
//! JSON-RPC endpoint for 1.0 and for 0.3) that also carries 0.3's `url`,
//! `protocolVersion` and `preferredTransport`, so readers of either version
//! (and LibreFang's, which reads `url`) find the endpoint.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::wire::Version;

/// Longest name or description read from a remote card, in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Most skills read from a remote card.
pub const MAX_SKILLS: usize = 256;

/// A skill of Talon's card: one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkillInput {
    /// The agent's id.
    pub id: String,
    /// The agent's name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Its tags.
    pub tags: Vec<String>,
}

/// What Talon's card says.
#[derive(Debug, Clone)]
pub struct CardInput {
    /// The card's name.
    pub name: String,
    /// What it offers.
    pub description: String,
    /// Talon's version.
    pub version: String,
    /// The JSON-RPC endpoint's absolute URL.
    pub endpoint: String,
    /// Whether the endpoint wants a bearer key.
    pub needs_key: bool,
    /// The agents, as skills.
    pub skills: Vec<SkillInput>,
}

impl CardInput {
    /// The card as JSON.
    pub fn to_json(&self) -> Value {
        let skills: Vec<Value> = self
            .skills
            .iter()
            .map(|s| {
                json!({
                    "id": s.id,
                    "name": s.name,
                    "description": if s.description.is_empty() { format!("Talk to the agent {}", s.name) } else { s.description.clone() },
                    "tags": s.tags,
                })
            })
            .collect();
        let mut card = json!({
            "name": self.name,
            "description": self.description,
            "version": self.version,
            "supportedInterfaces": [
                {"url": self.endpoint, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
                {"url": self.endpoint, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
            ],
            "url": self.endpoint,
            "protocolVersion": "0.3.0",
            "preferredTransport": "JSONRPC",
            "provider": {"organization": "Talon", "url": self.endpoint},
            "capabilities": {"streaming": true, "pushNotifications": false},
            "defaultInputModes": ["text/plain"],
            "defaultOutputModes": ["text/plain"],
            "skills": skills,
        });
        if self.needs_key {
            card["securitySchemes"] =
                json!({"bearer": {"httpAuthSecurityScheme": {"scheme": "Bearer"}}});
            card["securityRequirements"] = json!([{"schemes": {"bearer": {"list": []}}}]);
        }
        card
    }
}

/// A skill of a remote card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteSkill {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: String,
}

/// A remote card that passed the checks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteCard {
    /// The agent's name.
    pub name: String,
    /// What it offers.
    pub description: String,
    /// The JSON-RPC endpoint Talon talks to.
    pub endpoint: String,
    /// The version spoken there.
    pub protocol_version: Version,
    /// Its skills.
    pub skills: Vec<RemoteSkill>,
    /// Whether it streams.
    pub streaming: bool,
}

fn http_url(url: &str) -> bool {
    reqwest::Url::parse(url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

fn text<'a>(card: &'a Value, key: &str, problems: &mut Vec<String>) -> &'a str {
    match card.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= MAX_TEXT_BYTES => s,
        Some(Value::String(s)) if s.len() > MAX_TEXT_BYTES => {
            problems.push(format!("`{key}` is over {MAX_TEXT_BYTES} bytes"));
            ""
        }
        _ => {
            problems.push(format!("`{key}` must be a non-empty string"));
            ""
        }
    }
}

/// The JSON-RPC interface to use: 1.0 before 0.3, as `a2a-sdk` chooses.
fn endpoint(card: &Value, problems: &mut Vec<String>) -> Option<(String, Version)> {
    let mut found: Option<(String, Version)> = None;
    if let Some(interfaces) = card.get("supportedInterfaces") {
        let Some(interfaces) = interfaces.as_array() else {
            problems.push("`supportedInterfaces` must be an array".into());
            return None;
        };
        for interface in interfaces {
            let binding = interface.get("protocolBinding").and_then(Value::as_str);
            let url = interface.get("url").and_then(Value::as_str);
            let version = interface.get("protocolVersion").and_then(Value::as_str);
            let (Some("JSONRPC"), Some(url)) = (binding, url) else {
                continue;
            };
            let version = match version {
                Some(v) if v == "1" || v.starts_with("1.") => Version::V1,
                Some(v) if v.starts_with("0.3") => Version::V03,
                _ => continue,
            };
            if !http_url(url) {
                problems.push(format!("interface URL `{url}` is not an http(s) URL"));
                continue;
            }
            if found
                .as_ref()
                .is_none_or(|(_, v)| *v == Version::V03 && version == Version::V1)
            {
                found = Some((url.to_string(), version));
            }
        }
    } else if let Some(url) = card.get("url").and_then(Value::as_str) {
        let transport = card.get("preferredTransport").and_then(Value::as_str);
        let version = card
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or("0.3.0");
        if !matches!(transport, None | Some("JSONRPC")) {
            problems.push(format!(
                "`preferredTransport` is {transport:?}; Talon speaks JSONRPC only"
            ));
        } else if !version.starts_with("0.3") {
            problems.push(format!(
                "`protocolVersion` {version} is not 0.3 (or use supportedInterfaces)"
            ));
        } else if !http_url(url) {
            problems.push(format!("`url` `{url}` is not an http(s) URL"));
        } else {
            found = Some((url.to_string(), Version::V03));
        }
    }
    if found.is_none() && problems.is_empty() {
        problems.push(
            "the card names no JSON-RPC interface of A2A 1.0 or 0.3 (`supportedInterfaces` or `url`)"
                .into(),
        );
    }
    found
}

/// Checks a remote card; `Err` lists every problem found.
pub fn validate(card: &Value) -> Result<RemoteCard, Vec<String>> {
    if !card.is_object() {
        return Err(vec!["the agent card is not a JSON object".into()]);
    }
    let mut problems = Vec::new();
    let name = text(card, "name", &mut problems).to_string();
    let description = match card.get("description") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.len() <= MAX_TEXT_BYTES => s.clone(),
        Some(_) => {
            problems.push(format!(
                "`description` must be a string of at most {MAX_TEXT_BYTES} bytes"
            ));
            String::new()
        }
    };
    let endpoint = endpoint(card, &mut problems);
    let mut skills = Vec::new();
    match card.get("skills") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) if list.len() <= MAX_SKILLS => {
            for (i, skill) in list.iter().enumerate() {
                let field = |key: &str| skill.get(key).and_then(Value::as_str).map(str::to_string);
                match (field("id"), field("name")) {
                    (Some(id), Some(name))
                        if id.len() <= MAX_TEXT_BYTES && name.len() <= MAX_TEXT_BYTES =>
                    {
                        skills.push(RemoteSkill {
                            id,
                            name,
                            description: field("description").unwrap_or_default(),
                        })
                    }
                    _ => problems.push(format!("`skills[{i}]` needs string `id` and `name`")),
                }
            }
        }
        Some(_) => problems.push(format!("`skills` must be an array of at most {MAX_SKILLS}")),
    }
    let streaming = card
        .get("capabilities")
        .and_then(|c| c.get("streaming"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match endpoint {
        Some((endpoint, protocol_version)) if problems.is_empty() => Ok(RemoteCard {
            name,
            description,
            endpoint,
            protocol_version,
            skills,
            streaming,
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn talons_card_passes_its_own_checks() {
        let card = CardInput {
            name: "Talon".into(),
            description: "d".into(),
            version: "0.1.0".into(),
            endpoint: "http://127.0.0.1:1/a2a".into(),
            needs_key: true,
            skills: vec![SkillInput {
                id: "1".into(),
                name: "a".into(),
                description: String::new(),
                tags: vec![],
            }],
        };
        let remote = validate(&card.to_json()).unwrap();
        assert_eq!(remote.protocol_version, Version::V1);
        assert_eq!(remote.skills.len(), 1);
    }

    #[test]
    fn a_legacy_card_speaks_0_3() {
        let card = json!({"name": "x", "url": "http://h/rpc", "protocolVersion": "0.3.0"});
        assert_eq!(validate(&card).unwrap().protocol_version, Version::V03);
    }

    #[test]
    fn problems_are_named() {
        let problems = validate(&json!({"name": 3, "url": "ftp://x", "skills": {}})).unwrap_err();
        let all = problems.join("; ");
        assert!(all.contains("`name`"), "{all}");
        assert!(all.contains("`url`"), "{all}");
        assert!(all.contains("`skills`"), "{all}");
        assert!(validate(&json!([])).is_err());
        assert!(validate(&json!({"name": "x"})).unwrap_err()[0].contains("JSON-RPC"));
    }
}
