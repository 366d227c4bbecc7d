//! What an agent's manifest makes of a model call: the target of its
//! `[model]` section and its system prompt.

use talon_llm::Target;

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
