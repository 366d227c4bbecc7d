//! The `[approvals]` and `[webhooks]` sections, and the approval rules an
//! agent manifest may carry too (so both read the same types).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Whether a tool call runs without asking, waits for an operator, or never runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Runs without asking.
    Always,
    /// Pauses the turn until an operator approves or rejects the call.
    Ask,
    /// Refused: the model reads a tool error.
    Never,
}

/// Approval rules by tool name and by the risk class a plugin's manifest
/// declares for a tool; the first that names the call decides, in that order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalRules {
    /// For tools neither list names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Policy>,
    /// By tool name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tools: BTreeMap<String, Policy>,
    /// By risk class (`low`, `medium`, `high`, or any name a manifest uses).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub risk: BTreeMap<String, Policy>,
}

impl ApprovalRules {
    /// Whether the rules say nothing (an agent without `[approvals]`).
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// What the tool and risk lists say about `tool` of class `risk`.
    fn named(
        tools: &BTreeMap<String, Policy>,
        risks: &BTreeMap<String, Policy>,
        tool: &str,
        risk: Option<&str>,
    ) -> Option<Policy> {
        tools
            .get(tool)
            .or_else(|| risk.and_then(|r| risks.get(r)))
            .copied()
    }
}

/// The second factor an approval of the TOTP risk class needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SecondFactor {
    /// None: an approval is one API call.
    #[default]
    None,
    /// A current TOTP code (once enrolled and confirmed).
    Totp,
}

/// `[approvals]`: the daemon-wide rules (an agent's `[approvals]` wins) and
/// how long a call waits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalsConfig {
    /// For calls that no rule names.
    pub default: Policy,
    /// By tool name.
    pub tools: BTreeMap<String, Policy>,
    /// By the risk class a plugin declares for a tool.
    pub risk: BTreeMap<String, Policy>,
    /// Seconds a call waits for a decision before it fails as expired.
    pub timeout_secs: u64,
    /// `totp`: approving a call of `totp_risk` needs a TOTP code.
    pub second_factor: SecondFactor,
    /// The risk class the second factor guards.
    pub totp_risk: String,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            default: Policy::Always,
            tools: BTreeMap::new(),
            risk: BTreeMap::from([("high".to_string(), Policy::Ask)]),
            timeout_secs: 300,
            second_factor: SecondFactor::None,
            totp_risk: "high".to_string(),
        }
    }
}

impl ApprovalsConfig {
    /// The policy for `tool` (of class `risk`) called by an agent with
    /// `agent` rules: the agent's rules first, then these.
    pub fn policy(&self, agent: &ApprovalRules, tool: &str, risk: Option<&str>) -> Policy {
        ApprovalRules::named(&agent.tools, &agent.risk, tool, risk)
            .or_else(|| ApprovalRules::named(&self.tools, &self.risk, tool, risk))
            .or(agent.default)
            .unwrap_or(self.default)
    }
}

/// `[webhooks]`: outbound delivery and the inbound hooks' tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Attempts per delivery before it goes to the dead letters.
    pub max_attempts: u32,
    /// The first retry's delay in milliseconds; each retry doubles it.
    pub backoff_base_ms: u64,
    /// The longest delay between two attempts, in seconds.
    pub backoff_cap_secs: u64,
    /// Longest wait for a receiver's answer, in seconds.
    pub timeout_secs: u64,
    /// Bearer token of `POST /api/hooks/wake`; empty: the hook is off (404).
    pub wake_token: String,
    /// Bearer token of `POST /api/hooks/agent`; empty: the hook is off (404).
    pub agent_token: String,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            max_attempts: 20,
            backoff_base_ms: 1000,
            backoff_cap_secs: 600,
            timeout_secs: 10,
            wake_token: String::new(),
            agent_token: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_wins_then_tool_then_risk_then_defaults() {
        let mut config = ApprovalsConfig::default();
        config.tools.insert("file_write".into(), Policy::Ask);
        let mut agent = ApprovalRules::default();
        assert_eq!(config.policy(&agent, "file_write", None), Policy::Ask);
        assert_eq!(config.policy(&agent, "file_read", None), Policy::Always);
        assert_eq!(config.policy(&agent, "rm", Some("high")), Policy::Ask);
        agent.tools.insert("file_write".into(), Policy::Always);
        agent.risk.insert("high".into(), Policy::Never);
        assert_eq!(config.policy(&agent, "file_write", None), Policy::Always);
        assert_eq!(config.policy(&agent, "rm", Some("high")), Policy::Never);
        agent.default = Some(Policy::Ask);
        assert_eq!(config.policy(&agent, "file_read", None), Policy::Ask);
        assert_eq!(
            config.policy(&agent, "file_write", Some("high")),
            Policy::Always
        );
    }
}
