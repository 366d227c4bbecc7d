//! Agent manifests (`agent.toml`): what an agent is, in the reference's format.

use serde::{Deserialize, Serialize};

use crate::KernelError;

/// The built-in tool for private notes to the agent's owner.
pub const NOTIFY_OWNER: &str = "notify_owner";
/// The built-in tool that sends a message to another agent and waits for its answer.
pub const AGENT_SEND: &str = "agent_send";
/// The built-in tool that sends a task to a discovered remote A2A agent and
/// waits for its answer.
pub const A2A_SEND: &str = "a2a_send";
/// The tools the kernel itself provides (the agent loop runs them); a
/// manifest lists them like any other.
pub const BUILTIN_TOOLS: &[&str] = &[NOTIFY_OWNER, AGENT_SEND, A2A_SEND];

/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;

/// An agent manifest (`agent.toml`), in the reference's format.
///
/// [`AgentManifest::parse`] checks the structure (known keys are
/// type-checked, a mistake is reported with its line and key); the checks at
/// the door ([`crate::agents::validate`]) then refuse keys neither Talon nor
/// LibreFang defines, a wrong `[model]`, and tools or skills not installed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentManifest {
    /// Unique, human-readable name.
    pub name: String,
    /// The manifest's own version.
    pub version: String,
    /// What the agent is for.
    pub description: String,
    /// Who wrote it.
    pub author: String,
    /// The agent module, for example `builtin:chat`.
    pub module: String,
    /// System prompt (also accepted inside `[model]`).
    pub system_prompt: Option<String>,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// Skills the agent uses.
    pub skills: Vec<String>,
    /// MCP servers the agent may use.
    pub mcp_servers: Vec<String>,
    /// Which model answers.
    pub model: ModelSpec,
    /// What the agent may do.
    pub capabilities: Capabilities,
    /// How the agent presents itself.
    pub identity: Identity,
    /// Which of its tool calls wait for an operator (see docs/APPROVALS.md);
    /// wins over the daemon's `[approvals]`.
    #[serde(skip_serializing_if = "crate::config::ApprovalRules::is_empty")]
    pub approvals: crate::config::ApprovalRules,
}

/// The `[identity]` section: how dashboards and channels show the agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Identity {
    /// An emoji for the agent.
    pub emoji: Option<String>,
    /// URL of an avatar image.
    pub avatar_url: Option<String>,
    /// A display colour.
    pub color: Option<String>,
    /// A persona archetype.
    pub archetype: Option<String>,
    /// The tone it takes.
    pub vibe: Option<String>,
    /// How it greets.
    pub greeting_style: Option<String>,
}

/// The `[model]` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelSpec {
    /// Provider name (openai, anthropic, groq, ...).
    pub provider: String,
    /// Model id at that provider (LibreFang also calls it `name`).
    #[serde(alias = "name")]
    pub model: String,
    /// Environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// Override of the provider's base URL.
    pub base_url: Option<String>,
    /// Upper bound on tokens generated per reply.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Deadline of each model call, in seconds, instead of
    /// `llm.call_deadline_secs`.
    pub call_deadline_secs: Option<u64>,
    /// Most tokens of history and message sent in one model call (else
    /// `agents.max_context_tokens`); never more than the model's window.
    pub max_context_tokens: Option<u32>,
    /// System prompt, when given here rather than at the top level.
    pub system_prompt: Option<String>,
}

/// The `[capabilities]` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    /// Tools the agent may call; nothing else is offered to it.
    pub tools: Vec<String>,
    /// Memory key patterns the agent may read.
    pub memory_read: Vec<String>,
    /// Memory key patterns the agent may write.
    pub memory_write: Vec<String>,
    /// Hosts the agent's tools may reach.
    pub network: Vec<String>,
}

impl AgentManifest {
    /// Parses a manifest, reporting the line and key of the first mistake.
    pub fn parse(text: &str) -> Result<Self, KernelError> {
        if text.len() > MAX_MANIFEST_BYTES {
            return Err(KernelError::Invalid(format!(
                "manifest is {} bytes; the limit is {MAX_MANIFEST_BYTES}",
                text.len()
            )));
        }
        let manifest: AgentManifest = toml::from_str(text).map_err(|e| {
            KernelError::Invalid(format!("invalid manifest: {}", e.to_string().trim_end()))
        })?;
        if manifest.name.trim().is_empty() {
            return Err(KernelError::Invalid(
                "invalid manifest: missing field `name`".into(),
            ));
        }
        if manifest.name.len() > 128 || manifest.name.chars().any(|c| c.is_control()) {
            return Err(KernelError::Invalid(
                "invalid manifest: `name` must be 1-128 printable characters".into(),
            ));
        }
        Ok(manifest)
    }
}
