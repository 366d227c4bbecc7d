//! Plugin memory (`talon:plugin/memory`) over the agents' key-value store.

use std::sync::Arc;

use talon_runtime::MemoryBackend;
use uuid::Uuid;

use crate::agents::memory::{self, Quota};
use crate::shared::Shared;

/// Plugin memory over the agents' key-value store: values are JSON strings,
/// and each plugin's share of an agent's memory is capped by `[plugins]`
/// `max_memory_keys_per_agent` and `max_memory_kib_per_agent`.
pub(crate) struct StoreMemory(pub Arc<Shared>);

/// The owner of a memory scope: an agent's id, or for a channel (scope
/// `channel:<name>`, which the WIT gives a channel's own memory) an id
/// derived from its name, stable across restarts, so a channel's state (a
/// platform's sync position) outlives its instance like an agent's does.
fn agent_uuid(agent: &str) -> Result<Uuid, String> {
    if let Some(name) = agent.strip_prefix("channel:") {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("talon channel memory\0{name}").as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        return Ok(uuid::Builder::from_custom_bytes(bytes).into_uuid());
    }
    agent
        .parse()
        .map_err(|_| format!("{agent:?} is not an agent id"))
}

impl MemoryBackend for StoreMemory {
    fn get(&self, agent_id: &str, key: &str) -> Result<Option<String>, String> {
        let value =
            memory::get(self.0.store(), agent_uuid(agent_id)?, key).map_err(|e| e.to_string())?;
        Ok(value.map(|v| match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        }))
    }

    fn set(&self, agent_id: &str, key: &str, value: &str) -> Result<(), String> {
        let value = serde_json::Value::String(value.to_string());
        // Keys arrive scoped as `plugin:<name>:<key>`: the quota is the plugin's.
        let scope_end = key
            .match_indices(':')
            .nth(1)
            .map_or(key.len(), |(at, _)| at + 1);
        let limits = &self.0.config().plugins;
        let quota = Quota {
            keys: limits.max_memory_keys_per_agent,
            bytes: limits.max_memory_kib_per_agent.saturating_mul(1024),
        };
        memory::set_within(
            self.0.store(),
            agent_uuid(agent_id)?,
            &key[..scope_end],
            key,
            &value,
            quota,
        )
        .map_err(|e| e.to_string())?
    }

    fn delete(&self, agent_id: &str, key: &str) -> Result<bool, String> {
        memory::delete(self.0.store(), agent_uuid(agent_id)?, key).map_err(|e| e.to_string())
    }

    fn list(&self, agent_id: &str, prefix: &str) -> Result<Vec<String>, String> {
        let all = memory::list(self.0.store(), agent_uuid(agent_id)?).map_err(|e| e.to_string())?;
        Ok(all
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with(prefix))
            .collect())
    }
}
