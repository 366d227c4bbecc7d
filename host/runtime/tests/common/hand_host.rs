//! The kernel's side of a hand, played by the tests and the hand bench.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use talon_runtime::MemoryBackend;
use talon_runtime::hand::{AgentHost, HostFuture};

/// The kernel's part, played by the test: memory in a map, the agent
/// answering with the length of what it was told, the owner's notices kept.
#[derive(Default)]
pub struct Kernel {
    pub memory: Mutex<BTreeMap<(String, String), String>>,
    pub asked: Mutex<Vec<(String, String, String)>>,
    pub notices: Mutex<Vec<(String, String, String)>>,
}

impl MemoryBackend for Kernel {
    fn get(&self, agent: &str, key: &str) -> Result<Option<String>, String> {
        let memory = self.memory.lock().unwrap();
        Ok(memory.get(&(agent.into(), key.into())).cloned())
    }
    fn set(&self, agent: &str, key: &str, value: &str) -> Result<(), String> {
        let mut memory = self.memory.lock().unwrap();
        memory.insert((agent.into(), key.into()), value.into());
        Ok(())
    }
    fn delete(&self, agent: &str, key: &str) -> Result<bool, String> {
        let mut memory = self.memory.lock().unwrap();
        Ok(memory.remove(&(agent.into(), key.into())).is_some())
    }
    fn list(&self, agent: &str, prefix: &str) -> Result<Vec<String>, String> {
        let memory = self.memory.lock().unwrap();
        Ok(memory
            .keys()
            .filter(|(a, k)| a == agent && k.starts_with(prefix))
            .map(|(_, k)| k.clone())
            .collect())
    }
}

pub struct Host(pub Arc<Kernel>);

impl AgentHost for Host {
    fn send(
        &self,
        hand: &str,
        agent_id: &str,
        message: String,
    ) -> HostFuture<Result<String, String>> {
        let answer = format!("{} characters", message.len());
        self.0
            .asked
            .lock()
            .unwrap()
            .push((hand.into(), agent_id.into(), message));
        Box::pin(async move { Ok(answer) })
    }

    fn notify_owner(&self, hand: &str, agent_id: &str, message: String) -> HostFuture<()> {
        self.0
            .notices
            .lock()
            .unwrap()
            .push((hand.into(), agent_id.into(), message));
        Box::pin(async {})
    }
}
