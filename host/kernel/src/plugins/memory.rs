//! Plugin memory (`talon:plugin/memory`) over the agents' key-value store.

use talon_runtime::MemoryBackend;
use uuid::Uuid;

use crate::agents::memory;
use crate::store::Store;

/// Plugin memory over the agents' key-value store: values are JSON strings.
pub(crate) struct StoreMemory(pub Store);

fn agent_uuid(agent: &str) -> Result<Uuid, String> {
    agent
        .parse()
        .map_err(|_| format!("{agent:?} is not an agent id"))
}

impl MemoryBackend for StoreMemory {
    fn get(&self, agent_id: &str, key: &str) -> Result<Option<String>, String> {
        let value = memory::get(&self.0, agent_uuid(agent_id)?, key).map_err(|e| e.to_string())?;
        Ok(value.map(|v| match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        }))
    }

    fn set(&self, agent_id: &str, key: &str, value: &str) -> Result<(), String> {
        let value = serde_json::Value::String(value.to_string());
        memory::set(&self.0, agent_uuid(agent_id)?, key, &value).map_err(|e| e.to_string())
    }

    fn delete(&self, agent_id: &str, key: &str) -> Result<bool, String> {
        memory::delete(&self.0, agent_uuid(agent_id)?, key).map_err(|e| e.to_string())
    }

    fn list(&self, agent_id: &str, prefix: &str) -> Result<Vec<String>, String> {
        let all = memory::list(&self.0, agent_uuid(agent_id)?).map_err(|e| e.to_string())?;
        Ok(all
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with(prefix))
            .collect())
    }
}
