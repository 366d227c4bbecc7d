//! The plugin manifest: what a plugin is, offers, asks for and may spend.
//!
//! Authors write it as `talon.toml` beside their code. `talon plugin pack`
//! reads it, asks the component to describe its tools, and stores the
//! completed manifest in the package as JSON, where the signature covers it.

use serde::{Deserialize, Serialize};

use crate::error::LoadError;

/// The version of the WIT contract tools and skills are built against.
pub const WIT_VERSION: &str = "0.1.0";
/// The version of the WIT contract channels are built against (0.2.0's
/// `channel` world; 0.1.0's was never loaded).
pub const CHANNEL_WIT_VERSION: &str = "0.2.0";
/// The version of the WIT contract new hands are built against (0.2.0's
/// `hand` world, which describes itself).
pub const HAND_WIT_VERSION: &str = "0.2.0";
/// Every version of the `hand` world the host loads, newest first: 0.1.0
/// hands run through their own adapter (`hand_adapter.rs`), their agent
/// role and interval taken from the manifest's `[hand]` table.
pub const HAND_WIT_VERSIONS: [&str; 2] = [HAND_WIT_VERSION, "0.1.0"];

/// The manifest of a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Unique name: lowercase letters, digits, `_` and `-`, at most 64.
    pub name: String,
    /// The plugin's version (semantic versioning, `1.2.3`).
    pub version: String,
    /// Which world the component implements.
    pub kind: Kind,
    /// The version of `talon:plugin` the component was built against.
    pub wit: String,
    /// One line for operators.
    #[serde(default)]
    pub description: String,
    /// Who publishes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// The tools, as the component describes them (filled in by `pack`).
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
    /// What the plugin asks to use; the operator grants all or part of it.
    #[serde(default)]
    pub permissions: Permissions,
    /// Ceilings for one call; the host's own ceilings apply too.
    #[serde(default)]
    pub limits: Limits,
    /// What a hand built against 0.1.0 cannot describe itself (its `hand`
    /// world has no `describe`): its agent's role and its interval.
    /// Required for those hands, refused for every other plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hand: Option<HandSection>,
}

/// The `[hand]` table of a manifest: what 0.2.0's `describe` says and
/// 0.1.0's `hand` world has no way to say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandSection {
    /// The role of the agent the hand drives: the system prompt the host
    /// gives the agent it creates for the hand.
    pub role: String,
    /// Seconds between two ticks (the operator may slow it down).
    pub interval_secs: u64,
    /// The name shown to operators; the plugin's name when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// Longest agent role a `[hand]` table may give, in bytes (a system prompt).
pub const MAX_HAND_ROLE: usize = 16 * 1024;

/// The world a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Offers tools.
    Tool,
    /// Offers tools and instructions for the agents that have it.
    Skill,
    /// An autonomous capability (`talon:plugin@0.2.0`'s `hand` world),
    /// activated with settings and ticked on a schedule.
    Hand,
    /// A chat platform adapter (`talon:plugin@0.2.0`'s `channel` world), long-lived.
    Channel,
}

impl Kind {
    /// The name used in manifests and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Skill => "skill",
            Self::Hand => "hand",
            Self::Channel => "channel",
        }
    }
}

/// Reads a kind by name; an unknown name is answered with the kinds.
impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match name.as_str() {
            "tool" => Ok(Self::Tool),
            "skill" => Ok(Self::Skill),
            "hand" => Ok(Self::Hand),
            "channel" => Ok(Self::Channel),
            other => Err(serde::de::Error::custom(format!(
                "unknown kind `{other}`: use `tool`, `skill`, `channel` or `hand`"
            ))),
        }
    }
}

/// One tool of a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    /// Unique among all installed tools.
    pub name: String,
    /// What it does, for the model that decides to call it (filled in by
    /// `pack`; an author's `talon.toml` may leave it out).
    #[serde(default)]
    pub description: String,
    /// JSON Schema of the arguments object (filled in by `pack`, like `description`).
    #[serde(default = "empty_object")]
    pub parameters: serde_json::Value,
    /// The risk class the author declares (`low`, `medium`, `high`, ...):
    /// approval rules may name it. Kept by `pack` from `talon.toml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<String>,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// Permissions, as requested in a manifest or as granted by an operator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Permissions {
    /// `"workspace"`: the calling agent's workspace, preopened as `/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<Filesystem>,
    /// Hosts for outgoing HTTP: `example.com`, `*.example.com`, `host:port`,
    /// an IP address, or `*` for any public host.
    pub network: Vec<String>,
    /// Memory keys: exact keys, or prefixes ending in `*`.
    pub memory: Vec<String>,
    /// Environment variables of the daemon passed to the plugin.
    pub env: Vec<String>,
    /// TCP connections (`wasi:sockets`): `host:port` or `ip:port` pairs.
    /// Channels only; checked after DNS like `network`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sockets: Vec<String>,
}

/// Filesystem access a plugin may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filesystem {
    /// The calling agent's workspace directory, read and write.
    Workspace,
}

/// Per-call ceilings a manifest may set below the host's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Fuel (roughly, WebAssembly instructions) for one call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Linear memory of one instance, in MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// Wall-clock time of one call, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl Manifest {
    /// Parses an author's `talon.toml`; errors name the line and the key.
    pub fn from_toml(text: &str) -> Result<Self, LoadError> {
        let manifest: Self =
            toml::from_str(text).map_err(|e| LoadError::Manifest(e.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Parses the JSON form stored in packages.
    pub fn from_json(bytes: &[u8]) -> Result<Self, LoadError> {
        let manifest: Self =
            serde_json::from_slice(bytes).map_err(|e| LoadError::Manifest(e.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks what serde cannot: names, versions, kinds and patterns.
    pub fn validate(&self) -> Result<(), LoadError> {
        let bad = |msg: String| Err(LoadError::Manifest(msg));
        if !valid_name(&self.name) {
            return bad(format!(
                "name {:?}: use 1 to 64 lowercase letters, digits, '_' or '-', starting with a letter or digit",
                self.name
            ));
        }
        if !valid_version(&self.version) {
            return bad(format!(
                "version {:?}: expected MAJOR.MINOR.PATCH, for example 0.1.0",
                self.version
            ));
        }
        if self.kind == Kind::Hand {
            self.validate_hand()?;
        } else if self.hand.is_some() {
            return bad(format!(
                "[hand]: only a hand built against talon:plugin@0.1.0 has this table, not a {}",
                self.kind.as_str()
            ));
        }
        let wit = match self.kind {
            Kind::Channel => CHANNEL_WIT_VERSION,
            Kind::Hand => self.wit.as_str(),
            _ => WIT_VERSION,
        };
        if self.wit != wit {
            return bad(format!(
                "wit {:?}: this host loads {} plugins built against talon:plugin@{wit}; rebuild against it",
                self.wit,
                self.kind.as_str()
            ));
        }
        if self.kind != Kind::Channel && !self.permissions.sockets.is_empty() {
            return bad("permissions.sockets: only channels may open sockets".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for tool in &self.tools {
            if !valid_name(&tool.name) {
                return bad(format!(
                    "tool name {:?}: use lowercase letters, digits, '_' or '-'",
                    tool.name
                ));
            }
            if !seen.insert(tool.name.as_str()) {
                return bad(format!("tool {:?} is listed twice", tool.name));
            }
            if let Some(risk) = &tool.risk
                && !valid_name(risk)
            {
                return bad(format!(
                    "tool {:?}: risk {risk:?}: use lowercase letters, digits, '_' or '-'",
                    tool.name
                ));
            }
            if !tool.parameters.is_object() {
                return bad(format!(
                    "tool {:?}: parameters must be a JSON Schema object",
                    tool.name
                ));
            }
        }
        self.permissions.validate().map_err(LoadError::Manifest)?;
        for (key, value) in [
            ("limits.fuel", self.limits.fuel),
            ("limits.memory_mb", self.limits.memory_mb),
            ("limits.timeout_ms", self.limits.timeout_ms),
        ] {
            if value == Some(0) {
                return bad(format!("{key} must be greater than 0"));
            }
        }
        Ok(())
    }
}

impl Manifest {
    /// A hand's `wit` and `[hand]` table: 0.2.0 hands describe their role
    /// and interval themselves, so the table would contradict them; 0.1.0
    /// hands cannot, so the table must say both.
    fn validate_hand(&self) -> Result<(), LoadError> {
        let bad = |msg: String| Err(LoadError::Manifest(msg));
        const ADD: &str = "add to talon.toml:\n[hand]\nrole = \"...\"  # the system prompt of the agent it drives\ninterval_secs = 3600  # seconds between two ticks";
        match (self.wit.as_str(), &self.hand) {
            ("0.2.0", None) => Ok(()),
            ("0.2.0", Some(_)) => bad(
                "[hand]: a hand built against talon:plugin@0.2.0 describes its agent role and \
                 interval itself (`describe`); remove the [hand] table"
                    .into(),
            ),
            ("0.1.0", None) => bad(format!(
                "a hand built against talon:plugin@0.1.0 cannot describe its agent role or tick \
                 interval; {ADD}"
            )),
            ("0.1.0", Some(hand)) => {
                if hand.role.trim().is_empty() {
                    return bad(format!("[hand] role is empty; {ADD}"));
                }
                if hand.role.len() > MAX_HAND_ROLE {
                    return bad(format!("[hand] role is over {MAX_HAND_ROLE} bytes"));
                }
                if hand.interval_secs == 0 {
                    return bad("[hand] interval_secs must be greater than 0".into());
                }
                // The supervisor keeps it in milliseconds, as 0.2.0 does.
                if hand.interval_secs.checked_mul(1000).is_none() {
                    return bad("[hand] interval_secs is too large".into());
                }
                if let Some(name) = &hand.display_name
                    && name.trim().is_empty()
                {
                    return bad("[hand] display_name is empty; leave it out to use the name".into());
                }
                Ok(())
            }
            (other, _) => bad(format!(
                "wit {other:?}: this host loads hand plugins built against talon:plugin@{} or \
                 @{}; rebuild against {HAND_WIT_VERSION}",
                HAND_WIT_VERSIONS[0], HAND_WIT_VERSIONS[1]
            )),
        }
    }
}

impl Permissions {
    /// Checks every pattern's syntax.
    pub fn validate(&self) -> Result<(), String> {
        for host in &self.network {
            crate::permissions::HostRule::parse(host)?;
        }
        for pair in &self.sockets {
            // A channel requests `*` when the operator chooses the server;
            // the grant then names it.
            if pair != "*" {
                crate::permissions::SocketPolicy::parse_grant(pair)?;
            }
        }
        for key in &self.memory {
            if key.is_empty()
                || key.len() > 256
                || key.strip_suffix('*').unwrap_or(key).contains('*')
            {
                return Err(format!(
                    "memory key {key:?}: use an exact key or a prefix ending in '*' (at most 256 characters)"
                ));
            }
        }
        for var in &self.env {
            let ok = !var.is_empty()
                && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !var.as_bytes()[0].is_ascii_digit();
            if !ok {
                return Err(format!("env {var:?}: not an environment variable name"));
            }
        }
        Ok(())
    }

    /// The first permission in `self` that `requested` does not contain, if
    /// any: an operator can only grant what the plugin asked for.
    pub fn first_not_in(&self, requested: &Permissions) -> Option<String> {
        if self.filesystem.is_some() && requested.filesystem.is_none() {
            return Some("filesystem \"workspace\"".into());
        }
        use crate::permissions::{HostRule, memory_covers};
        let host_covered = |granted: &String| {
            let Ok(granted) = HostRule::parse(granted) else {
                return false;
            };
            requested
                .network
                .iter()
                .filter_map(|r| HostRule::parse(r).ok())
                .any(|r| r.covers(&granted))
        };
        if let Some(host) = self.network.iter().find(|g| !host_covered(g)) {
            return Some(format!("network host {host:?}"));
        }
        if let Some(pair) = self.sockets.iter().find(|g| {
            let Ok(granted) = HostRule::parse(g) else {
                return true;
            };
            !requested
                .sockets
                .iter()
                .filter_map(|r| HostRule::parse(r).ok())
                .any(|r| r.covers(&granted))
        }) {
            return Some(format!("socket {pair:?}"));
        }
        if let Some(key) = self
            .memory
            .iter()
            .find(|g| !requested.memory.iter().any(|r| memory_covers(r, g)))
        {
            return Some(format!("memory key {key:?}"));
        }
        self.env
            .iter()
            .find(|g| !requested.env.contains(g))
            .map(|g| format!("env {g:?}"))
    }
}

/// Plugin and tool names: `[a-z0-9][a-z0-9_-]{0,63}`.
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
}

fn valid_version(version: &str) -> bool {
    let core = version.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "word_count"
version = "0.1.0"
kind = "tool"
wit = "0.1.0"
description = "Counts words."

[permissions]
filesystem = "workspace"
network = ["api.example.com", "*.example.org"]
memory = ["notes/*"]

[limits]
fuel = 1_000_000
"#;

    #[test]
    fn parses_an_author_manifest() {
        let m = Manifest::from_toml(GOOD).unwrap();
        assert_eq!(m.name, "word_count");
        assert_eq!(m.kind, Kind::Tool);
        assert_eq!(m.permissions.filesystem, Some(Filesystem::Workspace));
        assert_eq!(m.limits.fuel, Some(1_000_000));
        assert_eq!(m.limits.memory_mb, None);
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let err =
            Manifest::from_toml(&GOOD.replace("kind = \"tool\"", "kind = \"gadget\"")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("line 4") && text.contains("gadget"), "{text}");
        assert!(
            text.contains("use `tool`, `skill`, `channel` or `hand`"),
            "{text}"
        );

        let err = Manifest::from_toml(&GOOD.replace("word_count", "Word Count")).unwrap_err();
        assert!(err.to_string().contains("name \"Word Count\""), "{err}");

        let err =
            Manifest::from_toml(&GOOD.replace("wit = \"0.1.0\"", "wit = \"9.0.0\"")).unwrap_err();
        assert!(err.to_string().contains("talon:plugin@0.1.0"), "{err}");

        let err = Manifest::from_toml(&format!("{GOOD}\nsurprise = 1")).unwrap_err();
        assert!(err.to_string().contains("surprise"), "{err}");

        let err = Manifest::from_toml(&GOOD.replace("notes/*", "a*b")).unwrap_err();
        assert!(err.to_string().contains("memory key"), "{err}");

        let err = Manifest::from_toml(&GOOD.replace("api.example.com", "http://x/y")).unwrap_err();
        assert!(err.to_string().contains("network host"), "{err}");
    }

    const OLD_HAND: &str = r#"
name = "elder"
version = "0.1.0"
kind = "hand"
wit = "0.1.0"

[hand]
role = "You answer in one sentence."
interval_secs = 3600
"#;

    #[test]
    fn a_hand_of_0_1_0_takes_its_role_and_interval_from_hand() {
        let m = Manifest::from_toml(OLD_HAND).unwrap();
        let hand = m.hand.as_ref().unwrap();
        assert_eq!(hand.interval_secs, 3600);
        assert_eq!(hand.display_name, None);
        let json = serde_json::to_vec(&m).unwrap();
        assert_eq!(Manifest::from_json(&json).unwrap(), m);

        let cut = OLD_HAND.split("[hand]").next().unwrap();
        let err = Manifest::from_toml(cut).unwrap_err().to_string();
        assert!(
            err.contains("[hand]") && err.contains("role = ") && err.contains("interval_secs ="),
            "{err}"
        );
        let err = Manifest::from_toml(&OLD_HAND.replace("3600", "0"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("interval_secs must be greater than 0"),
            "{err}"
        );
        let err = Manifest::from_toml(&OLD_HAND.replace("You answer in one sentence.", " "))
            .unwrap_err()
            .to_string();
        assert!(err.contains("role is empty"), "{err}");
        let err = Manifest::from_toml(&OLD_HAND.replace("interval_secs = 3600", ""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("interval_secs"), "{err}");

        let err = Manifest::from_toml(&OLD_HAND.replace("wit = \"0.1.0\"", "wit = \"0.2.0\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("remove the [hand] table"), "{err}");
        let err = Manifest::from_toml(&OLD_HAND.replace("wit = \"0.1.0\"", "wit = \"0.3.0\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("talon:plugin@0.2.0 or @0.1.0"), "{err}");
        let err = Manifest::from_toml(&OLD_HAND.replace("kind = \"hand\"", "kind = \"tool\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("only a hand"), "{err}");
    }

    #[test]
    fn grants_must_be_requested() {
        let requested = Manifest::from_toml(GOOD).unwrap().permissions;
        let mut granted = requested.clone();
        assert_eq!(granted.first_not_in(&requested), None);
        granted.network.truncate(1);
        granted.filesystem = None;
        assert_eq!(granted.first_not_in(&requested), None);
        granted.network.push("api.example.org".into());
        assert_eq!(
            granted.first_not_in(&requested),
            None,
            "narrower than *.example.org"
        );
        granted.network.push("api.example.org".into());
        assert_eq!(
            granted.first_not_in(&requested),
            None,
            "narrower than *.example.org"
        );
        granted.network.push("evil.example".into());
        assert_eq!(
            granted.first_not_in(&requested).as_deref(),
            Some("network host \"evil.example\"")
        );
        let none = Permissions::default();
        let wants_fs = Permissions {
            filesystem: Some(Filesystem::Workspace),
            ..Default::default()
        };
        assert!(wants_fs.first_not_in(&none).is_some());
    }

    #[test]
    fn versions() {
        for ok in ["0.1.0", "10.20.30", "1.0.0-beta.1", "1.2.3+build"] {
            assert!(valid_version(ok), "{ok}");
        }
        for bad in ["1", "1.2", "a.b.c", "1..2", ""] {
            assert!(!valid_version(bad), "{bad}");
        }
    }
}
