//! The `[a2a]` section: how Talon talks to remote A2A agents and how its
//! own card names its endpoint.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `[a2a]`: the Agent-to-Agent protocol (docs/A2A.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct A2aConfig {
    /// Longest wait for a remote agent (its card, a task), in seconds; read at start.
    pub timeout_secs: u64,
    /// The base URL other agents reach this daemon at, for the agent card
    /// (`https://talon.example.com`); empty: taken from each request's `Host`.
    pub public_url: String,
}

impl Default for A2aConfig {
    fn default() -> Self {
        Self {
            timeout_secs: 60,
            public_url: String::new(),
        }
    }
}
