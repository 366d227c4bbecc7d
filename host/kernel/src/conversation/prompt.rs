//! What an agent's manifest makes of a model call: the target of its
//! `[model]` section, its system prompt, and how much history it is sent.

use talon_llm::{ContentPart, Message, Target};

use crate::KernelError;
use crate::agents::AgentManifest;

/// Where an agent's model calls go: its provider, the key from its
/// `api_key_env` when that variable is set (else the provider's own
/// variable), and its `base_url` override.
pub(crate) fn target(manifest: &AgentManifest) -> Result<Target, KernelError> {
    let model = &manifest.model;
    if model.provider.trim().is_empty() || model.model.trim().is_empty() {
        return Err(KernelError::Invalid(format!(
            "agent `{}` has no model: set `provider` and `model` in its [model] section",
            manifest.name
        )));
    }
    let mut target = Target::new(model.provider.to_ascii_lowercase());
    if let Some(var) = model.api_key_env.as_deref().filter(|v| !v.is_empty())
        && let Ok(key) = std::env::var(var)
        && !key.trim().is_empty()
    {
        target = target.with_api_key(key);
    }
    if let Some(url) = model.base_url.as_deref().filter(|u| !u.is_empty()) {
        target = target.with_base_url(url);
    }
    if let Some(secs) = model.call_deadline_secs {
        target = target.with_call_deadline(std::time::Duration::from_secs(secs));
    }
    Ok(target)
}

/// The agent's system prompt, wherever the manifest put it.
pub(crate) fn system_prompt(manifest: &AgentManifest) -> String {
    manifest
        .system_prompt
        .clone()
        .or_else(|| manifest.model.system_prompt.clone())
        .unwrap_or_else(|| {
            format!(
                "You are {}, a helpful assistant. {}",
                manifest.name, manifest.description
            )
            .trim()
            .to_string()
        })
}

/// Tokens a message costs the model, estimated (4 bytes of text a token,
/// an image a fixed 4,000): what context budgets are counted in.
pub(crate) fn message_tokens(message: &Message) -> usize {
    let text: usize = message
        .content
        .iter()
        .map(|p| match p {
            ContentPart::Text { text } => text.len(),
            ContentPart::Image { .. } => 4_000,
        })
        .sum();
    let calls: usize = message
        .tool_calls
        .iter()
        .map(|c| c.name.len() + c.arguments.len())
        .sum();
    (text + calls) / 4 + 8
}

/// The most tokens of history and new message one model call of this agent
/// is sent: the manifest's `max_context_tokens`, else the configured
/// default, never more than the model's `window` (0 leaves the window).
pub(crate) fn context_budget(manifest: &AgentManifest, default: u32, window: u32) -> usize {
    let wanted = manifest
        .model
        .max_context_tokens
        .filter(|n| *n > 0)
        .unwrap_or(default);
    let budget = if wanted == 0 {
        window
    } else {
        wanted.min(window)
    };
    budget as usize
}
