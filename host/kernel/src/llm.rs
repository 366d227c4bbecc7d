//! The kernel's side of talon-llm: the client built from `[llm]`, and the
//! target of an agent's `[model]` section.

use std::time::Duration;

use talon_llm::{BreakerConfig, LlmClient, ResilienceConfig, RetryPolicy, Target, Timeouts};

use crate::KernelError;
use crate::agents::AgentManifest;
use crate::config::Config;

/// The one client of the daemon, with `[llm]`'s retries, timeouts and breakers.
pub(crate) fn client(config: &Config) -> LlmClient {
    let llm = &config.llm;
    let defaults = ResilienceConfig::default();
    LlmClient::new().with_resilience(ResilienceConfig {
        retry: RetryPolicy {
            max_attempts: llm.max_attempts,
            base_delay: Duration::from_millis(llm.retry_base_delay_ms),
            ..defaults.retry
        },
        timeouts: Timeouts {
            request: Duration::from_secs(llm.request_timeout_secs),
            ..defaults.timeouts
        },
        breaker: BreakerConfig {
            failure_threshold: llm.breaker_failure_threshold,
            cooldown: Duration::from_secs(llm.breaker_cooldown_secs),
        },
    })
}

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
